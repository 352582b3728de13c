//! BLS write certificates (feature `bls`): an authority grants a public key
//! write access to souls, soul prefixes, or some keys of them, until an
//! expiry; [`BlsCertValidator`] enforces them on a peer as a
//! [`gun_dam::Validator`].
//!
//! A certificate is a JSON object; its body (every member but `s`) is signed
//! by the authority's BLS key ([`crate::bls`]) over
//!
//! ```text
//! "gun-rs/cert/1\n" + <body with the keys of every object sorted>
//! ```
//!
//! so re-formatted copies verify, and a certificate signature can never be
//! taken for a message signature (those sign `"gun-rs/msg/1\n…"`). Members:
//!
//! | member | meaning |
//! | --- | --- |
//! | `v` | version, `1` |
//! | `a` | the authority's public key (base64url) |
//! | `p` | the grantee's public key (base64url) |
//! | `e` | expiry, milliseconds since the Unix epoch (the certificate is valid while `now < e`) |
//! | `g` | the grants: `{"#": soul}` one soul, or `{"*": prefix}` every soul starting with `prefix`; with `".": [keys]` only those keys, else every key |
//! | `s` | the authority's signature of the body (base64url) |
//!
//! A writer sends its certificate in the message extension field
//! [`gun_dam::CERT_FIELD`] (`"gunrs:cert"`) of its signed puts
//! ([`crate::bls::BlsSigner::with_certificate`]); Gun.js relays pass both
//! fields on unchanged.
//!
//! ```
//! use gun_sea::bls::BlsKeyPair;
//! use gun_sea::bls_cert::{BlsCertificate, Grant};
//!
//! let authority = BlsKeyPair::from_seed(&[1; 32]);
//! let writer = BlsKeyPair::from_seed(&[2; 32]);
//! let cert = BlsCertificate::issue(
//!     &authority,
//!     writer.public(),
//!     vec![Grant::prefix("posts/"), Grant::soul("profile").keys(["name"])],
//!     4_102_444_800_000, // 2100-01-01
//! );
//! let back = BlsCertificate::from_json(&cert.to_json())?;
//! back.verify(authority.public(), 1_800_000_000_000)?;
//! assert!(back.covers("posts/1", "title"));
//! assert!(back.covers("profile", "name"));
//! assert!(!back.covers("profile", "admin"));
//! # Ok::<(), gun_sea::bls_cert::BlsCertError>(())
//! ```

use std::fmt;
use std::sync::Arc;

use gun_dam::Message;
use gun_dam::auth::write_sorted_json;
use gun_dam::{Origin, PutContext, Validator};
use gun_graph::Graph;
use serde_json::{Map, Value};

use crate::bls::{self, BlsKeyPair, BlsPublicKey, BlsSignature};

/// The first line of every signed certificate text.
pub const CERT_PREFIX: &str = "gun-rs/cert/1\n";

/// Why a certificate or a protected write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlsCertError {
    /// Not a certificate (a member missing or of the wrong type, a bad key).
    #[error("malformed BLS certificate: {0}")]
    Malformed(String),
    /// Issued by another key than the configured authority.
    #[error("BLS certificate not issued by the authority")]
    WrongAuthority,
    /// The authority's signature does not verify.
    #[error("BLS certificate signature invalid")]
    BadSignature,
    /// Past its expiry.
    #[error("BLS certificate expired")]
    Expired,
    /// A write to a protected soul without a valid message signature.
    #[error("write to a protected soul is not BLS-signed")]
    Unsigned,
    /// A write to a protected soul without a certificate.
    #[error("write to a protected soul without a BLS certificate")]
    Missing,
    /// The certificate is for another key than the message's signer.
    #[error("BLS certificate granted to another key")]
    NotGrantee,
    /// The certificate does not cover this soul and key.
    #[error("BLS certificate does not cover {soul}.{key}")]
    NotCovered {
        /// The soul written.
        soul: String,
        /// The key written.
        key: String,
    },
}

/// One grant of a certificate: a soul or a soul prefix, and optionally only
/// some keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    soul: String,
    prefix: bool,
    keys: Option<Vec<String>>,
}

impl Grant {
    /// Exactly this soul.
    pub fn soul(soul: impl Into<String>) -> Grant {
        Grant {
            soul: soul.into(),
            prefix: false,
            keys: None,
        }
    }

