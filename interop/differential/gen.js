#!/usr/bin/env node
// Differential test-case generator: genuine Gun.js (npm gun@0.2020.1241) is the oracle.
//
//   node interop/differential/gen.js --seed N --ham COUNT --json COUNT
//
// Prints JSON Lines to stdout (see crates/gun-graph/tests/differential_gunjs.rs, which reads them):
//
//   {"t":"ham","machine":B,"in_state":B,"in":V,"in_json":TEXT,
//    "cur":null|{"state":B,"v":V,"json":TEXT},"expect":E}
//   {"t":"json","v":J,"out":TEXT}
//   {"t":"done","ham":COUNT,"json":COUNT}
//
// B  a JS number as the 16-hex-digit big-endian IEEE-754 bit pattern ("40091eb851eb851f").
// V  a Gun value: {"z":1} null, {"b":bool}, {"n":B}, {"s":[UTF-16 code units]},
//    {"l":[UTF-16 code units of the soul]} for the link {"#": soul}. HAM strings are
//    well-formed UTF-16 (a Rust String can hold them).
// E  "defer" | "historical" | "accept" | "identical" | "tie_lost": what Gun.js's own ham()
//    did, observed by injecting put messages into a real Gun instance (no peers, no storage).
// J  a JSON tree: {"z":1}, {"b":bool}, {"n":B,"js":TEXT} (TEXT = JSON.stringify of that number),
//    {"s":[units]} (may contain lone surrogates), {"a":[J,...]},
//    {"o":[[keyUnits, J], ...]} (pairs in creation order; JavaScript enumerates
//    array-index keys first).
// TEXT  JSON.stringify output of genuine V8 (always well-formed, lone surrogates escaped).
//
// Everything but "machine" (Date.now() when the case ran) is a pure function of --seed. The
// HAM states are fixed numbers far from any plausible clock (past: at most 1.7e12 = Nov 2023;
// future: at least 4.1e12 = year 2099), so the real Date-based machine clock of Gun.js gives an
// unambiguous answer; the script aborts if the clock is outside that window.
'use strict';

// stdout carries only our JSON lines: Gun's own console.log output goes to stderr.
console.log = (...a) => console.error(...a);

// ---------------------------------------------------------------- arguments

function parseArgs(argv) {
  const o = { seed: 1, ham: 10000, json: 100000 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined || !/^\d+$/.test(v)) die(`${a} needs a non-negative integer`);
      return Number(v);
    };
    if (a === '--seed') o.seed = val();
    else if (a === '--ham') o.ham = val();
    else if (a === '--json') o.json = val();
    else if (a === '-h' || a === '--help') {
      process.stderr.write('usage: gen.js [--seed N] [--ham COUNT] [--json COUNT]\n');
      process.exit(0);
    } else die(`unknown argument ${a}`);
  }
  return o;
}

function die(msg) {
  process.stderr.write(`gen.js: ${msg}\n`);
  process.exit(1);
}

const ARGS = parseArgs(process.argv.slice(2));

// ---------------------------------------------------------------- seeded PRNG (mulberry32)

let prngState = (ARGS.seed ^ 0x9e3779b9) >>> 0;
function u32() {
  prngState = (prngState + 0x6d2b79f5) >>> 0;
  let t = prngState;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return (t ^ (t >>> 14)) >>> 0;
}
const rnd = () => u32() / 4294967296; // [0, 1), 32 random bits
const rnd53 = () => ((u32() >>> 5) * 67108864 + (u32() >>> 6)) / 9007199254740992; // [0, 1), 53 bits
const int = (lo, hi) => lo + Math.floor((hi - lo < 65536 ? rnd() : rnd53()) * (hi - lo + 1)); // inclusive
const pick = (arr) => arr[Math.floor(rnd() * arr.length)];
const chance = (p) => rnd() < p;
// Weighted choice: [[weight, fn], ...] -> fn()
function choose(table) {
  let total = 0;
  for (const [w] of table) total += w;
  let r = rnd() * total;
  for (const [w, f] of table) {
    if ((r -= w) < 0) return f();
  }
  return table[table.length - 1][1]();
}

// ---------------------------------------------------------------- number <-> bits

