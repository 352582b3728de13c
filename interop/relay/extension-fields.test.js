'use strict';
// gun-rs signs messages in extension fields (`gunrs:sig`, `gunrs:cert`; see
// crates/gun-dam/src/auth.rs). A raw client writes a put carrying both fields
// through a genuine Gun.js relay, and a raw client subscribed on the same relay
// checks what arrives:
//
// * Gun.js relay without AXE: it forwards the original message, and the fields
//   arrive byte-for-byte equal (what the signature check on a gun-rs peer needs).
// * Gun.js relay with AXE (the default of a node relay): it pushes each write to
//   subscribers as a new message (new `#`, `ok:{"/":2,"@":2}`) built from the
//   graph, and extension fields are not carried over. A gun-rs peer with
//   `AuthPolicy::Require` behind such a relay therefore drops those pushes; with
//   `VerifyWhenPresent` it accepts them unsigned. This test pins that behaviour
//   of gun@0.2020.1241 so the README's advice stays true.
//
//   node --test interop/relay/extension-fields.test.js

const { test } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { startGunjsRelay, scenario, uniq, delay } = require('./lib/harness');

const T = { timeout: 60000 };

function client(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const seen = [];
    const waiters = [];
    ws.on('message', (data) => {
      let parsed;
      try { parsed = JSON.parse(String(data)); } catch { return; }
      for (const m of Array.isArray(parsed) ? parsed : [parsed]) {
        if (!m || typeof m !== 'object') continue;
        seen.push(m);
        for (const w of waiters.slice()) {
          if (w.pred(m)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(m); }
        }
      }
    });
    ws.once('open', () => resolve({
      ws,
      send: (m) => ws.send(JSON.stringify(m)),
      wait: (pred, ms, what) => new Promise((res, rej) => {
        const hit = seen.find(pred);
        if (hit) return res(hit);
        const w = { pred, resolve: res };
        waiters.push(w);
        setTimeout(() => {
          const i = waiters.indexOf(w);
          if (i >= 0) { waiters.splice(i, 1); rej(new Error(`timed out waiting for ${what}; saw ${JSON.stringify(seen).slice(0, 2000)}`)); }
        }, ms);
      }),
      close: () => ws.close(),
    }));
    ws.once('error', reject);
  });
}

async function roundTrip(ctx, axe) {
  const relay = ctx.add(await startGunjsRelay({ axe }));
  const soul = uniq('ext');
  const sub = await client(relay.url);
  const writer = await client(relay.url);
  try {
    // Subscribe (AXE forwards writes only to peers that asked for the soul).
    const getId = uniq('g') + 'x';
    sub.send({ '#': getId, get: { '#': soul } });
    await sub.wait((m) => m['@'] === getId, 5000, 'an answer to the subscription get');
    await delay(200);

    const sig = { pk: 'p'.repeat(64), s: 's'.repeat(128) };
    const cert = { v: 1, a: 'authority', p: 'grantee', e: 9e15, g: [{ prefix: soul }], s: 'c'.repeat(128) };
    const state = Date.now();
    const putId = uniq('p') + 'x';
    writer.send({
      '#': putId,
      put: { [soul]: { _: { '#': soul, '>': { hello: state } }, hello: 'world' } },
      'gunrs:sig': sig,
      'gunrs:cert': cert,
    });
    const got = await sub.wait((m) => m.put && m.put[soul], 8000, 'the put pushed to the subscriber');
    assert.equal(got.put[soul].hello, 'world');
    return { got, sig, cert };
  } finally {
    sub.close();
    writer.close();
  }
}

test('a Gun.js relay without AXE forwards gunrs:sig and gunrs:cert unchanged', T, () => scenario(async (ctx) => {
  const { got, sig, cert } = await roundTrip(ctx, false);
  assert.deepEqual(got['gunrs:sig'], sig, `gunrs:sig did not survive the Gun.js relay: ${JSON.stringify(got)}`);
  assert.deepEqual(got['gunrs:cert'], cert, `gunrs:cert did not survive the Gun.js relay: ${JSON.stringify(got)}`);
}));

test('a Gun.js relay with AXE pushes writes as new messages without extension fields', T, () => scenario(async (ctx) => {
  const { got } = await roundTrip(ctx, true);
  assert.equal(got['gunrs:sig'], undefined, `AXE now keeps gunrs:sig (update the README): ${JSON.stringify(got)}`);
  assert.equal(got['gunrs:cert'], undefined, `AXE now keeps gunrs:cert (update the README): ${JSON.stringify(got)}`);
}));
