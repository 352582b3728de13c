//! `SEA.work`: PBKDF2 proof of work, or a plain digest.
//!
//! What `SEA.work(data, salt, cb, opt)` of sea.js 0.2020.1241 does, step by step
//! (each step is mirrored here):
//!
//! 1. `salt = (salt || {}).epub || salt`: a key pair stands for its `epub`;
//! 2. data that is not a string is replaced by `JSON.stringify(data)`;
//! 3. `opt.name` starting with `sha` (any case) selects a plain digest of the data
//!    with that WebCrypto name (`SHA-1`, `SHA-256`, `SHA-384`, `SHA-512`, any
//!    case); the salt and the PBKDF2 options are ignored then;
//! 4. otherwise PBKDF2 (`opt.name` must then be `PBKDF2` in any case, or falsy):
//!    the salt is `opt.salt || salt || random(9)`, each a JavaScript value passed
//!    through `TextEncoder` (so `ToString`: `123` → `"123"`, `[1,2]` → `"1,2"`,
//!    objects → `"[object Object]"`, the random bytes → their latin-1 text), so a
//!    **falsy salt (`""`, `0`, `false`, `null`) means a random one**;
//!    `opt.iterations || 100000` rounds of HMAC with `opt.hash || SHA-256`,
//!    `opt.length || 512` bits (a multiple of 8);
//! 5. the bytes are printed with `opt.encode || "base64"`: `base64`, `hex` or
//!    `utf8` (each byte as the character with that code); any other encoding
//!    makes SEA return `undefined`.
//!
//! Wherever SEA fails (returns `undefined`), [`work`] returns an error.

use pbkdf2::hmac::EagerHash;
use rand::TryRngCore as _;
use rand::rngs::OsRng;
use serde_json::Value as J;
use sha2::Digest as _;

use crate::encoding;
use crate::error::{Error, Result};
use crate::js;

/// A hash function WebCrypto knows (the `opt.name` digests and the PBKDF2 `opt.hash`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WorkHash {
    /// SHA-1.
    Sha1,
    /// SHA-256 (SEA's default).
    #[default]
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl WorkHash {
    /// The hash for a WebCrypto algorithm name (ASCII case-insensitive, as
    /// WebCrypto normalizes names): `SHA-1`, `SHA-256`, `SHA-384`, `SHA-512`.
    pub fn from_name(name: &str) -> Option<WorkHash> {
        [
            ("SHA-1", WorkHash::Sha1),
            ("SHA-256", WorkHash::Sha256),
            ("SHA-384", WorkHash::Sha384),
            ("SHA-512", WorkHash::Sha512),
        ]
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, h)| h)
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            WorkHash::Sha1 => sha1::Sha1::digest(data).to_vec(),
            WorkHash::Sha256 => sha2::Sha256::digest(data).to_vec(),
            WorkHash::Sha384 => sha2::Sha384::digest(data).to_vec(),
            WorkHash::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    fn pbkdf2(self, password: &[u8], salt: &[u8], rounds: u32, out: &mut [u8]) {
        fn run<D: EagerHash>(password: &[u8], salt: &[u8], rounds: u32, out: &mut [u8]) {
            pbkdf2::pbkdf2_hmac::<D>(password, salt, rounds, out);
        }
        match self {
            WorkHash::Sha1 => run::<sha1::Sha1>(password, salt, rounds, out),
            WorkHash::Sha256 => run::<sha2::Sha256>(password, salt, rounds, out),
            WorkHash::Sha384 => run::<sha2::Sha384>(password, salt, rounds, out),
            WorkHash::Sha512 => run::<sha2::Sha512>(password, salt, rounds, out),
        }
    }
}

/// Which function [`work`] runs (SEA's `opt.name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WorkName {
    /// PBKDF2-HMAC with [`WorkOptions::hash`] (SEA's default).
    #[default]
    Pbkdf2,
    /// SHA-256 of the data; salt and PBKDF2 options are ignored (`{name: "SHA-256"}`).
    Sha256,
    /// SHA-1 of the data (`{name: "SHA-1"}`).
    Sha1,
    /// SHA-384 of the data (`{name: "SHA-384"}`).
    Sha384,
    /// SHA-512 of the data (`{name: "SHA-512"}`).
    Sha512,
}

