//! Hooks for message authentication and filtering, with no cryptography here.
//!
//! A [`Mesh`](crate::Mesh) can be given, through its [`MeshConfig`](crate::MeshConfig):
//!
//! * a [`MessageSigner`], which signs every message that **originates here**
//!   (our requests, replies, acks, pushes and local writes, each with a fresh
//!   `#`) by adding the extension field [`SIG_FIELD`] (`"gunrs:sig"`);
//! * a [`MessageVerifier`] and an [`AuthPolicy`], which decide what happens to
//!   incoming messages with a good, a bad or no signature;
//! * [`MessagePredicate`]s, user filters run on every incoming message.
//!
//! `gun-sea` implements the signer and verifier with BLS signatures
//! (`gun_sea::bls::BlsSigner`, `gun_sea::bls::BlsVerifier`; write certificates
//! in `gun_sea::bls_cert`); tests can implement them with anything.
//!
//! # What is signed: the canonical bytes
//!
//! A signature must survive relaying through Gun.js peers, which keep unknown
//! fields and relay them unchanged, but rewrite `><`, may re-order keys and
//! re-format the JSON. So the signature covers a text made by [`canonical`]
//! from the fields no relay changes, never the frame:
//!
//! ```text
//! "gun-rs/msg/1\n" + <#> + "\n" + <key-sorted JSON of the covered fields>
//! ```
//!
//! The covered fields are `@` (so a signed answer cannot be attached to another
//! request), `put` (its key-sorted text, [`gun_graph::hash::sorted_text`], the
//! text Gun.js hashes for `##`), `get` (the get object as sent, keys sorted at
//! every level), and, on messages with neither `put` nor `get` (acks), `ok`
//! and `err`. The JSON object holds only the fields present, in the order
//! `@`, `err`, `get`, `ok`, `put`; strings and numbers are written as
//! JavaScript's `JSON.stringify` writes them. The JSON part never contains a
//! raw newline, so the text is unambiguous whatever the `#`.
//!
//! Not covered, because peers rewrite or add them: `><` (every relay), `##` (a
//! function of `put`), `%`, `ok` on puts (the push hint `{"@":2,"/":n}` that
//! relays set), `dam`/`pid` (handshakes are never signed) and every extension
//! field, [`SIG_FIELD`] and [`CERT_FIELD`] included.
//!
//! # Relaying
//!
//! Messages relayed unchanged keep their signature: forwarded gets, routed
//! replies, re-sent puts, and writes published to full peers when what HAM
//! accepted is the whole put. When HAM accepted only part of a put, the part
//! that goes on is a different message: the original [`SIG_FIELD`] and
//! [`CERT_FIELD`] are removed and, with a signer, the relay signs it itself
//! (it vouches for what it stored). Pushes to subscribers and translated push
//! acks are new messages and are signed by us too.
//!
//! # Receiving
//!
//! For each incoming message that is not a duplicate and not a `dam` message:
//! the signature is checked as the [`AuthPolicy`] says, then every
//! [`MessagePredicate`] is asked; a refused message is dropped before it is
//! delivered to the engine, forwarded or remembered as seen (so a forged copy
//! cannot make the genuine message look like a duplicate).

use std::fmt;

use gun_graph::json;
use serde_json::Value;

use crate::message::Message;
use crate::peer::PeerId;

/// The extension field carrying a message's signature (its value is whatever
/// the [`MessageSigner`] produced; gun-sea's BLS signer writes
/// `{"pk": base64url, "s": base64url}`).
pub const SIG_FIELD: &str = "gunrs:sig";

/// The extension field carrying a write certificate (gun-sea `bls_cert`). The
/// mesh never reads it; it is removed with [`SIG_FIELD`] when a relay re-signs
/// a partial write.
pub const CERT_FIELD: &str = "gunrs:cert";

/// The first line of every canonical text; the version changes if the covered
/// fields ever change.
pub const CANONICAL_PREFIX: &str = "gun-rs/msg/1\n";

