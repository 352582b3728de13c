'use strict';
// A relay with a few thousand clients (issue 15): gets are not forwarded to
// every connected browser, and genuine Gun.js peers still find data that only
// another browser holds.
// (a) CLIENTS raw WebSocket clients each ask for one soul of their own (nobody
//     holds it) and one shared soul (the relay holds it): the forwarded gets
//     each client receives stay bounded — a count that does not grow with the
//     number of clients (each get asks at most MAX_GET_ASKS client peers, a new
//     client is sent at most OPEN_GETS_PER_CONNECT open gets). Forwarding to
//     every peer gave ~65 per client at 3,000 clients, growing as n².
// (b) With the crowd connected, Gun.js Alice reads a node that only Gun.js Bob
//     holds: Bob subscribed to it (he is one of its holders, asked first), or
//     Bob connects just after Alice's get (a late peer, asked when he joins).
//
//   cargo build -p gun-relay && node --test interop/relay/many-clients.test.js
//   GET_STORM_CLIENTS=3000 node --test interop/relay/many-clients.test.js

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');

// The crowd comes from one address: the public-relay limits would refuse it.
process.env.GUN_RELAY_MAX_CONNECTIONS_PER_IP = '0';
process.env.GUN_RELAY_MAX_MESSAGES_PER_SEC = '0';
const { startGunRelay, GunPeer, uniq, delay } = require('./lib/harness');
const { run } = require(path.join(__dirname, '../../benches/get-storm.js'));
const WebSocket = require('ws');

const CLIENTS = Number(process.env.GET_STORM_CLIENTS || 2000);
// gun-dam's defaults (crates/gun-dam/src/router/config.rs).
const MAX_GET_ASKS = 6;
const OPEN_GETS_PER_CONNECT = 16;
const T = { timeout: 180000 };

let relay = null;
const crowd = [];

before(async () => {
  relay = await startGunRelay({ store: 'memory', log: 'warn' });
});

after(async () => {
  for (const ws of crowd) ws.terminate();
  if (relay) await relay.stop();
});

test(`forwarded gets per client stay bounded with ${CLIENTS} clients`, T, async () => {
  const r = await run({ url: relay.url, clients: CLIENTS, batch: 100, quietMs: 1500 });
  console.log(`  ${JSON.stringify(r)}`);
  // Each client sends 2 gets, and each forwarded get asks at most MAX_GET_ASKS
  // clients: in all at most 2 * MAX_GET_ASKS per client on average.
  assert.ok(r.perClientMean <= 2 * MAX_GET_ASKS, `mean ${r.perClientMean} forwarded gets per client`);
  // No client is a sink for everyone's gets: at most the open gets it is sent
  // when it connects, plus a few as a holder or a random pick.
  assert.ok(r.perClientMax <= OPEN_GETS_PER_CONNECT + 4 * MAX_GET_ASKS,
    `a client received ${r.perClientMax} forwarded gets`);
  assert.ok(r.forwardedGets <= 2 * MAX_GET_ASKS * CLIENTS, `${r.forwardedGets} forwarded gets`);
});

// Idle raw clients that stay connected while the Gun.js peers talk.
async function fillCrowd(n) {
  for (let i = 0; i < n; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, n - i) }, () => new Promise((resolve, reject) => {
      const ws = new WebSocket(relay.url, { perMessageDeflate: false });
      ws.once('open', () => { crowd.push(ws); resolve(); });
      ws.once('error', reject);
    })));
  }
}

test(`with ${CLIENTS} clients connected, Gun.js peers read a node only another Gun.js peer holds`, T, async () => {
  await fillCrowd(CLIENTS);
  // (1) Bob holds a node and listens to it; he joins with the crowd there.
  const held = uniq('held');
  const bob = await GunPeer.spawn([], 'bob');
  try {
    const put = await bob.put([held], { name: 'Bob', how: 'subscribed' }, 100);
    assert.equal(put.acked, false, 'Bob is offline: nobody acks');
    await bob.subscribe([held]);
    assert.ok((await bob.connect(relay.url)).connected);
    await delay(300);
    const alice = await GunPeer.spawn(relay.url, 'alice');
    try {
      const sub = await alice.subscribe([held]);
      await sub.waitFor((d) => d && d.name === 'Bob' && d.how === 'subscribed', 8000, "Bob's node at Alice");

      // (2) Carol holds a node in memory only and connects just after Alice asks.
      const late = uniq('late');
      const carol = await GunPeer.spawn([], 'carol');
      try {
        await carol.put([late], { name: 'Carol', how: 'late' }, 100);
        const sub2 = await alice.subscribe([late]);
        await delay(4);
        assert.ok((await carol.connect(relay.url)).connected);
        await sub2.waitFor((d) => d && d.name === 'Carol' && d.how === 'late', 8000, "Carol's node at Alice");
      } finally {
        await carol.close();
      }
    } finally {
      await alice.close();
    }
  } finally {
    await bob.close();
  }
});