impl WorkName {
    fn digest(self) -> Option<WorkHash> {
        match self {
            WorkName::Pbkdf2 => None,
            WorkName::Sha1 => Some(WorkHash::Sha1),
            WorkName::Sha256 => Some(WorkHash::Sha256),
            WorkName::Sha384 => Some(WorkHash::Sha384),
            WorkName::Sha512 => Some(WorkHash::Sha512),
        }
    }
}

/// How [`work`] prints its bytes (SEA's `opt.encode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WorkEncoding {
    /// Standard base64 with padding (the default).
    #[default]
    Base64,
    /// Lower-case hex.
    Hex,
    /// SEA's `"utf8"`: each byte as the character with that code (latin-1), so
    /// bytes ≥ 0x80 become two UTF-8 bytes of the returned text.
    Utf8,
}

/// Options of [`work`] (SEA's `opt`); [`Default`] is SEA's: PBKDF2-HMAC-SHA256,
/// 100 000 iterations, 512 bits, base64.
///
/// As in SEA, `0` iterations or length means the default.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkOptions {
    /// PBKDF2 or a digest.
    pub name: WorkName,
    /// PBKDF2 iterations (`0`: 100 000).
    pub iterations: u32,
    /// PBKDF2 output length in bits, a multiple of 8 (`0`: 512).
    pub length: u32,
    /// The HMAC hash of PBKDF2.
    pub hash: WorkHash,
    /// SEA's `opt.salt`: when set, it replaces the salt argument (even when
    /// empty: [`WorkOptions::from_json`] leaves it unset for a falsy `opt.salt`,
    /// and sets it to `""` for a truthy one whose text is empty, such as `[]`).
    pub salt: Option<String>,
    /// Output encoding.
    pub encode: WorkEncoding,
}

impl Default for WorkOptions {
    fn default() -> WorkOptions {
        WorkOptions {
            name: WorkName::Pbkdf2,
            iterations: 100_000,
            length: 512,
            hash: WorkHash::Sha256,
            salt: None,
            encode: WorkEncoding::Base64,
        }
    }
}

impl WorkOptions {
    /// SEA's `{name: "SHA-256"}`: base64 of SHA-256(data).
    pub fn sha256() -> WorkOptions {
        WorkOptions {
            name: WorkName::Sha256,
            ..WorkOptions::default()
        }
    }

    /// The same options with another iteration count.
    pub fn with_iterations(mut self, iterations: u32) -> WorkOptions {
        self.iterations = iterations;
        self
    }

    /// The same options with another output length in bits.
    pub fn with_length(mut self, bits: u32) -> WorkOptions {
        self.length = bits;
        self
    }

    /// The same options with another PBKDF2 hash.
    pub fn with_hash(mut self, hash: WorkHash) -> WorkOptions {
        self.hash = hash;
        self
    }

    /// The same options with another output encoding.
    pub fn with_encode(mut self, encode: WorkEncoding) -> WorkOptions {
        self.encode = encode;
        self
    }

