//! # gun-sea: Gun.js SEA, byte-compatible
//!
//! SEA is Gun's "security, encryption, authorization" layer. This crate
//! reproduces what `sea.js` of npm `gun@0.2020.1241` produces and accepts, to
//! the byte, and enforces SEA's rules on incoming writes as a
//! [`gun_dam::Validator`]:
//!
//! * key pairs ([`Pair`]): ECDSA and ECDH P-256, in Gun's `x.y` base64url text;
//! * [`sign`] / [`verify`]: `SEA{"m":…,"s":…}`; [`encrypt`] / [`decrypt`]:
//!   `SEA{"ct":…,"iv":…,"s":…}`; [`work`] (PBKDF2 or a digest); [`secret`] (ECDH);
//! * user space: [`pub_of_soul`], [`sign_value`] / [`verify_value`] for the
//!   signed values `{":":value,"~":sig}` Gun writes under `~pub` souls, and
//!   [`certify`] / [`sign_value_certified`] for writes into another user's space;
//! * [`SeaValidator`]: aliases, user space, certificates, content addressing,
//!   `<?N` souls;
//! * user accounts over the Chain API (`User`, `UserChain`, feature `users`):
//!   Gun.js's `user.create` / `user.auth` / `user.leave`, signed writes and
//!   verified reads in user space.
//!
//! **What it is not.** The crypto and the validator are plain synchronous
//! functions over [`gun_graph`] values: no engine, no store, no mesh, no async
//! runtime. They need only `gun-graph` and `gun-dam` (for the validator seam,
//! [`gun_dam::Validator`]); an engine takes a [`SeaValidator`] with its
//! `add_validator`. This crate is not a database: only the accounts (feature
//! `users`) run on one.
//!
//! ## Features
//!
//! | feature | default | brings | needs |
//! |---|---|---|---|
//! | `users` | yes | `User`, `UserChain`, `UserInfo`, `UserError`: accounts on the gun-core Chain API | `gun-core` (the engine) and `tokio` |
//! | `bls` | yes | module `bls`: BLS12-381 keys, signing and the mesh's message signer/verifier; module `bls_cert`: write certificates and their validator | `blst`, `zeroize` |
//!
//! For the crypto alone, depend on it with `default-features = false`: the
//! example below (pair, sign, verify, encrypt, secret, signed values and the
//! validator) builds so.
//!
//! ```
//! use gun_sea::{Pair, sign, verify, encrypt, decrypt, secret, sign_value, verify_value};
//! use gun_graph::{State, Value};
//! use serde_json::json;
//!
//! let alice = Pair::generate()?;
//! let bob = Pair::generate()?;
//!
//! // Signatures: any JSON value; verification returns it.
//! let signed = sign(&json!({"hello": "world"}), &alice)?;
//! assert!(signed.starts_with(r#"SEA{"m":{"hello":"world"},"s":""#));
//! assert_eq!(verify(&signed, &alice.pub_)?, json!({"hello": "world"}));
//! assert!(verify(&signed, &bob.pub_).is_err());
//!
//! // Encryption with a shared secret (both sides derive the same passphrase).
//! let key = secret(&bob.epub, &alice)?;
//! assert_eq!(key, secret(&alice.epub, &bob)?);
//! let sealed = encrypt(&json!("meet at noon"), key.as_str())?;
//! assert_eq!(decrypt(&sealed, key.as_str())?, json!("meet at noon"));
//!
//! // A value in Alice's user space, as it travels on the wire.
//! let soul = format!("~{}", alice.pub_);
//! let state = State::new(1795643451809.001).unwrap();
//! let wire = sign_value(&soul, "status", &Value::from("online"), state, &alice)?;
//! assert_eq!(verify_value(&soul, "status", &wire, state, &alice.pub_)?, Value::from("online"));
//!
//! // The enforcement rules, as a validator (gun_dam::Validator).
//! let v = gun_sea::SeaValidator::new();
//! assert!(v.check_key(&soul, "status", &Value::from(wire.as_str()), 1795643451809.001).is_ok());
//! assert_eq!(
//!     v.check_key(&soul, "status", &Value::from("plain"), 1795643451809.001).unwrap_err().to_string(),
//!     "Unverified data."
//! );
//! # Ok::<(), gun_sea::Error>(())
//! ```
//!
//! ## Compatibility notes
//!
//! **Formats.** Every signed or hashed text comes from [`gun_graph::json`],
//! which matches JavaScript's `JSON.stringify` (number text, escapes, key
//! order); serde_json's writer is never used for it. Signatures are P-256 ECDSA
//! over SHA-256 of SHA-256(text) (WebCrypto hashes SEA's digest again), as raw
//! `r‖s` in standard base64. Our signatures are deterministic (RFC 6979); Gun's
//! are random; both verify everywhere. High-S signatures, which WebCrypto
//! produces half of the time, are accepted. Base64 input is decoded as
//! `atob` does (padding optional, white space ignored).
//!
//! **What is not reproduced.** Gun.js's legacy fallbacks are only in
//! [`verify_legacy`] (never used by the validator: it makes a signature of the
//! text `[object Object]` verify any object). Decryption accepts IVs of 12 to
//! 16 bytes (SEA uses 15) and not the pre-2019 "utf8" encoding. JSON that
//! JavaScript parses but serde_json refuses (numbers beyond `f64`, lone
//! surrogate escapes) is treated as non-JSON.
//!
//! **`work`** takes every option SEA's does (digests SHA-1/256/384/512, PBKDF2
//! with any of them, base64/hex/utf8 output) and [`work_value`] coerces
//! arguments as SEA does. Like SEA, it draws a random salt when the salt is
//! empty or otherwise falsy (`""`, `0`, `false`, `null`), so such a proof can
//! never be reproduced.
//!
//! **Enforcement differs from Gun.js where Gun.js is lax or cannot be mirrored
//! by a validator** (validators see a whole put before HAM and can
//! accept or refuse it only as a whole):
//!
//! * A put with one bad key is refused whole; Gun.js refuses that key alone,
//!   and only checks keys that won HAM.
//! * Where Gun.js drops a write without a word, we refuse with a text of our
//!   own: `<?N` souls older than N seconds ([`Error::Forgotten`]), a certificate
//!   not signed by the owner ([`Error::CertificateNotByOwner`]), a writer not
//!   listed ([`Error::CertificantNotListed`]), a certificate that makes Gun.js
//!   throw ([`Error::CertificateMalformed`]).
//! * A value whose `*` names a writer other than the soul's owner is refused
//!   without a valid certificate ([`Error::CertificateRequired`]). Gun.js 1241
//!   checks only the writer's own signature then, so anybody can overwrite
//!   anybody's user data; Gun peers still accept such data.
//! * Certificates whose `c` is an array of pubs work (Gun.js 1241 silently
//!   ignores writes under them; fixed on GitHub later).
//! * Write block lists (`wb`) are read through a [`BlockList`] given to the
//!   validator; without one, writes under a certificate that names a block list
//!   are refused ([`Error::BlockListUnavailable`]), as they are when the reader
//!   fails ([`BlockList::try_value`]). Signed values on the list are unwrapped
//!   before the `1`/`true` test. The `gun` crate's relay reads the list from its
//!   store.

