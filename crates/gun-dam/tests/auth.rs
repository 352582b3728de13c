//! Message authentication hooks on the mesh: signing what originates here,
//! the receive policies, predicates, and signatures surviving relaying. The
//! signer here is a keyed hash (no cryptography is needed to test the wiring;
//! gun-sea's BLS signer is tested over the same hooks there).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use common::{Node, TestHub};
use gun_dam::auth::canonical;
use gun_dam::mock::MockNet;
use gun_dam::{
    AuthPolicy, Direction, Hub, Mesh, MeshConfig, Message, MessageSigner, MessageVerifier, Output,
    PeerId, SIG_FIELD,
};
use gun_graph::{Graph, Value};
use serde_json::json;

/// Signs with a named key: `{"k": name, "h": hash(secret, text)}`.
struct ToySigner {
    name: &'static str,
    secret: u64,
}

fn mac(secret: u64, text: &[u8]) -> String {
    let mut h = DefaultHasher::new();
    secret.hash(&mut h);
    text.hash(&mut h);
    format!("{:016x}", h.finish())
}

impl MessageSigner for ToySigner {
    fn sign(&self, canonical: &[u8]) -> serde_json::Value {
        json!({"k": self.name, "h": mac(self.secret, canonical)})
    }
}

/// Accepts the keys it knows.
struct ToyVerifier(Vec<(&'static str, u64)>);

impl MessageVerifier for ToyVerifier {
    fn verify(&self, canonical: &[u8], field: &serde_json::Value) -> bool {
        self.0.iter().any(|(name, secret)| {
            field["k"] == *name && field["h"] == mac(*secret, canonical).as_str()
        })
    }
}

fn alice() -> Arc<ToySigner> {
    Arc::new(ToySigner {
        name: "alice",
        secret: 11,
    })
}

fn knows_alice() -> Arc<ToyVerifier> {
    Arc::new(ToyVerifier(vec![("alice", 11)]))
}

fn write(soul: &str, key: &str, value: &str, state: u64) -> Graph {
    Graph::from_wire(&format!(
        r##"{{"{soul}":{{"_":{{"#":"{soul}",">":{{"{key}":{state}}}}},"{key}":"{value}"}}}}"##
    ))
    .unwrap()
}

fn frames(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { frame, .. } => Some(frame.to_string()),
            _ => None,
        })
        .collect()
}

fn delivered(out: &[Output]) -> Vec<Message> {
    out.iter()
        .filter_map(|o| o.message().map(|(_, msg)| msg.clone()))
        .collect()
}

/// A writer mesh (optionally signing) connected to nobody but one URL; returns
/// the frame of its put of `g` (the seed picks its `#`).
fn put_frame(signer: Option<Arc<ToySigner>>, g: Graph, seed: u64) -> String {
    let mut m = Mesh::new(MeshConfig {
        pid: Some("W".into()),
        rng_seed: Some(seed),
        signer: signer.map(|s| s as Arc<dyn MessageSigner>),
        ..MeshConfig::client()
    });
    m.connect(
        PeerId(1),
        Direction::Outgoing {
            url: "ws://r/gun".into(),
        },
        0,
    );
    let (_, out) = m.request(Message::put(g), 1);
    let f = frames(&out);
    assert_eq!(f.len(), 1);
    f.into_iter().next().unwrap()
}

/// A receiving relay with the given policy, one incoming peer (PeerId(1)).
fn receiver(policy: AuthPolicy) -> Mesh {
    let mut r = Mesh::new(MeshConfig {
        pid: Some("R".into()),
        rng_seed: Some(2),
        verifier: Some(knows_alice()),
        auth_policy: policy,
        ..MeshConfig::relay()
    });
    r.connect(PeerId(1), Direction::Incoming, 0);
    r
}

#[test]
fn originating_messages_are_signed_and_verify() {
    let f = put_frame(Some(alice()), write("s", "k", "v", 1), 101);
    let m = gun_dam::parse_frame(&f).remove(0).unwrap();
    let sig = m.extra.get(SIG_FIELD).expect("signed");
    assert_eq!(sig["k"], "alice");
    let text = canonical(&m).unwrap();
    assert!(knows_alice().verify(text.as_bytes(), sig));
    // Unsigned without a signer.
    let f = put_frame(None, write("s", "k", "v", 1), 102);
    assert!(!f.contains(SIG_FIELD));
}

