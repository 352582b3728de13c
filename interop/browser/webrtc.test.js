// WebRTC interop: genuine Gun.js with lib/webrtc.js in headless Chromium and a
// gun-rs peer (gun-rtc-peer) join one room through gun-relay, connect by
// WebRTC (host candidates, no STUN), and keep exchanging writes both ways
// after the relay is stopped.
//
//   cargo build -p gun-relay -p gun-rtc-peer --features gun-rtc-peer/webrtc
//   node --test interop/browser/webrtc.test.js
//
// Two pages: one joins before the gun-rs peer (so the page offers and gun-rs
// answers), one after (gun-rs offers, the page answers). GUN_RELAY_BIN,
// GUN_RTC_PEER_BIN and CHROMIUM override the binaries.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const http = require("node:http");
const os = require("node:os");
const path = require("node:path");
const common = require("./lib/common.js");
const { RtcPeer, RTC_PEER_BIN: PEER_BIN } = require("../lib/rtc-peer.js");

const ROOT = path.resolve(__dirname, "../..");
const RELAY_BIN = process.env.GUN_RELAY_BIN || path.join(ROOT, "target/debug/gun-relay");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const GUN_DIR = path.join(ROOT, "interop/node_modules/gun");
const PAGE = path.join(__dirname, "webrtc/index.html");
const SHOTS = path.join(ROOT, "target/browser-screenshots");
const LIVE = 30_000;

const room = "rtc-" + Date.now().toString(36);
let relay = null;
let relayUrl = null;
let server = null;
let site = null;
let userDir = null;
let context = null;
let rust = null;
let pageEarly = null;
let pageLate = null;

function startRelay() {
  return common.startRelay(RELAY_BIN,
    ["--host", "127.0.0.1", "--port", "0", "--store", "memory", "--log", "warn,gun_dam=debug"], LIVE);
}

const stop = (child, signal) => common.stopChild(child, signal);

// The gun-rs peer: JSON events on stdout, commands on stdin.
function startRust() {
  return new RtcPeer("gun-rs peer",
    ["--peer", relayUrl, "--room", room, "--no-ice", "--udp", "0.0.0.0:0", "--log", "info"], LIVE);
}

function serve() {
  return new Promise((resolve) => {
    const s = http.createServer((req, res) => {
      const url = new URL(req.url, "http://x");
      let file = null;
      if (url.pathname === "/") file = PAGE;
      else if (url.pathname === "/gun/gun.js") file = path.join(GUN_DIR, "gun.js");
      else if (url.pathname === "/gun/lib/webrtc.js") file = path.join(GUN_DIR, "lib/webrtc.js");
      if (!file) { res.writeHead(404); res.end(); return; }
      res.writeHead(200, { "content-type": file.endsWith(".html") ? "text/html" : "text/javascript" });
      fs.createReadStream(file).pipe(res);
    });
    s.listen(0, "127.0.0.1", () => resolve(s));
  });
}

async function openPage(name) {
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`[${name}] page error:`, e.message));
  const { port } = server.address();
  await page.goto(`http://127.0.0.1:${port}/?relay=${encodeURIComponent(relayUrl)}&room=${room}`, { timeout: LIVE });
  await page.waitForFunction(() => window.wsOpen(), null, { timeout: LIVE, polling: 50 });
  page.pid = await page.evaluate(() => gun._.opt.pid);
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, name + ".png"), fullPage: true });
}

// What each side saw, for a failed connection's report.
async function report() {
  const lines = [`gun-rs peer ${rust && rust.pid}, started ${rust && rust.startedAt}`];
  for (const [name, page] of [["early", pageEarly], ["late", pageLate]]) {
    if (!page) continue;
    const seen = await page.evaluate(() => ({ peers: window.rtcPeers(), announcements: window.announcements }))
      .catch((err) => ({ error: String(err) }));
    lines.push(`${name} page ${page.pid}: ${JSON.stringify(seen)}`);
  }
  const log = relay && relay.logText ? relay.logText().split("\n").slice(-60).join("\n") : "";
  lines.push("gun-relay log (last 60 lines):", log);
  return lines.join("\n");
}

