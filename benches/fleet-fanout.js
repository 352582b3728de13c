'use strict';
// Fan-out latency in a fleet: one writer on relay W, S subscribers on relay R
// (the same relay, or another relay of the fleet), raw `ws` clients.
//   node benches/fleet-fanout.js --writer ws://127.0.0.1:A/gun --subs-url ws://127.0.0.1:B/gun
//        [--subs 10] [--puts 300] [--interval 20]
// Subscribers send {"get":{"#":SOUL}} (the relay subscribes them) and wait for the answer;
// then the writer puts {SOUL: {v: "<seq>"}} every `interval` ms (open loop, low rate: this
// measures latency, not throughput). Latency = first arrival of each seq at a subscriber minus
// the put's send time (one process, one monotonic clock). Prints one JSON line: per-delivery
// p50/p90/p99/max in ms and the delivery ratio.
const WebSocket = require('ws');
const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const writerUrl = args.writer;
const subsUrl = args['subs-url'] || writerUrl;
const S = Number(args.subs || 10), PUTS = Number(args.puts || 300), INTERVAL = Number(args.interval || 20);
const soul = 'fleetfan/' + Math.random().toString(36).slice(2, 8);
const now = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let nextId = 0;
const id = () => 'ff' + (nextId++) + Math.random().toString(36).slice(2, 6);
function connect(url) {
  return new Promise((res, rej) => {
    const ws = new WebSocket(url);
    ws.once('open', () => res(ws));
    ws.once('error', rej);
  });
}
function msgs(data) {
  let v;
  try { v = JSON.parse(String(data)); } catch (_) { return []; }
  return Array.isArray(v) ? v : [v];
}
(async () => {
  const sent = new Map();
  const lat = [];
  let delivered = 0;
  const writer = await connect(writerUrl);
  let state = Date.now();
  const put = (v) => {
    state = Math.max(state + 1, Date.now());
    writer.send(JSON.stringify({ '#': id(), put: { [soul]: { _: { '#': soul, '>': { v: state } }, v } } }));
  };
  put('init');
  await sleep(300);
  const subs = [];
  for (let s = 0; s < S; s++) {
    const ws = await connect(subsUrl);
    const seen = new Set();
    const gid = id();
    const answered = new Promise((res) => {
      ws.on('message', (d) => {
        for (const m of msgs(d)) {
          if (m['@'] === gid) res();
          const v = m.put && m.put[soul] && m.put[soul].v;
          if (typeof v === 'string' && sent.has(v) && !seen.has(v)) {
            seen.add(v);
            delivered++;
            lat.push(now() - sent.get(v));
          }
          if (m['#'] && !m['@'] && m.put) ws.send(JSON.stringify({ '#': id(), '@': m['#'], ok: { '@': 1, '/': 1 } }));
        }
      });
    });
    ws.send(JSON.stringify({ '#': gid, get: { '#': soul } }));
    await Promise.race([answered, sleep(5000)]);
    subs.push(ws);
  }
  await sleep(300);
  const t0 = now();
  for (let i = 0; i < PUTS; i++) {
    const v = 'seq' + i;
    sent.set(v, now());
    put(v);
    await sleep(Math.max(0, t0 + (i + 1) * INTERVAL - now()));
  }
  await sleep(2000);
  lat.sort((a, b) => a - b);
  const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : null);
  const r = (x) => (x == null ? null : Math.round(x * 100) / 100);
  console.log(JSON.stringify({ writer: writerUrl, subs_url: subsUrl, subs: S, puts: PUTS, interval_ms: INTERVAL,
    delivery_ratio: delivered / (S * PUTS), p50_ms: r(q(0.5)), p90_ms: r(q(0.9)), p99_ms: r(q(0.99)), max_ms: r(lat[lat.length - 1]) }));
  writer.close(); subs.forEach((s) => s.close());
  process.exit(0);
})().catch((e) => { console.error('ERROR', e); process.exit(1); });