#[test]
fn require_drops_unsigned_and_badly_signed() {
    let good = put_frame(Some(alice()), write("s", "k", "v1", 1), 103);
    let tampered = good.replace("\"v1\"", "\"v2\"");
    assert_ne!(good, tampered);
    let unsigned = put_frame(None, write("s", "k", "v1", 1), 103);
    let mallory = put_frame(
        Some(Arc::new(ToySigner {
            name: "alice",
            secret: 99,
        })),
        write("s", "k", "v1", 1),
        103, // the same `#` as the genuine one
    );

    let mut r = receiver(AuthPolicy::Require);
    assert!(delivered(&r.receive(PeerId(1), &unsigned, 1)).is_empty());
    assert!(delivered(&r.receive(PeerId(1), &mallory, 2)).is_empty());
    assert!(delivered(&r.receive(PeerId(1), &tampered, 3)).is_empty());
    // The refused copies did not mark the `#` seen: the genuine one goes on.
    let d = delivered(&r.receive(PeerId(1), &good, 4));
    assert_eq!(d.len(), 1);
    assert_eq!(
        d[0].put.as_ref().unwrap().get("s").unwrap().value("k"),
        Some(&Value::from("v1"))
    );
    // And its duplicate is dropped as a duplicate.
    assert!(delivered(&r.receive(PeerId(1), &good, 5)).is_empty());
}

#[test]
fn verify_when_present_accepts_unsigned_but_drops_bad() {
    let good = put_frame(Some(alice()), write("s", "k", "v1", 1), 105);
    let tampered = good.replace("\"v1\"", "\"v2\"");
    let unsigned = put_frame(None, write("t", "k", "v1", 1), 106);
    let mut r = receiver(AuthPolicy::VerifyWhenPresent);
    assert_eq!(delivered(&r.receive(PeerId(1), &unsigned, 1)).len(), 1);
    assert!(delivered(&r.receive(PeerId(1), &tampered, 2)).is_empty());
    assert_eq!(delivered(&r.receive(PeerId(1), &good, 3)).len(), 1);
    // Off: nothing is checked, the tampered copy goes through.
    let mut off = receiver(AuthPolicy::Off);
    assert_eq!(delivered(&off.receive(PeerId(1), &tampered, 1)).len(), 1);
}

#[test]
fn signature_survives_reformatting_and_seen_rewriting() {
    let good = put_frame(Some(alice()), write("s", "k", "v1", 1), 107);
    // As a Gun.js relay would pass it on: keys re-ordered, `><` rewritten,
    // pretty-printed.
    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    let obj = v.as_object_mut().unwrap();
    obj.insert("><".into(), json!("x,y,z"));
    let mut fields: Vec<(String, serde_json::Value)> = std::mem::take(obj).into_iter().collect();
    fields.reverse();
    obj.extend(fields);
    let rewritten = serde_json::to_string_pretty(&v).unwrap();
    assert_ne!(rewritten, good);
    let mut r = receiver(AuthPolicy::Require);
    assert_eq!(delivered(&r.receive(PeerId(1), &rewritten, 1)).len(), 1);
}

#[test]
fn predicates_filter_incoming_messages() {
    let no_admin = |_: PeerId, m: &Message| {
        m.put
            .as_ref()
            .is_none_or(|g| g.souls().all(|s| !s.as_str().starts_with("admin/")))
    };
    let mut r = Mesh::new(MeshConfig {
        pid: Some("R".into()),
        rng_seed: Some(2),
        predicates: vec![Arc::new(no_admin)],
        ..MeshConfig::relay()
    });
    r.connect(PeerId(1), Direction::Incoming, 0);
    let admin = put_frame(None, write("admin/x", "k", "v", 1), 108);
    let user = put_frame(None, write("user/x", "k", "v", 1), 109);
    assert!(delivered(&r.receive(PeerId(1), &admin, 1)).is_empty());
    assert_eq!(delivered(&r.receive(PeerId(1), &user, 2)).len(), 1);
}