    /// Every soul starting with `prefix`.
    pub fn prefix(prefix: impl Into<String>) -> Grant {
        Grant {
            soul: prefix.into(),
            prefix: true,
            keys: None,
        }
    }

    /// Only these keys of the souls (default: every key).
    pub fn keys<S: Into<String>>(mut self, keys: impl IntoIterator<Item = S>) -> Grant {
        self.keys = Some(keys.into_iter().map(Into::into).collect());
        self
    }

    /// Whether this grant lets its holder write `key` of `soul`.
    pub fn covers(&self, soul: &str, key: &str) -> bool {
        let soul_ok = if self.prefix {
            soul.starts_with(self.soul.as_str())
        } else {
            soul == self.soul
        };
        soul_ok
            && self
                .keys
                .as_ref()
                .is_none_or(|ks| ks.iter().any(|k| k == key))
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            if self.prefix { "*" } else { "#" }.into(),
            Value::from(self.soul.as_str()),
        );
        if let Some(keys) = &self.keys {
            m.insert(".".into(), Value::from(keys.clone()));
        }
        Value::Object(m)
    }

    fn from_json(v: &Value) -> Result<Grant, BlsCertError> {
        let bad = |w: &str| BlsCertError::Malformed(format!("grant: {w}"));
        let m = v.as_object().ok_or_else(|| bad("not an object"))?;
        let (soul, prefix) = match (m.get("#"), m.get("*")) {
            (Some(Value::String(s)), None) => (s.clone(), false),
            (None, Some(Value::String(p))) => (p.clone(), true),
            _ => return Err(bad("needs one of `#` (a soul) or `*` (a prefix)")),
        };
        let keys = match m.get(".") {
            None => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .map(|k| {
                        k.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| bad("keys must be strings"))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(_) => return Err(bad("`.` must be an array of keys")),
        };
        Ok(Grant { soul, prefix, keys })
    }
}

/// A write certificate (see the [module docs](self)).
#[derive(Clone, PartialEq, Eq)]
pub struct BlsCertificate {
    authority: BlsPublicKey,
    grantee: BlsPublicKey,
    grants: Vec<Grant>,
    expires_ms: u64,
    sig: BlsSignature,
}

impl fmt::Debug for BlsCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlsCertificate")
            .field("authority", &self.authority)
            .field("grantee", &self.grantee)
            .field("grants", &self.grants)
            .field("expires_ms", &self.expires_ms)
            .finish_non_exhaustive()
    }
}

fn body(
    authority: &BlsPublicKey,
    grantee: &BlsPublicKey,
    grants: &[Grant],
    expires_ms: u64,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("v".into(), Value::from(1));
    m.insert("a".into(), Value::from(authority.to_base64url()));
    m.insert("p".into(), Value::from(grantee.to_base64url()));
    m.insert("e".into(), Value::from(expires_ms));
    m.insert(
        "g".into(),
        Value::Array(grants.iter().map(Grant::to_json).collect()),
    );
    m
}

fn signed_text(body: &Map<String, Value>) -> String {
    let mut s = String::from(CERT_PREFIX);
    write_sorted_json(&mut s, &Value::Object(body.clone()));
    s
}

impl BlsCertificate {
    /// The authority grants `grantee` the `grants` until `expires_ms`
    /// (milliseconds since the Unix epoch).
    pub fn issue(
        authority: &BlsKeyPair,
        grantee: &BlsPublicKey,
        grants: Vec<Grant>,
        expires_ms: u64,
    ) -> BlsCertificate {
        let text = signed_text(&body(authority.public(), grantee, &grants, expires_ms));
        BlsCertificate {
            authority: *authority.public(),
            grantee: *grantee,
            grants,
            expires_ms,
            sig: authority.secret().sign(text.as_bytes()),
        }
    }

    /// The wire form (the value of [`gun_dam::CERT_FIELD`]).
    pub fn to_json(&self) -> Value {
        let mut m = body(
            &self.authority,
            &self.grantee,
            &self.grants,
            self.expires_ms,
        );
        m.insert("s".into(), Value::from(self.sig.to_base64url()));
        Value::Object(m)
    }

