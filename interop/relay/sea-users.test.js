'use strict';
// (d) SEA user accounts across languages, through gun-relay (which enforces SEA:
// every user-space value must carry a valid signature). The Rust peer
// (crates/gun-interop-peer, `gun.user()` of the gun crate) and genuine Gun.js
// clients (`gun.user()` of sea.js) create accounts, log into each other's accounts
// with alias and password, and read each other's signed writes.
//
//   node --test interop/relay/sea-users.test.js

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startGunRelay, GunPeer, RustPeer, scenario, uniq } = require('./lib/harness');

const T = { timeout: 120000 };
const PASS = 'pässwörd with spaces ✓';

test('a user created by the Rust peer logs in from Gun.js and reads its signed writes', T, () => scenario(async (ctx) => {
  const relay = ctx.add(await startGunRelay({ store: 'sled' }));
  const R = ctx.add(await RustPeer.spawn(relay.httpUrl, 'R'));
  const alias = uniq('rusty');
  const { pub } = await R.userCreate(alias, PASS, { acks: 1, timeoutMs: 8000 });
  assert.equal(typeof pub, 'string');
  assert.equal(pub.length, 87, `pub ${pub}`);
  const put = await R.userPut(['profile'], { name: 'Rusty', address: { city: 'Oslo' } }, { acks: 1, timeoutMs: 8000 });
  assert.equal(put.acked, 1, `gun-relay did not accept the Rust user's signed put: ${JSON.stringify(put)}`);
  assert.equal((await R.userPut(['status'], 'online', { acks: 1, timeoutMs: 8000 })).acked, 1);

  // A genuine Gun.js client logs into the Rust-made account with the password.
  const G = ctx.add(await GunPeer.spawn(relay.url, 'G'));
  const wrong = await G.userAuth(alias, 'not the password');
  assert.match(String(wrong.err), /Wrong user or password/, `Gun.js auth with a wrong password: ${JSON.stringify(wrong)}`);
  const auth = await G.userAuth(alias, PASS);
  assert.equal(auth.err, null, `Gun.js auth into the Rust-created account failed: ${auth.err}`);
  assert.equal(auth.pub, pub, 'Gun.js opened the account Rust created');
  assert.equal(auth.alias, alias);

  // It reads the Rust user's signed writes (sea.js verifies and unwraps them).
  assert.equal((await G.userOfOnce(pub, ['profile', 'name'])).data, 'Rusty');
  assert.equal((await G.userOfOnce(pub, ['profile', 'address', 'city'])).data, 'Oslo');
  assert.equal((await G.userOfOnce(pub, ['status'])).data, 'online');

  // Logged in with the keys it decrypted, Gun.js writes into the account: gun-relay
  // checks the signatures, and the Rust peer reads (and verifies) the write.
  const gput = await G.userPut(['fromGun'], 'signed by sea.js');
  assert.equal(gput.acked, true, 'gun-relay did not ack the Gun.js user put');
  assert.equal(gput.err, null, `gun-relay refused the Gun.js user put: ${gput.err}`);
  assert.equal(await R.userOfGet(pub, ['fromGun']), 'signed by sea.js');
  assert.equal(await R.userOfGet(pub, ['profile', 'name']), 'Rusty');
}));