const dv = new DataView(new ArrayBuffer(8));
function bits(n) {
  dv.setFloat64(0, n);
  return dv.getUint32(0).toString(16).padStart(8, '0') + dv.getUint32(4).toString(16).padStart(8, '0');
}
function fromBits(hi, lo) {
  dv.setUint32(0, hi >>> 0);
  dv.setUint32(4, lo >>> 0);
  return dv.getFloat64(0);
}
const nextUp = (x) => stepUlp(x, 1);
const nextDown = (x) => stepUlp(x, -1);
function stepUlp(x, dir) {
  if (!Number.isFinite(x)) return x;
  if (x === 0) return dir > 0 ? Number.MIN_VALUE : -Number.MIN_VALUE;
  dv.setFloat64(0, x);
  let hi = dv.getUint32(0), lo = dv.getUint32(4);
  const away = (x > 0) === (dir > 0);
  if (away) { lo = (lo + 1) >>> 0; if (lo === 0) hi = (hi + 1) >>> 0; }
  else { if (lo === 0) hi = (hi - 1) >>> 0; lo = (lo - 1) >>> 0; }
  return fromBits(hi, lo);
}

// ---------------------------------------------------------------- numbers

const SPECIAL_NUMBERS = [
  0, -0, 1, -1, 2, 5, 6, 9, 10, -5, -10, 0.5, -0.5, 0.1, 0.2, 0.3, 0.1 + 0.2, 1 / 3, 2 / 3,
  123e-20, 1e21, 1e20, 999999999999999900000, 1e21 - 65536, 1e22, 1.5e21, -1e21, 9.999999999999999e20,
  1e-6, 1e-7, 9.999999999999999e-7, 1.0000000000000002e-6, 0.000001, 0.0000012345, 1.2345e-7, -1e-7,
  5e-324, -5e-324, 1e-323, 2.2250738585072014e-308, 2.225073858507201e-308, Number.MAX_VALUE, -Number.MAX_VALUE,
  Number.EPSILON, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 53, 2 ** 53 + 2, -(2 ** 53),
  2 ** 53 - 1, 2 ** 54, 2 ** 63, 2 ** 64, 2 ** 64 + 4096, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32,
  4294967294, 4294967295, 1e15, 1e16, 1e17, 123456789012345680000, 1.7976931348623157e308, 1e308, 1e-308,
  1795643412520, 1795643451809.001, 1795643445865.002, 1795643445865 + 1 / 999, 1795643445865 + 2 / 999,
  1795643445865 + 998 / 999, 1e100, 1e-100, 4.35, 0.000123, 100, 1000000, 1.5, 2.5, -2.5, 3.14, 1.1, 7e-10,
  1.7e12, 1.2e-5, 12345678.9, 0.1 * 3, 1.005, 9.95, 8.41e21, 5e-7, 4.9406564584124654e-324,
];
const NON_FINITE = [NaN, Infinity, -Infinity];

function randomBitsDouble() {
  return fromBits(u32(), u32());
}

function tricky(allowNonFinite) {
  for (;;) {
    const x = trickyAny(allowNonFinite);
    if (allowNonFinite || Number.isFinite(x)) return x;
  }
}

function trickyAny(allowNonFinite) {
  return choose([
    [14, () => pick(SPECIAL_NUMBERS)],
    [10, () => { // random bit pattern: anything representable, shortest text 1..17 digits
      let x; do { x = randomBitsDouble(); } while (!allowNonFinite && !Number.isFinite(x));
      return x;
    }],
    [8, () => int(-1000, 1000)],
    [6, () => (chance(0.5) ? 1 : -1) * Math.floor(rnd() * 2 ** 53)],
    [5, () => (chance(0.5) ? 1 : -1) * Math.floor(rnd() * 2 ** 53) * 2 ** int(1, 30)], // beyond 2^53
    [6, () => { const k = int(-330, 310); return Number(`1e${k}`) * (chance(0.2) ? -1 : 1); }],
    [6, () => { // near the 1e21 and 1e-6/1e-7 switch points, and powers of ten
      const base = pick([1e21, 1e-6, 1e-7, 1e20, 1e-5, 10 ** int(-8, 22)]);
      let x = base;
      for (let i = int(0, 3), up = chance(0.5); i > 0; i--) x = up ? nextUp(x) : nextDown(x);
      return chance(0.15) ? -x : x;
    }],
    [7, () => { // short decimals: m * 10^e
      const m = int(1, 999999) * (chance(0.2) ? -1 : 1);
      return Number(`${m}e${int(-30, 30)}`);
    }],
    [5, () => int(0, 1e9) / 10 ** int(1, 9)],
    [5, () => { // HAM-style states: t, t + n/999
      const t = int(1.5e12, 1.9e12);
      return chance(0.3) ? t : t + int(1, 998) / 999;
    }],
    [4, () => { const x = pick(SPECIAL_NUMBERS); return chance(0.5) ? nextUp(x) : nextDown(x); }],
    [3, () => 2 ** int(-1074, 1023) * (chance(0.2) ? -1 : 1)],
    [allowNonFinite ? 4 : 0, () => pick(NON_FINITE)],
  ]);
}

