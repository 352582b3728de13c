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

async function meetAndOutliveTheRelay(ctx, axe, together = false) {
  assert.ok(fs.existsSync(RTC_PEER_BIN), `no ${RTC_PEER_BIN} (cargo build -p gun-rtc-peer --features webrtc)`);
  const args = (url, room) => ['--peer', url, '--room', room, '--udp', '127.0.0.1:0', '--no-ice', '--log', 'info'];
  const relay = ctx.add(await startGunjsRelay({ axe, radisk: false }));
  const room = uniq('rtc');
  const a = ctx.add(new RtcPeer('A', args(relay.url, room)));
  if (!together) {
    // B joins once A's announcement is out.
    await a.waitFor('ready', (e) => e.ev === 'ready');
    await new Promise((r) => setTimeout(r, 1000));
  }
  // Together: a Gun.js relay with AXE may push the room's value (one peer's
  // pid) under the id of the other's write, so an offer is routed back to its
  // sender; a gun-rs peer whose offer is unanswered for 6 s announces again,
  // and the other side then offers (README, "differs from Gun.js").
  const b = ctx.add(new RtcPeer('B', args(relay.url, room)));
  const pa = (await a.waitFor('ready', (e) => e.ev === 'ready')).pid;
  const pb = (await b.waitFor('ready', (e) => e.ev === 'ready')).pid;
  a.send('watch shared');
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

test('two gun-rs peers that join at the same moment through a Gun.js relay with AXE connect', T,
  () => scenario((ctx) => meetAndOutliveTheRelay(ctx, true, true)));
