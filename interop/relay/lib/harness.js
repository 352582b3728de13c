'use strict';
// Shared by the interop/relay/*.test.js files: start and stop gun-relay, the genuine
// Gun.js relay of the shared conformance kit, genuine Gun.js client processes and the
// Rust peer (crates/gun-interop-peer). Everything listens on 127.0.0.1 only, every
// wait is bounded, and every process started here is killed when the test file ends
// (even on failure: process 'exit' / signal handlers below).
//
// Environment (scripts/relay-interop.sh sets all of them; the defaults suit a checkout
// where `cargo build -p gun-relay` and `cargo build -p gun-interop-peer` ran):
//   GUN_RELAY_BIN         gun-relay binary        (default target/debug/gun-relay)
//   GUN_INTEROP_PEER_BIN  Rust peer binary        (default target/debug/gun-interop-peer)
//   GUN_SHARED_INTEROP    the shared kit dir      (default ../shared/interop beside the repo)
//   GUNJS_NODE_PATH       node_modules holding gun for gunjs-relay.js
//                         (default: this repo's interop/node_modules, same pinned gun)
//   RELAY_INTEROP_KEEP_LOGS=1  print relay logs of passing tests too
//   TAIL, TAIL_SHOW       relay log lines kept (default 200) and shown with a
//                         failure (default 25), for debugging

process.env.MULTICAST = 'false';
delete process.env.AWS_S3_BUCKET;

const { spawn, fork } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const http = require('http');
const readline = require('readline');

const REPO = path.resolve(__dirname, '../../..');
const RELAY_BIN = process.env.GUN_RELAY_BIN || path.join(REPO, 'target/debug/gun-relay');
const PEER_BIN = process.env.GUN_INTEROP_PEER_BIN || path.join(REPO, 'target/debug/gun-interop-peer');
const KIT = process.env.GUN_SHARED_INTEROP || path.resolve(REPO, '../shared/interop');
const GUNJS_NODE_PATH = process.env.GUNJS_NODE_PATH || path.join(REPO, 'interop/node_modules');
const PEER_SCRIPT = path.join(__dirname, 'gun-peer-process.js');

// Each Gun.js process gets a working directory of its own: `require('gun')`
// creates `radata` there (even with radisk off), and two processes doing that
// in one directory at once crash with EEXIST (node --test runs files in
// parallel). Removed when this process exits.
const scratchDirs = [];
function scratchCwd(name) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `gunjs-${name.replace(/[^\w-]/g, '_')}-`));
  scratchDirs.push(d);
  return d;
}
process.on('exit', () => {
  for (const d of scratchDirs) {
    try { fs.rmSync(d, { recursive: true, force: true }); } catch (_) { /* best effort */ }
  }
});

const live = new Set(); // child processes still running
function track(child) {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}
function killAll() {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch (e) { /* gone */ }
  }
}
process.on('exit', killAll);
// Safety net: whatever a failing test leaked (e.g. one of two peers spawned with
// Promise.all) would keep this file's process, and so `node --test`, alive.
require('node:test').after(killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => { killAll(); process.exit(128 + os.constants.signals[sig]); });
}

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Poll `probe` until it returns a truthy value; throw `message` after `timeoutMs`.
async function waitUntil(probe, timeoutMs, message, intervalMs = 25) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() >= deadline) throw new Error(typeof message === 'function' ? message() : message);
    await delay(intervalMs);
  }
}