/// A (signs) writes through relay R (no verifier, no signer) to relay B
/// (requires A's signature), on the mock network: R relays the put with A's
/// signature unchanged (and its own `><`), and B stores it. A put by an
/// unsigned client on R never reaches B's store; R signs nothing itself.
#[test]
fn signatures_survive_relaying_through_a_peer_that_does_not_verify() {
    let mut net = MockNet::new(3);
    let a = TestHub::new(
        Node::new(MeshConfig {
            pid: Some("A".into()),
            rng_seed: Some(10),
            signer: Some(alice()),
            ..MeshConfig::client()
        }),
        net.clock(),
    );
    let r = TestHub::new(Node::relay("R", 20), net.clock());
    let b = TestHub::new(
        Node::new(MeshConfig {
            pid: Some("B".into()),
            rng_seed: Some(30),
            verifier: Some(knows_alice()),
            auth_policy: AuthPolicy::Require,
            ..MeshConfig::relay()
        }),
        net.clock(),
    );
    let c = TestHub::new(Node::client("C", 40), net.clock());
    let ia = net.add_hub(a.clone() as Arc<dyn Hub>);
    let ir = net.add_hub(r.clone() as Arc<dyn Hub>);
    let ib = net.add_hub(b.clone() as Arc<dyn Hub>);
    let ic = net.add_hub(c.clone() as Arc<dyn Hub>);
    net.connect(ia, ir, "ws://r/gun");
    net.connect(ic, ir, "ws://r/gun");
    net.connect(ib, ir, "ws://r/gun"); // B dials R: a full peer of R
    net.advance(1);
    net.run_until_idle(100_000);

    a.write(write("doc", "title", "signed", 1));
    c.write(write("doc", "body", "unsigned", 1));
    net.advance(1);
    net.run_until_idle(100_000);

    let r_graph = r.graph();
    assert!(r_graph.get("doc").unwrap().value("body").is_some());
    let bg = b.graph();
    let doc = bg.get("doc").expect("A's write reached B");
    assert_eq!(doc.value("title"), Some(&Value::from("signed")));
    assert_eq!(doc.value("body"), None);
    // What B received from R was A's signature, with R's `><`.
    let node = b.node.lock().unwrap();
    let relayed: Vec<&Message> = node
        .delivered
        .iter()
        .map(|(_, m)| m)
        .filter(|m| m.put.is_some())
        .collect();
    assert_eq!(relayed.len(), 1);
    assert_eq!(relayed[0].extra[SIG_FIELD]["k"], "alice");
    assert!(relayed[0].seen.is_some());
}

/// Counts its signatures (to see when they are made).
struct CountingSigner(std::sync::atomic::AtomicUsize);

impl MessageSigner for CountingSigner {
    fn sign(&self, canonical: &[u8]) -> serde_json::Value {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        json!({"k": "alice", "h": mac(11, canonical)})
    }
}

/// A relay mesh "R" signing with a [`CountingSigner`].
fn relay_with_counting_signer(seed: u64) -> (Mesh, Arc<CountingSigner>) {
    let signer = Arc::new(CountingSigner(std::sync::atomic::AtomicUsize::new(0)));
    let r = Mesh::new(MeshConfig {
        pid: Some("R".into()),
        rng_seed: Some(seed),
        signer: Some(signer.clone() as Arc<dyn MessageSigner>),
        ..MeshConfig::relay()
    });
    (r, signer)
}

/// An ack and a push leave the mesh unsigned and unencoded: the signature is
/// made when the frame's text is first taken, which the mesh's owner does
/// after releasing its lock. The text then carries a valid signature.
#[test]
fn acks_pushes_and_own_gets_are_signed_when_their_text_is_taken() {
    let (mut r, signer) = relay_with_counting_signer(3);
    r.connect(PeerId(1), Direction::Incoming, 0);
    r.connect(PeerId(2), Direction::Incoming, 0);
    // Peer 2 subscribes to "s".
    let get = r##"{"#":"g1","get":{"#":"s"}}"##;
    let _ = r.receive(PeerId(2), get, 1);
    let taken = |out: &[Output]| -> Vec<String> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send { frame, .. } => Some(frame.text().to_string()),
                _ => None,
            })
            .collect()
    };
    let count = || signer.0.load(std::sync::atomic::Ordering::SeqCst);
    let before = count();

    // The ack of a write.
    let out = r.reply(PeerId(1), Message::ack_ok("w1"), 2);
    assert_eq!(
        count(),
        before,
        "an ack is not signed before its text is taken"
    );
    let texts = taken(&out);
    assert_eq!(texts.len(), 1);
    assert_eq!(count(), before + 1);
    let m = gun_dam::parse_frame(&texts[0]).remove(0).unwrap();
    let sig = m.extra.get(SIG_FIELD).expect("the ack is signed");
    assert!(knows_alice().verify(canonical(&m).unwrap().as_bytes(), sig));
    // Taking the text again signs nothing more.
    let _ = taken(&out);
    assert_eq!(count(), before + 1);

    // The push of a write to the subscriber.
    let out = r.publish(&write("s", "k", "v", 1), None, 3);
    let sends = out
        .iter()
        .filter(|o| matches!(o, Output::Send { to, .. } if *to == PeerId(2)))
        .count();
    assert_eq!(sends, 1, "{out:?}");
    assert_eq!(
        count(),
        before + 1,
        "a push is not signed before its text is taken"
    );
    let texts = taken(&out);
    assert_eq!(count(), before + 2);
    let m = gun_dam::parse_frame(&texts[0]).remove(0).unwrap();
    let sig = m.extra.get(SIG_FIELD).expect("the push is signed");
    assert!(knows_alice().verify(canonical(&m).unwrap().as_bytes(), sig));

    // A get of our own (one frame for the peers it goes to).
    let soul = gun_graph::Soul::new("t").unwrap();
    let (_, out) = r.request(Message::get(gun_dam::Get::node(soul)), 4);
    assert!(!out.is_empty(), "{out:?}");
    assert_eq!(
        count(),
        before + 2,
        "our own get is not signed before its text is taken"
    );
    let texts = taken(&out);
    assert_eq!(count(), before + 3, "one signature for all its sends");
    let m = gun_dam::parse_frame(&texts[0]).remove(0).unwrap();
    assert!(m.get.is_some());
    let sig = m.extra.get(SIG_FIELD).expect("our get is signed");
    assert!(knows_alice().verify(canonical(&m).unwrap().as_bytes(), sig));
}

