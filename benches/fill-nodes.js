'use strict';
// Writes N nodes of 10 string fields (souls fill/0000000..) to a relay over one
// WebSocket, 500 souls a put, 8 puts in flight; exits once every put is acked.
//
//   node benches/fill-nodes.js ws://127.0.0.1:8765/gun 200000
const WebSocket = require('ws');

const [url, total] = [process.argv[2], Number(process.argv[3] || 100000)];
const PER_PUT = 500;
const IN_FLIGHT = 8;
const ws = new WebSocket(url);
let pending = 0;
let sent = 0;

function next() {
  while (pending < IN_FLIGHT && sent < total) {
    const put = {};
    const now = Date.now();
    for (let i = 0; i < PER_PUT && sent < total; i += 1, sent += 1) {
      const soul = `fill/${String(sent).padStart(7, '0')}`;
      const node = { _: { '#': soul, '>': {} } };
      for (let f = 0; f < 10; f += 1) {
        node[`f${f}`] = `value ${f} of ${soul} ${'x'.repeat(40)}`;
        node._['>'][`f${f}`] = now;
      }
      put[soul] = node;
    }
    pending += 1;
    ws.send(JSON.stringify({ '#': `fill${sent}`, put }));
  }
  if (pending === 0 && sent >= total) ws.close();
}

ws.on('open', next);
ws.on('message', (data) => {
  for (const m of [].concat(JSON.parse(String(data)))) {
    if (m && m['@']) {
      if (m.err) { console.error(`put refused: ${m.err}`); process.exit(1); }
      pending -= 1;
    }
  }
  next();
});
ws.on('error', (e) => { console.error(String(e)); process.exit(1); });
