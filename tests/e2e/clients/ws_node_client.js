#!/usr/bin/env node
// A WebSocket client on node's `ws`, a second implementation to check
// lunet's server with:  node ws_node_client.js URL MODE
// (NODE_PATH=/usr/share/nodejs; for wss:// give the test CA with
// NODE_EXTRA_CA_CERTS=ca.pem). Modes:
//   echo_sizes  text and binary messages of 0 B .. 16 MiB, each echo must be
//               byte-equal (the 16 MiB ones need a route that allows them)
//   ping        three pings, each pong must carry the ping's payload
//   close       close 1000 "done", the server must answer 1000
// Fragmented sends are not covered: ws cannot choose its fragments freely.
// Exits 0 on success; prints each failure.
'use strict';
const crypto = require('crypto');
const WebSocket = require('ws');

const MIB = 1024 * 1024;
const SIZES = [0, 1, 125, 126, 65535, 65536, MIB, 16 * MIB];
const TIMEOUT_MS = 60000;
const [url, mode] = process.argv.slice(2);

function fail(why) {
  console.log('FAIL ' + mode + ': ' + why);
  process.exit(1);
}

function nextMessage(ws) {
  return new Promise((resolve) => ws.once('message', (data, isBinary) => resolve([data, isBinary])));
}

function textOf(n) {
  const unit = 'lunet-ws-0123456789abcdefghijklmnopqrstuvwxyz\n';
  return unit.repeat(Math.ceil(n / unit.length)).slice(0, n);
}

async function echoSizes(ws) {
  for (const n of SIZES) {
    for (const binary of [false, true]) {
      const sent = binary ? crypto.randomBytes(n) : Buffer.from(textOf(n));
      const pending = nextMessage(ws);
      ws.send(binary ? sent : sent.toString(), { binary });
      const [data, isBinary] = await pending;
      const kind = binary ? 'binary' : 'text';
      if (isBinary !== binary) fail(`${kind} of ${n} bytes came back as ${isBinary ? 'binary' : 'text'}`);
      if (!sent.equals(data)) fail(`${kind} of ${n} bytes: echo of ${data.length} bytes differs`);
      console.log(`ok ${kind} ${n}`);
    }
  }
}

async function pings(ws) {
  for (const payload of ['', 'lunet', 'x'.repeat(125)]) {
    const pong = new Promise((resolve) => ws.once('pong', resolve));
    ws.ping(payload);
    const got = (await pong).toString();
    if (got !== payload) fail(`pong ${JSON.stringify(got)} for ping ${JSON.stringify(payload)}`);
    console.log(`ok pong ${payload.length}`);
  }
}

async function closeClean(ws) {
  const closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve([code, reason])));
  ws.close(1000, 'done');
  const [code] = await closed;
  if (code !== 1000) fail(`server answered close ${code}, expected 1000`);
  console.log('ok close 1000');
}

const MODES = { echo_sizes: echoSizes, ping: pings, close: closeClean };

function main() {
  if (!MODES[mode]) {
    console.log('usage: node ws_node_client.js URL echo_sizes|ping|close');
    process.exit(2);
  }
  setTimeout(() => fail(`not done in ${TIMEOUT_MS} ms`), TIMEOUT_MS).unref();
  const ws = new WebSocket(url, { maxPayload: 32 * MIB });
  ws.on('error', (e) => fail(e.message));
  ws.on('close', (code) => { if (mode !== 'close') fail(`closed early with ${code}`); });
  ws.on('open', async () => {
    await MODES[mode](ws);
    if (mode !== 'close') ws.terminate();
    process.exit(0);
  });
}

main();