    /// Reads the wire form. The signature is not checked here: see
    /// [`BlsCertificate::verify`].
    pub fn from_json(v: &Value) -> Result<BlsCertificate, BlsCertError> {
        let bad = |w: &str| BlsCertError::Malformed(w.to_owned());
        let m = v.as_object().ok_or_else(|| bad("not an object"))?;
        if m.get("v").and_then(Value::as_u64) != Some(1) {
            return Err(bad("unknown version"));
        }
        let key = |k: &str| -> Result<BlsPublicKey, BlsCertError> {
            let t = m.get(k).and_then(Value::as_str).ok_or_else(|| bad(k))?;
            BlsPublicKey::from_base64url(t).map_err(|e| BlsCertError::Malformed(e.to_string()))
        };
        let authority = key("a")?;
        let grantee = key("p")?;
        let expires_ms = m.get("e").and_then(Value::as_u64).ok_or_else(|| bad("e"))?;
        let grants = m
            .get("g")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("g"))?
            .iter()
            .map(Grant::from_json)
            .collect::<Result<Vec<_>, _>>()?;
        let sig = m
            .get("s")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("s"))
            .and_then(|s| {
                BlsSignature::from_base64url(s).map_err(|e| BlsCertError::Malformed(e.to_string()))
            })?;
        Ok(BlsCertificate {
            authority,
            grantee,
            grants,
            expires_ms,
            sig,
        })
    }

    /// Checks that the certificate was signed by `authority` and has not
    /// expired at `now_ms`.
    pub fn verify(&self, authority: &BlsPublicKey, now_ms: u64) -> Result<(), BlsCertError> {
        if self.authority != *authority {
            return Err(BlsCertError::WrongAuthority);
        }
        let text = signed_text(&body(
            &self.authority,
            &self.grantee,
            &self.grants,
            self.expires_ms,
        ));
        if !authority.verify(text.as_bytes(), &self.sig) {
            return Err(BlsCertError::BadSignature);
        }
        if now_ms >= self.expires_ms {
            return Err(BlsCertError::Expired);
        }
        Ok(())
    }

    /// Whether some grant covers `key` of `soul`.
    pub fn covers(&self, soul: &str, key: &str) -> bool {
        self.grants.iter().any(|g| g.covers(soul, key))
    }

    /// The key the certificate was issued to.
    pub fn grantee(&self) -> &BlsPublicKey {
        &self.grantee
    }

    /// The issuing authority.
    pub fn authority(&self) -> &BlsPublicKey {
        &self.authority
    }

    /// The grants.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// Expiry, milliseconds since the Unix epoch.
    pub fn expires_ms(&self) -> u64 {
        self.expires_ms
    }
}

// Here rather than in `bls`: certificates build on BLS keys, so `bls` does not
// name this module (no cycle), and the path stays `bls::BlsSigner::with_certificate`.
impl bls::BlsSigner {
    /// Attaches `cert` (granted to this signer's public key) to the puts it signs.
    pub fn with_certificate(self, cert: &BlsCertificate) -> bls::BlsSigner {
        self.with_certificate_json(cert.to_json())
    }
}

/// A clock in milliseconds since the Unix epoch.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Enforces certificates on writes to protected souls (a [`gun_dam::Validator`]).
///
/// A write touching a soul that starts with one of the protected prefixes is
/// accepted only if its message carries a valid BLS signature
/// ([`gun_dam::SIG_FIELD`], checked here whatever the mesh's
/// [`gun_dam::AuthPolicy`]) by a key holding a certificate
/// ([`gun_dam::CERT_FIELD`]) signed by the authority, unexpired, that covers
/// every key written to every protected soul of the put. Writes to other souls
/// are not looked at.
///
/// Writes from peers and answers to gets are both checked (so a peer that
/// serves protected souls to a validating peer needs a certificate for them
/// too, attached by its [`crate::bls::BlsSigner`]). Local writes (the Chain
/// API of this process) are trusted unless [`BlsCertValidator::trust_local`]
/// is turned off.
#[derive(Clone)]
pub struct BlsCertValidator {
    authority: BlsPublicKey,
    protected: Vec<String>,
    trust_local: bool,
    clock: Clock,
}

impl fmt::Debug for BlsCertValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlsCertValidator")
            .field("authority", &self.authority)
            .field("protected", &self.protected)
            .field("trust_local", &self.trust_local)
            .finish_non_exhaustive()
    }
}

impl BlsCertValidator {
    /// Protects every soul starting with one of `prefixes` (`""` protects all).
    pub fn new<S: Into<String>>(
        authority: BlsPublicKey,
        prefixes: impl IntoIterator<Item = S>,
    ) -> BlsCertValidator {
        BlsCertValidator {
            authority,
            protected: prefixes.into_iter().map(Into::into).collect(),
            trust_local: true,
            clock: Arc::new(|| crate::now_ms() as u64),
        }
    }

