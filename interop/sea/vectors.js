#!/usr/bin/env node
// SEA test vectors made by genuine SEA (npm gun@0.2020.1241, `require('gun/sea')`), checked by
// crates/gun-sea/tests/gunjs_interop.rs against gun-sea.
//
//   node interop/sea/vectors.js [--seed N] [--scale K]
//
// Prints JSON Lines on stdout (the greeting of gun and SEA's warnings go to stderr):
//
//   {"t":"pair","pair":{pub,priv,epub,epriv}}
//   {"t":"sign","data":J,"pub":P,"out":"SEA{…}","verified":J}        SEA.sign / SEA.verify
//   {"t":"value","soul":S,"key":K,"state":N,"wire":W,"pub":P,"value":V}
//        a signed user-space value exactly as a logged-in Gun user's put stored it in the graph
//   {"t":"certified","soul":S,"key":K,"state":N,"wire":W,"owner":P,"writer":P,"value":V}
//        a write by user B into A's space under A's certificate (`put(v, cb, {opt: {cert}})`)
//   {"t":"encrypt","data":J,"key":{"pair":…}|{"pass":…},"out":"SEA{…}","decrypted":J}
//   {"t":"work","data":J,"salt":J,"opt":J,"out":T|null,"random":bool}
//        SEA.work(data, salt, null, opt); out null: it returned undefined; random: two runs
//        differed (a falsy salt makes SEA draw a random one)
//   {"t":"secret","epub":P,"pair":{…},"out":T}                       SEA.secret
//   {"t":"cert","cert":"SEA{…}","pub":P,"verified":J}                SEA.certify / SEA.verify
//   {"t":"done","counts":{t:n}}
//
// Without lone surrogates in any string (a Rust String cannot hold them).
'use strict';
const {SEA, log, makeGen, peer, sleep} = require('./common');

const args = process.argv.slice(2);
const arg = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? Number(args[i + 1]) : dflt; };
const seed = arg('--seed', 1241);
const scale = arg('--scale', 1);
const g = makeGen(seed);
const counts = {};
const emit = o => { counts[o.t] = (counts[o.t] || 0) + 1; log(JSON.stringify(o)); };

