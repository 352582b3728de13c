'use strict';
// Gets that find data on peers that join late: genuine Gun.js peers on gun-relay.
// (a) Alice asks for a node only Bob holds, and Bob connects 4 ms / 500 ms after the
//     get: gun-relay answers "not found", keeps the get open, forwards it to Bob when
//     he connects, and routes his answer to Alice.
// (b) The relay restarts; Alice's re-sent get reaches the empty relay before Bob
//     (behind a TCP proxy that refuses him for a while) reconnects: Alice still gets
//     Bob's data.
// (c) `##`: a line asker (raw WebSocket) - gun-relay - Bob, where the relay and Bob
//     hold the same node: the asker gets exactly one answer per distinct hash (Bob,
//     genuine Gun.js, compares the relay's `##` with his own and stays silent), and
//     each `##` is the one Gun.js's own String.hash gives for the answer's put.
//
//   cargo build -p gun-relay && node --test interop/relay/late-peers.test.js

const { test } = require('node:test');
const assert = require('node:assert/strict');
const net = require('net');
const WebSocket = require('ws');
require('gun/gun.js'); // defines Gun.js's String.hash (the `##` function)
const { startGunRelay, health, GunPeer, scenario, uniq, delay, waitUntil } = require('./lib/harness');

const T = { timeout: 90000 };

for (const lateMs of [4, 500]) {
  test(`a get reaches the only holder when it connects ${lateMs} ms later`, T, () => scenario(async (ctx) => {
    const relay = ctx.add(await startGunRelay({ store: 'memory' }));
    const [alice, bob] = await Promise.all([
      GunPeer.spawn(relay.url, 'alice'),
      GunPeer.spawn([], 'bob-offline'),
    ]);
    ctx.add(alice); ctx.add(bob);
    const soul = uniq('late');
    // Bob holds the node in memory only (no peer: nobody acks it).
    const put = await bob.put([soul], { name: 'Bob', late: lateMs }, 100);
    assert.equal(put.acked, false);

    const sub = await alice.subscribe([soul]);
    await delay(lateMs);
    const c = await bob.connect(relay.url);
    assert.ok(c.connected, 'Bob could not connect to gun-relay');
    await sub.waitFor((d) => d && d.name === 'Bob' && d.late === lateMs, 5000, "Bob's node at Alice");
  }));
}

// A TCP proxy that can refuse connections for a while (a peer that reconnects late).
function proxy(targetPort) {
  const sockets = new Set();
  const p = { blocked: false, port: 0 };
  const server = net.createServer((client) => {
    if (p.blocked) { client.destroy(); return; }
    const up = net.connect(targetPort, '127.0.0.1');
    sockets.add(client); sockets.add(up);
    const drop = () => { client.destroy(); up.destroy(); sockets.delete(client); sockets.delete(up); };
    client.on('error', drop); up.on('error', drop);
    client.on('close', drop); up.on('close', drop);
    client.pipe(up); up.pipe(client);
  });
  p.listen = () => new Promise((resolve) => server.listen(0, '127.0.0.1', () => { p.port = server.address().port; resolve(p); }));
  p.close = () => new Promise((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); });
  return p;
}

test('after a relay restart, a re-sent get reaches a holder that reconnects later', T, () => scenario(async (ctx) => {
  let relay = await startGunRelay({ store: 'memory', name: 'gun-relay-1' });
  const port = relay.port;
  const px = await proxy(port).listen();
  ctx.add(px);
  const soul = uniq('restart');
  const [alice, bob] = await Promise.all([
    GunPeer.spawn(relay.url, 'alice'),
    GunPeer.spawn(`ws://127.0.0.1:${px.port}/gun`, 'bob-proxied'),
  ]);
  ctx.add(alice); ctx.add(bob);
  const put = await bob.put([soul], { name: 'Bob', via: 'restart' });
  assert.ok(put.acked, "Bob's write was not acked by gun-relay");

  // The relay goes down (its memory store with it); Bob cannot come back yet.
  px.blocked = true;
  await relay.stop();
  // Alice starts listening while it is down: Gun.js re-sends the get on reconnect.
  const sub = await alice.subscribe([soul]);
  relay = ctx.add(await startGunRelay({ store: 'memory', name: 'gun-relay-2', port }));
  // Alice reconnects (Gun.js retries every ~2 s) and asks the empty relay.
  await waitUntil(async () => (await health(relay).catch(() => ({}))).peers >= 1, 10000,
    'Alice did not reconnect to the restarted gun-relay within 10s');
  assert.equal((await health(relay)).peers, 1, 'only Alice is back');
  // Now Bob may reconnect (on his next retry, up to ~2 s later).
  px.blocked = false;
  await sub.waitFor((d) => d && d.name === 'Bob' && d.via === 'restart', 8000, "Bob's node at Alice after the restart");
}));

