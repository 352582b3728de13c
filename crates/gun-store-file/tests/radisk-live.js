// Writes a radisk directory with a genuine Gun.js peer (npm gun 0.2020.1241, as
// `require('gun')` loads it on Node: radisk + rfs), for tests/radisk.rs and
// gun-relay's tests/corruption.rs.
//
// Usage: node radisk-live.js GUN_MODULE_DIR RADATA_DIR MODE
//   MODE "graph": puts a few nodes (unicode, numbers, links, null, nested data).
//   MODE "split": puts enough data (1800 souls x 700 bytes) to make radisk split
//                 its first file at 1 MiB.
//   MODE "many":  puts 200 users, each three nodes deep (user -> profile ->
//                 address, linked by soul) with strings (unicode, escapes),
//                 integers, floats, booleans, null, and links to other users,
//                 then overwrites some fields (so states differ per key), then
//                 6 genuine nested puts (Gun makes the child souls): 618 souls.
// Every mode waits until radisk acked every put, then until the files hold
// everything Gun holds in memory (radisk may still be writing after an ack; and
// it does corrupt its radix trees now and then, spec §14.11), reading them with
// an independent radix walk, and prints:
//   GRAPH <json>   Gun's in-memory graph (values and states as Gun holds them),
//   DISK <json>    the graph the files hold (the newest state per key wins),
//   CONVERGED true|false   whether the files came to hold all of GRAPH,
//   BAD <json>     full radisk keys of entries a reader cannot use,
// then exits 0. Exits 2 with a message on stderr on any failure or after 90 s.
// RADISK_LIVE_WINDOW=n issues at most n puts at a time (default: all at once).
'use strict';
const fs = require('fs');
const path = require('path');
const [gunDir, dir, mode] = process.argv.slice(2);
if (!gunDir || !dir || !mode) {
  console.error('usage: node radisk-live.js GUN_MODULE_DIR RADATA_DIR graph|split|many');
  process.exit(2);
}
const Gun = require(gunDir);
const gun = Gun({ file: dir, multicast: false, axe: false, web: undefined, peers: [], stats: false, localStorage: false });

function fail(msg) {
  console.error('radisk-live.js: ' + msg);
  process.exit(2);
}
const timer = setTimeout(() => fail('timed out waiting for radisk acks (phase ' + phase + ', ' + pending + ' in flight, ' + queue.length + ' queued)'), 90000);

// Puts are queued per phase and issued up to `window` at a time. Flat puts go
// all at once; genuine Gun's nested puts (an object as a value) go one by one:
// issued concurrently, most of them are never acknowledged and some child
// nodes are never written (shared/bench/README.md, "Nested puts").
let window = Infinity;
let pending = 0;
let queue = [];
let phase = 0;
const phases = [];
function put(chain, data) {
  queue.push(() => {
    pending++;
    let acked = false;
    chain.put(data, (ack) => {
      if (acked) return;
      acked = true;
      if (ack.err) fail('put failed: ' + ack.err);
      pending--;
      pump();
    });
  });
}

function pump() {
  while (pending < window && queue.length) queue.shift()();
  if (pending === 0 && queue.length === 0) next();
}

function next() {
  if (phase < phases.length) {
    window = Number(process.env.RADISK_LIVE_WINDOW) || Infinity;
    phases[phase++]();
    pump();
    return;
  }
  done();
}

// ---------------------------------------------------------------- the files

// The data files radisk reads: those `%1C` lists (all files without it).
function dataFiles() {
  const names = fs.readdirSync(dir).filter((n) => n !== '%1C');
  let listed = null;
  try {
    listed = new Set();
    walk(JSON.parse(fs.readFileSync(path.join(dir, '%1C'), 'utf8')), '', (k, v) => {
      if (v) listed.add(k);
    });
  } catch (e) {
    listed = null;
  }
  return names.filter((n) => n === '!' || !listed || listed.has(decodeURIComponent(n)));
}

// Calls f(fullKey, value) for every leaf of a radix tree.
function walk(tree, prefix, f) {
  for (const label of Object.keys(tree)) {
    const child = tree[label];
    if (label === '') f(prefix, child);
    else if (child && typeof child === 'object' && !Array.isArray(child)) walk(child, prefix + label, f);
    else f(prefix + label, undefined, true);
  }
}

// Whether a value is one Gun (and gun-rs) accepts: text, a finite number, a
// boolean, null, or a link {"#": soul}.
function validValue(v) {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return true;
  if (typeof v === 'number') return Number.isFinite(v);
  if (typeof v === 'object' && !Array.isArray(v)) {
    const k = Object.keys(v);
    return k.length === 1 && typeof v['#'] === 'string' && v['#'] !== '';
  }
  return false;
}