/// Signs the messages this peer originates.
pub trait MessageSigner: Send + Sync {
    /// The value of the [`SIG_FIELD`] for the canonical bytes of a message
    /// (see [`canonical`]).
    fn sign(&self, canonical: &[u8]) -> Value;

    /// Other extension fields to add to a message before it is signed, for
    /// example a write certificate under [`CERT_FIELD`]. They are not covered
    /// by the signature. Default: none.
    fn extensions(&self, msg: &Message) -> Vec<(String, Value)> {
        let _ = msg;
        Vec::new()
    }
}

/// Checks the signatures of incoming messages.
pub trait MessageVerifier: Send + Sync {
    /// Whether `field` (the value of [`SIG_FIELD`]) is a valid signature of
    /// `canonical` by a signer this peer accepts.
    fn verify(&self, canonical: &[u8], field: &Value) -> bool;
}

/// A user filter on incoming messages: return `false` to drop the message
/// (logged at debug) before it is delivered or forwarded.
///
/// Mesh-control (`dam`) messages are not given to predicates. Closures
/// `Fn(PeerId, &Message) -> bool` are predicates.
///
/// ```
/// use std::sync::Arc;
/// use gun_dam::{MeshConfig, MessagePredicate, Message, PeerId};
///
/// // Refuse writes to souls starting with "admin/".
/// let no_admin = |_from: PeerId, msg: &Message| {
///     msg.put.as_ref().is_none_or(|g| g.souls().all(|s| !s.as_str().starts_with("admin/")))
/// };
/// let cfg = MeshConfig { predicates: vec![Arc::new(no_admin)], ..MeshConfig::relay() };
/// # let _ = cfg;
/// ```
pub trait MessagePredicate: Send + Sync {
    /// Whether the message from `from` may go on.
    fn allow(&self, from: PeerId, msg: &Message) -> bool;
}

impl<F> MessagePredicate for F
where
    F: Fn(PeerId, &Message) -> bool + Send + Sync,
{
    fn allow(&self, from: PeerId, msg: &Message) -> bool {
        self(from, msg)
    }
}

/// What the mesh does with the signatures of incoming messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum AuthPolicy {
    /// Signatures are not checked (and unsigned messages are fine). The default.
    #[default]
    Off,
    /// A message with a [`SIG_FIELD`] that does not verify (or with no
    /// verifier configured to check it) is dropped; unsigned messages, as
    /// Gun.js peers send them, are accepted. For meshes with Gun.js peers.
    VerifyWhenPresent,
    /// As [`AuthPolicy::VerifyWhenPresent`], and unsigned messages are dropped
    /// too (`dam` handshake messages excepted). Only for meshes of gun-rs
    /// peers that all sign.
    Require,
}

/// The verdict on one incoming message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Go on.
    Pass,
    /// Drop: why, for the log.
    Drop(&'static str),
}

/// Applies `policy` to an incoming non-`dam` message.
pub(crate) fn check(
    policy: AuthPolicy,
    verifier: Option<&dyn MessageVerifier>,
    msg: &Message,
) -> Verdict {
    if policy == AuthPolicy::Off {
        return Verdict::Pass;
    }
    let Some(field) = msg.extra.get(SIG_FIELD) else {
        return match policy {
            AuthPolicy::Require => Verdict::Drop("unsigned message"),
            _ => Verdict::Pass,
        };
    };
    let Some(verifier) = verifier else {
        return Verdict::Drop("signed message but no verifier configured");
    };
    let Some(text) = canonical(msg) else {
        return Verdict::Drop("signed message without a `#`");
    };
    if verifier.verify(text.as_bytes(), field) {
        Verdict::Pass
    } else {
        Verdict::Drop("bad signature")
    }
}

/// Signs a message that originates here: adds the signer's extension fields,
/// then [`SIG_FIELD`] over [`canonical`]. Messages without `#` and `dam`
/// messages are left alone.
pub(crate) fn sign(signer: &dyn MessageSigner, msg: &mut Message) {
    if msg.dam.is_some() {
        return;
    }
    for (k, v) in signer.extensions(msg) {
        msg.extra.insert(k, v);
    }
    if let Some(text) = canonical(msg) {
        let field = signer.sign(text.as_bytes());
        msg.extra.insert(SIG_FIELD.to_owned(), field);
    }
}