test('a user created in Gun.js logs in from Rust; each reads the other\'s signed writes', T, () => scenario(async (ctx) => {
  const relay = ctx.add(await startGunRelay({ store: 'sled' }));
  const G = ctx.add(await GunPeer.spawn(relay.url, 'G'));
  const alias = uniq('gunny');
  const created = await G.userCreate(alias, PASS);
  assert.equal(created.err, null, `Gun.js user.create failed: ${created.err}`);
  const pub = created.pub;
  const auth = await G.userAuth(alias, PASS);
  assert.equal(auth.err, null, `Gun.js auth failed: ${auth.err}`);
  assert.equal(auth.pub, pub);
  const gput = await G.userPut(['profile'], { name: 'Gunny', langs: { first: 'js' } });
  assert.equal(gput.acked, true, 'Gun.js user put not acked');
  assert.equal(gput.err, null, `gun-relay refused the Gun.js user put: ${gput.err}`);

  // The Rust peer logs into the Gun.js account with the password.
  const R = ctx.add(await RustPeer.spawn(relay.httpUrl, 'R'));
  await assert.rejects(R.userAuth(alias, 'not the password'), /wrong password/);
  await assert.rejects(R.userAuth(uniq('nobody'), PASS), /not found/);
  const rauth = await R.userAuth(alias, PASS);
  assert.equal(rauth.pub, pub, 'Rust opened the account Gun.js created');

  // Rust reads the Gun.js user's signed writes, verified.
  assert.equal(await R.userOfGet(pub, ['profile', 'name']), 'Gunny');
  assert.equal(await R.userOfGet(pub, ['profile', 'langs', 'first']), 'js');
  const account = await R.userOfGet(pub, []);
  assert.equal(account.alias, alias, `account node as Rust reads it: ${JSON.stringify(account)}`);
  assert.equal(account.pub, pub);

  // Rust writes into the Gun.js account with the decrypted keys; gun-relay accepts
  // the signatures and a fresh Gun.js client reads the values.
  const rput = await R.userPut(['fromRust'], { text: 'signed by gun-sea', n: 2.5 }, { acks: 1, timeoutMs: 8000 });
  assert.equal(rput.acked, 1, `gun-relay did not accept the Rust put into the Gun.js account: ${JSON.stringify(rput)}`);
  const G2 = ctx.add(await GunPeer.spawn(relay.url, 'G2'));
  assert.equal((await G2.userOfOnce(pub, ['fromRust', 'text'])).data, 'signed by gun-sea');
  assert.equal((await G2.userOfOnce(pub, ['fromRust', 'n'])).data, 2.5);
  assert.equal((await G2.userOfOnce(pub, ['profile', 'name'])).data, 'Gunny');

  // And a Rust-created user's writes, read by the Gun.js client.
  await R.userLeave();
  const ralias = uniq('rusty');
  const { pub: rpub } = await R.userCreate(ralias, PASS, { acks: 1, timeoutMs: 8000 });
  assert.equal((await R.userPut(['hello'], 'from rust', { acks: 1, timeoutMs: 8000 })).acked, 1);
  assert.equal((await G2.userOfOnce(rpub, ['hello'])).data, 'from rust');
  assert.equal((await G2.userOfOnce(rpub, ['alias'])).data, ralias);
}));

test('sets, maps and certified writes between Rust and Gun.js users', T, () => scenario(async (ctx) => {
  const relay = ctx.add(await startGunRelay({ store: 'sled' }));
  const R = ctx.add(await RustPeer.spawn(relay.httpUrl, 'R'));
  const { pub: rpub } = await R.userCreate(uniq('rset'), PASS, { acks: 1, timeoutMs: 8000 });
  const G = ctx.add(await GunPeer.spawn(relay.url, 'G'));
  const galias = uniq('gset');
  const created = await G.userCreate(galias, PASS);
  assert.equal(created.err, null, `Gun.js user.create: ${created.err}`);
  const gpub = (await G.userAuth(galias, PASS)).pub;

  // Rust adds to a set in its space; Gun.js maps over it, verified by sea.js.
  const bob = await R.userSet(['friends'], { name: 'Bob' });
  assert.equal(bob.acked, 1, `Rust user.set: ${JSON.stringify(bob)}`);
  assert.ok(bob.key.startsWith(`~${rpub}/`), `item soul ${bob.key}`);
  assert.equal((await R.userSet(['friends'], 'carol')).acked, 1);
  const seen = await G.userOfMapOnce(rpub, ['friends']);
  assert.deepEqual(seen[bob.key], { name: 'Bob' }, `Gun.js map of the Rust set: ${JSON.stringify(seen)}`);
  assert.equal(Object.values(seen).filter((v) => v === 'carol').length, 1, JSON.stringify(seen));

  // Gun.js adds to a set in its space; Rust maps over it, verified.
  const dana = await G.userSet(['friends'], { name: 'Dana' });
  assert.deepEqual([dana.acked, dana.err], [true, null], `Gun.js user.set: ${JSON.stringify(dana)}`);
  const kids = await R.userOfMap(gpub, ['friends']);
  const entries = Object.entries(kids || {});
  assert.equal(entries.length, 1, `Rust map of the Gun.js set: ${JSON.stringify(kids)}`);
  assert.ok(entries[0][0].startsWith(`~${gpub}/`), entries[0][0]);
  assert.deepEqual(entries[0][1], { name: 'Dana' });

  // A certificate made by sea.js lets the Rust user write into the Gun.js
  // user's inbox; gun-relay checks it, and a fresh Gun.js client reads it.
  const cert = await G.certify(rpub, { '*': 'inbox' });
  const w = await R.userOfPutCertified(gpub, ['inbox', 'hi'], 'hello from rust', cert);
  assert.equal(w.acked, 1, `certified write: ${JSON.stringify(w)}`);
  await assert.rejects(R.userOfPutCertified(gpub, ['profile', 'name'], 'not allowed', cert));
  const reader = ctx.add(await GunPeer.spawn(relay.url, 'reader'));
  assert.equal((await reader.userOfOnce(gpub, ['inbox', 'hi'])).data, 'hello from rust');
}));

