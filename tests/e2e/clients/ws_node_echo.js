#!/usr/bin/env node
// The routes ws_conformance.py expects, served by node's `ws` (an
// independent implementation) so the suite itself can be checked:
//   node ws_node_echo.js [CERTDIR]   (NODE_PATH=/usr/share/nodejs)
// prints "PORT <n>" once listening on 127.0.0.1 (port 0); with CERTDIR
// (holding cert.pem and key.pem) it serves wss:// instead.
'use strict';
const fs = require('fs');
const http = require('http');
const https = require('https');
const { WebSocketServer } = require('ws');

const MIB = 1024 * 1024;

function echo(ws) {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
}

// Server preference: the first of ours the client offers.
function pickProtocol(offered) {
  for (const p of ['chat.v2', 'chat.v1']) if (offered.has(p)) return p;
  return false;
}

const routes = {
  '/echo': [{ maxPayload: MIB }, echo],
  '/big': [{ maxPayload: 16 * MIB }, echo],
  '/origins': [{
    maxPayload: MIB,
    verifyClient: (info, done) => done(info.origin === 'https://good.example', 403),
  }, echo],
  '/proto': [{ maxPayload: MIB, handleProtocols: pickProtocol },
    (ws) => { ws.send(ws.protocol || 'none'); echo(ws); }],
  '/close': [{ maxPayload: MIB }, (ws) => ws.close(4000, 'bye')],
};

const servers = {};
for (const [path, [opts, onOpen]] of Object.entries(routes)) {
  servers[path] = new WebSocketServer(Object.assign({ noServer: true }, opts));
  // A protocol error is reported here after ws has sent its close frame.
  servers[path].on('connection', (ws) => { ws.on('error', () => {}); onOpen(ws); });
}

function refuse(socket, status, text) {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

const certDir = process.argv[2];
const plain = (req, res) => { res.writeHead(426, { 'Sec-WebSocket-Version': '13' }); res.end(); };
const server = certDir
  ? https.createServer({ cert: fs.readFileSync(certDir + '/cert.pem'),
    key: fs.readFileSync(certDir + '/key.pem') }, plain)
  : http.createServer(plain);

server.on('upgrade', (req, socket, head) => {
  const wss = servers[new URL(req.url, 'http://x').pathname];
  if (!wss) return refuse(socket, 404, 'Not Found');
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});

server.listen(0, '127.0.0.1', () => console.log('PORT ' + server.address().port));
