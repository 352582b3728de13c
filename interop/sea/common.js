// Shared by vectors.js and check.js: loading genuine SEA (npm gun@0.2020.1241) quietly,
// a seeded generator of varied JSON data, and a fresh in-memory Gun peer with SEA.
'use strict';

// gun prints a greeting and SEA.certify a warning on stdout; the vectors own stdout.
const log = console.log;
console.log = (...a) => console.error(...a);
const Gun = require('gun/gun');
require('gun/sea');
const SEA = Gun.SEA;

function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = n => Math.floor(next() * n);
  const pick = xs => xs[int(xs.length)];
  return {next, int, pick};
}

// Text that exercises JSON.stringify: escapes, control characters, non-ASCII, astral
// characters, and strings that parse as JSON (SEA.sign signs the parsed value).
const PIECES = ['hello', 'a', '', ' ', 'ü', 'é', '日本語', '😀', '𝄞', '\u0001', '\u001f', '\n', '\t', '\r',
  '"', '\\', '/', '</script>', '\u2028', '\u00ff', '\u007f', '\ue000', '\uffff', '~', '@', '#', '.', ':', 'x y'];
const JSONY = ['12', '-0', '1e21', '12.50', 'true', 'false', 'null', '"quoted"', '{"z":2,"a":1}', '[1,"two"]',
  '{"1":"one","b":2,"0":"zero"}', ' 7 ', '{}', '[]', '{"m":1}', '{"s":"x"}'];

function makeGen(seed) {
  const r = rng(seed);
  const text = () => {
    if (r.next() < 0.15) return r.pick(JSONY);
    let s = '';
    const n = r.int(5);
    for (let i = 0; i < n; i++) s += r.pick(PIECES);
    return s;
  };
  const number = () => r.pick([
    () => r.int(1000), () => -r.int(100000), () => r.next() * 1e6, () => -r.next(), () => 1e21, () => 1e-7,
    () => 123456789012345680000, () => 2 ** 53 + 2, () => 0.1 + 0.2, () => 5e-324, () => 1.7976931348623157e308,
    () => 1795643451809.001, () => Math.round(r.next() * 1e4) / 100,
  ])();
  const key = () => r.pick(['a', 'b', 'z', '1', '10', '0', '2', 'name', '_', '#', '>', 'ü', '😀', 'a b', '', '01', '4294967295', '-1']);
  const json = (depth = 0) => {
    const k = r.int(depth > 2 ? 4 : 7);
    if (k === 0) return text();
    if (k === 1) return number();
    if (k === 2) return r.next() < 0.5;
    if (k === 3) return null;
    if (k === 4) return Array.from({length: r.int(4)}, () => json(depth + 1));
    const o = {};
    const n = r.int(5);
    for (let i = 0; i < n; i++) o[key()] = json(depth + 1);
    return o;
  };
  // A Gun value (what a put may store under a key).
  const value = () => r.pick([text, text, number, () => r.next() < 0.5, () => null,
    () => ({'#': 'soul/' + text() + r.int(100)})])();
  return {r, text, number, key, json, value};
}

function peer() {
  return Gun({peers: [], localStorage: false, radisk: false, axe: false, multicast: false, file: false});
}

const sleep = ms => new Promise(res => setTimeout(res, ms));

module.exports = {Gun, SEA, log, makeGen, peer, sleep};