// A raw WebSocket peer recording every message it receives.
function rawPeer(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const seen = [];
    ws.on('message', (data) => {
      let parsed;
      try { parsed = JSON.parse(String(data)); } catch (e) { return; }
      for (const m of Array.isArray(parsed) ? parsed : [parsed]) if (m && typeof m === 'object') seen.push(m);
    });
    ws.once('open', () => resolve({ seen, send: (m) => ws.send(JSON.stringify(m)), close: () => ws.close() }));
    ws.once('error', reject);
  });
}

// Gun.js's `##` of a put (src/mesh.js mesh.hash: JSON with keys sorted at every level).
function gunHash(put) {
  const sort = (k, v) => {
    if (!(v instanceof Object) || Array.isArray(v)) return v;
    const to = {};
    for (const key of Object.keys(v).sort()) to[key] = v[key];
    return to;
  };
  return String.hash(JSON.stringify(put, sort));
}

test('## : one answer per distinct hash when the relay and a peer hold the same node', T, () => scenario(async (ctx) => {
  const relay = ctx.add(await startGunRelay({ store: 'memory' }));
  const [bob, carol] = await Promise.all([GunPeer.spawn(relay.url, 'bob'), GunPeer.spawn([], 'carol-offline')]);
  ctx.add(bob); ctx.add(carol);
  const same = uniq('same');
  const differs = uniq('differs');
  // The relay and Bob hold `same` alike (Bob wrote it through the relay) and
  // `differs` too; Carol holds another version of `differs` only.
  for (const soul of [same, differs]) {
    const put = await bob.put([soul], { name: 'Bob' });
    assert.ok(put.acked, `Bob's write of ${soul} was not acked`);
  }
  await carol.put([differs], { name: 'Carol' }, 100);
  const c = await carol.connect(relay.url);
  assert.ok(c.connected);
  await delay(300);

  const asker = await rawPeer(relay.url);
  ctx.add({ close: async () => asker.close() });
  // A raw peer holding nothing sees the gets the relay forwards.
  const watcher = await rawPeer(relay.url);
  ctx.add({ close: async () => watcher.close() });
  await delay(100);
  asker.send({ '#': 'ask-same', get: { '#': same } });
  asker.send({ '#': 'ask-differs', get: { '#': differs } });
  await delay(1500); // Gun.js answers forwarded gets within ms; wait well past it

  const answers = (id) => asker.seen.filter((m) => m['@'] === id);
  const sameAnswers = answers('ask-same');
  assert.equal(sameAnswers.length, 1, `one answer for a node held alike: ${JSON.stringify(sameAnswers)}`);
  assert.equal(sameAnswers[0].put[same].name, 'Bob');
  const differsAnswers = answers('ask-differs');
  const hashes = differsAnswers.map((m) => m['##']);
  assert.equal(new Set(hashes).size, hashes.length, `one answer per hash: ${JSON.stringify(differsAnswers)}`);
  assert.deepEqual(differsAnswers.map((m) => m.put[differs].name).sort(), ['Bob', 'Carol']);
  // The relay forwarded the get it answered with the `##` of its answer (that
  // is what keeps Bob silent), the same `#`, and no `@`.
  const fwd = watcher.seen.filter((m) => m['#'] === 'ask-same' && m.get);
  assert.equal(fwd.length, 1, `the get forwarded once: ${JSON.stringify(watcher.seen)}`);
  assert.equal(fwd[0]['##'], sameAnswers[0]['##']);
  for (const m of [...sameAnswers, ...differsAnswers]) {
    assert.equal(m['##'], gunHash(m.put), `## of ${JSON.stringify(m)} is Gun.js's hash of its put`);
  }
}));