#[cfg(feature = "users")]
mod account;
#[cfg(feature = "bls")]
pub mod bls;
#[cfg(feature = "bls")]
pub mod bls_cert;
mod cert;
mod cipher;
mod encoding;
mod error;
mod js;
mod pair;
mod sign;
mod user;
mod validator;
mod work;

#[cfg(feature = "users")]
pub use account::{User, UserChain, UserError, UserInfo, UserMap};
pub use cert::{Certificants, CertifyOptions, certify};
pub use cipher::{Key, decrypt, decrypt_json, encrypt};
pub use error::{Error, Result};
pub use pair::{Pair, secret};
pub use sign::{sign, verify, verify_json, verify_legacy};
pub use user::{pub_of_soul, sign_value, sign_value_certified, verify_value};
pub use validator::{BlockList, SeaValidator};
pub use work::{WorkEncoding, WorkHash, WorkName, WorkOptions, work, work_value};

/// A JSON number as JavaScript would hold it (integers as integers).
pub(crate) fn number(f: f64) -> serde_json::Value {
    gun_graph::Value::Number(f).to_json()
}

/// Milliseconds since the Unix epoch, rounded down, as JavaScript's
/// `+new Date` (0 if the system clock is before 1970).
pub(crate) fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .map(f64::floor)
        .unwrap_or(0.0)
}