// ---------------------------------------------------------------- strings (code points / units)

const NUMBERISH = ['5', '-1', '10', '9', '1e21', '1e+21', '0.1', '0', '-0', 'NaN', 'Infinity', 'null', 'true',
  'false', '{"#":"a"}', '"', '\\', '', ' ', '01', '4294967295', '1795643412520'];

function randomCodePoint() {
  return choose([
    [30, () => int(0x61, 0x7a)], // a-z: makes common prefixes likely
    [10, () => int(0x20, 0x7e)], // printable ASCII
    [6, () => int(0x00, 0x1f)], // control characters
    [5, () => pick([0x22, 0x5c, 0x2f, 0x7f, 0x20, 0x21, 0x23, 0x7b, 0x7d, 0x3a])], // " \ / DEL ...
    [3, () => pick([0x2028, 0x2029, 0x85, 0xa0, 0xfeff, 0x200b])],
    [4, () => int(0x80, 0x7ff)],
    [4, () => int(0x800, 0xd7ff)],
    [6, () => int(0xe000, 0xf8ff)], // private use: above surrogates in UTF-16, below non-BMP in UTF-8
    [3, () => int(0xf900, 0xffff)],
    [2, () => pick([0xfffd, 0xffff, 0xfffe, 0xe000, 0xf8ff])],
    [8, () => pick([0x1f600, 0x1f4a9, 0x10000, 0x10ffff, 0x1d11e, 0x20000, 0x1f1fa])], // non-BMP
    [4, () => int(0x10000, 0x10ffff)],
  ]);
}