(async () => {
  const pairs = [];
  for (let i = 0; i < 30 * scale; i++) { const p = await SEA.pair(); pairs.push(p); emit({t: 'pair', pair: p}); }
  const P = () => g.r.pick(pairs);

  for (let i = 0; i < 400 * scale; i++) {
    const data = g.json(), p = P();
    const out = await SEA.sign(data, p);
    emit({t: 'sign', data, pub: p.pub, out, verified: await SEA.verify(out, p.pub)});
  }

  // Signed user-space values, through a real Gun user's puts.
  {
    const gun = peer();
    for (let u = 0; u < 4 * scale; u++) {
      const p = pairs[u];
      const user = gun.user();
      await new Promise(res => user.auth(p, res));
      const keys = [];
      for (let i = 0; i < 50; i++) {
        const key = 'k' + i + g.r.pick(['', 'ü', ' x', '😀', '.', '#a', '/b']);
        const value = g.value();
        keys.push([key, value]);
        user.get(key).put(value);
      }
      await sleep(300);
      const soul = '~' + p.pub, node = gun._.graph[soul] || {};
      for (const [key, value] of keys) {
        if (typeof node[key] !== 'string') throw new Error('no signed value for ' + key);
        emit({t: 'value', soul, key, state: node._['>'][key], wire: node[key], pub: p.pub, value});
      }
      user.leave();
    }
  }

  // Certified writes into another user's space.
  {
    const gun = peer();
    const A = pairs[0], B = pairs[1];
    const certs = [
      await SEA.certify(B.pub, {'*': 'inbox'}, A),
      await SEA.certify('*', {'*': 'inbox', '+': '*'}, A),
      await SEA.certify(B.pub, {'#': {'*': 'inbox'}, '.': {'*': 'msg'}}, A, null, {expiry: 4102444800000}),
    ];
    const user = gun.user();
    await new Promise(res => user.auth(B, res));
    const wrote = [];
    for (let i = 0; i < 20 * scale; i++) {
      const cert = certs[i % certs.length];
      const soul = '~' + A.pub + '/inbox' + (i % 2 ? '/' + B.pub : '');
      const key = (i % certs.length === 1 ? B.pub + '-' : 'msg') + i;
      const value = g.value();
      wrote.push([soul, key, value]);
      gun.get(soul).get(key).put(value, null, {opt: {cert}});
    }
    await sleep(400);
    for (const [soul, key, value] of wrote) {
      const node = gun._.graph[soul] || {};
      if (typeof node[key] !== 'string') throw new Error('no certified value for ' + soul + ' ' + key);
      emit({t: 'certified', soul, key, state: node._['>'][key], wire: node[key], owner: A.pub, writer: B.pub, value});
    }
    user.leave();
  }

  for (let i = 0; i < 250 * scale; i++) {
    const data = g.json();
    const key = i % 3 === 0 ? {pair: P()} : {pass: i % 3 === 1 ? g.text() + i : await SEA.secret(P().epub, P())};
    const out = await SEA.encrypt(data, key.pair || key.pass);
    emit({t: 'encrypt', data, key, out, decrypted: await SEA.decrypt(out, key.pair || key.pass)});
  }

  // SEA.work. A falsy salt ('', 0, false, null) makes SEA draw a random one: such a
  // vector has "random": true (two runs of SEA differed) and gun-sea must be random too.
  const work = async (data, salt, opt) => {
    const out = await SEA.work(data, salt, null, opt);
    const again = await SEA.work(data, salt, null, opt);
    return {out: out === undefined ? null : out, random: out !== again};
  };
  for (let i = 0; i < 20 * scale; i++) {
    const data = g.text() + i, salt = i % 4 === 0 ? P().epub : g.text();
    emit({t: 'work', data, salt, opt: null, ...await work(data, salt)});
  }
  for (let i = 0; i < 80 * scale; i++) {
    const data = g.text() + i, opt = {name: 'SHA-256'};
    emit({t: 'work', data, salt: null, opt, ...await work(data, null, opt)});
  }
  // Every kind of argument sea.js coerces, and options valid and invalid (out null:
  // SEA returned undefined).
  for (let i = 0; i < 60 * scale; i++) {
    const data = i % 2 ? g.text() + i : g.json();
    const salt = g.r.pick([() => g.text(), () => '', () => 0, () => g.number(), () => true, () => false,
      () => null, () => [], () => [1, null, 'a', [2, 3]], () => ({a: 1}), () => ({epub: g.text()}), () => P(),
      () => g.text() + 'x'])();
    const opt = {};
    const maybe = (k, xs) => { if (g.r.next() < 0.5) opt[k] = g.r.pick(xs); };
    maybe('name', ['SHA-256', 'sha-256', 'SHA-1', 'SHA-384', 'SHA-512', 'Sha-512', 'sha256', 'SHA-3', 'PBKDF2',
      'pbkdf2', 'HKDF', '', 0, null]);
    maybe('encode', ['hex', 'utf8', 'base64', '', 'binary', 'HEX', null]);
    maybe('hash', [{name: 'SHA-1'}, 'SHA-512', 'sha-384', {name: 'SHA-256'}, 'MD5', {}, null]);
    opt.iterations = g.r.pick([1, 2, 3, 10, 1000, 0, -1, 2.5, '2', null]);
    maybe('length', [8, 64, 256, 512, 1024, 0, 12, -8, '256', null]);
    maybe('salt', ['s', '', 0, 7, {epub: 'E'}, [1, 2], null, true]);
    emit({t: 'work', data, salt, opt, ...await work(data, salt, opt)});
  }

  for (let i = 0; i < 60 * scale; i++) {
    const me = P(), other = P();
    emit({t: 'secret', epub: other.epub, pair: me, out: await SEA.secret(other.epub, me)});
  }

  for (let i = 0; i < 20 * scale; i++) {
    const a = P();
    const who = [() => '*', () => P().pub, () => [P().pub, P().pub]][i % 3]();
    const policy = [() => 'inbox', () => ({'*': 'inbox', '+': '*'}), () => [{'#': 'a'}, {'.': {'>': 'k'}}]][i % 3]();
    const cert = await SEA.certify(who, policy, a, null, i % 2 ? {expiry: 1900000000000 + i} : {});
    emit({t: 'cert', cert, pub: a.pub, verified: await SEA.verify(cert, a.pub)});
  }

  emit({t: 'done', counts: Object.assign({}, counts)});
  process.exit(0);
})().catch(e => { console.error(e); process.exit(1); });
