// Peer: the `ws` package answering the same JSON protocol (parse, reply {event,code,data,timestamp}).
//
// Copied from shared/peers/node-ws; the echo path (any path, same handler) is unchanged. Added for
// the fan-out benchmark: `POST /broadcast` with a JSON body D sends
// {"event":"broadcast","code":0,"data":D,"timestamp":T} (serialised once) to every connected
// client and answers {"delivered":n}. The HTTP server is now explicit so it can serve that route.
const http = require('http');
const { WebSocketServer, WebSocket } = require('ws');
const port = +process.env.PORT || 9001;

const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/broadcast') {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let data;
      try { data = JSON.parse(Buffer.concat(chunks)); } catch {
        res.writeHead(400, { 'content-type': 'application/json' });
        return res.end('{"error":"bad json"}');
      }
      // Serialised once: every client is sent the same buffer, as a text frame.
      const frame = Buffer.from(JSON.stringify({ event: 'broadcast', code: 0, data, timestamp: Date.now() }));
      let delivered = 0;
      for (const c of wss.clients) {
        if (c.readyState === WebSocket.OPEN) { c.send(frame, { binary: false }); delivered++; }
      }
      const body = JSON.stringify({ delivered });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    return;
  }
  res.writeHead(404, { 'content-type': 'application/json' });
  res.end('{"error":"not found"}');
});

const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', (buf) => {
    let req;
    try { req = JSON.parse(buf); } catch { return ws.send(JSON.stringify({ event: 'error', code: 1, errorMsg: 'bad json' })); }
    ws.send(JSON.stringify({ event: req.event, code: 0, data: req.data, timestamp: Date.now() }));
  });
});
// Loopback only (the benchmarks never leave 127.0.0.0/8); HOST overrides.
server.listen(port, process.env.HOST || '127.0.0.1', () => console.log('listening', port));
