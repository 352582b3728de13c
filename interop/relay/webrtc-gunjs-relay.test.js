'use strict';
// WebRTC signalling through a genuine Gun.js relay (the shared kit's
// gunjs-relay.js: stock `require('gun')`, AXE on and off): two gun-rs peers
// (gun-rtc-peer) meet in a room through it, connect over loopback, and keep
// syncing after the Gun.js relay is killed.
//
//   cargo build -p gun-rtc-peer --features webrtc && node --test interop/relay/webrtc-gunjs-relay.test.js
//
// GUN_RTC_PEER_BIN overrides the peer binary (default target/debug/gun-rtc-peer).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const { startGunjsRelay, scenario, uniq } = require('./lib/harness');
const { RtcPeer, RTC_PEER_BIN } = require('../lib/rtc-peer');

const T = { timeout: 90000 };

async function meetAndOutliveTheRelay(ctx, axe) {
  assert.ok(fs.existsSync(RTC_PEER_BIN), `no ${RTC_PEER_BIN} (cargo build -p gun-rtc-peer --features webrtc)`);
  const args = (url, room) => ['--peer', url, '--room', room, '--udp', '127.0.0.1:0', '--no-ice', '--log', 'info'];
  const relay = ctx.add(await startGunjsRelay({ axe, radisk: false }));
  const room = uniq('rtc');
  const a = ctx.add(new RtcPeer('A', args(relay.url, room)));
  const pa = (await a.waitFor('ready', (e) => e.ev === 'ready')).pid;
  a.send('watch shared');
  // B joins once A's announcement is out. Two peers joining at the same
  // moment behind a Gun.js relay with AXE may not connect: the offer that
  // answers a re-announcement is not routed back by AXE (README, Unfinished);
  // through gun-relay they do (crates/gun/tests/webrtc.rs starts both at once).
  await new Promise((r) => setTimeout(r, 1000));
  const b = ctx.add(new RtcPeer('B', args(relay.url, room)));
  const pb = (await b.waitFor('ready', (e) => e.ev === 'ready')).pid;
  b.send('watch shared');
  const up = (pid) => (e) => e.ev === 'rtc' && e.connected.includes(pid);
  await a.waitFor('a data channel to B', up(pb));
  await b.waitFor('a data channel to A', up(pa));
  await relay.stop();
  assert.equal(relay.alive, false);
  a.send('put shared from_a "over rtc"');
  const got = await b.waitFor("A's write", (e) => e.ev === 'change' && e.key === 'from_a' && e.value === 'over rtc');
  assert.equal(got.via, 'rtc');
  b.send('put shared from_b "back over rtc"');
  const back = await a.waitFor("B's write", (e) => e.ev === 'change' && e.key === 'from_b' && e.value === 'back over rtc');
  assert.equal(back.via, 'rtc');
}

test('two gun-rs peers connect by WebRTC through a Gun.js relay with AXE, then outlive it', T,
  () => scenario((ctx) => meetAndOutliveTheRelay(ctx, true)));

test('two gun-rs peers connect by WebRTC through a Gun.js relay without AXE, then outlive it', T,
  () => scenario((ctx) => meetAndOutliveTheRelay(ctx, false)));