// The graph the files hold, in wire form (the newest state per key wins; equal
// states: the greater JSON text), or null while a file is unreadable. Leaves a
// reader cannot use go to `bad` by their full key: no single ESC between a
// non-empty soul and a key other than "_", not {":": value, ">": number}, an
// invalid value, or a radix node that is not an object (genuine Gun writes such
// things now and then: `{":": 1, "undefined": 1796…}`).
let bad = [];
function diskGraph() {
  const g = {};
  bad = [];
  try {
    for (const name of dataFiles()) {
      const tree = JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8'));
      walk(tree, '', (full, leaf, notNode) => {
        const parts = full.split('\u001b');
        const ok = !notNode && parts.length === 2 && parts[0] !== '' && parts[1] !== '_' &&
          leaf && typeof leaf === 'object' && !Array.isArray(leaf) &&
          (':' in leaf) && validValue(leaf[':']) &&
          typeof leaf['>'] === 'number' && Number.isFinite(leaf['>']);
        if (!ok) {
          bad.push(full);
          return;
        }
        const [soul, key] = parts;
        const node = g[soul] || (g[soul] = { _: { '#': soul, '>': {} } });
        const old = node._['>'][key];
        const st = leaf['>'];
        if (old === undefined || st > old ||
            (st === old && JSON.stringify(leaf[':']) > JSON.stringify(node[key]))) {
          node[key] = leaf[':'];
          node._['>'][key] = st;
        }
      });
    }
  } catch (e) {
    return null;
  }
  return g;
}

// Whether `disk` holds every key of Gun's graph with its value and state.
function holdsAll(disk, graph) {
  if (!disk) return false;
  for (const soul of Object.keys(graph)) {
    const n = graph[soul];
    const d = disk[soul];
    if (!d) return false;
    for (const key of Object.keys(n._['>'] || {})) {
      if (d._['>'][key] !== n._['>'][key]) return false;
      if (JSON.stringify(d[key]) !== JSON.stringify(n[key])) return false;
    }
  }
  return true;
}

function done() {
  clearTimeout(timer);
  const graph = gun._.graph;
  const t0 = Date.now();
  let last = null;
  let changed = t0;
  const check = () => {
    const disk = diskGraph();
    const converged = holdsAll(disk, graph);
    const text = JSON.stringify(disk);
    if (text !== last) {
      last = text;
      changed = Date.now();
    }
    // Until the files hold everything, or stopped changing for 3 s (15 s at most).
    if (!converged && Date.now() - changed < 3000 && Date.now() - t0 < 15000) {
      setTimeout(check, 100);
      return;
    }
    const out = 'GRAPH ' + JSON.stringify(graph) + '\n' +
      'DISK ' + JSON.stringify(disk || {}) + '\n' +
      'CONVERGED ' + converged + '\n' +
      'BAD ' + JSON.stringify(bad) + '\n';
    // Exit only once the pipe took everything (writes to pipes are asynchronous).
    process.stdout.write(out, () => process.exit(0));
  };
  // Let radisk finish renaming anything queued with the last ack.
  setTimeout(check, 300);
}

// ---------------------------------------------------------------- the data

if (mode === 'graph') {
  phases.push(() => {
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
  });
} else if (mode === 'split') {
  phases.push(() => {
    const value = 'x'.repeat(700);
    for (let i = 0; i < 1800; i++) {
      put(gun.get('soul' + String(i).padStart(5, '0')), { val: value, i: i });
    }
  });
} else if (mode === 'many') {
  const USERS = 200;
  const names = ['Zoë', 'Łukasz', '太郎', 'Ayşe', 'Nguyễn', 'O\'Brien', '"Quoted"', 'back\\slash', 'emoji 😀🎉', 'tab\tnew\nline'];
  const link = (soul) => ({ '#': soul });
  // Users, each three nodes deep (user -> profile -> address), linked by soul.
  phases.push(() => {
    for (let i = 0; i < USERS; i++) {
      const u = 'user/' + i;
      put(gun.get(u + '/profile/address'), {
        city: ['Zürich', 'São Paulo', '東京', 'Kyiv'][i % 4],
        zip: String(10000 + i),
        verified: i % 5 === 0,
      });
      put(gun.get(u + '/profile'), {
        bio: 'Bio of ' + names[(i + 3) % names.length] + ' — ünïcödé ✓',
        level: i % 10,
        address: link(u + '/profile/address'),
      });
      put(gun.get(u), {
        name: names[i % names.length] + ' #' + i,
        age: 18 + (i % 60),
        score: i * 1.25 - 100.5,
        ratio: i / 7,
        big: Number.MAX_SAFE_INTEGER - i,
        tiny: -1e-300 * i,
        active: i % 2 === 0,
        banned: i % 3 === 0,
        note: null,
        empty: '',
        profile: link(u + '/profile'),
      });
    }
  });
  // Links between users, once every user exists.
  phases.push(() => {
    for (let i = 0; i < USERS; i++) {
      put(gun.get('user/' + i), { friend: link('user/' + ((i * 7 + 1) % USERS)) });
    }
  });
  // Overwrites: later states for some keys, a value turned into null and back.
  phases.push(() => {
    for (let i = 0; i < USERS; i += 3) {
      put(gun.get('user/' + i), { age: 100 + i, note: 'updated ' + i, active: null });
    }
  });
  // Genuine nested puts (Gun makes the child souls), one at a time.
  phases.push(() => {
    window = 1;
    for (let i = 0; i < 6; i++) {
      put(gun.get('nest/' + i), { depth: 1, child: { depth: 2, name: 'kind ' + i, child: { depth: 3, ok: true, n: i * 0.5 } } });
    }
  });
} else {
  fail('unknown mode ' + mode);
}
next();