function withTimeout(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(message)), ms); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function uniq(tag) {
  return `${tag}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

function mustExist(file, hint) {
  if (!fs.existsSync(file)) throw new Error(`${file} not found: ${hint}`);
}

// Keeps the last lines a process wrote, for failure messages. Pipes deliver
// arbitrary chunks (a Rust `eprintln!` with arguments is several writes), so a
// line is complete only at its '\n': `push` takes raw chunks, `line` one whole line.
class LogTail {
  constructor(max = 60) { this.lines = []; this.max = max; this.partial = ''; }
  push(chunk) {
    const parts = (this.partial + String(chunk)).split('\n');
    this.partial = parts.pop();
    for (const line of parts) this.line(line);
  }
  line(line) {
    if (!String(line).trim()) return;
    this.lines.push(String(line));
    if (this.lines.length > this.max) this.lines.shift();
  }
  // Complete lines, and the unfinished one.
  all() { return this.partial ? [...this.lines, this.partial] : this.lines.slice(); }
  text(n = 20) { return this.all().slice(-n).join('\n'); }
}

// Stop a child: SIGTERM, then SIGKILL after `graceMs`. Resolves once it exited.
function stopChild(child, graceMs = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => { try { child.kill('SIGKILL'); } catch (e) { /* gone */ } }, graceMs);
    child.once('exit', () => { clearTimeout(timer); resolve(); });
    try { child.kill('SIGTERM'); } catch (e) { clearTimeout(timer); resolve(); }
  });
}

// ------------------------------------------------------------------ relays

class Relay {
  constructor(kind, child, port, log, cleanup) {
    this.kind = kind;
    this.child = child;
    this.port = port;
    this.log = log;
    this.cleanup = cleanup;
    this.url = `ws://127.0.0.1:${port}/gun`;
    this.httpUrl = `http://127.0.0.1:${port}/gun`;
  }
  get alive() { return this.child.exitCode === null && this.child.signalCode === null; }
  async stop() {
    await stopChild(this.child);
    if (this.cleanup) this.cleanup();
  }
}

// gun-relay on a free port (--port 0), `store` memory|file|sled (data in a temp dir).
// `port` (default 0: a free one) restarts a relay on the port it had.
async function startGunRelay({ store = 'sled', peers = [], log = 'info', name = 'gun-relay', port: want = 0 } = {}) {
  mustExist(RELAY_BIN, 'run `cargo build -p gun-relay` first (or set GUN_RELAY_BIN)');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'relay-interop-'));
  const args = ['--host', '127.0.0.1', '--port', String(want), '--data', dataDir, '--store', store, '--log', log];
  for (const p of peers) args.push('--peer', p);
  const child = track(spawn(RELAY_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  const tail = new LogTail(Number(process.env.TAIL || 200));
  child.stdout.on('data', (d) => tail.push(d));
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not print its ready line within 20s:\n${tail.text()}`)), 20000);
    child.stderr.on('data', (d) => {
      tail.push(d);
      const line = tail.lines.find((l) => /gun-relay listening on ws:\/\/127\.0\.0\.1:\d+\/gun/.test(l));
      const m = line && /ws:\/\/127\.0\.0\.1:(\d+)\/gun/.exec(line);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    child.once('exit', (code, sig) => { clearTimeout(timer); reject(new Error(`${name} exited at startup (${sig || code}):\n${tail.text()}`)); });
  }).catch(async (err) => {
    // A child left running keeps this test file (and node --test) alive for ever.
    await stopChild(child, 1000);
    fs.rmSync(dataDir, { recursive: true, force: true });
    throw err;
  });
  return new Relay(name, child, port, tail, () => fs.rmSync(dataDir, { recursive: true, force: true }));
}

// The genuine Gun.js relay of the shared kit (gunjs-relay.js: stock `require('gun')`
// relay with radisk, SEA and AXE on), on a free port.
async function startGunjsRelay({ radisk = true, axe = true, name = 'gunjs-relay' } = {}) {
  const script = path.join(KIT, 'gunjs-relay.js');
  mustExist(script, 'the shared interop kit must sit beside the repo (or set GUN_SHARED_INTEROP)');
  const args = [script, '--port', '0'];
  if (!radisk) args.push('--no-radisk');
  if (!axe) args.push('--no-axe');
  const env = { ...process.env, NODE_PATH: GUNJS_NODE_PATH, MULTICAST: 'false' };
  const child = track(spawn(process.execPath, args,
    { stdio: ['ignore', 'pipe', 'pipe'], env, cwd: scratchCwd(name) }));
  const tail = new LogTail(Number(process.env.TAIL || 200));
  child.stderr.on('data', (d) => tail.push(d));
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not print READY within 20s:\n${tail.text()}`)), 20000);
    const rl = readline.createInterface({ input: child.stdout });
    rl.on('line', (line) => {
      tail.line(line);
      const m = /^READY (\d+)$/.exec(line.trim());
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    child.once('exit', (code, sig) => { clearTimeout(timer); reject(new Error(`${name} exited at startup (${sig || code}):\n${tail.text()}`)); });
  }).catch(async (err) => {
    await stopChild(child, 1000);
    throw err;
  });
  return new Relay(name, child, port, tail, null);
}