function cpsToUnits(cps) {
  const u = [];
  for (const c of cps) {
    if (c >= 0x10000) {
      const v = c - 0x10000;
      u.push(0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
    } else u.push(c);
  }
  return u;
}
const nonEmpty = (cps) => (cps.length ? cps : [randomCodePoint()]);
const strToCps = (s) => Array.from(s, (ch) => ch.codePointAt(0));
const unitsToStr = (u) => {
  let s = '';
  for (let i = 0; i < u.length; i += 4096) s += String.fromCharCode.apply(null, u.slice(i, i + 4096));
  return s;
};
const strUnits = (s) => { const u = new Array(s.length); for (let i = 0; i < s.length; i++) u[i] = s.charCodeAt(i); return u; };

// A well-formed string, as code points.
function randomCps(minLen) {
  return choose([
    [3, () => strToCps(pick(NUMBERISH))],
    [12, () => {
      const n = Math.max(minLen || 0, choose([[5, () => int(0, 4)], [4, () => int(5, 16)], [1, () => int(17, 80)]]));
      const cps = [];
      for (let i = 0; i < n; i++) cps.push(randomCodePoint());
      return cps;
    }],
  ]);
}

// A string that may contain lone surrogates, as UTF-16 units.
function randomUnits() {
  const units = cpsToUnits(randomCps());
  if (chance(0.3)) {
    for (let i = int(1, 3); i > 0; i--) {
      const pos = int(0, units.length);
      const lone = choose([
        [3, () => [int(0xd800, 0xdbff)]], // high alone
        [3, () => [int(0xdc00, 0xdfff)]], // low alone
        [1, () => [int(0xdc00, 0xdfff), int(0xd800, 0xdbff)]], // reversed pair
        [1, () => [pick([0xd800, 0xdbff, 0xdc00, 0xdfff])]],
      ]);
      // Never split an existing pair (that would also make a lone surrogate, fine, but keep it explicit).
      units.splice(pos, 0, ...lone);
    }
  }
  return units;
}

// ---------------------------------------------------------------- Gun values for HAM

// Internal representation: {k:'null'} {k:'bool',v} {k:'num',v} {k:'str',cps} {k:'link',cps}
function randomValue() {
  return choose([
    [10, () => ({ k: 'null' })],
    [10, () => ({ k: 'bool', v: chance(0.5) })],
    [30, () => ({ k: 'num', v: tricky(false) })],
    [35, () => ({ k: 'str', cps: randomCps() })],
    [15, () => ({ k: 'link', cps: nonEmpty(randomCps(1)) })], // {"#":""} is not a valid value
  ]);
}

function mutateCps(cps, nonEmpty) {
  const c = cps.slice();
  choose([
    [4, () => { if (c.length) c[int(0, c.length - 1)] = randomCodePoint(); else c.push(randomCodePoint()); }],
    [2, () => c.splice(int(0, c.length), 0, randomCodePoint())],
    [2, () => { if (c.length) c.splice(int(0, c.length - 1), 1); }],
    [2, () => c.push(randomCodePoint())],
    [1, () => { c.length = int(0, c.length); }],
    [2, () => { // the UTF-16 vs UTF-8 trap: non-BMP against U+E000..U+FFFF at the same position
      const pair = [int(0x10000, 0x10ffff), int(0xe000, 0xffff)];
      if (chance(0.5)) pair.reverse();
      const pos = int(0, c.length);
      c.splice(pos, c.length - pos, pair[0]);
    }],
  ]);
  if (nonEmpty && c.length === 0) c.push(randomCodePoint());
  return c;
}

const finiteOr = (x) => (Number.isFinite(x) ? x : tricky(false));

// A value related to `cur` (same type, small change) so tie-breaks compare deep into the text.
function relatedValue(cur) {
  switch (cur.k) {
    case 'num': return { k: 'num', v: finiteOr(choose([
      [3, () => (chance(0.5) ? nextUp(cur.v) : nextDown(cur.v))],
      [2, () => cur.v * 10],
      [2, () => -cur.v],
      [2, () => cur.v + int(-10, 10)],
      [2, () => tricky(false)],
    ])) };
    case 'str': return { k: 'str', cps: mutateCps(cur.cps, false) };
    case 'link': return { k: 'link', cps: mutateCps(cur.cps, true) };
    case 'bool': return { k: 'bool', v: !cur.v };
    default: return randomValue();
  }
}

// The same value, built afresh (or an equal one: -0 for 0, the string of a number's text...).
function identicalValue(cur) {
  switch (cur.k) {
    case 'num': return { k: 'num', v: cur.v === 0 ? (chance(0.5) ? -0 : 0) : cur.v };
    case 'str': return { k: 'str', cps: cur.cps.slice() };
    case 'link': return { k: 'link', cps: cur.cps.slice() };
    default: return { ...cur };
  }
}

function toJs(v) {
  switch (v.k) {
    case 'null': return null;
    case 'bool': return v.v;
    case 'num': return v.v;
    case 'str': return String.fromCodePoint(...v.cps);
    case 'link': return { '#': String.fromCodePoint(...v.cps) };
  }
  throw new Error('bad value');
}

function encodeValue(v) {
  switch (v.k) {
    case 'null': return { z: 1 };
    case 'bool': return { b: v.v };
    case 'num': return { n: bits(v.v) };
    case 'str': return { s: cpsToUnits(v.cps) };
    case 'link': return { l: cpsToUnits(v.cps) };
  }
  throw new Error('bad value');
}

// ---------------------------------------------------------------- HAM states

const PAST_MAX = 1.7e12; // 2023-11-14
const FUTURE_MIN = 4.1e12; // 2099-12

function pastState() {
  return choose([
    [8, () => int(1.5e12, PAST_MAX)], // realistic integer milliseconds
    [8, () => int(1.5e12, PAST_MAX - 1) + int(1, 998) / 999], // t + n/999, as Gun's State() makes
    [2, () => int(0, 1e6)],
    [1, () => pick([0, -0, 5e-324, 1, 0.5, 1e-7, -1, -1e300, -8.98846567431158e307, 1e21 / 1e12])],
    [1, () => { let x; do { x = randomBitsDouble(); } while (!(x <= PAST_MAX && x > -1e308)); return x; }],
  ]);
}

function futureState() {
  return choose([
    [6, () => int(FUTURE_MIN, 5e12)],
    [3, () => int(FUTURE_MIN, 5e12) + int(1, 998) / 999],
    [1, () => pick([1e13, 1e15, 2 ** 53, 1e21, 1e300, Number.MAX_VALUE, 8.64e15])],
    [1, () => { let x; do { x = randomBitsDouble(); } while (!(x >= FUTURE_MIN && Number.isFinite(x))); return x; }],
  ]);
}

// A past state strictly above / below `s` (both past).
function pastAbove(s) {
  let x = choose([[3, () => nextUp(s)], [3, () => s + int(1, 1000)], [2, () => s + int(1, 998) / 999], [1, () => pastState()]]);
  if (!(x > s) || x > PAST_MAX) x = nextUp(s);
  return x;
}
function pastBelow(s) {
  let x = choose([[3, () => nextDown(s)], [3, () => s - int(1, 1000)], [2, () => s - int(1, 998) / 999], [1, () => pastState()]]);
  if (!(x < s)) x = nextDown(s);
  return x;
}

// ---------------------------------------------------------------- the oracle: a real Gun instance

const Gun = (() => {
  const log = console.log;
  console.log = () => {}; // the welcome banner printed at load time
  try { return require('gun/gun'); } finally { console.log = log; }
})();
if (Gun.log) Gun.log.off = true;
const GUN_VERSION = '0.2020.1241';
{
  const v = require('gun/package.json').version;
  if (v !== GUN_VERSION) die(`interop/node_modules has gun ${v}, expected ${GUN_VERSION}: run \`npm ci --prefix interop\``);
}
const gun = Gun({ peers: [], localStorage: false, radisk: false, multicast: false, axe: false, file: false });
const root = gun._.root || gun._;
const graph = root.graph;
if (!graph || typeof root.on !== 'function') die('unexpected Gun internals: root.graph / root.on missing');

// Record every key Gun's ham() lets through: it emits root.on('put', {put: {'#', '.', ':', '>'}}).
let putsSeen = [];
root.on('put', function (msg) {
  const p = msg && msg.put;
  if (p) putsSeen.push({ soul: p['#'], key: p['.'], val: p[':'], state: p['>'] });
  this.to.next(msg);
});

let msgCounter = 0;
function inject(soul, key, state, jsValue) {
  const node = { _: { '#': soul, '>': { [key]: state } } };
  node[key] = jsValue;
  // Gun's ham() tracks `msg['#'] + n` (n = 0, 1, ...) in its dedup table; the trailing "x" keeps
  // those from colliding with our later ids (otherwise message 10 is taken for a duplicate of 1).
  const msg = { '#': `gun-rs-diff-${ARGS.seed}-${++msgCounter}x`, put: { [soul]: node } };
  root.on('in', msg);
  if (msg.err) die(`Gun rejected a put we meant to be valid: ${msg.err} ${safe(node)}`);
}

function safe(x) {
  try { return JSON.stringify(x); } catch (e) { return String(x); }
}

function readGraph(soul, key) {
  const node = graph[soul];
  if (!node || !Object.prototype.hasOwnProperty.call(node, key)) return null;
  return { state: node._ && node._['>'] ? node._['>'][key] : undefined, v: node[key] };
}

const sameText = (a, b) => JSON.stringify(a) === JSON.stringify(b);

function hamCase(i) {
  const soul = `diff/${ARGS.seed}/${i}`;
  const key = pick(['k', 'name', 'x', '0', 'v']);
  const kind = choose([
    [55, () => 'equal'],
    [11, () => 'newer'],
    [11, () => 'older'],
    [11, () => 'future'],
    [12, () => 'fresh'],
  ]);
  let cur = null;
  if (kind !== 'fresh' && !(kind === 'future' && chance(0.4))) {
    cur = { state: pastState(), v: randomValue() };
  }
  let inState, inV;
  switch (kind) {
    case 'equal':
      inState = (cur.state === 0 && chance(0.5)) ? (Object.is(cur.state, 0) ? -0 : 0) : cur.state;
      inV = choose([
        [2, () => identicalValue(cur.v)],
        [4, () => relatedValue(cur.v)],
        [4, () => randomValue()],
      ]);
      break;
    case 'newer': inState = pastAbove(cur.state); inV = chance(0.3) ? identicalValue(cur.v) : randomValue(); break;
    case 'older': inState = pastBelow(cur.state); inV = chance(0.3) ? identicalValue(cur.v) : randomValue(); break;
    case 'future': inState = futureState(); inV = cur && chance(0.3) ? identicalValue(cur.v) : randomValue(); break;
    case 'fresh': inState = chance(0.8) ? pastState() : futureState(); inV = randomValue(); break;
  }

  const inJs = toJs(inV);
  const curJs = cur ? toJs(cur.v) : undefined;

  const machine = Date.now();
  if (!(machine > PAST_MAX + 5000 && machine < FUTURE_MIN - 1e7)) {
    die(`the clock (${machine}) is not between ${PAST_MAX} + 5 s and ${FUTURE_MIN} - 1e7 ms; the fixed HAM states would be ambiguous`);
  }

  // Our classification of what must happen (by the rules of spec §8.1) ...
  let expect;
  if (inState > machine) expect = 'defer';
  else if (!cur) expect = 'accept';
  else if (inState < cur.state) expect = 'historical';
  else if (inState > cur.state) expect = 'accept';
  else {
    const a = JSON.stringify(inJs), b = JSON.stringify(curJs);
    expect = a === b ? 'identical' : a > b ? 'accept' : 'tie_lost';
  }

  // ... and what genuine Gun.js does.
  if (cur) {
    putsSeen = [];
    inject(soul, key, cur.state, curJs);
    const g = readGraph(soul, key);
    if (putsSeen.length !== 1 || !g || !Object.is(g.state, cur.state) || !sameText(g.v, curJs)) {
      die(`case ${i}: Gun did not store the current value ${safe(curJs)} @ ${cur.state}: graph has ${safe(graph[soul])}`);
    }
  }
  putsSeen = [];
  inject(soul, key, inState, inJs);
  const g = readGraph(soul, key);
  const fired = putsSeen.filter((p) => p.soul === soul && p.key === key);
  const accepted = fired.length === 1 && g !== null && g.state === inState && sameText(g.v, inJs) &&
    (typeof inJs !== 'object' || inJs === null || g.v === inJs);
  const unchanged = fired.length === 0 && (cur
    ? g !== null && Object.is(g.state, cur.state) && sameText(g.v, curJs) && (typeof curJs !== 'object' || curJs === null || g.v === curJs)
    : g === null);
  if (accepted === unchanged) {
    die(`case ${i}: cannot tell what Gun did: ${fired.length} put events, graph ${safe(graph[soul])}`);
  }
  if (accepted !== (expect === 'accept')) {
    die(`case ${i}: Gun.js contradicts the expected outcome "${expect}": machine=${machine} in=${safe(inJs)} @ ${inState} ` +
      `cur=${cur ? `${safe(curJs)} @ ${cur.state}` : 'none'}; Gun ${accepted ? 'accepted' : 'ignored'} it`);
  }

  return {
    t: 'ham',
    machine: bits(machine),
    in_state: bits(inState),
    in: encodeValue(inV),
    in_json: JSON.stringify(inJs),
    cur: cur ? { state: bits(cur.state), v: encodeValue(cur.v), json: JSON.stringify(curJs) } : null,
    expect,
  };
}

// ---------------------------------------------------------------- JSON trees

const INDEX_KEYS = ['0', '1', '2', '3', '7', '10', '11', '42', '99', '100', '4294967294', '4294967295', '4294967296',
  '01', '00', '-1', '-0', '1.5', '1e3', ' 1', '+1', '9007199254740993', '18446744073709551616', '2147483647', '65535'];
const NAME_KEYS = ['a', 'b', 'c', 'z', '_', '#', '>', '.', ':', '', 'name', '__proto__', 'toJSON', 'constructor',
  'length', 'hasOwnProperty', 'A', 'é', '😀', '\u{e000}', 'null', 'true', '"', '\\'];

function randomKey() {
  return choose([
    [4, () => pick(INDEX_KEYS)],
    [2, () => String(int(0, 20))],
    [1, () => String(int(0, 4294967295))],
    [3, () => pick(NAME_KEYS)],
    [4, () => String.fromCodePoint(...randomCps())],
  ]);
}

const CONTAINER_P = [0.55, 0.4, 0.25, 0.12, 0]; // by depth: keeps lines small, trees up to depth 4

// Returns [encoding, jsValue]
function randomTree(depth) {
  if (chance(CONTAINER_P[depth])) {
    const width = int(0, 6);
    if (chance(0.45)) {
      const enc = [], js = [];
      for (let i = 0; i < width; i++) {
        const [e, v] = randomTree(depth + 1);
        enc.push(e); js.push(v);
      }
      return [{ a: enc }, js];
    }
    const enc = [], js = Object.create(null), seen = new Set();
    for (let i = 0; i < width; i++) {
      const k = randomKey();
      if (seen.has(k)) continue;
      seen.add(k);
      const [e, v] = randomTree(depth + 1);
      enc.push([strUnits(k), e]);
      js[k] = v;
    }
    return [{ o: enc }, js];
  }
  return choose([
    [1, () => [{ z: 1 }, null]],
    [1, () => { const b = chance(0.5); return [{ b }, b]; }],
    [6, () => { const n = tricky(true); return [{ n: bits(n), js: JSON.stringify(n) }, n]; }],
    [5, () => { const u = randomUnits(); return [{ s: u }, unitsToStr(u)]; }],
  ]);
}

// Every string the generator needs to cover at least once, so coverage does not depend on luck.
function* fixedJsonCases() {
  const all = [];
  for (let c = 0; c <= 0x20; c++) all.push(c);
  all.push(0x22, 0x5c, 0x2f, 0x7f, 0x2028, 0x2029);
  for (const c of all) yield [{ s: [c] }, String.fromCharCode(c)];
  yield [{ s: all }, String.fromCharCode(...all)];
  for (const u of [[0xd800], [0xdbff], [0xdc00], [0xdfff], [0x61, 0xd800], [0xdc00, 0x61], [0xdc00, 0xd800],
    [0xd83d, 0xde00], [0xd83d, 0xd83d, 0xde00], [0xd83d, 0xde00, 0xde00], [0xe000], [0xf8ff], [0xffff]]) {
    yield [{ s: u }, unitsToStr(u)];
  }
  for (const n of [...SPECIAL_NUMBERS, ...NON_FINITE]) yield [{ n: bits(n), js: JSON.stringify(n) }, n];
  const keys = ['b', '10', 'a', '2', '01', '4294967295', '4294967294', '-1', '0', '1'];
  const js = Object.create(null), enc = [];
  keys.forEach((k, i) => { js[k] = i; enc.push([strUnits(k), { n: bits(i), js: String(i) }]); });
  yield [{ o: enc }, js];
}

function jsonLine(enc, js) {
  const out = JSON.stringify(js);
  if (typeof out !== 'string') die(`JSON.stringify returned ${typeof out}`);
  return { t: 'json', v: enc, out };
}

// ---------------------------------------------------------------- output

let buffered = [];
let bufferedLen = 0;
function emit(obj) {
  const line = JSON.stringify(obj);
  buffered.push(line);
  bufferedLen += line.length;
  if (bufferedLen > 1 << 20) flush();
}
function flush() {
  if (buffered.length) process.stdout.write(buffered.join('\n') + '\n');
  buffered = [];
  bufferedLen = 0;
}
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(0); // e.g. `| head`
  die(String(e));
});

for (let i = 0; i < ARGS.ham; i++) emit(hamCase(i));

let jsonCount = 0;
for (const [enc, js] of fixedJsonCases()) {
  if (jsonCount >= ARGS.json) break;
  emit(jsonLine(enc, js));
  jsonCount++;
}
while (jsonCount < ARGS.json) {
  const [enc, js] = randomTree(0);
  emit(jsonLine(enc, js));
  jsonCount++;
}

emit({ t: 'done', ham: ARGS.ham, json: jsonCount });
flush();
// Gun keeps timers alive (deferred writes, dup expiry): leave once stdout has drained.
process.stdout.write('', () => process.exit(0));
