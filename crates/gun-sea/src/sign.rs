//! `SEA.sign` / `SEA.verify`.

use p256::ecdsa::Signature;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use serde_json::Value as J;
use sha2::{Digest as _, Sha256};

use crate::encoding;
use crate::error::{Error, Result};
use crate::js;
use crate::pair::{Pair, public_sec1, signing_key, verifying_key};

/// SHA-256 of the UTF-8 text.
pub(crate) fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Signs `text` as SEA does: the curve signs SHA-256(SHA-256(text)). Returns
/// the 64-byte `r‖s` as standard base64.
pub(crate) fn sign_text(text: &str, priv_: &str) -> Result<String> {
    let key = signing_key(priv_)?;
    // WebCrypto's ECDSA with SHA-256 hashes its input, and SEA's input is already
    // SHA-256(text); p256's `Signer` hashes with SHA-256 the same way.
    let sig: Signature = key.sign(&sha256(text));
    Ok(encoding::std_encode(&sig.to_bytes()))
}

/// Checks a signature given as raw bytes over SHA-256(SHA-256(text)). High-S
/// signatures (WebCrypto makes them half of the time) are accepted.
///
/// Verification runs on `ring` (assembly P-256, several times faster than the
/// portable p256 crate: it is what a relay enforcing SEA spends its time on);
/// ring accepts high-S signatures as WebCrypto does. When it refuses, p256
/// tells an invalid key from a signature that does not match.
fn verify_bytes(text_hash: &[u8; 32], sig: &[u8], pub_: &str) -> Result<()> {
    let sec1 = public_sec1(pub_)?;
    if sig.len() != 64 {
        return Err(Error::SignatureMismatch);
    }
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_FIXED,
        &sec1[..],
    );
    // ring hashes its input with SHA-256, as WebCrypto does: the curve signs
    // SHA-256(SHA-256(text)).
    if key.verify(text_hash, sig).is_ok() {
        return Ok(());
    }
    let key = verifying_key(pub_)?;
    let sig = Signature::from_slice(sig).map_err(|_| Error::SignatureMismatch)?;
    key.verify(text_hash, &sig.normalize_s())
        .map_err(|_| Error::SignatureMismatch)
}

/// Checks a base64 signature `s` of `text` against `pub_`.
pub(crate) fn verify_text(text: &str, s: &str, pub_: &str) -> Result<()> {
    let sig = encoding::atob(s).ok_or(Error::Base64 { field: "s" })?;
    verify_bytes(&sha256(text), &sig, pub_)
}

/// `SEA.sign(data, pair)`: the text `SEA{"m":…,"s":…}`.
///
/// `m` is `data` after SEA's JSON-parse attempt: a string holding JSON becomes
/// the parsed value (`"12"` signs the number 12), other strings and non-strings
/// stay as they are. The signed text is `m` if it is a string, else
/// `JSON.stringify(m)` (JavaScript-exact); `s` is the base64 of the 64-byte
/// `r‖s` of ECDSA P-256 over SHA-256(text) with SHA-256 as the hash.
///
/// As in SEA, data that already is a signature verifying under `pair.pub_`
/// (`SEA{…}` text, or an object with truthy `m` and `s`) is returned as it is
/// rather than signed again.
pub fn sign(data: &J, pair: &Pair) -> Result<String> {
    let m = match data {
        J::String(s) => sea_parse(s),
        other => other.clone(),
    };
    let already = matches!(&m, J::String(s) if s.starts_with("SEA{"))
        || (js::truthy_opt(js::prop(&m, "s")) && js::truthy_opt(js::prop(&m, "m")));
    if already && verify_json(&m, &pair.pub_).is_ok() {
        return Ok(format!("SEA{}", js::stringify(&m)));
    }
    let s = sign_text(&js::text_of(&m), &pair.priv_)?;
    Ok(sea_text(&m, &s))
}

/// `SEA` + `JSON.stringify({m, s})`.
pub(crate) fn sea_text(m: &J, s: &str) -> String {
    let mut out = String::from("SEA{\"m\":");
    gun_graph::json::write_json(&mut out, m);
    out.push_str(",\"s\":");
    gun_graph::json::write_str(&mut out, s);
    out.push('}');
    out
}

/// SEA's `S.parse` of a string: without a leading `SEA` before `{`, JSON-parsed
/// when it is JSON, else the (possibly shortened) string.
pub(crate) fn sea_parse(text: &str) -> J {
    let t = if text.starts_with("SEA{") {
        &text[3..]
    } else {
        text
    };
    js::parse_or_string(t)
}

/// `SEA.verify(signed, pub)`: checks a `SEA{"m":…,"s":…}` text (or the same JSON
/// without `SEA`) against the public key `pub_` and returns `m`, JSON-parsed when
/// it is a string holding JSON.
///
/// `m` is re-serialized with `JSON.stringify` in the key order received, hashed
/// as [`sign`] does, and the signature checked; high-S signatures are accepted.
/// Gun.js's legacy fallbacks are not tried (see [`verify_legacy`]).
pub fn verify(signed: &str, pub_: &str) -> Result<J> {
    verify_json(&sea_parse(signed), pub_)
}