    /// SEA's `opt` object as JSON, read as sea.js reads it: `name`, `encode`,
    /// `iterations`, `length`, `hash` (a name or `{name}`), `salt`; falsy
    /// members mean the default, other members are ignored. `null` is `{}`.
    ///
    /// Fails ([`Error::UnsupportedWork`]) where SEA's `work` would fail: an
    /// unknown name, hash or encoding, iterations that are not a positive
    /// integer, a length that is not a positive multiple of 8.
    pub fn from_json(opt: &J) -> Result<WorkOptions> {
        let get = |k: &str| js::prop(opt, k).filter(|v| js::truthy(v));
        let mut o = WorkOptions::default();
        if let Some(name) = get("name") {
            let name = name
                .as_str()
                .ok_or(Error::UnsupportedWork("name is not a string"))?;
            o.name = if name.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("sha")) {
                match WorkHash::from_name(name)
                    .ok_or(Error::UnsupportedWork("unknown digest name"))?
                {
                    WorkHash::Sha1 => WorkName::Sha1,
                    WorkHash::Sha256 => WorkName::Sha256,
                    WorkHash::Sha384 => WorkName::Sha384,
                    WorkHash::Sha512 => WorkName::Sha512,
                }
            } else if name.eq_ignore_ascii_case("PBKDF2") {
                WorkName::Pbkdf2
            } else {
                return Err(Error::UnsupportedWork(
                    "name is neither PBKDF2 nor a SHA digest",
                ));
            };
        }
        if let Some(enc) = get("encode") {
            o.encode = match enc.as_str() {
                Some("base64") => WorkEncoding::Base64,
                Some("hex") => WorkEncoding::Hex,
                Some("utf8") => WorkEncoding::Utf8,
                _ => return Err(Error::UnsupportedWork("encode must be base64, hex or utf8")),
            };
        }
        if o.name.digest().is_some() {
            // SEA returns before it reads any PBKDF2 option.
            return Ok(o);
        }
        if let Some(hash) = get("hash") {
            let name = match hash {
                J::String(s) => Some(s.as_str()),
                J::Object(m) => m.get("name").and_then(J::as_str),
                _ => None,
            };
            o.hash = name
                .and_then(WorkHash::from_name)
                .ok_or(Error::UnsupportedWork(
                    "hash must be SHA-1, SHA-256, SHA-384 or SHA-512",
                ))?;
        }
        if let Some(n) = get("iterations") {
            o.iterations = n
                .as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 1.0 && *f <= f64::from(i32::MAX))
                .map(|f| f as u32)
                .ok_or(Error::UnsupportedWork(
                    "iterations must be a positive integer",
                ))?;
        }
        if let Some(n) = get("length") {
            // WebCrypto tests `length % 8` and Node takes `length >> 3`: both
            // convert with `ToNumber`, so `"256"` is 256 bits.
            let n = match n {
                J::Number(n) => n.as_f64().unwrap_or(f64::NAN),
                J::String(s) => js::to_number_str(s),
                J::Bool(b) => f64::from(u8::from(*b)),
                other => js::to_number_str(&js::to_string(other)),
            };
            o.length = Some(n)
                .filter(|f| {
                    f.fract() == 0.0 && *f >= 8.0 && *f <= f64::from(i32::MAX) && *f % 8.0 == 0.0
                })
                .map(|f| f as u32)
                .ok_or(Error::UnsupportedWork(
                    "length must be a positive multiple of 8",
                ))?;
        }
        o.salt = get("salt").map(js::to_string);
        Ok(o)
    }
}

/// `SEA.work(data, salt, null, opt)` for string data and a string salt.
///
/// With PBKDF2 (the default): PBKDF2-HMAC of the UTF-8 of `data`, salt = UTF-8
/// of `salt` (or of [`WorkOptions::salt`] when that is set). **An empty or absent
/// salt means a random one**, as in SEA (which tests the salt for truthiness):
/// SEA then draws 9 random bytes and uses their latin-1 text, so the result can
/// never be reproduced (user accounts always pass a salt). With a digest name
/// ([`WorkOptions::sha256`]): the digest of `data`, no salt.
///
/// For SEA's other argument types (non-string data, a key pair, number or
/// array as salt, an `opt` object) use [`work_value`].
pub fn work(data: &str, salt: Option<&str>, opts: &WorkOptions) -> Result<String> {
    work_with(data, salt.filter(|s| !s.is_empty()), opts)
}

/// [`work`] with the salt already judged: `None` is SEA's random salt, `Some("")`
/// an empty one (a truthy salt whose text is empty, such as `[]`).
fn work_with(data: &str, salt: Option<&str>, opts: &WorkOptions) -> Result<String> {
    let bytes = match opts.name.digest() {
        Some(hash) => hash.digest(data.as_bytes()),
        None => {
            if !opts.length.is_multiple_of(8) {
                return Err(Error::UnsupportedWork(
                    "length must be a positive multiple of 8",
                ));
            }
            let length = if opts.length == 0 { 512 } else { opts.length };
            let iterations = if opts.iterations == 0 {
                100_000
            } else {
                opts.iterations
            };
            let salt = match opts.salt.as_deref().or(salt) {
                Some(s) => s.to_owned(),
                None => {
                    let mut b = [0u8; 9];
                    OsRng.try_fill_bytes(&mut b).map_err(|_| Error::Random)?;
                    encoding::latin1(&b)
                }
            };
            let mut out = vec![0u8; (length / 8) as usize];
            opts.hash
                .pbkdf2(data.as_bytes(), salt.as_bytes(), iterations, &mut out);
            out
        }
    };
    Ok(match opts.encode {
        WorkEncoding::Base64 => encoding::std_encode(&bytes),
        WorkEncoding::Hex => encoding::hex(&bytes),
        WorkEncoding::Utf8 => encoding::latin1(&bytes),
    })
}

