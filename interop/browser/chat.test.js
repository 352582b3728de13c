// Browser tests of examples/web-chat on gun-relay: genuine Gun.js + SEA in
// headless Chromium (playwright-core), relay on a sled store in a temp dir.
//
//   npm ci --prefix examples/web-chat && cargo build -p gun-relay
//   node --test interop/browser/
//
// GUN_RELAY_BIN picks the relay binary (default target/debug/gun-relay),
// CHROMIUM the browser (default /usr/bin/chromium).
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const common = require("./lib/common.js");

const ROOT = path.resolve(__dirname, "../..");
const RELAY_BIN = process.env.GUN_RELAY_BIN || path.join(ROOT, "target/debug/gun-relay");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SITE = path.join(ROOT, "examples/web-chat");
const SHOTS = path.join(ROOT, "target/browser-screenshots");
const LIVE = 30_000; // generous wait for liveness
const DELIVERY_MS = 1000; // the acceptance: delivery within a second of the send

let relay = null;
let port = 0;
let dataDir = null;
let userDir = null;
let context = null;
let pageA = null;
let pageB = null;
const room = "room-" + Date.now().toString(36);
const sent = [];

function startRelay(p) {
  return common.startRelay(RELAY_BIN, [
    "--host", "127.0.0.1", "--port", String(p), "--store", "sled",
    "--data", dataDir, "--static", SITE, "--log", "warn",
  ], LIVE);
}

const stopRelay = (child) => common.stopChild(child);

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, name + ".png"), fullPage: true });
}

async function openChat(name) {
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`[${name}] page error:`, e.message));
  await page.goto(`http://127.0.0.1:${port}/?room=${room}`, { timeout: LIVE });
  await page.fill("#name", name);
  return page;
}

// Sends `text` from `from`; returns the send time (ms, browser clock).
async function say(from, text) {
  sent.push(text);
  return from.evaluate((t) => { const at = Date.now(); window.chatSend(t); return at; }, text);
}

// Waits (generously) until `page` lists `text`; returns when it first appeared.
async function seen(page, text) {
  await page.waitForFunction((t) => t in window.chatSeen, text, { timeout: LIVE, polling: 20 });
  return page.evaluate((t) => window.chatSeen[t], text);
}

async function assertDelivered(from, to, text) {
  const at = await say(from, text);
  const [a, b] = await Promise.all([seen(from, text), seen(to, text)]);
  const delay = b - at;
  console.log(`  "${text}": shown by the sender after ${a - at} ms, by the other page after ${delay} ms`);
  assert.ok(delay <= DELIVERY_MS, `"${text}" took ${delay} ms to reach the other page (limit ${DELIVERY_MS} ms)`);
}

