'use strict';
// A gun-rs peer process (`gun-rtc-peer`, crate gun-rtc-peer, feature `webrtc`) for
// the WebRTC interop tests: commands on stdin, JSON events on stdout, logs on
// stderr. Used by interop/browser/webrtc.test.js and
// interop/relay/webrtc-gunjs-relay.test.js.

const path = require('path');
const readline = require('readline');
const { spawn } = require('child_process');

const RTC_PEER_BIN = process.env.GUN_RTC_PEER_BIN
  || path.resolve(__dirname, '../../target/debug/gun-rtc-peer');

class RtcPeer {
  // `args`: gun-rtc-peer's arguments (--peer, --room, --udp, ...).
  constructor(name, args, waitMs = 30000) {
    this.name = name;
    this.waitMs = waitMs;
    this.events = [];
    this.log = [];
    this.waiters = [];
    this.child = spawn(RTC_PEER_BIN, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    readline.createInterface({ input: this.child.stdout }).on('line', (l) => {
      let ev;
      try { ev = JSON.parse(l); } catch (_) { return; }
      this.events.push(ev);
      this.waiters = this.waiters.filter((w) => !w(ev));
    });
    readline.createInterface({ input: this.child.stderr }).on('line', (l) => this.log.push(l));
  }

  send(line) { this.child.stdin.write(line + '\n'); }

  // The first event (seen or to come) matching `pred`.
  waitFor(what, pred) {
    return new Promise((resolve, reject) => {
      const hit = this.events.find(pred);
      if (hit) return resolve(hit);
      const timer = setTimeout(() => reject(new Error(`${this.name}: no ${what} in ${this.waitMs} ms\n`
        + this.events.map((e) => JSON.stringify(e)).join('\n') + '\n' + this.log.slice(-30).join('\n'))), this.waitMs);
      this.waiters.push((ev) => { if (pred(ev)) { clearTimeout(timer); resolve(ev); return true; } return false; });
    });
  }

  get exited() { return this.child.exitCode !== null || this.child.signalCode !== null; }

  // `quit` on stdin; SIGKILL if it has not exited within `graceMs`.
  async stop(graceMs = 0) {
    if (this.exited) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    if (graceMs > 0) {
      this.send('quit');
      await Promise.race([exited, new Promise((r) => setTimeout(r, graceMs))]);
      if (this.exited) return;
    }
    this.child.kill('SIGKILL');
    await exited;
  }
}

module.exports = { RtcPeer, RTC_PEER_BIN };