/// Our own writes, and a client's write as it goes on to full peers (signed
/// by us), also leave the mesh unsigned: one signature when the text is first
/// taken, shared by every full peer and by the re-send queue of a URL that is
/// down, whose reconnect sends that same text.
#[test]
fn own_puts_and_writes_for_full_peers_are_signed_when_their_text_is_taken() {
    let (mut r, signer) = relay_with_counting_signer(5);
    let (client, full, up) = (PeerId(1), PeerId(2), PeerId(3));
    r.connect(client, Direction::Incoming, 0);
    r.connect(full, Direction::Incoming, 0);
    let _ = r.receive(full, r##"{"#":"hf","dam":"?","pid":"F","gunrs":1}"##, 0);
    let url = "ws://up/gun";
    let _ = r.connect(up, Direction::Outgoing { url: url.into() }, 0);
    let _ = r.receive(up, r##"{"#":"hu","dam":"?","pid":"U","gunrs":1}"##, 0);
    r.disconnect(up); // its writes wait in the re-send queue
    let count = || signer.0.load(std::sync::atomic::Ordering::SeqCst);
    let text_to = |out: &[Output], peer: PeerId| -> Vec<String> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send { to, frame } if *to == peer => Some(frame.text().to_string()),
                _ => None,
            })
            .collect()
    };

    // A client's write, published to the full peer.
    let before = count();
    let out = r.publish(&write("s", "k", "v", 1), Some((client, "w1")), 1);
    assert_eq!(r.pending_puts(url), 1);
    assert_eq!(count(), before, "signed before its text was taken");
    let texts = text_to(&out, full);
    assert_eq!(texts.len(), 1, "{out:?}");
    assert_eq!(count(), before + 1);
    let m = gun_dam::parse_frame(&texts[0]).remove(0).unwrap();
    assert_eq!(m.id.as_deref(), Some("w1"));
    let sig = m.extra.get(SIG_FIELD).expect("the relayed write is signed");
    assert!(knows_alice().verify(canonical(&m).unwrap().as_bytes(), sig));

    // Our own write.
    let (id, out) = r.request(Message::put(write("t", "k", "v", 2)), 2);
    assert_eq!(r.pending_puts(url), 2);
    assert_eq!(
        count(),
        before + 1,
        "our own write signed before its text was taken"
    );
    let texts = text_to(&out, full);
    assert_eq!(count(), before + 2);
    let m = gun_dam::parse_frame(&texts[0]).remove(0).unwrap();
    assert_eq!(m.id.as_deref(), Some(id.as_str()));
    let sig = m.extra.get(SIG_FIELD).expect("our write is signed");
    assert!(knows_alice().verify(canonical(&m).unwrap().as_bytes(), sig));

    // The URL comes back: both writes are sent again, with the text already
    // made (no new signature).
    let out = r.connect(PeerId(4), Direction::Outgoing { url: url.into() }, 3);
    let again = text_to(&out, PeerId(4));
    let puts: Vec<Message> = again
        .iter()
        .flat_map(|t| gun_dam::parse_frame(t))
        .filter_map(Result::ok)
        .filter(|m| m.put.is_some())
        .collect();
    assert_eq!(puts.len(), 2, "{again:?}");
    assert_eq!(count(), before + 2, "a re-sent write was signed again");
    for m in &puts {
        let sig = m.extra.get(SIG_FIELD).expect("a re-sent write is signed");
        assert!(knows_alice().verify(canonical(m).unwrap().as_bytes(), sig));
    }
}