/// Removes the signature and certificate of a message that is about to change.
pub(crate) fn strip(msg: &mut Message) {
    msg.extra.shift_remove(SIG_FIELD);
    msg.extra.shift_remove(CERT_FIELD);
}

/// The canonical text of a message (see the [module docs](self)): what a
/// [`MessageSigner`] signs and a [`MessageVerifier`] checks. `None` when the
/// message has no `#`.
///
/// ```
/// use gun_dam::{Message, auth::canonical};
/// use gun_graph::Graph;
///
/// let g = Graph::from_wire(r##"{"s":{"_":{"#":"s",">":{"b":2,"a":1}},"b":"x","a":1}}"##).unwrap();
/// let mut m = Message::put(g);
/// m.id = Some("m1".into());
/// m.seen = Some("a,b".into()); // not covered
/// assert_eq!(
///     canonical(&m).unwrap(),
///     "gun-rs/msg/1\nm1\n{\"put\":{\"s\":{\"_\":{\"#\":\"s\",\">\":{\"a\":1,\"b\":2}},\"a\":1,\"b\":\"x\"}}}"
/// );
/// ```
pub fn canonical(msg: &Message) -> Option<String> {
    let id = msg.id.as_deref()?;
    let mut out = String::with_capacity(64);
    out.push_str(CANONICAL_PREFIX);
    out.push_str(id);
    out.push('\n');
    out.push('{');
    let mut first = true;
    let mut key = |out: &mut String, k: &str| {
        if !first {
            out.push(',');
        }
        first = false;
        json::write_str(out, k);
        out.push(':');
    };
    if let Some(at) = &msg.reply_to {
        key(&mut out, "@");
        json::write_str(&mut out, at);
    }
    let ack = msg.put.is_none() && msg.get.is_none();
    if ack && let Some(err) = &msg.err {
        key(&mut out, "err");
        json::write_str(&mut out, err);
    }
    if let Some(get) = &msg.get {
        key(&mut out, "get");
        write_sorted_json(&mut out, &get.raw);
    }
    if ack && let Some(ok) = &msg.ok {
        key(&mut out, "ok");
        write_sorted_json(&mut out, ok);
    }
    if let Some(put) = &msg.put {
        key(&mut out, "put");
        out.push_str(&gun_graph::hash::sorted_text(put));
    }
    out.push('}');
    Some(out)
}

/// Writes `v` as JSON with the keys of every object sorted (JavaScript order:
/// UTF-16 code units), numbers and strings as `JSON.stringify` writes them.
/// The text is the same for any key order of the input, so it can be signed.
pub fn write_sorted_json(out: &mut String, v: &Value) {
    match v {
        Value::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_sorted_json(out, e);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| json::cmp_utf16(a, b));
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json::write_str(out, k);
                out.push(':');
                if let Some(e) = m.get(k.as_str()) {
                    write_sorted_json(out, e);
                }
            }
            out.push('}');
        }
        scalar => json::write_json(out, scalar),
    }
}

/// [`write_sorted_json`] into a new string.
pub fn sorted_json(v: &Value) -> String {
    let mut s = String::new();
    write_sorted_json(&mut s, v);
    s
}

