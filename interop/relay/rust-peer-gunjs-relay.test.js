'use strict';
// (b) A Rust peer (the `gun` crate dialing with gun-net-ws: crates/gun-interop-peer)
// against the genuine Gun.js relay (the shared kit's gunjs-relay.js: stock
// `require('gun')`, radisk + SEA + AXE), with a genuine Gun.js client on the side.
//
//   node --test interop/relay/rust-peer-gunjs-relay.test.js

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startGunjsRelay, GunPeer, RustPeer, scenario, uniq, delay } = require('./lib/harness');

const T = { timeout: 90000 };

test('Rust peer -> Gun.js relay: a Rust put is acked and read by a Gun.js client', T, () => scenario(async (ctx) => {
  const relay = ctx.add(await startGunjsRelay());
  const R = ctx.add(await RustPeer.spawn(relay.httpUrl, 'R'));
  const s = uniq('from-rust');
  const value = { name: 'Rusty', text: 'ünïcödé ✓ "q"', n: 3.25, ok: true, none: null };
  const put = await R.put([s], value, { acks: 1, timeoutMs: 8000 });
  assert.ok(put.accepted >= 5, `Rust put applied ${put.accepted} keys`);
  assert.equal(put.acked, 1, `the Gun.js relay did not ack the Rust put within 8s: ${JSON.stringify(put)}`);

  const G = ctx.add(await GunPeer.spawn(relay.url, 'G'));
  assert.deepEqual((await G.once([s])).data, value, 'Gun.js client reads the Rust write');

  // Nested: links written by Rust, followed by Gun.js.
  const n = uniq('rust-nested');
  const nested = await R.put([n], { profile: { name: 'R', address: { city: 'Oslo' } } }, { acks: 1, timeoutMs: 8000 });
  assert.equal(nested.acked, 1, `nested Rust put not acked: ${JSON.stringify(nested)}`);
  assert.equal((await G.once([n, 'profile', 'address', 'city'])).data, 'Oslo', 'Gun.js follows the links Rust wrote');
}));

test('Gun.js client -> Gun.js relay -> Rust peer: the Rust peer reads a Gun.js write', T, () => scenario(async (ctx) => {
  const relay = ctx.add(await startGunjsRelay());
  const G = ctx.add(await GunPeer.spawn(relay.url, 'G'));
  const s = uniq('from-gunjs');
  const put = await G.put([s], { from: 'gunjs', k: 7, nested: { deep: 'yes' } });
  assert.equal(put.acked, true, 'Gun.js relay did not ack the Gun.js put');

  const R = ctx.add(await RustPeer.spawn(relay.httpUrl, 'R'));
  const node = await R.get([s]);
  assert.equal(node && node.from, 'gunjs', `Rust get(${s}) = ${JSON.stringify(node)}`);
  assert.equal(node.k, 7);
  assert.equal(await R.get([s, 'k']), 7, 'Rust get of one key');
  assert.equal(await R.get([s, 'nested', 'deep']), 'yes', 'Rust follows the link Gun.js wrote');
  assert.equal(await R.get([uniq('nothing-here')]), null, 'Rust get of a missing soul resolves to null');
}));

test('Rust on() sees Gun.js writes live through the Gun.js relay (AXE pushes to subscribers)', T, () => scenario(async (ctx) => {
  const relay = ctx.add(await startGunjsRelay());
  const [R, G] = await Promise.all([RustPeer.spawn(relay.httpUrl, 'R'), GunPeer.spawn(relay.url, 'G')]);
  ctx.add(R); ctx.add(G);
  const s = uniq('live');
  // The Rust on() sends a get for the soul: that subscribes this connection at the
  // AXE relay, which from then on pushes every accepted write on that soul to it.
  const sub = await R.subscribe([s]);
  await delay(500);
  for (let i = 1; i <= 3; i++) {
    const p = await G.put([s], { counter: i, by: 'gunjs' });
    assert.equal(p.acked, true, `Gun.js put ${i} not acked`);
    await sub.waitFor((d) => d && d.counter === i, 10000, `counter ${i}`);
  }
  // And the other way round: a Gun.js on() sees a Rust write live.
  const t = uniq('live-back');
  const gsub = await G.subscribe([t]);
  await delay(500);
  const put = await R.put([t], { from: 'rust', step: 1 }, { acks: 1, timeoutMs: 8000 });
  assert.equal(put.acked, 1, 'Rust put not acked');
  await gsub.waitFor((d) => d && d.from === 'rust' && d.step === 1, 10000, 'the Rust write');
}));
