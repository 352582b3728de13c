//! Base64 in the flavours SEA uses, and the latin-1 byte-to-text mapping.

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{
    GeneralPurpose, GeneralPurposeConfig, STANDARD, URL_SAFE_NO_PAD,
};

/// Decoder for text that has already been checked: no padding required, and
/// trailing bits ignored, as WHATWG's forgiving-base64 does.
const LENIENT_STD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const LENIENT_URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Standard base64 with padding (`+ /` and `=`): SEA's `s`, `ct`, `iv`, work output.
pub(crate) fn std_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// base64url without padding: JWK members, i.e. `pub`, `priv`, `epub`, `epriv`,
/// and the output of `secret`.
pub(crate) fn url_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes as the `atob` of Node.js and browsers does (WHATWG forgiving-base64):
/// ASCII white space is ignored, padding is optional but `=` may only end the
/// text (at most two), and leftover bits are dropped.
pub(crate) fn atob(text: &str) -> Option<Vec<u8>> {
    let mut clean = Vec::with_capacity(text.len());
    let mut equals = 0usize;
    for b in text.bytes() {
        match b {
            b'\t' | b'\n' | b'\x0c' | b'\r' | b' ' => {}
            b'=' => {
                equals += 1;
                if equals > 2 {
                    return None;
                }
                clean.push(b);
            }
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' if equals == 0 => clean.push(b),
            _ => return None,
        }
    }
    if clean.len() % 4 == 0 {
        clean.truncate(clean.len() - equals);
    } else if equals > 0 {
        return None;
    }
    if clean.len() % 4 == 1 {
        return None;
    }
    LENIENT_STD.decode(&clean).ok()
}

/// Decodes base64url as a JWK member (padding optional, trailing bits ignored).
pub(crate) fn url_decode(text: &str) -> Option<Vec<u8>> {
    LENIENT_URL.decode(text.trim_end_matches('=')).ok()
}

/// Each byte as the character with that code (JavaScript's `String.fromCharCode`
/// per byte, SEA's `Buffer#toString('utf8')`): bytes ≥ 0x80 become two UTF-8 bytes.
pub(crate) fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn atob_is_forgiving_like_whatwg() {
        assert_eq!(atob("aGk=").as_deref(), Some(&b"hi"[..]));
        assert_eq!(atob("aGk").as_deref(), Some(&b"hi"[..]));
        assert_eq!(atob(" aG\nk= ").as_deref(), Some(&b"hi"[..]));
        assert_eq!(atob("aGl=").as_deref(), Some(&b"hi"[..])); // trailing bits dropped
        assert_eq!(atob("a"), None);
        assert_eq!(atob("aG=k"), None);
        assert_eq!(atob("aGk==="), None);
        assert_eq!(atob("aG-k"), None);
        assert_eq!(atob("aGk_"), None);
        assert_eq!(atob("").as_deref(), Some(&b""[..]));
    }

    #[test]
    fn latin1_maps_bytes_to_chars() {
        assert_eq!(latin1(&[0x41, 0xe9, 0xff]), "A\u{e9}\u{ff}");
    }
}
