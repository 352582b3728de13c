#!/usr/bin/env node
'use strict';
// A stock genuine Gun.js relay for the Rust client conformance suite
// (crates/gun/tests/client_conformance.rs): `require('gun')` (radisk, AXE) and
// SEA, an http server on 127.0.0.1 with Gun's websocket endpoint at /gun.
//
//   node interop/lib/gunjs-relay.js PORT DATA_DIR      (PORT 0: any free port)
//
// Prints "READY <port>" on stdout once it accepts connections.

process.env.MULTICAST = 'false'; // loopback only
const fs = require('fs');
const http = require('http');
const path = require('path');

const port = Number(process.argv[2] || 0);
const dir = path.resolve(process.argv[3] || 'radata');
fs.mkdirSync(dir, { recursive: true });
// Radisk writes temporary files beside its directory.
process.chdir(path.dirname(dir));

const Gun = require('gun');
require('gun/sea');

const server = http.createServer((req, res) => {
  if (Gun.serve(req, res)) return;
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  res.end('gun relay\n');
});
server.once('error', (err) => {
  console.error(`gunjs-relay: cannot listen on 127.0.0.1:${port}: ${err.message}`);
  process.exit(1);
});
server.listen(port, '127.0.0.1', () => {
  // Gun attaches after listen: its websocket server re-emits http errors.
  Gun({ web: server, file: dir, multicast: false, stats: false, localStorage: false });
  console.log(`READY ${server.address().port}`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