test('password changes and accounts made from a pair, between Rust and Gun.js', T, () => scenario(async (ctx) => {
  const relay = ctx.add(await startGunRelay({ store: 'sled' }));
  const R = ctx.add(await RustPeer.spawn(relay.httpUrl, 'R'));
  const G = ctx.add(await GunPeer.spawn(relay.url, 'G'));
  const NEW = 'a new pässwörd ✓✓';

  // Rust changes its password: Gun.js logs in with the new one only, to the same keys.
  const a = uniq('rchange');
  const { pub } = await R.userCreate(a, PASS, { acks: 1, timeoutMs: 8000 });
  assert.equal((await R.userPut(['before'], 'signed before the change', { acks: 1, timeoutMs: 8000 })).acked, 1);
  assert.equal((await R.userChangePassword(a, PASS, NEW)).pub, pub);
  const old = await G.userAuth(a, PASS);
  assert.match(String(old.err), /Wrong user or password/, `Gun.js opened the account with the old password: ${JSON.stringify(old)}`);
  const ga = await G.userAuth(a, NEW);
  assert.equal(ga.err, null, `Gun.js auth with the new password failed: ${ga.err}`);
  assert.equal(ga.pub, pub);
  assert.equal((await G.userOfOnce(pub, ['before'])).data, 'signed before the change');
  await G.userLeave();

  // Gun.js changes its password ({change}): Rust logs in with the new one only.
  const b = uniq('gchange');
  const created = await G.userCreate(b, PASS);
  assert.equal(created.err, null, `Gun.js user.create failed: ${created.err}`);
  const changed = await G.userChangePassword(b, PASS, NEW);
  assert.equal(changed.err, null, `Gun.js password change failed (gun-relay refused its auth write?): ${changed.err}`);
  await G.userLeave();
  await R.userLeave();
  await assert.rejects(R.userAuth(b, PASS), /wrong password/);
  assert.equal((await R.userAuth(b, NEW)).pub, created.pub);

  // Rust publishes an account for a pair Gun.js made: Gun.js logs in with the
  // pair and reads the account's epub and alias (the pub).
  const pair = await G.seaPair();
  assert.equal((await R.userCreateFromPair(pair)).pub, pair.pub);
  const gp = await G.userAuthPair(pair);
  assert.equal(gp.err, null, `Gun.js auth with the pair failed: ${gp.err}`);
  assert.equal(gp.pub, pair.pub);
  assert.equal((await G.userOfOnce(pair.pub, ['epub'])).data, pair.epub);
  assert.equal((await G.userOfOnce(pair.pub, ['alias'])).data, pair.pub);
  await G.userLeave();

  // Gun.js publishes one for its own pair: Rust opens it with the pair's JSON
  // text, the password sea.js sealed it with (on Node, gun/lib/yson.js's
  // stringify: keys sorted).
  const pair2 = await G.seaPair();
  const c2 = await G.userCreatePair(pair2);
  assert.equal(c2.err, null, `Gun.js user.create(pair) failed: ${c2.err}`);
  await R.userLeave();
  const sealedWith = JSON.stringify(pair2, Object.keys(pair2).sort());
  assert.equal((await R.userAuth(pair2.pub, sealedWith)).pub, pair2.pub);
  assert.equal(await R.userOfGet(pair2.pub, ['epub']), pair2.epub);
}));
