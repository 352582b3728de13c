//! `SEA.encrypt` / `SEA.decrypt`.

use aes_gcm::aead::Aead as _;
use aes_gcm::aead::consts::{U12, U13, U14, U15, U16};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, KeyInit as _};
use rand::TryRngCore as _;
use rand::rngs::OsRng;
use serde_json::Value as J;

use crate::encoding;
use crate::error::{Error, Result};
use crate::js;
use crate::pair::Pair;
use crate::sign::{sea_parse, sha256};

/// What [`encrypt`] and [`decrypt`] take as the key: a pair (its `epriv` text is
/// the passphrase, as in SEA) or a passphrase (e.g. the output of
/// [`secret`](crate::secret), or a user's password proof).
#[derive(Debug, Clone, Copy)]
pub enum Key<'a> {
    /// Use the pair's `epriv`.
    Pair(&'a Pair),
    /// Use this text.
    Passphrase(&'a str),
}

impl Key<'_> {
    fn text(&self) -> &str {
        match self {
            Key::Pair(p) => &p.epriv,
            Key::Passphrase(s) => s,
        }
    }
}

impl<'a> From<&'a Pair> for Key<'a> {
    fn from(p: &'a Pair) -> Key<'a> {
        Key::Pair(p)
    }
}

impl<'a> From<&'a str> for Key<'a> {
    fn from(s: &'a str) -> Key<'a> {
        Key::Passphrase(s)
    }
}

impl<'a> From<&'a String> for Key<'a> {
    fn from(s: &'a String) -> Key<'a> {
        Key::Passphrase(s)
    }
}

/// The AES-256 key: SHA-256 of UTF-8(`passphrase` + latin-1 text of the salt).
fn aes_key(passphrase: &str, salt: &[u8]) -> [u8; 32] {
    let mut combo = String::with_capacity(passphrase.len() + salt.len() * 2);
    combo.push_str(passphrase);
    combo.push_str(&encoding::latin1(salt));
    sha256(&combo)
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    OsRng.try_fill_bytes(&mut b).map_err(|_| Error::Random)?;
    Ok(b)
}

/// `SEA.encrypt(data, key)`: the text `SEA{"ct":…,"iv":…,"s":…}`.
///
/// The plaintext is `data` if it is a string, else `JSON.stringify(data)`. A
/// random 9-byte salt `s` and 15-byte IV are drawn; the AES-256-GCM key is
/// SHA-256(UTF-8(K + latin1(s))) where K is the passphrase (or the pair's
/// `epriv`); `ct` is ciphertext ‖ 16-byte tag. All three fields are standard
/// base64.
pub fn encrypt<'a>(data: &J, key: impl Into<Key<'a>>) -> Result<String> {
    let salt: [u8; 9] = random()?;
    let iv: [u8; 15] = random()?;
    encrypt_with(data, key.into(), &salt, &iv)
}

/// [`encrypt`] with a given salt and IV (15 bytes), for reproducible tests.
pub(crate) fn encrypt_with(data: &J, key: Key<'_>, salt: &[u8], iv: &[u8; 15]) -> Result<String> {
    let msg = js::text_of(data);
    let k = aes_key(key.text(), salt);
    let cipher = AesGcm::<Aes256, U15>::new(&k.into());
    let ct = cipher
        .encrypt(&(*iv).into(), msg.as_bytes())
        .map_err(|_| Error::DecryptFailed)?;
    let mut out = String::from("SEA{\"ct\":");
    gun_graph::json::write_str(&mut out, &encoding::std_encode(&ct));
    out.push_str(",\"iv\":");
    gun_graph::json::write_str(&mut out, &encoding::std_encode(iv));
    out.push_str(",\"s\":");
    gun_graph::json::write_str(&mut out, &encoding::std_encode(salt));
    out.push('}');
    Ok(out)
}

/// AES-256-GCM decryption for the IV lengths we support.
fn open(k: &[u8; 32], iv: &[u8], ct: &[u8]) -> Result<Vec<u8>> {
    macro_rules! with_iv {
        ($n:ty) => {{
            let cipher = AesGcm::<Aes256, $n>::new(&(*k).into());
            let nonce = aes_gcm::Nonce::<$n>::try_from(iv).map_err(|_| Error::DecryptFailed)?;
            cipher.decrypt(&nonce, ct).map_err(|_| Error::DecryptFailed)
        }};
    }
    match iv.len() {
        12 => with_iv!(U12),
        13 => with_iv!(U13),
        14 => with_iv!(U14),
        15 => with_iv!(U15),
        16 => with_iv!(U16),
        n => Err(Error::UnsupportedIv(n)),
    }
}

/// `SEA.decrypt(data, key)`: decrypts a `SEA{"ct","iv","s"}` text (or its JSON
/// without `SEA`) and returns the plaintext, JSON-parsed when it is JSON (so an
/// encrypted object comes back as the object, and the string `"12"` as 12, as in
/// SEA). The plaintext is decoded as UTF-8 the way `TextDecoder` does (invalid
/// bytes become U+FFFD, a leading BOM is dropped).
pub fn decrypt<'a>(data: &str, key: impl Into<Key<'a>>) -> Result<J> {
    decrypt_json(&sea_parse(data), key)
}

/// [`decrypt`] for an encrypted message already parsed as JSON.
pub fn decrypt_json<'a>(data: &J, key: impl Into<Key<'a>>) -> Result<J> {
    let parsed;
    let json = match data {
        J::String(s) => {
            parsed = sea_parse(s);
            &parsed
        }
        other => other,
    };
    let field = |name: &'static str| -> Result<Vec<u8>> {
        let text = js::prop(json, name)
            .and_then(J::as_str)
            .ok_or(Error::NotSea {
                expected: "encryption",
            })?;
        encoding::atob(text).ok_or(Error::Base64 { field: name })
    };
    let (ct, iv, salt) = (field("ct")?, field("iv")?, field("s")?);
    let plain = open(&aes_key(key.into().text(), &salt), &iv, &ct)?;
    let text = String::from_utf8_lossy(&plain);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    Ok(js::parse_or_string(text))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_with_pair_and_passphrase() {
        let p = Pair::generate().unwrap();
        for data in [
            json!("secret msg ü"),
            json!({"a": [1, 2]}),
            json!(42),
            json!("12"),
        ] {
            let enc = encrypt(&data, &p).unwrap();
            let back = decrypt(&enc, &p).unwrap();
            let want = match &data {
                J::String(s) => js::parse_or_string(s),
                o => o.clone(),
            };
            assert_eq!(back, want);
            let enc = encrypt(&data, "pass phrase").unwrap();
            assert_eq!(decrypt(&enc, "pass phrase").unwrap(), want);
            assert_eq!(decrypt(&enc, "wrong"), Err(Error::DecryptFailed));
        }
    }

    #[test]
    fn layout_is_sea() {
        let enc = encrypt_with(&json!("x"), Key::Passphrase("k"), &[0xff; 9], &[1; 15]).unwrap();
        let v: J = serde_json::from_str(&enc[3..]).unwrap();
        assert_eq!(v["iv"], json!("AQEBAQEBAQEBAQEBAQEB"));
        assert_eq!(v["s"], json!("////////////"));
        assert_eq!(
            encoding::atob(v["ct"].as_str().unwrap()).unwrap().len(),
            1 + 16
        );
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["ct", "iv", "s"]);
    }
}
