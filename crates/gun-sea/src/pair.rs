//! Key pairs and the key formats (JWK members joined as Gun does).

use std::fmt;

use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::{PublicKey, SecretKey};
use rand::TryRngCore as _;
use rand::rngs::OsRng;
use serde_json::Value as J;

use crate::encoding;
use crate::error::{Error, Result};

/// A SEA key pair: an ECDSA P-256 pair for signing and an ECDH P-256 pair for
/// encryption, in Gun's text form.
///
/// | field | content |
/// |---|---|
/// | `pub_` (`pub`) | `x.y`: base64url of the 32-byte X and Y of the signing key (87 chars) |
/// | `priv_` (`priv`) | base64url of the 32-byte signing scalar (43 chars) |
/// | `epub` | `x.y` of the encryption key (87 chars) |
/// | `epriv` | the encryption scalar (43 chars) |
///
/// A user's soul is `~` + `pub`. `Debug` hides the private halves.
#[derive(Clone, PartialEq, Eq)]
pub struct Pair {
    /// The public signing key, `x.y` (Gun's `pub`).
    pub pub_: String,
    /// The private signing key (Gun's `priv`).
    pub priv_: String,
    /// The public encryption key, `x.y`.
    pub epub: String,
    /// The private encryption key.
    pub epriv: String,
}

impl fmt::Debug for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pair")
            .field("pub", &self.pub_)
            .field("epub", &self.epub)
            .finish_non_exhaustive()
    }
}

impl Pair {
    /// A new random pair (`SEA.pair()`), from the operating system's generator.
    pub fn generate() -> Result<Pair> {
        let sign = random_secret()?;
        let enc = random_secret()?;
        Ok(Pair {
            pub_: pub_text(&sign.public_key())?,
            priv_: encoding::url_encode(&sign.to_bytes()),
            epub: pub_text(&enc.public_key())?,
            epriv: encoding::url_encode(&enc.to_bytes()),
        })
    }

    /// Reads Gun's JSON form `{"pub","priv","epub","epriv"}` (other fields are
    /// ignored). The keys are checked to decode.
    pub fn from_json(v: &J) -> Result<Pair> {
        let field = |name: &'static str| -> Result<String> {
            v.get(name)
                .and_then(J::as_str)
                .map(str::to_owned)
                .ok_or(Error::InvalidPair { field: name })
        };
        let pair = Pair {
            pub_: field("pub")?,
            priv_: field("priv")?,
            epub: field("epub")?,
            epriv: field("epriv")?,
        };
        verifying_key(&pair.pub_)?;
        signing_key(&pair.priv_)?;
        public_key(&pair.epub).map_err(|_| Error::InvalidKey { which: "epub" })?;
        secret_key(&pair.epriv).map_err(|_| Error::InvalidKey { which: "epriv" })?;
        Ok(pair)
    }

    /// Reads the pair from JSON text.
    pub fn from_json_str(text: &str) -> Result<Pair> {
        let v: J = serde_json::from_str(text).map_err(|_| Error::InvalidPair { field: "pub" })?;
        Pair::from_json(&v)
    }

    /// Gun's JSON form, keys in Gun's order: `{"pub","priv","epub","epriv"}`.
    pub fn to_json(&self) -> J {
        let mut m = serde_json::Map::new();
        m.insert("pub".into(), J::String(self.pub_.clone()));
        m.insert("priv".into(), J::String(self.priv_.clone()));
        m.insert("epub".into(), J::String(self.epub.clone()));
        m.insert("epriv".into(), J::String(self.epriv.clone()));
        J::Object(m)
    }
}

/// A random valid scalar: 32 bytes from the OS, retried in the (2^-32) case that
/// they are zero or not below the group order.
fn random_secret() -> Result<SecretKey> {
    loop {
        let mut bytes = [0u8; 32];
        OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|_| Error::Random)?;
        if let Ok(k) = SecretKey::from_slice(&bytes) {
            return Ok(k);
        }
    }
}

