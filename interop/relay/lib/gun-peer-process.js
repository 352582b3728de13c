'use strict';
// One genuine Gun.js client peer in its own process, driven over IPC by lib/harness.js
// (class GunPeer). Configured like a browser peer, exactly as the shared conformance
// kit's lib/peer-process.js: no radisk, no localStorage, no multicast, no AXE, not
// super (see /work/shared/interop/README.md for why each matters).
//
//   parent -> child  {id, op, args}
//   child  -> parent {id, ok: true, result} | {id, ok: false, error}
//   child  -> parent {event: 'ready', connected} | {event: 'sub', sub, data, key}

process.on('disconnect', () => process.exit(0)); // the driver owns us
process.env.MULTICAST = 'false'; // never UDP multicast (loopback-only tests)
delete process.env.AWS_S3_BUCKET;

const Gun = require('gun');

const urls = JSON.parse(process.argv[2]);
const gun = Gun({
  peers: urls,
  radisk: false,
  localStorage: false,
  multicast: false,
  stats: false,
  axe: false,
  super: false,
});

function chain(keys) {
  return keys.reduce((node, key) => node.get(key), gun);
}

// Strip Gun's metadata from a node.
function plain(data) {
  if (!data || typeof data !== 'object') return data === undefined ? null : data;
  const copy = {};
  for (const [k, v] of Object.entries(data)) if (k !== '_') copy[k] = v;
  return copy;
}

