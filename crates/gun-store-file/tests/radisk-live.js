// Writes a radisk directory with a genuine Gun.js peer (npm gun 0.2020.1241, as
// `require('gun')` loads it on Node: radisk + rfs), for tests/radisk.rs.
//
// Usage: node radisk-live.js GUN_MODULE_DIR RADATA_DIR MODE
//   MODE "graph": puts a few nodes (unicode, numbers, links, null, nested data),
//                 waits until radisk acked every put, then prints one line
//                 `GRAPH <json>` with Gun's in-memory graph (values and states as
//                 Gun holds them) and exits 0.
//   MODE "split": puts enough data (1800 souls x 700 bytes) to make radisk split
//                 its first file at 1 MiB, waits for every ack, prints
//                 `GRAPH <json>` and exits 0.
// Exits 2 with a message on stderr on any failure or after 60 s.
'use strict';
const [gunDir, dir, mode] = process.argv.slice(2);
if (!gunDir || !dir || !mode) {
  console.error('usage: node radisk-live.js GUN_MODULE_DIR RADATA_DIR graph|split');
  process.exit(2);
}
const Gun = require(gunDir);
const gun = Gun({ file: dir, multicast: false, axe: false, web: undefined, peers: [], stats: false, localStorage: false });

function fail(msg) {
  console.error('radisk-live.js: ' + msg);
  process.exit(2);
}
const timer = setTimeout(() => fail('timed out waiting for radisk acks (' + pending + ' left)'), 60000);

let pending = 0;
let started = false;
function put(chain, data) {
  pending++;
  let acked = false;
  chain.put(data, (ack) => {
    if (acked) return;
    acked = true;
    if (ack.err) fail('put failed: ' + ack.err);
    if (--pending === 0 && started) done();
  });
}

function done() {
  clearTimeout(timer);
  // Let radisk finish renaming anything queued with the last ack.
  setTimeout(() => {
    const graph = gun._.graph;
    // Exit only once the pipe took everything (writes to pipes are asynchronous).
    process.stdout.write('GRAPH ' + JSON.stringify(graph) + '\n', () => process.exit(0));
  }, 300);
}

if (mode === 'graph') {
  put(gun.get('alice'), {
    name: 'Alice',
    age: 30,
    frac: 0.1,
    neg: -2.5,
    big: 1e21,
    tiny: 5e-324,
    yes: true,
    no: false,
    nothing: null,
    empty: '',
    uni: 'héllo wörld 😀 日本語',
    quote: 'say "hi"\n\ttab \\ slash /',
  });
  put(gun.get('bob'), { name: 'Bob', '0': 'zero', '10': 'ten' });
  put(gun.get('alice').get('friend'), gun.get('bob'));
  put(gun.get('ünïcödé/😀'), { 'ключ': 'значение', '😀': 1, 'a b': 'space' });
  put(gun.get('carol'), { pet: { kind: 'cat', name: 'Tom' } });
  put(gun.get('gone'), { a: null, b: 'still here' });
  put(gun.get('../x'), { path: 'not a path' });
} else if (mode === 'split') {
  const value = 'x'.repeat(700);
  for (let i = 0; i < 1800; i++) {
    put(gun.get('soul' + String(i).padStart(5, '0')), { val: value, i: i });
  }
} else {
  fail('unknown mode ' + mode);
}
started = true;
if (pending === 0) done();
