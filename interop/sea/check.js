#!/usr/bin/env node
// Checks vectors made by gun-sea (Rust) with genuine SEA (npm gun@0.2020.1241):
//
//   node interop/sea/check.js FILE
//
// FILE holds JSON Lines written by crates/gun-sea/tests/gunjs_interop.rs:
//
//   {"t":"pair","pair":{…}}                    signs and verifies with it; secret() both ways
//   {"t":"sign","data":J,"pub":P,"out":S,"expect":J}           SEA.verify(out, pub) equals expect
//   {"t":"value","soul":S,"key":K,"state":N,"wire":W,"pub":P,"value":V}
//   {"t":"certified","soul":S,"key":K,"state":N,"wire":W,"owner":P,"writer":P,"value":V}
//        the value verifies as sea.js's user-space check does (SEA.opt.pack + SEA.verify) and a
//        Gun peer with SEA stores it when it arrives in a put from the network
//   {"t":"reject","soul":S,"key":K,"state":N,"wire":W,"err":T}    (W: the value put, any Gun value)
//        a Gun peer with SEA refuses that put with exactly the error text T
//   {"t":"silent", …same fields without err}      a Gun peer drops it without a word
//   {"t":"accept", …same fields}                  a Gun peer stores it (no signature check here:
//                                                  alias lists, `#` souls, plain souls)
//   {"t":"gun_accepts", …same fields}             a Gun peer stores it (gun-sea refuses it: see the
//                                                  crate's compatibility notes)
//   {"t":"encrypt","key":{"pair":…}|{"pass":…},"out":S,"expect":J}  SEA.decrypt(out, key) equals expect
//   {"t":"work","data":J,"salt":J,"opt":J,"out":T|null,"random":bool}
//        SEA.work(data, salt, null, opt) gives out (null: undefined); random: SEA's output must
//        differ between two runs (a random salt) and be as long as out
//   reject/silent/accept/gun_accepts may carry "age": the state is then Date.now() - age
//   {"t":"secret","epub":P,"pair":{…},"out":T}                 SEA.secret gives out
//   {"t":"cert","cert":S,"pub":P,"expect":J}                   SEA.verify(cert, pub) equals expect
//
// Prints the counts per kind and every failure; exits 1 if anything failed (or nothing was checked).
'use strict';
const fs = require('fs');
const {SEA, log, peer, sleep} = require('./common');

const file = process.argv[2];
if (!file) { console.error('usage: node interop/sea/check.js FILE'); process.exit(2); }
const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);

const ok = {}, bad = {};
const failures = [];
const pass = t => { ok[t] = (ok[t] || 0) + 1; };
const fail = (t, i, why) => { bad[t] = (bad[t] || 0) + 1; failures.push(`line ${i + 1} (${t}): ${why}`); };
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

