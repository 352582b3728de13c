// Shared by the browser tests: gun-relay as a child process, and headless
// Chromium with the flags this machine needs (no sandbox as root, no GPU, and
// no background networking: the network is closed and Chromium would keep
// dialing Google's hosts).
"use strict";

const { spawn } = require("node:child_process");
const { chromium } = require("playwright-core");

// Starts `bin` with `args` and resolves {child, url, port} once it prints its
// ready line (`gun-relay listening on ws://HOST:PORT/gun`).
function startRelay(bin, args, timeoutMs) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    child.logText = () => log;
    const timer = setTimeout(() => reject(new Error("relay printed no ready line:\n" + log)), timeoutMs);
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (d) => {
      log += d;
      const m = /gun-relay listening on (ws:\/\/127\.0\.0\.1:(\d+)\/gun)/.exec(log);
      if (m && !child.ready) {
        child.ready = true;
        clearTimeout(timer);
        resolve({ child, url: m[1], port: Number(m[2]) });
      }
    });
    child.on("exit", (code) => {
      if (!child.ready) { clearTimeout(timer); reject(new Error(`relay exited (${code}):\n${log}`)); }
    });
  });
}

// Sends `signal` (default SIGTERM) and resolves once the child has exited.
function stopChild(child, signal = "SIGTERM") {
  return new Promise((resolve) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill(signal);
  });
}

function launchChromium(executablePath, userDir, timeoutMs) {
  return chromium.launchPersistentContext(userDir, {
    executablePath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
      "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
    timeout: timeoutMs,
  });
}

module.exports = { startRelay, stopChild, launchChromium };