// GET / on gun-relay: its health JSON.
function health(relay, timeoutMs = 2000) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: relay.port, path: '/', timeout: timeoutMs }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => { try { resolve(JSON.parse(body)); } catch (e) { reject(new Error(`health: bad JSON ${body}`)); } });
    });
    req.on('timeout', () => req.destroy(new Error('health: timeout')));
    req.on('error', reject);
  });
}

// ------------------------------------------------------------------ peers

// A genuine Gun.js client (lib/gun-peer-process.js) in its own process.
class GunPeer {
  constructor(name, child) {
    this.name = name;
    this.child = child;
    this.nextId = 1;
    this.pending = new Map();
    this.subs = new Map();
    this.log = new LogTail();
    this.exited = false;
    child.stdout.on('data', (d) => this.log.push(d));
    child.stderr.on('data', (d) => this.log.push(d));
    child.on('message', (msg) => this.onMessage(msg));
    child.on('exit', (code, sig) => {
      this.exited = true;
      for (const { reject, timer } of this.pending.values()) {
        clearTimeout(timer);
        reject(new Error(`Gun.js peer ${name} exited (${sig || code}) during a call\n${this.log.text()}`));
      }
      this.pending.clear();
    });
  }

  static async spawn(urls, name, timeoutMs = 15000) {
    const child = track(fork(PEER_SCRIPT, [JSON.stringify([].concat(urls))], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: { ...process.env, MULTICAST: 'false' },
      cwd: scratchCwd(name),
    }));
    const peer = new GunPeer(name, child);
    const ready = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`Gun.js peer ${name} not ready within ${timeoutMs}ms`)), timeoutMs);
      child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`Gun.js peer ${name} exited at startup (${code}): ${peer.log.text(5)}`)); });
      peer.onReady = (msg) => { clearTimeout(timer); resolve(msg); };
    }).catch((err) => { peer.kill(); throw err; });
    if (!ready.connected && [].concat(urls).length > 0) {
      peer.kill();
      throw new Error(`Gun.js peer ${name}: websocket to ${urls} did not open within 5s`);
    }
    return peer;
  }

  onMessage(msg) {
    if (msg.event === 'ready') { if (this.onReady) this.onReady(msg); return; }
    if (msg.event === 'sub') { const s = this.subs.get(msg.sub); if (s) s.push(msg.data); return; }
    const call = this.pending.get(msg.id);
    if (!call) return;
    this.pending.delete(msg.id);
    clearTimeout(call.timer);
    if (msg.ok) call.resolve(msg.result);
    else call.reject(new Error(`Gun.js peer ${this.name} ${call.op} failed: ${msg.error}`));
  }

  call(op, args = {}, timeoutMs = 15000) {
    if (this.exited) return Promise.reject(new Error(`Gun.js peer ${this.name} is not running`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`Gun.js peer ${this.name}: ${op}(${JSON.stringify(args).slice(0, 120)}) got no answer within ${timeoutMs}ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer, op });
      this.child.send({ id, op, args });
    });
  }

  put(path, value, ackTimeout = 5000) { return this.call('put', { path, value, ackTimeout }, ackTimeout + 5000); }
  once(path, timeoutMs = 10000) { return this.call('once', { path }, timeoutMs); }
  connect(url, timeoutMs = 5000) { return this.call('connect', { url, timeoutMs }, timeoutMs + 5000); }
  userCreate(alias, pass, timeoutMs = 15000) { return this.call('userCreate', { alias, pass, timeoutMs }, timeoutMs + 5000); }
  userAuth(alias, pass, timeoutMs = 15000) { return this.call('userAuth', { alias, pass, timeoutMs }, timeoutMs + 5000); }
  userLeave() { return this.call('userLeave'); }
  userChangePassword(alias, pass, newPass, timeoutMs = 15000) { return this.call('userChangePassword', { alias, pass, newPass, timeoutMs }, timeoutMs + 5000); }
  seaPair() { return this.call('seaPair'); }
  userCreatePair(pair, timeoutMs = 15000) { return this.call('userCreatePair', { pair, timeoutMs }, timeoutMs + 5000); }
  userAuthPair(pair, timeoutMs = 15000) { return this.call('userAuthPair', { pair, timeoutMs }, timeoutMs + 5000); }
  userPut(path, value, ackTimeout = 5000) { return this.call('userPut', { path, value, ackTimeout }, ackTimeout + 5000); }
  userOfOnce(pub, path, timeoutMs = 10000) { return this.call('userOfOnce', { pub, path }, timeoutMs); }
  userSet(path, value, ackTimeout = 5000) { return this.call('userSet', { path, value, ackTimeout }, ackTimeout + 5000); }
  userOfMapOnce(pub, path, waitMs = 1500) { return this.call('userOfMapOnce', { pub, path, waitMs }, waitMs + 10000); }
  certify(pubs, policy, opt) { return this.call('certify', { pubs, policy, opt }); }
  async subscribe(path) {
    const id = `s${this.nextId++}`;
    const sub = new Sub(`${this.name} on(${path.join('.')})`);
    this.subs.set(id, sub);
    await this.call('subscribe', { path, sub: id });
    return sub;
  }

  async close() {
    if (this.exited) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    try { this.child.send({ id: 0, op: 'exit' }); } catch (e) { /* gone */ }
    const timer = setTimeout(() => this.kill(), 2000);
    await exited;
    clearTimeout(timer);
  }

  kill() { if (!this.exited) this.child.kill('SIGKILL'); }
}

// The Rust peer: crates/gun-interop-peer (the `gun` crate dialing with gun-net-ws),
// JSON lines over stdin/stdout.
class RustPeer {
  constructor(name, child) {
    this.name = name;
    this.child = child;
    this.nextId = 1;
    this.pending = new Map();
    this.subs = new Map();
    this.log = new LogTail();
    this.exited = false;
    child.stderr.on('data', (d) => this.log.push(d));
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      let msg;
      try { msg = JSON.parse(line); } catch (e) { this.log.line(`(stdout) ${line}`); return; }
      this.onMessage(msg);
    });
    child.on('exit', (code, sig) => {
      this.exited = true;
      for (const { reject, timer } of this.pending.values()) {
        clearTimeout(timer);
        reject(new Error(`Rust peer ${name} exited (${sig || code}) during a call\n${this.log.text()}`));
      }
      this.pending.clear();
    });
  }

  static async spawn(urls, name, { waitMs = 3000, timeoutMs = 15000 } = {}) {
    mustExist(PEER_BIN, 'run `cargo build -p gun-interop-peer` first (or set GUN_INTEROP_PEER_BIN)');
    const child = track(spawn(PEER_BIN, [...[].concat(urls), '--wait-ms', String(waitMs)], { stdio: ['pipe', 'pipe', 'pipe'] }));
    const peer = new RustPeer(name, child);
    const ready = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`Rust peer ${name} not ready within ${timeoutMs}ms`)), timeoutMs);
      child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`Rust peer ${name} exited at startup (${code}): ${peer.log.text(5)}`)); });
      peer.onReady = (msg) => { clearTimeout(timer); resolve(msg); };
    }).catch((err) => { peer.kill(); throw err; });
    if (!ready.connected && [].concat(urls).length > 0) {
      peer.kill();
      throw new Error(`Rust peer ${name}: no connection to ${urls} within 10s\n${peer.log.text()}`);
    }
    return peer;
  }

  onMessage(msg) {
    if (msg.event === 'ready') { if (this.onReady) this.onReady(msg); return; }
    if (msg.event === 'sub') { const s = this.subs.get(msg.sub); if (s) s.push(msg.data); return; }
    const call = this.pending.get(msg.id);
    if (!call) { this.log.line(`(unmatched) ${JSON.stringify(msg)}`); return; }
    this.pending.delete(msg.id);
    clearTimeout(call.timer);
    if (msg.ok) call.resolve(msg.result);
    else call.reject(new Error(`Rust peer ${this.name} ${call.op} failed: ${msg.error}`));
  }

  call(op, args = {}, timeoutMs = 15000) {
    if (this.exited) return Promise.reject(new Error(`Rust peer ${this.name} is not running`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`Rust peer ${this.name}: ${op}(${JSON.stringify(args).slice(0, 120)}) got no answer within ${timeoutMs}ms\n${this.log.text(10)}`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer, op });
      this.child.stdin.write(`${JSON.stringify({ id, op, ...args })}\n`);
    });
  }

  put(path, value, { acks = 1, timeoutMs = 5000 } = {}) { return this.call('put', { path, value, acks, timeoutMs }, timeoutMs + 5000); }
  get(path, timeoutMs = 15000) { return this.call('get', { path }, timeoutMs); }
  // SEA users (crates/gun-interop-peer `user.*` ops); paths are below the user's root.
  userCreate(alias, pass, { acks = 1, timeoutMs = 8000 } = {}) { return this.call('user.create', { alias, pass, acks, timeoutMs }, timeoutMs * 2 + 10000); }
  userAuth(alias, pass, timeoutMs = 20000) { return this.call('user.auth', { alias, pass }, timeoutMs); }
  userLeave() { return this.call('user.leave'); }
  userChangePassword(alias, pass, newPass, { acks = 1, timeoutMs = 8000 } = {}) { return this.call('user.changePassword', { alias, pass, newPass, acks, timeoutMs }, timeoutMs * 2 + 20000); }
  userCreateFromPair(pair, { acks = 1, timeoutMs = 8000 } = {}) { return this.call('user.createFromPair', { pair, acks, timeoutMs }, timeoutMs * 2 + 10000); }
  userPut(path, value, { acks = 1, timeoutMs = 5000 } = {}) { return this.call('user.put', { path, value, acks, timeoutMs }, timeoutMs + 5000); }
  userOfGet(pub, path, timeoutMs = 15000) { return this.call('userOf.get', { pub, path }, timeoutMs); }
  userSet(path, value, { acks = 1, timeoutMs = 5000 } = {}) { return this.call('user.set', { path, value, acks, timeoutMs }, timeoutMs + 5000); }
  userOfMap(pub, path, timeoutMs = 15000) { return this.call('userOf.map', { pub, path }, timeoutMs); }
  userOfPutCertified(pub, path, value, cert, { acks = 1, timeoutMs = 5000 } = {}) { return this.call('userOf.putCertified', { pub, path, value, cert, acks, timeoutMs }, timeoutMs + 5000); }
  async subscribe(path) {
    const id = `s${this.nextId++}`;
    const sub = new Sub(`${this.name} on(${path.join('.')})`);
    this.subs.set(id, sub);
    await this.call('on', { path, sub: id });
    return sub;
  }

  async close() {
    if (this.exited) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    try { this.child.stdin.end(`${JSON.stringify({ id: 0, op: 'exit' })}\n`); } catch (e) { /* gone */ }
    const timer = setTimeout(() => this.kill(), 5000);
    await exited;
    clearTimeout(timer);
  }

  kill() { if (!this.exited) this.child.kill('SIGKILL'); }
}

// Events of one on() subscription.
class Sub {
  constructor(what) { this.what = what; this.events = []; }
  push(data) { this.events.push(data); }
  waitFor(predicate, timeoutMs, expected = 'the expected event') {
    return waitUntil(() => this.events.find((e) => { try { return predicate(e); } catch (err) { return false; } }), timeoutMs,
      () => `${this.what}: no ${expected} within ${timeoutMs}ms; saw ${this.events.length} events: ${JSON.stringify(this.events.slice(-5)).slice(0, 400)}`);
  }
}

// Runs `fn(ctx)`, where ctx.add(x) registers relays/peers to stop afterwards (in reverse
// order) whatever happens; relay logs are attached to the error on failure.
async function scenario(fn) {
  const owned = [];
  const ctx = { add(x) { owned.push(x); return x; } };
  try {
    return await fn(ctx);
  } catch (err) {
    const logs = owned.filter((x) => x instanceof Relay)
      .map((r) => `--- ${r.kind} (port ${r.port}${r.alive ? '' : ', EXITED'}) log tail:\n${r.log.text(Number(process.env.TAIL_SHOW || 25))}`);
    if (logs.length) err.message += `\n${logs.join('\n')}`;
    throw err;
  } finally {
    for (const x of owned.reverse()) {
      try { if (x.close) await x.close(); else await x.stop(); } catch (e) { /* best effort */ }
    }
  }
}

module.exports = {
  REPO, KIT, RELAY_BIN, PEER_BIN,
  delay, waitUntil, withTimeout, uniq,
  startGunRelay, startGunjsRelay, health,
  GunPeer, RustPeer, scenario,
};