const rtcUp = (pid) => (ev) => ev.ev === "rtc" && ev.connected.includes(pid);
const changed = (key, value) => (ev) => ev.ev === "change" && ev.key === key && ev.value === value;

before(async () => {
  for (const [f, hint] of [[RELAY_BIN, "cargo build -p gun-relay"],
    [PEER_BIN, "cargo build -p gun-rtc-peer --features webrtc"],
    [CHROMIUM, "apt-get install -y chromium chromium-driver"],
    [path.join(GUN_DIR, "lib/webrtc.js"), "npm ci --prefix interop"]]) {
    assert.ok(fs.existsSync(f), `missing ${f} (${hint})`);
  }
  fs.mkdirSync(SHOTS, { recursive: true });
  userDir = fs.mkdtempSync(path.join(os.tmpdir(), "gun-rtc-profile-"));
  ({ child: relay, url: relayUrl } = await startRelay());
  server = await serve();
  context = await common.launchChromium(CHROMIUM, userDir, LIVE);
});

after(async () => {
  if (context) await context.close().catch(() => {});
  if (rust) await rust.stop(3000);
  await stop(relay);
  if (server) server.close();
  if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
  console.log("screenshots in " + SHOTS);
});

test("Gun.js pages and a gun-rs peer connect by WebRTC through gun-relay", async () => {
  pageEarly = await openPage("early");
  rust = startRust();
  rust.startedAt = Date.now();
  const me = await rust.waitFor("ready", (ev) => ev.ev === "ready");
  rust.pid = me.pid;
  rust.send("watch shared");
  await rust.waitFor("watching", (ev) => ev.ev === "watching");
  pageLate = await openPage("late");
  // The early page offers to the gun-rs peer; the gun-rs peer offers to the late page.
  try {
    for (const page of [pageEarly, pageLate]) {
      await rust.waitFor(`data channel to page ${page.pid}`, rtcUp(page.pid));
      await page.waitForFunction((pid) => window.rtcPeers().includes(pid), rust.pid, { timeout: LIVE, polling: 50 });
    }
  } catch (e) {
    e.message += "\n" + await report();
    throw e;
  }
  // Both roles: gun-rs answered the early page's offer and offered to the late page.
  const logged = (re) => rust.log.some((l) => re.test(l));
  assert.ok(logged(new RegExp(`answering an offer.*peer=${pageEarly.pid}|peer=${pageEarly.pid}.*answering an offer`)),
    "gun-rs did not answer the early page's offer:\n" + rust.log.join("\n"));
  assert.ok(logged(new RegExp(`offering a connection.*peer=${pageLate.pid}|peer=${pageLate.pid}.*offering a connection`)),
    "gun-rs did not offer to the late page:\n" + rust.log.join("\n"));
  console.log(`  gun-rs ${rust.pid} connected to pages ${pageEarly.pid} (page offered) and ${pageLate.pid} (gun-rs offered)`);
  await shot(pageEarly, "rtc-1-connected-early");
  await shot(pageLate, "rtc-1-connected-late");
});

test("after gun-relay stops, writes flow both ways over the data channels", async () => {
  await stop(relay, "SIGKILL");
  for (const page of [pageEarly, pageLate]) {
    await page.waitForFunction(() => !window.wsOpen(), null, { timeout: LIVE, polling: 50 });
  }
  // gun-rs → both pages.
  rust.send('put shared from_rust "hello pages"');
  for (const page of [pageEarly, pageLate]) {
    await page.waitForFunction(() => window.seen.from_rust === "hello pages", null, { timeout: LIVE, polling: 20 });
  }
  // Each page → gun-rs, by WebRTC (the relay is gone).
  await pageEarly.evaluate(() => window.put("from_early", "hello rust (early page)"));
  const a = await rust.waitFor("the early page's write", changed("from_early", "hello rust (early page)"));
  assert.equal(a.via, "rtc");
  await pageLate.evaluate(() => window.put("from_late", "hello rust (late page)"));
  const b = await rust.waitFor("the late page's write", changed("from_late", "hello rust (late page)"));
  assert.equal(b.via, "rtc");
  await shot(pageEarly, "rtc-2-after-relay-early");
  await shot(pageLate, "rtc-2-after-relay-late");
});
