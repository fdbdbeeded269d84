// Development only: serves web/ and the client bundle the way the Switchyard server will, and
// proxies everything else (the /ws upgrade, /api, /admin/modules, /admin/reload, /metrics,
// /healthz) to a running server. It also answers GET /dev/token?user=NAME itself, with a JWT
// signed by the server's public development secret (the server must run in dev mode, with no
// config file). Lets the pages be worked on before (or without) the server's own page serving.
//
//   node client/scripts/devserver.mjs --upstream 127.0.0.1:8080 [--listen 127.0.0.1:8081] [--no-dev-token]
//
// (--no-dev-token passes /dev/token through to the server, like a server not in dev mode: 404.)
//
// Routes it serves itself (the contract the server matches):
//   GET /                              web/demo/index.html
//   GET /admin                         web/admin/index.html
//   GET /assets/switchyard-client.js   client/dist/index.js
//   GET /assets/<file>                 web/demo/<file> or web/admin/<file> (demo.js, admin.css, ...)
//   GET /dev/token?user=NAME           {"token": "<HS256 JWT, sub NAME, exp in 1 h>"}
import http from "node:http";
import net from "node:net";
import { createHmac } from "node:crypto";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../..");
const DEV_SECRET = "switchyard-dev-secret-do-not-use-in-production";

const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml" };

const b64url = (buf) => Buffer.from(buf).toString("base64url");

/** An HS256 JWT like `switchyard token --sub USER` mints. */
export function devToken(user, ttlSecs = 3600, secret = DEV_SECRET) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify({ sub: user, iat: now, exp: now + ttlSecs }));
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

async function staticFile(pathname) {
  if (pathname === "/") return path.join(repo, "web/demo/index.html");
  if (pathname === "/admin" || pathname === "/admin/") return path.join(repo, "web/admin/index.html");
  if (pathname === "/assets/switchyard-client.js") return path.join(repo, "client/dist/index.js");
  const m = pathname.match(/^\/assets\/([A-Za-z0-9_.-]+)$/);
  if (!m) return null;
  for (const dir of ["web/demo", "web/admin"]) {
    const f = path.join(repo, dir, m[1]);
    try {
      await readFile(f);
      return f;
    } catch {}
  }
  return null;
}

/** Starts the dev server; resolves with {port, close()}. */
export function startDevServer({ upstream, listen = "127.0.0.1:0", devTokens = true, log = () => {} }) {
  const [uHost, uPort] = upstream.split(":");
  const [lHost, lPort] = listen.split(":");
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, "http://x");
    try {
      if (req.method === "GET" && url.pathname === "/dev/token" && devTokens) {
        const user = url.searchParams.get("user") || "";
        if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(user)) {
          res.writeHead(400, { "content-type": "application/json" });
          return res.end(JSON.stringify({ error: "user: 1-64 characters from [A-Za-z0-9_.@-]" }));
        }
        res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
        return res.end(JSON.stringify({ token: devToken(user) }));
      }
      const file = req.method === "GET" ? await staticFile(url.pathname) : null;
      if (file) {
        const body = await readFile(file);
        res.writeHead(200, { "content-type": TYPES[path.extname(file)] || "application/octet-stream", "cache-control": "no-cache" });
        return res.end(body);
      }
    } catch (e) {
      res.writeHead(500);
      return res.end(String(e));
    }
    // Everything else goes to the real server.
    const up = http.request({ host: uHost, port: +uPort, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode, ur.headers);
      ur.pipe(res);
    });
    up.on("error", (e) => {
      if (!res.headersSent) res.writeHead(502, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: `upstream: ${e.message}` }));
    });
    req.pipe(up);
  });
  // WebSocket upgrades: replay the request head to the server and splice the two sockets. The
  // Host header is passed unchanged, so the server's same-host Origin check still passes.
  server.on("upgrade", (req, socket, head) => {
    const up = net.connect(+uPort, uHost, () => {
      let h = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) h += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      up.write(h + "\r\n");
      if (head.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    const end = () => {
      socket.destroy();
      up.destroy();
    };
    up.on("error", end);
    socket.on("error", end);
    up.on("close", end);
    socket.on("close", end);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(+lPort, lHost, () => {
      const port = server.address().port;
      log(`dev server on http://${lHost}:${port}/ -> ${upstream}`);
      resolve({ port, close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }) });
    });
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (name, dflt) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : dflt;
  };
  await startDevServer({
    upstream: arg("--upstream", "127.0.0.1:8080"),
    listen: arg("--listen", "127.0.0.1:8081"),
    devTokens: !process.argv.includes("--no-dev-token"),
    log: console.log,
  });
}