/// [`verify`] for a signature already parsed as JSON (`{"m":…,"s":…}`), or a
/// JSON string holding the `SEA{…}` text.
pub fn verify_json(signed: &J, pub_: &str) -> Result<J> {
    let parsed;
    let json = match signed {
        J::String(s) => {
            parsed = sea_parse(s);
            &parsed
        }
        other => other,
    };
    let not_sea = Error::NotSea {
        expected: "signature",
    };
    let m = js::prop(json, "m").ok_or(not_sea.clone())?;
    let s = js::prop(json, "s").and_then(J::as_str).ok_or(not_sea)?;
    verify_text(&js::text_of(m), s, pub_)?;
    Ok(parsed_m(m))
}

/// `S.parse(m)`: a string holding JSON becomes the parsed value.
fn parsed_m(m: &J) -> J {
    match m {
        J::String(s) => js::parse_or_string(s),
        other => other.clone(),
    }
}

/// [`verify`] with Gun.js's legacy fallbacks, for data signed by very old SEA
/// versions: when the normal check fails, SEA also accepts a signature over
/// `String(m)` (so an object `m` is checked as the text `[object Object]`), and
/// a signature given as UTF-8 characters instead of base64.
///
/// The fallback text makes any object `m` verify with a signature of the string
/// `"[object Object]"`; use it only on data known to be that old. The validator
/// never uses it.
pub fn verify_legacy(signed: &str, pub_: &str) -> Result<J> {
    let json = sea_parse(signed);
    if let Ok(v) = verify_json(&json, pub_) {
        return Ok(v);
    }
    let not_sea = Error::NotSea {
        expected: "signature",
    };
    let m = js::prop(&json, "m").ok_or(not_sea.clone())?;
    let s = js::prop(&json, "s").and_then(J::as_str).ok_or(not_sea)?;
    // `new TextEncoder().encode(await S.parse(json.m))`: ToString of the parsed m;
    // SEA's TextEncoder polyfill encodes falsy input as "".
    let pm = parsed_m(m);
    let text = if js::truthy(&pm) {
        js::to_string(&pm)
    } else {
        String::new()
    };
    let hash = sha256(&text);
    if let Some(sig) = encoding::atob(s)
        && verify_bytes(&hash, &sig, pub_).is_ok()
    {
        return Ok(pm);
    }
    // `Buffer.from(s, 'utf8')` in SEA keeps UTF-16 code units; a Uint8Array of
    // them keeps the low byte of each.
    let units: Vec<u8> = s.encode_utf16().map(|u| u.to_le_bytes()[0]).collect();
    verify_bytes(&hash, &units, pub_)?;
    Ok(pm)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sign_then_verify_round_trips() {
        let p = Pair::generate().unwrap();
        for data in [
            json!("hello"),
            json!({"a": 1, "b": "x"}),
            json!("{\"z\":2,\"a\":1}"),
            json!(12.5),
            json!(null),
            json!(true),
            json!([1, "two"]),
            json!("ünïcödé 😀"),
        ] {
            let signed = sign(&data, &p).unwrap();
            assert!(signed.starts_with("SEA{\"m\":"));
            let back = verify(&signed, &p.pub_).unwrap();
            let want = match &data {
                J::String(s) => js::parse_or_string(s),
                o => o.clone(),
            };
            assert_eq!(back, want, "{signed}");
            let other = Pair::generate().unwrap();
            assert_eq!(verify(&signed, &other.pub_), Err(Error::SignatureMismatch));
        }
    }

    #[test]
    fn parsed_strings_are_signed_as_values() {
        let p = Pair::generate().unwrap();
        let s = sign(&json!("{\"z\":2,\"a\":1}"), &p).unwrap();
        assert!(s.starts_with("SEA{\"m\":{\"z\":2,\"a\":1},\"s\":"), "{s}");
        let n = sign(&json!("12"), &p).unwrap();
        assert!(n.starts_with("SEA{\"m\":12,"), "{n}");
    }

    #[test]
    fn signing_a_signature_returns_it() {
        let p = Pair::generate().unwrap();
        let s = sign(&json!({"a": 1}), &p).unwrap();
        assert_eq!(sign(&json!(s.clone()), &p).unwrap(), s);
    }

    #[test]
    fn high_s_is_accepted() {
        let p = Pair::generate().unwrap();
        let text = "high s";
        let s = sign_text(text, &p.priv_).unwrap();
        let bytes = encoding::atob(&s).unwrap();
        let sig = Signature::from_slice(&bytes).unwrap();
        // negate s: (r, n - s) is the other valid signature
        let (r, s_) = sig.split_scalars();
        let flipped = Signature::from_scalars(r.to_bytes(), (-*s_.as_ref()).to_bytes()).unwrap();
        let text64 = encoding::std_encode(&flipped.to_bytes());
        assert!(verify_text(text, &s, &p.pub_).is_ok());
        assert!(verify_text(text, &text64, &p.pub_).is_ok());
    }

    #[test]
    fn legacy_accepts_string_of_m() {
        let p = Pair::generate().unwrap();
        // a signature over "[object Object]" verifies any object m in legacy mode
        let s = sign_text("[object Object]", &p.priv_).unwrap();
        let forged = sea_text(&json!({"any": "thing"}), &s);
        assert!(verify(&forged, &p.pub_).is_err());
        assert_eq!(
            verify_legacy(&forged, &p.pub_).unwrap(),
            json!({"any": "thing"})
        );
    }
}
