'use strict';
// (c) A mixed mesh: the genuine Gun.js relay (stock: radisk + SEA + AXE) and gun-relay
// dialing it (`gun-relay --peer http://127.0.0.1:GUNJS_PORT/gun`), one genuine Gun.js
// client on each. Each client subscribes with on() first, then sees the other's writes
// live; once() reads across the two relays work too.
//
//   node --test interop/relay/mixed-mesh.test.js

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startGunjsRelay, startGunRelay, health, GunPeer, scenario, uniq, delay, waitUntil } = require('./lib/harness');

const T = { timeout: 90000 };

async function mesh(ctx, store) {
  const gunjs = ctx.add(await startGunjsRelay());
  const ours = ctx.add(await startGunRelay({ store, peers: [gunjs.httpUrl] }));
  await waitUntil(async () => (await health(ours).catch(() => ({}))).peers >= 1, 10000,
    'gun-relay did not connect to the Gun.js relay within 10s');
  const [X, Y] = await Promise.all([GunPeer.spawn(ours.url, 'X@gun-relay'), GunPeer.spawn(gunjs.url, 'Y@gunjs')]);
  ctx.add(X); ctx.add(Y);
  return { gunjs, ours, X, Y };
}

for (const store of ['sled', 'memory']) {
  test(`mixed mesh (gun-relay on ${store} dialing a Gun.js relay): live on() both ways`, T, () => scenario(async (ctx) => {
    const { X, Y } = await mesh(ctx, store);
    const sx = uniq('x-listens'); // X (on gun-relay) listens, Y (on Gun.js) writes
    const sy = uniq('y-listens'); // Y listens, X writes
    const subX = await X.subscribe([sx]);
    const subY = await Y.subscribe([sy]);
    await delay(500);

    for (let i = 1; i <= 3; i++) {
      const [py, px] = await Promise.all([Y.put([sx], { n: i, by: 'Y' }), X.put([sy], { n: i, by: 'X' })]);
      assert.ok(py.acked, `Y's put ${i} (via the Gun.js relay) not acked`);
      assert.ok(px.acked, `X's put ${i} (via gun-relay) not acked`);
      assert.equal(px.err, null);
      await subX.waitFor((d) => d && d.n === i && d.by === 'Y', 10000, `Y's write ${i}, via Gun.js relay -> gun-relay`);
      await subY.waitFor((d) => d && d.n === i && d.by === 'X', 10000, `X's write ${i}, via gun-relay -> Gun.js relay`);
    }
  }));
}

test('mixed mesh: once() reads across the two relays', T, () => scenario(async (ctx) => {
  const { X, Y } = await mesh(ctx, 'sled');
  const a = uniq('written-on-gunjs');
  assert.ok((await Y.put([a], { where: 'gunjs', nested: { k: 1 } })).acked);
  const b = uniq('written-on-gun-relay');
  assert.ok((await X.put([b], { where: 'gun-relay', nested: { k: 2 } })).acked);
  assert.equal((await X.once([a, 'where'])).data, 'gunjs', 'X (gun-relay) reads what Y wrote on the Gun.js relay');
  assert.equal((await X.once([a, 'nested', 'k'])).data, 1);
  assert.equal((await Y.once([b, 'where'])).data, 'gun-relay', 'Y (Gun.js relay) reads what X wrote on gun-relay');
  assert.equal((await Y.once([b, 'nested', 'k'])).data, 2);
}));