/// Debug text for the hook fields of [`MeshConfig`](crate::MeshConfig).
pub(crate) struct Hook(pub(crate) bool);

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0 { "Some(..)" } else { "None" })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::parse_frame;

    fn one(text: &str) -> Message {
        parse_frame(text).remove(0).unwrap()
    }

    #[test]
    fn canonical_ignores_what_relays_change() {
        let a = one(
            r###"{"#":"m","><":"x,y","##":5,"FOO":1,"ok":{"@":2,"/":3},"put":{"s":{"_":{"#":"s",">":{"k":1,"j":2}},"k":"v","j":null}}}"###,
        );
        let b = one(
            r###"{"put":{"s":{"j":null,"k":"v","_":{">":{"j":2,"k":1},"#":"s"}}},"#":"m","%":9}"###,
        );
        assert_eq!(canonical(&a), canonical(&b));
        let c =
            one(r###"{"#":"m","put":{"s":{"_":{"#":"s",">":{"k":1,"j":2}},"k":"w","j":null}}}"###);
        assert_ne!(canonical(&a), canonical(&c));
        let d =
            one(r###"{"#":"n","put":{"s":{"_":{"#":"s",">":{"k":1,"j":2}},"k":"v","j":null}}}"###);
        assert_ne!(canonical(&a), canonical(&d));
    }

    #[test]
    fn canonical_of_gets_and_acks() {
        let g1 = one(r##"{"#":"q","get":{"#":"s",".":{">":"a","<":"b"},"%":10}}"##);
        let g2 = one(r##"{"get":{"%":10,".":{"<":"b",">":"a"},"#":"s"},"#":"q","><":"z"}"##);
        assert_eq!(canonical(&g1), canonical(&g2));
        assert_eq!(
            canonical(&g1).unwrap(),
            "gun-rs/msg/1\nq\n{\"get\":{\"#\":\"s\",\"%\":10,\".\":{\"<\":\"b\",\">\":\"a\"}}}"
        );
        let ack = one(r##"{"#":"a","@":"q","ok":{"":1}}"##);
        assert_eq!(
            canonical(&ack).unwrap(),
            "gun-rs/msg/1\na\n{\"@\":\"q\",\"ok\":{\"\":1}}"
        );
        let err = one(r##"{"#":"a","@":"q","err":"no"}"##);
        assert_ne!(canonical(&ack), canonical(&err));
        let other = one(r##"{"#":"a","@":"r","ok":{"":1}}"##);
        assert_ne!(canonical(&ack), canonical(&other));
        assert_eq!(canonical(&one(r#"{"put":null}"#)), None);
    }

    #[test]
    fn policies() {
        struct Yes;
        impl MessageVerifier for Yes {
            fn verify(&self, _: &[u8], f: &Value) -> bool {
                f == "good"
            }
        }
        let unsigned = one(r##"{"#":"a","get":{"#":"s"}}"##);
        let good = one(r##"{"#":"a","get":{"#":"s"},"gunrs:sig":"good"}"##);
        let bad = one(r##"{"#":"a","get":{"#":"s"},"gunrs:sig":"bad"}"##);
        let v: Option<&dyn MessageVerifier> = Some(&Yes);
        for m in [&unsigned, &good, &bad] {
            assert_eq!(check(AuthPolicy::Off, v, m), Verdict::Pass);
        }
        assert_eq!(
            check(AuthPolicy::VerifyWhenPresent, v, &unsigned),
            Verdict::Pass
        );
        assert_eq!(
            check(AuthPolicy::VerifyWhenPresent, v, &good),
            Verdict::Pass
        );
        assert!(matches!(
            check(AuthPolicy::VerifyWhenPresent, v, &bad),
            Verdict::Drop(_)
        ));
        assert!(matches!(
            check(AuthPolicy::VerifyWhenPresent, None, &good),
            Verdict::Drop(_)
        ));
        assert!(matches!(
            check(AuthPolicy::Require, v, &unsigned),
            Verdict::Drop(_)
        ));
        assert_eq!(check(AuthPolicy::Require, v, &good), Verdict::Pass);
    }

    #[test]
    fn sorted_json_is_order_free() {
        let a: Value =
            serde_json::from_str(r#"{"b":[{"y":1,"x":2}],"a":"é","10":1,"9":0.5}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"9":0.5,"a":"é","10":1,"b":[{"x":2,"y":1}]}"#).unwrap();
        assert_eq!(sorted_json(&a), sorted_json(&b));
        assert_eq!(
            sorted_json(&a),
            r#"{"10":1,"9":0.5,"a":"é","b":[{"x":2,"y":1}]}"#
        );
    }
}
