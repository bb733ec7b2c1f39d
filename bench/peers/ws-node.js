// The node peer of `scripts/bench ws`: Debian's node-ws (NODE_PATH=
// /usr/share/nodejs) on one http server, the routes of bench/ws_echo.lua
// and bench/ws_fanout.lua: /echo sends every message back as it came
// (text or binary), /sub connections receive every message a /pub
// connection sends. One process, one thread, as lunet is.
//
//   node bench/peers/ws-node.js [IP:PORT]   (default 127.0.0.1:0)
//
// Prints "listening service=ws proto=tcp addr=IP:PORT" on stderr, the
// line scripts/bench waits for; on SIGTERM or SIGINT prints "ws-node:
// echoed=N published=M" (what tests/bench_ws_shape.sh counts against)
// and exits 0.
'use strict';
const http = require('http');
const { WebSocketServer } = require('ws');

const [host, port] = (process.argv[2] || '127.0.0.1:0').split(/:(?=\d+$)/);
const server = http.createServer((req, res) => {
  res.writeHead(404).end();
});
// No per-message deflate: no other server here compresses.
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
const subscribers = new Set();
let echoed = 0;
let published = 0;

const routes = {
  '/echo': (ws) => ws.on('message', (msg, isBinary) => {
    echoed++;
    ws.send(msg, { binary: isBinary });
  }),
  '/sub': (ws) => {
    subscribers.add(ws);
    ws.on('close', () => subscribers.delete(ws));
  },
  '/pub': (ws) => ws.on('message', (msg, isBinary) => {
    published++;
    for (const sub of subscribers) sub.send(msg, { binary: isBinary });
  }),
};

server.on('upgrade', (req, socket, head) => {
  const route = routes[req.url];
  if (!route) {
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  socket.setNoDelay(true);
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.on('error', () => ws.terminate()); // a client that vanished
    route(ws);
  });
});

function stop() {
  process.stderr.write(`ws-node: echoed=${echoed} published=${published}\n`);
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.listen(Number(port), host, () => {
  const a = server.address();
  process.stderr.write(
    `listening service=ws proto=tcp addr=${a.address}:${a.port}\n`);
});
