'use strict';
// (a) Two genuine Gun.js clients (browser-like: no radisk, no AXE, not super) talking
// through gun-relay (sled store): put/get and on() in both directions, put acks, and
// once() on missing data resolving.
//
//   node --test interop/relay/gunjs-clients.test.js

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startGunRelay, GunPeer, scenario, uniq, delay } = require('./lib/harness');

const T = { timeout: 60000 };

test('gun-relay + Gun.js clients: put from A, once from B and back; put acks arrive', T, () => scenario(async (ctx) => {
  const relay = ctx.add(await startGunRelay({ store: 'sled' }));
  const [A, B] = await Promise.all([GunPeer.spawn(relay.url, 'A'), GunPeer.spawn(relay.url, 'B')]);
  ctx.add(A); ctx.add(B);

  const s1 = uniq('a-flat');
  const value = { name: 'Alice', emoji: 'héllo ✓ "quoted"\n', n: 42.5, neg: -7, yes: true, no: false, nothing: null };
  const put1 = await A.put([s1], value);
  assert.equal(put1.acked, true, `A's put was not acked by gun-relay within 5s`);
  assert.equal(put1.err, null, `A's put was refused: ${put1.err}`);
  const got1 = await B.once([s1]);
  assert.deepEqual(got1.data, value, 'B once() of what A put');

  const s2 = uniq('b-flat');
  const put2 = await B.put([s2], { from: 'B', k: 1 });
  assert.equal(put2.acked, true, `B's put was not acked`);
  assert.equal(put2.err, null);
  assert.deepEqual((await A.once([s2])).data, { from: 'B', k: 1 }, 'A once() of what B put');
  assert.equal((await A.once([s2, 'from'])).data, 'B', 'A once() of one key');

  // Nested objects: the client first GETs the parent key (which must be answered),
  // then writes linked nodes; the callback fires once acked.
  const s3 = uniq('nested');
  const put3 = await A.put([s3], { profile: { name: 'Bob', address: { city: 'Paris' } } });
  assert.equal(put3.acked, true, 'nested put not acked');
  assert.equal((await B.once([s3, 'profile', 'address', 'city'])).data, 'Paris', 'B reads the nested city');
}));

test('gun-relay + Gun.js clients: on() sees the other client\'s writes live, both ways', T, () => scenario(async (ctx) => {
  const relay = ctx.add(await startGunRelay({ store: 'sled' }));
  const [A, B] = await Promise.all([GunPeer.spawn(relay.url, 'A'), GunPeer.spawn(relay.url, 'B')]);
  ctx.add(A); ctx.add(B);

  const sa = uniq('on-a'); // A listens, B writes
  const sb = uniq('on-b'); // B listens, A writes
  const subA = await A.subscribe([sa]);
  const subB = await B.subscribe([sb]);
  await delay(300); // let the subscriptions' gets reach the relay

  for (let i = 1; i <= 5; i++) {
    const [pa, pb] = await Promise.all([B.put([sa], { counter: i, by: 'B' }), A.put([sb], { counter: i, by: 'A' })]);
    assert.ok(pa.acked && pb.acked, `round ${i}: puts not acked (${JSON.stringify([pa, pb])})`);
  }
  await subA.waitFor((d) => d.counter === 5 && d.by === 'B', 10000, 'counter 5 from B');
  await subB.waitFor((d) => d.counter === 5 && d.by === 'A', 10000, 'counter 5 from A');
  // Never went backwards once 5 was seen.
  for (const sub of [subA, subB]) {
    const i5 = sub.events.findIndex((d) => d.counter === 5);
    assert.ok(sub.events.slice(i5).every((d) => d.counter === 5), `${sub.what} went back after 5: ${JSON.stringify(sub.events)}`);
  }
  // A key-level on(): sees only that key's changes.
  const sk = uniq('on-key');
  const subKey = await A.subscribe([sk, 'title']);
  await delay(300);
  await B.put([sk], { title: 'first', other: 'x' });
  await subKey.waitFor((d) => d === 'first', 10000, "title 'first'");
  await B.put([sk], { title: 'second' });
  await subKey.waitFor((d) => d === 'second', 10000, "title 'second'");
}));

test('gun-relay + Gun.js clients: once() on missing data resolves (empty reply)', T, () => scenario(async (ctx) => {
  const relay = ctx.add(await startGunRelay({ store: 'sled' }));
  const A = ctx.add(await GunPeer.spawn(relay.url, 'A'));
  // once() fires only once some peer answered (Gun.js never gives up on its own):
  // resolving at all, within the call's 8 s bound, shows gun-relay's "not found".
  const missing = await A.once([uniq('missing-soul')], 8000);
  assert.equal(missing.data, null, 'once() on an unknown soul yields undefined');

  const s = uniq('partial');
  assert.equal((await A.put([s], { here: 1 })).acked, true);
  const B = ctx.add(await GunPeer.spawn(relay.url, 'B'));
  const missingKey = await B.once([s, 'not-there'], 8000);
  assert.equal(missingKey.data, null, 'once() on an unknown key of a known soul yields undefined');
  const deep = await B.once([uniq('nowhere'), 'a', 'b'], 8000);
  assert.equal(deep.data, null, 'once() on a missing chain yields undefined');
}));