(async () => {
  const other = await SEA.pair();
  const gun = peer();
  const puts = [];   // [index, vector, message id, outcome]
  for (let i = 0; i < lines.length; i++) {
    let v;
    try { v = JSON.parse(lines[i]); } catch (e) { fail('json', i, String(e)); continue; }
    try {
      switch (v.t) {
        case 'pair': {
          const p = v.pair;
          const s = await SEA.sign('pair check ' + i, p);
          const back = await SEA.verify(s, p.pub);
          const s1 = await SEA.secret(other.epub, p), s2 = await SEA.secret(p.epub, other);
          if (back !== 'pair check ' + i) fail(v.t, i, 'SEA.verify of a signature by this pair failed');
          else if (!s1 || s1 !== s2) fail(v.t, i, `secret not symmetric: ${s1} vs ${s2}`);
          else pass(v.t);
          break;
        }
        case 'sign': case 'cert': {
          const got = await SEA.verify(v.t === 'sign' ? v.out : v.cert, v.pub);
          if (same(got, v.expect)) pass(v.t); else fail(v.t, i, `SEA.verify gave ${JSON.stringify(got)}, expected ${JSON.stringify(v.expect)}`);
          break;
        }
        case 'value': case 'certified': {
          // sea.js's own check.pub path: pack the put, verify against the writer.
          const put = {'#': v.soul, '.': v.key, ':': v.wire, '>': v.state};
          const raw = JSON.parse(v.wire);
          const data = await new Promise(res => SEA.opt.pack(put, packed =>
            SEA.verify(packed, raw['*'] || v.pub, d => res(SEA.opt.unpack(d)))));
          if (!same(data, v.value)) { fail(v.t, i, `sea.js check gave ${JSON.stringify(data)}, expected ${JSON.stringify(v.value)}`); break; }
          puts.push([i, v, 'p' + i, {}]);
          break;
        }
        case 'reject': case 'silent': case 'gun_accepts': case 'accept':
          // `age`: the state is that many ms before now (`<?N` souls judge the age)
          if (typeof v.age === 'number') v.state = Date.now() - v.age;
          puts.push([i, v, 'p' + i, {}]);
          break;
        case 'encrypt': {
          const got = await SEA.decrypt(v.out, v.key.pair || v.key.pass);
          if (same(got, v.expect)) pass(v.t); else fail(v.t, i, `SEA.decrypt gave ${JSON.stringify(got)}, expected ${JSON.stringify(v.expect)}`);
          break;
        }
        case 'work': {
          const run = async () => { const r = await SEA.work(v.data, v.salt, null, v.opt); return r === undefined ? null : r; };
          const got = await run();
          if (v.random) {
            // a random salt on both sides: SEA must draw one too, and print as many characters
            const again = await run();
            if (typeof got !== 'string' || got === again) fail(v.t, i, `SEA.work gave ${JSON.stringify(got)} and ${JSON.stringify(again)}, expected random output`);
            else if ([...got].length !== [...v.out].length) fail(v.t, i, `SEA.work gave ${JSON.stringify(got)}, not as long as ${JSON.stringify(v.out)}`);
            else pass(v.t);
          } else if (got === v.out) pass(v.t);
          else fail(v.t, i, `SEA.work gave ${JSON.stringify(got)}, expected ${JSON.stringify(v.out)}`);
          break;
        }
        case 'secret': {
          const got = await SEA.secret(v.epub, v.pair);
          if (got === v.out) pass(v.t); else fail(v.t, i, `SEA.secret gave ${got}, expected ${v.out}`);
          break;
        }
        default: fail('unknown', i, 'unknown kind ' + v.t);
      }
    } catch (e) { fail(v.t, i, 'threw ' + (e && e.stack || e)); }
  }

  // Puts as a peer would send them, into a Gun peer with SEA (no storage, no peers).
  for (const [, v, id, outcome] of puts) {
    gun._.on(id, ack => { if (ack.err) outcome.err = ack.err; });
    gun._.on('in', {'#': id, put: {[v.soul]: {_: {'#': v.soul, '>': {[v.key]: v.state}}, [v.key]: v.wire}}});
  }
  await sleep(500 + puts.length);
  for (const [i, v, , outcome] of puts) {
    const node = gun._.graph[v.soul] || {};
    const stored = same(node[v.key], v.wire) && (node._ || {})['>'] && node._['>'][v.key] === v.state;
    if (v.t === 'silent') {
      if (stored) fail(v.t, i, 'a Gun peer stored it');
      else if (outcome.err) fail(v.t, i, `a Gun peer answered err ${JSON.stringify(outcome.err)}`);
      else pass(v.t);
    } else if (v.t === 'gun_accepts') {
      if (!stored || outcome.err) fail(v.t, i, `a Gun peer did not store it (err ${JSON.stringify(outcome.err)})`);
      else pass(v.t);
    } else if (v.t === 'reject') {
      if (stored) fail(v.t, i, 'a Gun peer stored it');
      else if (outcome.err !== v.err) fail(v.t, i, `a Gun peer answered err ${JSON.stringify(outcome.err)}, expected ${JSON.stringify(v.err)}`);
      else pass(v.t);
    } else if (outcome.err) fail(v.t, i, `a Gun peer refused it: ${outcome.err}`);
    else if (!stored) fail(v.t, i, 'a Gun peer did not store it');
    else pass(v.t);
  }

  const total = Object.values(ok).reduce((a, b) => a + b, 0);
  const failed = Object.values(bad).reduce((a, b) => a + b, 0);
  for (const f of failures.slice(0, 50)) log('FAIL ' + f);
  log(JSON.stringify({ok, failed: bad, total_ok: total, total_failed: failed}));
  process.exit(failed === 0 && total > 0 ? 0 : 1);
})().catch(e => { console.error(e); process.exit(1); });
