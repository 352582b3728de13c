#!/usr/bin/env node
'use strict';
// Forwarded gets per client: N raw WebSocket clients connect to a relay, and
// each asks for one soul of its own (that nobody holds) and one shared soul
// (written once before, so the relay holds it). A client never answers; every
// get it receives without `@` is a get the relay forwarded to it. Prints one
// JSON line: clients, forwarded gets in all, per client (mean, p50, p99, max),
// and how long connecting took.
//
//   node benches/get-storm.js --url ws://127.0.0.1:8765/gun [--clients 3000] [--batch 100] [--quiet 2000]
//
// With --subscribed N: one get answered by the relay with N subscribed peers.
// A soul is written (acked), N raw clients ask for it (they are subscribed
// now, and hold it), then one more client asks for it: prints the frames and
// messages every client received because of that last get (the answer, and
// the gets the relay forwarded).
//
//   node benches/get-storm.js --url ws://127.0.0.1:8765/gun --subscribed 100
//
// The relay's per-IP connection and message-rate limits must be off
// (GUN_RELAY_MAX_CONNECTIONS_PER_IP=0 GUN_RELAY_MAX_MESSAGES_PER_SEC=0).
// interop/relay/many-clients.test.js runs it (and asserts the counts stay
// bounded); `run` is exported for that.

const path = require('path');
let WebSocket;
try { WebSocket = require('ws'); } catch (_) { WebSocket = require(path.join(__dirname, '../interop/node_modules/ws')); }

const delay = (ms) => new Promise((r) => setTimeout(r, ms));

function connect(url, onMessage) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.on('message', (data) => {
      let parsed;
      try { parsed = JSON.parse(String(data)); } catch (_) { return; }
      for (const m of Array.isArray(parsed) ? parsed : [parsed]) if (m && typeof m === 'object') onMessage(m, ws);
    });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function write(url, soul, id) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`the write of ${soul} was not acked in 10 s`)), 10000);
    connect(url, (m, ws) => { if (m['@'] === id) { clearTimeout(t); ws.close(); resolve(); } })
      .then((ws) => ws.send(JSON.stringify({ '#': id, put: { [soul]: { _: { '#': soul, '>': { v: 1 } }, v: 'shared' } } })))
      .catch(reject);
  });
}

async function quiet(lastSeen, quietMs, maxWaitMs) {
  const deadline = Date.now() + maxWaitMs;
  while (Date.now() - lastSeen() < quietMs && Date.now() < deadline) await delay(50);
}

async function runSubscribed({ url, subscribed = 100, quietMs = 1500, tag = Date.now().toString(36) }) {
  const soul = `sub-${tag}`;
  await write(url, soul, `sub-w-${tag}`);
  let counting = false;
  let last = Date.now();
  const got = { frames: 0, messages: 0, forwardedGets: 0, answers: 0, other: 0 };
  const sockets = [];
  const open = (onMsg) => connect(url, (m) => { last = Date.now(); onMsg(m); }).then((ws) => {
    ws.on('message', () => { if (counting) got.frames += 1; });
    sockets.push(ws);
    return ws;
  });
  const count = (m) => {
    if (!counting) return;
    got.messages += 1;
    if (m.get && m['@'] === undefined) got.forwardedGets += 1;
    else if (m['@'] === `ask-${tag}`) got.answers += 1;
    else got.other += 1;
  };
  for (let i = 0; i < subscribed; i++) {
    const ws = await open(count);
    ws.send(JSON.stringify({ '#': `s-${tag}-${i}`, get: { '#': soul } }));
  }
  const asker = await open(count);
  await quiet(() => last, quietMs, 30000);
  counting = true;
  last = Date.now();
  asker.send(JSON.stringify({ '#': `ask-${tag}`, get: { '#': soul } }));
  await quiet(() => last, quietMs, 30000);
  for (const ws of sockets) ws.terminate();
  return { subscribed, ...got };
}

async function run({ url, clients = 3000, batch = 100, quietMs = 2000, maxWaitMs = 60000, tag = Date.now().toString(36) }) {
  const shared = `storm-shared-${tag}`;
  // The shared soul is written first (acked), so the relay holds it.
  await write(url, shared, `storm-w-${tag}`);

  const forwarded = new Array(clients).fill(0);
  const sockets = [];
  let last = Date.now();
  const t0 = Date.now();
  for (let i = 0; i < clients; i += batch) {
    const opened = [];
    for (let j = i; j < Math.min(i + batch, clients); j++) {
      opened.push(connect(url, (m) => {
        if (m.get && m['@'] === undefined) { forwarded[j] += 1; last = Date.now(); }
      }).then((ws) => {
        sockets.push(ws);
        ws.send(JSON.stringify([
          { '#': `own-${tag}-${j}`, get: { '#': `storm-${tag}-${j}` } },
          { '#': `sh-${tag}-${j}`, get: { '#': shared } },
        ]));
      }));
    }
    await Promise.all(opened);
  }
  const connectSecs = (Date.now() - t0) / 1000;
  last = Date.now();
  const deadline = Date.now() + maxWaitMs;
  while (Date.now() - last < quietMs && Date.now() < deadline) await delay(100);
  for (const ws of sockets) ws.terminate();

  const sorted = [...forwarded].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const total = forwarded.reduce((a, b) => a + b, 0);
  return {
    clients,
    forwardedGets: total,
    perClientMean: Number((total / clients).toFixed(2)),
    perClientP50: at(0.5),
    perClientP99: at(0.99),
    perClientMax: sorted[sorted.length - 1],
    connectSecs,
  };
}

module.exports = { run, runSubscribed };

if (require.main === module) {
  const args = process.argv.slice(2);
  const opt = (name, def) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : def; };
  const url = opt('url');
  if (!url) { console.error('usage: node benches/get-storm.js --url ws://HOST:PORT/gun [--clients N | --subscribed N] [--batch N] [--quiet MS]'); process.exit(2); }
  const quietMs = Number(opt('quiet', 2000));
  const job = opt('subscribed')
    ? runSubscribed({ url, subscribed: Number(opt('subscribed')), quietMs })
    : run({ url, clients: Number(opt('clients', 3000)), batch: Number(opt('batch', 100)), quietMs });
  job
    .then((r) => { console.log(JSON.stringify(r)); process.exit(0); })
    .catch((e) => { console.error(e); process.exit(1); });
}