/// `x.y` text of a public key.
fn pub_text(key: &PublicKey) -> Result<String> {
    let sec1 = key.to_sec1_bytes();
    match sec1.split_first() {
        Some((4, xy)) if xy.len() == 64 => Ok(format!(
            "{}.{}",
            encoding::url_encode(&xy[..32]),
            encoding::url_encode(&xy[32..])
        )),
        _ => Err(Error::InvalidKey { which: "pub" }),
    }
}

/// Parses `x.y` into a P-256 point.
pub(crate) fn public_key(text: &str) -> Result<PublicKey> {
    let sec1 = public_sec1(text)?;
    PublicKey::from_sec1_bytes(&sec1).map_err(|_| Error::InvalidKey { which: "pub" })
}

/// The uncompressed SEC1 bytes (`04 ‖ x ‖ y`) of a `pub`, checked for form
/// only (not that the point is on the curve).
pub(crate) fn public_sec1(text: &str) -> Result<[u8; 65]> {
    let bad = Error::InvalidKey { which: "pub" };
    let (x, y) = text.split_once('.').ok_or(bad.clone())?;
    let (x, y) = (
        encoding::url_decode(x).ok_or(bad.clone())?,
        encoding::url_decode(y).ok_or(bad.clone())?,
    );
    if x.len() != 32 || y.len() != 32 {
        return Err(bad);
    }
    let mut sec1 = [0u8; 65];
    sec1[0] = 4;
    sec1[1..33].copy_from_slice(&x);
    sec1[33..].copy_from_slice(&y);
    Ok(sec1)
}

/// The ECDSA verifying key of a `pub`.
pub(crate) fn verifying_key(text: &str) -> Result<VerifyingKey> {
    public_key(text).map(VerifyingKey::from)
}

/// Parses a base64url scalar.
pub(crate) fn secret_key(text: &str) -> Result<SecretKey> {
    let bad = Error::InvalidKey { which: "priv" };
    let bytes = encoding::url_decode(text).ok_or(bad.clone())?;
    if bytes.len() != 32 {
        return Err(bad);
    }
    SecretKey::from_slice(&bytes).map_err(|_| bad)
}

/// The ECDSA signing key of a `priv`.
pub(crate) fn signing_key(text: &str) -> Result<SigningKey> {
    secret_key(text).map(SigningKey::from)
}

/// `SEA.secret(otherEpub, pair)`: the ECDH shared secret of `other_epub` and
/// `my_pair.epriv`, as base64url of the 32-byte X coordinate (43 chars). Both
/// sides get the same text; SEA uses it as the passphrase for
/// [`encrypt`](crate::encrypt).
pub fn secret(other_epub: &str, my_pair: &Pair) -> Result<String> {
    let other = public_key(other_epub).map_err(|_| Error::InvalidKey { which: "epub" })?;
    let mine = secret_key(&my_pair.epriv).map_err(|_| Error::InvalidKey { which: "epriv" })?;
    let shared = mine.diffie_hellman(&other);
    Ok(encoding::url_encode(shared.raw_secret_bytes()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_pairs_have_gun_shapes() {
        let p = Pair::generate().unwrap();
        assert_eq!(p.pub_.len(), 87);
        assert_eq!(p.priv_.len(), 43);
        assert_eq!(p.epub.len(), 87);
        assert_eq!(p.epriv.len(), 43);
        let back = Pair::from_json(&p.to_json()).unwrap();
        assert_eq!(back, p);
        assert!(!format!("{p:?}").contains(&p.priv_));
        // the pub is the point of priv
        let sk = signing_key(&p.priv_).unwrap();
        assert_eq!(sk.verifying_key(), &verifying_key(&p.pub_).unwrap());
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(public_key("abc.def").is_err());
        assert!(public_key("no-dot").is_err());
        assert!(secret_key("AAAA").is_err());
        assert!(Pair::from_json(&serde_json::json!({"pub": "x"})).is_err());
    }
}
