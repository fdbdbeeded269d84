// Peer for the cluster benchmark: Socket.IO 4 with @socket.io/redis-adapter (node-redis v4 pub
// and sub clients), what a team would run instead of a Switchyard cluster. Several processes on
// one Redis share rooms. A client joins the room named by its handshake query (`?room=bench`),
// websocket transport only. `POST /send` with JSON {room, event, data} does
// io.to(room).emit(event, data) (to every node, through Redis) and answers {"ok":true}.
//
//   PORT=9101 REDIS_URL=redis://127.0.0.1:6390 node bench/peers/socketio/server.js
const http = require('http');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-adapter');
const { createClient } = require('redis');

const port = +process.env.PORT || 9101;
const reply = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
};

// Socket.IO takes /socket.io/ and hands every other request to this handler.
const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/send') return reply(res, 404, '{"error":"not found"}');
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let b;
    try { b = JSON.parse(Buffer.concat(chunks)); } catch { return reply(res, 400, '{"error":"bad json"}'); }
    if (typeof b.room !== 'string' || typeof b.event !== 'string') return reply(res, 400, '{"error":"room, event"}');
    io.to(b.room).emit(b.event, b.data);
    reply(res, 200, '{"ok":true}');
  });
});

const io = new Server(server, { transports: ['websocket'], serveClient: false });
io.on('connection', (socket) => {
  const room = socket.handshake.query.room;
  if (typeof room === 'string' && room) socket.join(room);
});

(async () => {
  const pub = createClient({ url: process.env.REDIS_URL || 'redis://127.0.0.1:6379' });
  const sub = pub.duplicate();
  pub.on('error', (e) => console.error('redis pub:', e.message));
  sub.on('error', (e) => console.error('redis sub:', e.message));
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(createAdapter(pub, sub));
  // Loopback only (the benchmarks never leave 127.0.0.0/8); HOST overrides.
  server.listen(port, process.env.HOST || '127.0.0.1', () => console.log('listening', port));
})().catch((e) => { console.error(e); process.exit(1); });