const ops = {
  // Resolves with the first ack ({acked, err}) or {acked:false} after ackTimeout.
  put({ path, value, ackTimeout = 5000 }) {
    return new Promise((resolve) => {
      const started = Date.now();
      const timer = setTimeout(() => resolve({ acked: false, err: null, ms: Date.now() - started }), ackTimeout);
      chain(path).put(value, (ack) => {
        clearTimeout(timer);
        resolve({ acked: true, err: (ack && ack.err) || null, ms: Date.now() - started });
      });
    });
  },
  // once(): resolves with the data, or null when Gun reports nothing (undefined).
  once({ path }) {
    return new Promise((resolve) => {
      const started = Date.now();
      chain(path).once((data) => resolve({ data: plain(data), ms: Date.now() - started }));
    });
  },
  subscribe({ path, sub }) {
    chain(path).on((data, key) => process.send({ event: 'sub', sub, key, data: plain(data) }));
    return true;
  },
  // SEA users (sea.js is loaded by require('gun') on Node). One user per process:
  // gun.user() is Gun's singleton. Each resolves with Gun's callback argument
  // ({err} on failure), or {err: 'timeout'} after timeoutMs.
  userCreate({ alias, pass, timeoutMs = 15000 }) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve({ err: 'timeout' }), timeoutMs);
      gun.user().create(alias, pass, (ack) => {
        clearTimeout(timer);
        resolve({ err: (ack && ack.err) || null, pub: (ack && ack.pub) || null });
      });
    });
  },
  userAuth({ alias, pass, timeoutMs = 15000 }) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve({ err: 'timeout' }), timeoutMs);
      gun.user().auth(alias, pass, (ack) => {
        clearTimeout(timer);
        const is = gun.user().is;
        resolve({ err: (ack && ack.err) || null, pub: (is && is.pub) || null, alias: (is && is.alias) || null });
      });
    });
  },
  // user.auth(alias, pass, cb, {change: newPass}): the password change.
  userChangePassword({ alias, pass, newPass, timeoutMs = 15000 }) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve({ err: 'timeout' }), timeoutMs);
      gun.user().auth(alias, pass, (ack) => {
        clearTimeout(timer);
        const is = gun.user().is;
        resolve({ err: (ack && ack.err) || null, pub: (is && is.pub) || null });
      }, { change: newPass });
    });
  },
  // SEA.pair(): a new key pair {pub, priv, epub, epriv}.
  seaPair() {
    return Gun.SEA.pair();
  },
  // user.create(pair, cb): an account published for an existing pair.
  userCreatePair({ pair, timeoutMs = 15000 }) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve({ err: 'timeout' }), timeoutMs);
      gun.user().create(pair, (ack) => {
        clearTimeout(timer);
        resolve({ err: (ack && ack.err) || null, pub: (ack && ack.pub) || null });
      });
    });
  },
  // user.auth(pair, cb): logs in with a full pair (nothing read).
  userAuthPair({ pair, timeoutMs = 15000 }) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve({ err: 'timeout' }), timeoutMs);
      gun.user().auth(pair, (ack) => {
        clearTimeout(timer);
        const is = gun.user().is;
        resolve({ err: (ack && ack.err) || null, pub: (is && is.pub) || null });
      });
    });
  },
  userLeave() {
    gun.user().leave();
    return !gun.user().is;
  },
  // A put into the logged-in user's space: user.get(path...).put(value).
  userPut({ path, value, ackTimeout = 5000 }) {
    return new Promise((resolve) => {
      const started = Date.now();
      const timer = setTimeout(() => resolve({ acked: false, err: null, ms: Date.now() - started }), ackTimeout);
      path.reduce((node, key) => node.get(key), gun.user()).put(value, (ack) => {
        clearTimeout(timer);
        resolve({ acked: true, err: (ack && ack.err) || null, ms: Date.now() - started });
      });
    });
  },
  // user.get(path...).set(value): resolves with the first ack.
  userSet({ path, value, ackTimeout = 5000 }) {
    return new Promise((resolve) => {
      const started = Date.now();
      const timer = setTimeout(() => resolve({ acked: false, err: null, ms: Date.now() - started }), ackTimeout);
      path.reduce((node, key) => node.get(key), gun.user()).set(value, (ack) => {
        clearTimeout(timer);
        resolve({ acked: true, err: (ack && ack.err) || null, ms: Date.now() - started });
      });
    });
  },
  // gun.user(pub).get(path...).map().once(..): every child seen within waitMs,
  // by key (SEA verifies and unwraps them).
  userOfMapOnce({ pub, path, waitMs = 1500 }) {
    return new Promise((resolve) => {
      const seen = {};
      path.reduce((node, key) => node.get(key), gun.user(pub)).map().once((data, key) => { seen[key] = plain(data); });
      setTimeout(() => resolve(seen), waitMs);
    });
  },
  // SEA.certify(pubs, policy, <logged-in pair>, null, opt): the certificate text.
  certify({ pubs, policy, opt }) {
    return Gun.SEA.certify(pubs, policy, gun.user()._.sea, null, opt || {});
  },
  // once() in a user's space: gun.user(pub).get(path...) (SEA unwraps signed values).
  userOfOnce({ pub, path }) {
    return new Promise((resolve) => {
      const started = Date.now();
      path.reduce((node, key) => node.get(key), gun.user(pub)).once((data) => resolve({ data: plain(data), ms: Date.now() - started }));
    });
  },
  // Dials one more relay (a peer that joins late): resolves once its socket is
  // open, or {connected:false} after timeoutMs.
  connect({ url, timeoutMs = 5000 }) {
    gun.opt({ peers: [url] });
    const peer = gun._.opt.peers[url];
    if (!peer.wire) gun._.opt.mesh.hi(peer);
    return new Promise((resolve) => {
      const started = Date.now();
      (function poll() {
        const open = peer.wire && peer.wire.readyState === 1;
        if (open || Date.now() - started > timeoutMs) {
          resolve({ connected: !!open, ms: Date.now() - started });
          return;
        }
        setTimeout(poll, 5);
      }());
    });
  },
  exit() {
    setTimeout(() => process.exit(0), 10);
    return true;
  },
};

process.on('message', async ({ id, op, args }) => {
  try {
    if (!ops[op]) throw new Error(`unknown op ${op}`);
    const result = await ops[op](args || {});
    process.send({ id, ok: true, result: result === undefined ? null : result });
  } catch (err) {
    process.send({ id, ok: false, error: String((err && err.stack) || err) });
  }
});

function connected() {
  return Object.values(gun._.opt.peers || {}).filter((p) => p.wire && p.wire.readyState === 1).length;
}
(function announce(started) {
  // No URL: an offline peer (it may `connect` later).
  if (urls.length === 0 || connected() > 0 || Date.now() - started > 5000) {
    process.send({ event: 'ready', connected: connected() > 0 });
    return;
  }
  setTimeout(() => announce(started), 20);
}(Date.now()));