/// `SEA.work(data, salt, null, opt)` for any JSON arguments, coerced as sea.js
/// coerces them: non-string `data` is hashed as `JSON.stringify(data)`; a salt
/// object with a truthy `epub` (a key pair) stands for that `epub`; any other
/// salt goes through JavaScript's `ToString` (`12` → `"12"`, `[1,null,"a"]` →
/// `"1,,a"`, `{}` → `"[object Object]"`), except that a falsy salt (`null`,
/// `false`, `0`, `""`) means a random one. Options: [`WorkOptions::from_json`].
///
/// ```
/// use gun_sea::{WorkOptions, work, work_value};
/// use serde_json::json;
///
/// let o = WorkOptions::default().with_iterations(10);
/// assert_eq!(work_value(&json!({"a": 1}), &json!(12), &o)?, work("{\"a\":1}", Some("12"), &o)?);
/// assert_eq!(work_value(&json!("pw"), &json!({"epub": "E"}), &o)?, work("pw", Some("E"), &o)?);
/// // a falsy salt is a random one
/// assert_ne!(work_value(&json!("pw"), &json!(0), &o)?, work_value(&json!("pw"), &json!(0), &o)?);
/// # Ok::<(), gun_sea::Error>(())
/// ```
pub fn work_value(data: &J, salt: &J, opts: &WorkOptions) -> Result<String> {
    let salt = match js::prop(salt, "epub") {
        Some(epub) if js::truthy(epub) => epub,
        _ => salt,
    };
    let salt = js::truthy(salt).then(|| js::to_string(salt));
    work_with(&js::text_of(data), salt.as_deref(), opts)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sha256_mode() {
        assert_eq!(
            work("hello", None, &WorkOptions::sha256()).unwrap(),
            "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="
        );
        assert_eq!(
            work(
                "hello",
                None,
                &WorkOptions::sha256().with_encode(WorkEncoding::Hex)
            )
            .unwrap(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
    }

    #[test]
    fn other_digests_and_encodings() {
        // values printed by SEA.work('hello', null, null, {name, encode})
        let o = WorkOptions::from_json(&json!({"name": "sha-1", "encode": "hex"})).unwrap();
        assert_eq!(
            work("hello", Some("ignored"), &o).unwrap(),
            "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"
        );
        let o = WorkOptions::from_json(&json!({"name": "SHA-1", "encode": "utf8"})).unwrap();
        assert_eq!(
            work("hello", None, &o).unwrap(),
            "\u{aa}\u{f4}\u{c6}\u{1d}\u{dc}\u{c5}\u{e8}\u{a2}\u{da}\u{be}\u{de}\u{f}\u{3b}\u{48}\u{2c}\u{d9}\u{ae}\u{a9}\u{43}\u{4d}"
        );
        let o = WorkOptions::from_json(&json!({"name": "Sha-512"})).unwrap();
        assert_eq!(
            work("x", None, &o).unwrap(),
            "pKvURIxJVi2CgRXROh/M6pJ/UrTVRZKX+LQ+QtqJI4vBNibkPcs43bCCSIkn7JBPtCBXRDmD6IWFF51QVRr+Yg=="
        );
    }

    #[test]
    fn pbkdf2_options_as_sea_reads_them() {
        // SEA.work('x', 's', null, {iterations: 2, length: 64, ...})
        let o = |v: J| WorkOptions::from_json(&v).unwrap();
        assert_eq!(
            work("x", Some("s"), &o(json!({"iterations": 2, "length": 64}))).unwrap(),
            "R+REi9J0tMQ="
        );
        assert_eq!(
            work(
                "x",
                Some("s"),
                &o(json!({"iterations": 2, "length": 64, "hash": {"name": "SHA-1"}}))
            )
            .unwrap(),
            "7N7iqI+/SNY="
        );
        assert_eq!(
            work(
                "x",
                Some("s"),
                &o(json!({"iterations": 2, "length": 64, "hash": "sha-512"}))
            )
            .unwrap(),
            "uhAjJfaYB4c="
        );
        assert_eq!(
            work(
                "x",
                Some("zz"),
                &o(json!({"iterations": 2, "length": 64, "salt": "s", "name": "pbkdf2"}))
            )
            .unwrap(),
            "R+REi9J0tMQ="
        );
        assert_eq!(
            work(
                "x",
                Some("s"),
                &o(json!({"iterations": 2, "length": 64, "encode": "hex"}))
            )
            .unwrap(),
            "47e4448bd274b4c4"
        );
        assert_eq!(
            o(json!({"iterations": 0, "length": 0, "salt": ""})),
            WorkOptions::default()
        );
        for bad in [
            json!({"name": "HKDF"}),
            json!({"name": "sha256"}),
            json!({"name": 5}),
            json!({"encode": "binary"}),
            json!({"encode": "HEX"}),
            json!({"hash": "MD5"}),
            json!({"iterations": -1}),
            json!({"iterations": 2.5}),
            json!({"iterations": "2"}),
            json!({"length": 12}),
            json!({"length": -8}),
            json!({"length": "12"}),
            json!({"length": "0"}),
            json!({"length": "x"}),
        ] {
            assert!(WorkOptions::from_json(&bad).is_err(), "{bad}");
        }
        assert_eq!(o(json!({"length": "256"})).length, 256);
        assert_eq!(o(json!({"length": [64]})).length, 64);
        // a digest ignores the PBKDF2 options, even invalid ones
        assert_eq!(
            WorkOptions::from_json(&json!({"name": "SHA-256", "length": 12})).unwrap(),
            WorkOptions::sha256()
        );
    }

    #[test]
    fn salts_are_coerced_like_javascript() {
        let o = WorkOptions::default().with_iterations(2).with_length(64);
        let w = |salt: J| work_value(&json!("x"), &salt, &o).unwrap();
        assert_eq!(w(json!(123)), work("x", Some("123"), &o).unwrap());
        assert_eq!(w(json!(1e21)), work("x", Some("1e+21"), &o).unwrap());
        assert_eq!(w(json!(true)), work("x", Some("true"), &o).unwrap());
        assert_eq!(
            w(json!({"a": 1})),
            work("x", Some("[object Object]"), &o).unwrap()
        );
        assert_eq!(
            w(json!({"epub": ""})),
            work("x", Some("[object Object]"), &o).unwrap()
        );
        assert_eq!(w(json!({"epub": "EP"})), work("x", Some("EP"), &o).unwrap());
        assert_eq!(
            w(json!([1, null, "a", [2, 3]])),
            work("x", Some("1,,a,2,3"), &o).unwrap()
        );
        assert_eq!(w(json!("s")), "R+REi9J0tMQ=");
        // an empty array is truthy: an empty (not a random) salt
        assert_eq!(w(json!([])), w(json!([])));
        let empty_opt =
            WorkOptions::from_json(&json!({"salt": [], "iterations": 2, "length": 64})).unwrap();
        assert_eq!(empty_opt.salt.as_deref(), Some(""));
        assert_eq!(
            w(json!([])),
            work("x", Some("random?"), &empty_opt).unwrap()
        );
        for falsy in [json!(""), json!(0), json!(false), json!(null)] {
            let (a, b) = (w(falsy.clone()), w(falsy.clone()));
            assert_ne!(a, b, "salt {falsy} must be random");
            assert_eq!(a.len(), "R+REi9J0tMQ=".len());
        }
        assert_ne!(
            work("x", Some(""), &o).unwrap(),
            work("x", Some(""), &o).unwrap()
        );
        // non-string data is hashed as its JSON text
        assert_eq!(
            work_value(&json!({"a": 1}), &json!("s"), &o).unwrap(),
            work("{\"a\":1}", Some("s"), &o).unwrap()
        );
    }

    #[test]
    fn pbkdf2_rfc_like() {
        // PBKDF2-HMAC-SHA256("password", "salt", 1, 32) (RFC 7914 style vector)
        let o = WorkOptions {
            length: 256,
            ..WorkOptions::default().with_iterations(1)
        };
        assert_eq!(
            work("password", Some("salt"), &o.with_encode(WorkEncoding::Hex)).unwrap(),
            "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"
        );
    }
}
