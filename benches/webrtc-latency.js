// Write-to-other-peer latency between two gun-rs peers (gun-rtc-peer, release
// builds): through gun-relay over websockets, and directly over the WebRTC
// data channel once the relay is gone. Both peers and the relay run on this
// machine (loopback); every sample includes the peers' stdin/stdout handling.
//
//   cargo build --release -p gun-relay -p gun-rtc-peer --features gun-rtc-peer/webrtc
//   node benches/webrtc-latency.js [N=300]
//
// Phase "ws": the peers are in different rooms (no data channel), so each
// write reaches the other peer through the relay. Phase "rtc": same room,
// connected, relay killed: each write goes over the data channel. Writes are
// sequential (the next once the previous arrived). Prints p50/p90/p99/max.
"use strict";

const { spawn } = require("node:child_process");
const path = require("node:path");
const readline = require("node:readline");

const ROOT = path.resolve(__dirname, "..");
const RELAY = process.env.GUN_RELAY_BIN || path.join(ROOT, "target/release/gun-relay");
const PEER = process.env.GUN_RTC_PEER_BIN || path.join(ROOT, "target/release/gun-rtc-peer");
const N = Number(process.argv[2] || 300);

function relay() {
  return new Promise((resolve, reject) => {
    const child = spawn(RELAY, ["--port", "0", "--store", "memory", "--log", "warn"], { stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    child.stderr.on("data", (d) => {
      log += d;
      const m = /listening on (ws:\/\/\S+\/gun)/.exec(log);
      if (m) resolve({ child, url: m[1] });
    });
    child.on("exit", (c) => reject(new Error("relay exited " + c + "\n" + log)));
  });
}

function peer(url, room) {
  const child = spawn(PEER, ["--peer", url, "--room", room, "--udp", "127.0.0.1:0", "--no-ice"], { stdio: ["pipe", "pipe", "inherit"] });
  const p = { child, waiters: [] };
  readline.createInterface({ input: child.stdout }).on("line", (l) => {
    let ev;
    try { ev = JSON.parse(l); } catch { return; }
    p.waiters = p.waiters.filter((w) => !w(ev));
  });
  p.send = (line) => child.stdin.write(line + "\n");
  p.next = (pred, ms = 20000) => new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("timeout")), ms);
    p.waiters.push((ev) => { if (pred(ev)) { clearTimeout(t); resolve(ev); return true; } return false; });
  });
  return p;
}

const pct = (xs, q) => xs[Math.min(xs.length - 1, Math.floor(q * xs.length))];

async function measure(a, b, tag) {
  const ms = [];
  const via = {};
  for (let i = 0; i < N; i++) {
    const key = `k${tag}${i}`;
    const got = b.next((e) => e.ev === "change" && e.key === key);
    const t0 = process.hrtime.bigint();
    a.send(`put bench ${key} ${i}`);
    const ev = await got;
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    via[ev.via] = (via[ev.via] || 0) + 1;
  }
  ms.sort((x, y) => x - y);
  const f = (x) => x.toFixed(2);
  console.log(`${tag}: n=${N} p50 ${f(pct(ms, 0.5))} ms  p90 ${f(pct(ms, 0.9))} ms  p99 ${f(pct(ms, 0.99))} ms  max ${f(ms[ms.length - 1])} ms  (arrived via ${JSON.stringify(via)})`);
}

async function main() {
  const stamp = Date.now().toString(36);
  // ws: different rooms, relay carries every write.
  {
    const r = await relay();
    const a = peer(r.url, "a-" + stamp);
    const b = peer(r.url, "b-" + stamp);
    await Promise.all([a.next((e) => e.ev === "ready"), b.next((e) => e.ev === "ready")]);
    b.send("watch bench");
    await b.next((e) => e.ev === "watching");
    await new Promise((res) => setTimeout(res, 500));
    await measure(a, b, "ws");
    for (const p of [a, b]) p.send("quit");
    r.child.kill("SIGKILL");
  }
  // rtc: one room, connected, relay killed.
  {
    const r = await relay();
    const a = peer(r.url, "r-" + stamp);
    const pa = (await a.next((e) => e.ev === "ready")).pid;
    const b = peer(r.url, "r-" + stamp);
    const pb = (await b.next((e) => e.ev === "ready")).pid;
    b.send("watch bench");
    await Promise.all([a.next((e) => e.ev === "rtc" && e.connected.includes(pb)),
      b.next((e) => e.ev === "rtc" && e.connected.includes(pa))]);
    r.child.kill("SIGKILL");
    await new Promise((res) => setTimeout(res, 500));
    await measure(a, b, "rtc");
    for (const p of [a, b]) p.send("quit");
  }
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