before(async () => {
  assert.ok(fs.existsSync(RELAY_BIN), `no relay binary at ${RELAY_BIN} (cargo build -p gun-relay)`);
  assert.ok(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM} (apt-get install -y chromium chromium-driver)`);
  assert.ok(fs.existsSync(path.join(SITE, "node_modules/gun/gun.js")), "run npm ci --prefix examples/web-chat first");
  fs.mkdirSync(SHOTS, { recursive: true });
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "gun-browser-data-"));
  userDir = fs.mkdtempSync(path.join(os.tmpdir(), "gun-browser-profile-"));
  ({ child: relay, port } = await startRelay(0));
  context = await common.launchChromium(CHROMIUM, userDir, LIVE);
});

after(async () => {
  if (context) await context.close().catch(() => {});
  if (relay) await stopRelay(relay);
  for (const d of [dataDir, userDir]) if (d) fs.rmSync(d, { recursive: true, force: true });
  console.log("screenshots in " + SHOTS);
});

test("two pages chat through gun-relay, each message shown by the other within a second", async () => {
  pageA = await openChat("alice");
  pageB = await openChat("bob");
  // Warm-up (not timed): both pages connected and subscribed.
  await say(pageA, "warm-up from alice");
  await seen(pageB, "warm-up from alice");
  await say(pageB, "warm-up from bob");
  await seen(pageA, "warm-up from bob");
  await assertDelivered(pageA, pageB, "hello bob, it is alice");
  await assertDelivered(pageB, pageA, "hi alice, bob here");
  await shot(pageA, "1-chat-alice");
  await shot(pageB, "1-chat-bob");
});

test("a page loaded later shows the history", async () => {
  const late = await openChat("carol");
  for (const t of sent) await seen(late, t);
  const texts = await late.$$eval("#messages .text", (els) => els.map((e) => e.textContent));
  assert.deepEqual(texts.slice(-2), ["hello bob, it is alice", "hi alice, bob here"]);
  await shot(late, "2-history-new-page");
  await late.reload();
  for (const t of sent) await seen(late, t);
  await shot(late, "2-history-reloaded");
  await late.close();
});

test("gun-relay restarted on the same port and data dir: both pages keep chatting", async () => {
  const t0 = Date.now();
  await stopRelay(relay);
  ({ child: relay } = await startRelay(port));
  const restart = Date.now() - t0;
  console.log(`  relay restarted in ${restart} ms`);
  assert.ok(restart <= 1000, `restart took ${restart} ms`);
  // Gun.js redials on its own (after ~2 s): wait (generously) until both pages'
  // sockets are open again and they had a moment to re-ask for the room.
  for (const page of [pageA, pageB]) {
    await page.waitForFunction(() => Object.values(gun._.opt.peers).some((p) => p.wire && p.wire.readyState === 1),
      null, { timeout: LIVE, polling: 50 });
  }
  await pageA.waitForTimeout(500);
  await say(pageA, "alice after the restart");
  await seen(pageB, "alice after the restart");
  await say(pageB, "bob after the restart");
  await seen(pageA, "bob after the restart");
  // Reconnected: timed delivery again.
  await assertDelivered(pageA, pageB, "still there, bob?");
  await assertDelivered(pageB, pageA, "yes alice");
  await shot(pageA, "3-restart-alice");
  await shot(pageB, "3-restart-bob");
});

test("SEA: a user signs up in one page and logs in from another", async () => {
  const alias = "user" + Date.now().toString(36);
  const pass = "correct horse " + alias;
  await pageA.fill("#alias", alias);
  await pageA.fill("#pass", pass);
  await pageA.click("#signup");
  await pageA.waitForFunction((a) => document.getElementById("user-status").textContent.startsWith("logged in as " + a),
    alias, { timeout: LIVE });
  await shot(pageA, "4-sea-signup");
  await pageB.fill("#alias", alias);
  await pageB.fill("#pass", pass);
  await pageB.click("#login");
  await pageB.waitForFunction((a) => document.getElementById("user-status").textContent.startsWith("logged in as " + a),
    alias, { timeout: LIVE });
  const pubA = await pageA.evaluate(() => gun.user().is.pub);
  const pubB = await pageB.evaluate(() => gun.user().is.pub);
  assert.equal(pubA, pubB);
  await shot(pageB, "4-sea-login");
  // A wrong password is refused.
  const other = await openChat("mallory");
  await other.fill("#alias", alias);
  await other.fill("#pass", "wrong");
  await other.click("#login");
  await other.waitForFunction(() => document.getElementById("user-status").textContent.startsWith("login failed"),
    null, { timeout: LIVE });
  await shot(other, "4-sea-wrong-password");
  await other.close();
});

test("/dashboard renders and shows nonzero peers and messages", async () => {
  const dash = await context.newPage();
  await dash.goto(`http://127.0.0.1:${port}/dashboard`, { timeout: LIVE });
  await dash.waitForFunction(() => {
    const peers = Number(document.getElementById("peers").textContent);
    const msgs = document.getElementById("msgs").textContent.split(" / ").map(Number);
    return peers >= 2 && msgs[0] > 0 && msgs[1] > 0 && document.querySelector("#chart path");
  }, null, { timeout: LIVE });
  // Some traffic while the dashboard watches, so the chart moves.
  for (let i = 0; i < 3; i++) {
    await say(pageA, "dashboard ping " + i);
    await seen(pageB, "dashboard ping " + i);
  }
  await dash.waitForTimeout(1500);
  const souls = Number(await dash.textContent("#souls"));
  assert.ok(souls > 0, "stored souls shown");
  await shot(dash, "5-dashboard");
  await dash.close();
});