    /// Whether local writes skip the check (default `true`).
    pub fn trust_local(mut self, trust: bool) -> BlsCertValidator {
        self.trust_local = trust;
        self
    }

    /// The clock expiry is checked against (default: the system clock).
    pub fn with_clock(mut self, clock: Clock) -> BlsCertValidator {
        self.clock = clock;
        self
    }

    fn protects(&self, soul: &str) -> bool {
        self.protected.iter().any(|p| soul.starts_with(p.as_str()))
    }

    /// Checks a write of `graph` carried by `msg` (`None`: no message, as for
    /// local writes).
    pub fn check_write(&self, graph: &Graph, msg: Option<&Message>) -> Result<(), BlsCertError> {
        let mut protected = graph
            .iter()
            .filter(|(s, _)| self.protects(s.as_str()))
            .peekable();
        if protected.peek().is_none() {
            return Ok(());
        }
        let msg = msg.ok_or(BlsCertError::Unsigned)?;
        let signer = bls::verify_message(msg).ok_or(BlsCertError::Unsigned)?;
        let cert = msg
            .extra
            .get(gun_dam::CERT_FIELD)
            .ok_or(BlsCertError::Missing)?;
        let cert = BlsCertificate::from_json(cert)?;
        cert.verify(&self.authority, (self.clock)())?;
        if cert.grantee != signer {
            return Err(BlsCertError::NotGrantee);
        }
        for (soul, node) in protected {
            for key in node.keys() {
                if !cert.covers(soul.as_str(), key) {
                    return Err(BlsCertError::NotCovered {
                        soul: soul.as_str().to_owned(),
                        key: key.to_owned(),
                    });
                }
            }
        }
        Ok(())
    }
}

