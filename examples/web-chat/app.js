/* gun-rs web chat: genuine Gun.js + SEA in the browser, talking to gun-relay. */
"use strict";

const relay = location.origin + "/gun";
document.getElementById("relay-url").textContent = relay;
// localStorage off: what the page shows comes from the relay, not from a browser cache.
const gun = Gun({ peers: [relay], localStorage: false });
const user = gun.user();

const $ = (id) => document.getElementById(id);
let room = null;
let sub = null;
const shown = new Map(); // key -> <li>
// When each message text first appeared on this page (ms since epoch), for tests.
window.chatSeen = {};

function render(key, msg) {
  if (!msg || typeof msg.text !== "string") return;
  let li = shown.get(key);
  if (!li) {
    li = document.createElement("li");
    li.dataset.key = key;
    shown.set(key, li);
    if (!(msg.text in window.chatSeen)) window.chatSeen[msg.text] = Date.now();
  }
  li.dataset.at = String(msg.at || 0);
  li.innerHTML = "";
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = String(msg.name || "?");
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = msg.text;
  const at = document.createElement("span");
  at.className = "at";
  at.textContent = msg.at ? new Date(msg.at).toLocaleTimeString() : "";
  li.append(who, text, at);
  // Keep the list in time order.
  const list = $("messages");
  const after = [...list.children].find((o) => o !== li && Number(o.dataset.at) > Number(li.dataset.at));
  list.insertBefore(li, after || null);
  list.scrollTop = list.scrollHeight;
}

function join(name) {
  if (sub) sub.off();
  room = name || "general";
  $("room").value = room;
  $("room").value = room;
  shown.clear();
  $("messages").innerHTML = "";
  $("current-room").textContent = room;
  sub = gun.get("chat/" + room).map();
  sub.on((msg, key) => render(key, msg));
}

function send(text) {
  text = String(text || "").trim();
  if (!text || !room) return;
  gun.get("chat/" + room).set({ name: $("name").value || "guest", text, at: Date.now() });
}
window.chatSend = send;

$("join").onclick = () => join($("room").value.trim());
$("send-form").onsubmit = (e) => {
  e.preventDefault();
  send($("msg").value);
  $("msg").value = "";
};

function status(text, err) {
  $("user-status").textContent = text;
  $("user-status").className = err ? "err" : "";
}
function loggedIn() {
  const alias = user.is && user.is.alias;
  status("logged in as " + alias + " (" + user.is.pub.slice(0, 12) + "…)");
  if (alias) $("name").value = alias;
}
$("signup").onclick = () => {
  const alias = $("alias").value.trim(), pass = $("pass").value;
  status("creating " + alias + "…");
  user.create(alias, pass, (ack) => {
    if (ack.err) return status("sign-up failed: " + ack.err, true);
    status("created " + alias + ", logging in…");
    user.auth(alias, pass, (a) => (a.err ? status("login failed: " + a.err, true) : loggedIn()));
  });
};
$("login").onclick = () => {
  const alias = $("alias").value.trim(), pass = $("pass").value;
  status("logging in " + alias + "…");
  user.auth(alias, pass, (a) => (a.err ? status("login failed: " + a.err, true) : loggedIn()));
};
$("logout").onclick = () => {
  user.leave();
  status("not logged in");
};

join(new URLSearchParams(location.search).get("room") || $("room").value);