impl Validator for BlsCertValidator {
    fn check(&self, ctx: &PutContext<'_>) -> Result<(), String> {
        if self.trust_local && matches!(ctx.origin, Origin::Local) {
            return Ok(());
        }
        self.check_write(ctx.graph, ctx.message)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::bls::BlsSigner;
    use gun_dam::{Direction, Mesh, MeshConfig, Output, PeerId, parse_frame};

    const NOW: u64 = 1_800_000_000_000;

    fn pair(n: u8) -> BlsKeyPair {
        BlsKeyPair::from_seed(&[n; 32])
    }

    fn validator() -> BlsCertValidator {
        BlsCertValidator::new(*pair(1).public(), ["app/"]).with_clock(Arc::new(|| NOW))
    }

    /// The frame a mesh signing with `signer` sends for a local put of `g`,
    /// parsed back as the receiving engine would see it.
    fn signed_put(signer: Option<BlsSigner>, g: &Graph) -> Message {
        let mut m = Mesh::new(MeshConfig {
            rng_seed: Some(5),
            signer: signer.map(|s| Arc::new(s) as Arc<dyn gun_dam::MessageSigner>),
            ..MeshConfig::client()
        });
        m.connect(
            PeerId(1),
            Direction::Outgoing {
                url: "ws://r/gun".into(),
            },
            0,
        );
        let (_, out) = m.request(Message::put(g.clone()), 1);
        let frame = out
            .iter()
            .find_map(|o| match o {
                Output::Send { frame, .. } => Some(frame.to_string()),
                _ => None,
            })
            .unwrap();
        parse_frame(&frame).remove(0).unwrap()
    }

    fn graph(soul: &str, key: &str) -> Graph {
        Graph::from_wire(&format!(
            r##"{{"{soul}":{{"_":{{"#":"{soul}",">":{{"{key}":1}}}},"{key}":"v"}}}}"##
        ))
        .unwrap()
    }

    fn writer_with(grants: Vec<Grant>, expires: u64) -> BlsSigner {
        let w = pair(2);
        let cert = BlsCertificate::issue(&pair(1), w.public(), grants, expires);
        BlsSigner::new(w).with_certificate(&cert)
    }

    #[test]
    fn granted_write_accepted() {
        let s = writer_with(vec![Grant::prefix("app/posts/")], NOW + 1);
        let g = graph("app/posts/1", "title");
        assert_eq!(
            validator().check_write(&g, Some(&signed_put(Some(s), &g))),
            Ok(())
        );
        // Key grants.
        let s = writer_with(vec![Grant::soul("app/profile").keys(["name"])], NOW + 1);
        let g = graph("app/profile", "name");
        assert_eq!(
            validator().check_write(&g, Some(&signed_put(Some(s), &g))),
            Ok(())
        );
        // Unprotected souls need nothing.
        let g = graph("public", "x");
        assert_eq!(validator().check_write(&g, None), Ok(()));
    }

    #[test]
    fn expired_refused() {
        let s = writer_with(vec![Grant::prefix("app/")], NOW);
        let g = graph("app/x", "k");
        assert_eq!(
            validator().check_write(&g, Some(&signed_put(Some(s), &g))),
            Err(BlsCertError::Expired)
        );
    }

    #[test]
    fn wrong_path_refused() {
        let s = writer_with(vec![Grant::prefix("app/posts/")], NOW + 1);
        let g = graph("app/admin", "k");
        assert!(matches!(
            validator().check_write(&g, Some(&signed_put(Some(s), &g))),
            Err(BlsCertError::NotCovered { .. })
        ));
        let s = writer_with(vec![Grant::soul("app/profile").keys(["name"])], NOW + 1);
        let g = graph("app/profile", "role");
        assert!(matches!(
            validator().check_write(&g, Some(&signed_put(Some(s), &g))),
            Err(BlsCertError::NotCovered { .. })
        ));
    }

    #[test]
    fn forged_cert_refused() {
        let g = graph("app/x", "k");
        // Issued by a key that is not the authority.
        let w = pair(2);
        let cert = BlsCertificate::issue(&pair(9), w.public(), vec![Grant::prefix("")], NOW + 1);
        let m = signed_put(Some(BlsSigner::new(w.clone()).with_certificate(&cert)), &g);
        assert_eq!(
            validator().check_write(&g, Some(&m)),
            Err(BlsCertError::WrongAuthority)
        );
        // The authority's certificate with its grants widened after signing.
        let cert = BlsCertificate::issue(
            &pair(1),
            w.public(),
            vec![Grant::prefix("app/posts/")],
            NOW + 1,
        );
        let mut forged = cert.to_json();
        forged["g"][0]["*"] = Value::from("app/");
        let mut m = signed_put(Some(BlsSigner::new(w.clone())), &g);
        m.extra.insert(gun_dam::CERT_FIELD.into(), forged);
        assert_eq!(
            validator().check_write(&g, Some(&m)),
            Err(BlsCertError::BadSignature)
        );
        // A genuine certificate, but the put is signed by another key.
        let cert =
            BlsCertificate::issue(&pair(1), w.public(), vec![Grant::prefix("app/")], NOW + 1);
        let m = signed_put(Some(BlsSigner::new(pair(3)).with_certificate(&cert)), &g);
        assert_eq!(
            validator().check_write(&g, Some(&m)),
            Err(BlsCertError::NotGrantee)
        );
        // A copied certificate and signature on a changed put.
        let m = signed_put(Some(BlsSigner::new(w).with_certificate(&cert)), &g);
        let mut tampered = m.clone();
        tampered.put = Some(graph("app/x", "other"));
        let g2 = graph("app/x", "other");
        assert_eq!(
            validator().check_write(&g2, Some(&tampered)),
            Err(BlsCertError::Unsigned)
        );
        // Unsigned, and signed without a certificate.
        let m = signed_put(None, &g);
        assert_eq!(
            validator().check_write(&g, Some(&m)),
            Err(BlsCertError::Unsigned)
        );
        let m = signed_put(Some(BlsSigner::new(pair(2))), &g);
        assert_eq!(
            validator().check_write(&g, Some(&m)),
            Err(BlsCertError::Missing)
        );
    }

    #[test]
    fn certificate_text_survives_reformatting() {
        let cert = BlsCertificate::issue(
            &pair(1),
            pair(2).public(),
            vec![Grant::prefix("a/").keys(["x", "y"])],
            NOW + 1,
        );
        let text = serde_json::to_string_pretty(&cert.to_json()).unwrap();
        let mut v: Value = serde_json::from_str(&text).unwrap();
        v.as_object_mut().unwrap().sort_keys();
        let back = BlsCertificate::from_json(&v).unwrap();
        assert_eq!(back, cert);
        assert_eq!(back.verify(pair(1).public(), NOW), Ok(()));
    }
}
