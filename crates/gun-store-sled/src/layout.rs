//! How souls, keys and entries are laid out in sled's ordered key space.
//!
//! One tree (`gun`) holds every entry under the key
//!
//! ```text
//! esc(soul) 0x00 0x01 key
//! ```
//!
//! where `esc` writes every byte of the soul's UTF-8 text as it is, except 0x00,
//! which becomes `0x00 0xFF`. The terminator `0x00 0x01` cannot occur inside an
//! escaped soul, so the split is unambiguous whatever bytes souls and keys hold
//! (NUL, ESC, `/`, 10 KB of anything), and because `0x00 0x01` sorts below both
//! `0x00 0xFF` and every other byte, the byte order of these keys is the order of
//! `(soul, key)` pairs by their UTF-8 bytes:
//!
//! * all keys of one soul are the contiguous range `[esc(s) 00 01, esc(s) 00 02)`;
//! * all souls starting with `p` are the range `[esc(p), esc(p) FF)` (0xFF never
//!   occurs in UTF-8, nor in an escaped soul);
//! * keys of a soul starting with `k` are `[esc(s) 00 01 k, esc(s) 00 01 k FF)`.
//!
//! The key itself is not escaped: it runs to the end of the sled key.
//!
//! ## Small nodes are one record
//!
//! A node of at most [`BLOB_MAX_KEYS`] keys and [`BLOB_MAX_BYTES`] bytes is kept
//! whole, as one record under `esc(soul) 0x00 0x00` (which sorts just before the
//! node's per-key range, so `[esc(s) 00 00, esc(s) 00 02)` covers a node in
//! either form). A put of a 10-field node is then one sled insert, not ten, and
//! its HAM read one lookup: sled's work per put, and what a flush has to write,
//! shrink several times. A node that outgrows the limits moves to the per-key
//! form in the same atomic batch, so a node is always in exactly one form and a
//! 100k-key node still costs one insert per changed key.
//!
//! The blob is a sequence of `u32 len ++ key ++ u32 len ++ entry` (lengths
//! little-endian, entries as below), keys in ascending byte order.
//!
//! The entry's value is `state` (8 bytes: the IEEE-754 bits of the f64,
//! big-endian) followed by a one-byte tag and the payload:
//!
//! | tag | value | payload |
//! |---|---|---|
//! | 0 | `null` | none |
//! | 1 | `false` | none |
//! | 2 | `true` | none |
//! | 3 | number | 8 bytes, f64 bits big-endian |
//! | 4 | string | UTF-8 text |
//! | 5 | link `{"#": soul}` | the soul's UTF-8 text |
//!
//! Sled keys starting with 0xFF cannot be entries (no UTF-8 text starts with it):
//! they hold the store's metadata, [`META_KEY`], past the end of every scan.
//!
//! ## Formats
//!
//! The metadata record starts with the format version. Format 3 (this one)
//! adds to format 2's counts of souls, keys and bytes the number of souls
//! kept per key. While that number is 0, which it stays for a store that never
//! held a node over the blob limits, a write to a soul without a whole record
//! is a write to a new soul: the write path reads the one record under
//! `esc(soul) 00 00` instead of the start of the soul's range (a sled point
//! read instead of an iterator; ~5 % of a put's instructions). The records
//! themselves are as in format 2, and format 2 as in format 1 with whole
//! records added: a store of format 1 or 2 is counted once when opened and its
//! metadata rewritten as format 3 (older builds then refuse to open it, with a
//! message naming the format, rather than write around the count).

use gun_graph::{Soul, State, Value};

/// The metadata record: format version, souls, keys, bytes.
pub(crate) const META_KEY: &[u8] = b"\xFFgun-store-sled/meta";

/// The first sled key that is not an entry: upper bound of unbounded scans.
pub(crate) const DATA_END: &[u8] = b"\xFF";

/// The on-disk format this code writes and reads.
pub(crate) const FORMAT_VERSION: u8 = 3;

/// Format 2: no count of per-key souls in the metadata; read as it is, counted
/// when opened and rewritten as format 3.
pub(crate) const FORMAT_V2: u8 = 2;

/// Format 1 had no whole-node records either; read as format 2.
pub(crate) const FORMAT_V1: u8 = 1;

/// `esc(soul)`: the soul's bytes with 0x00 written as 0x00 0xFF.
pub(crate) fn escape_soul(soul: &str, out: &mut Vec<u8>) {
    let bytes = soul.as_bytes();
    // The usual soul has no NUL: one copy instead of a push per byte.
    if !bytes.contains(&0) {
        out.extend_from_slice(bytes);
        return;
    }
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
}

/// Nodes with at most this many keys are stored whole (see the module docs).
pub(crate) const BLOB_MAX_KEYS: usize = 64;

/// Nodes whose encoded record exceeds this many bytes are stored per key.
pub(crate) const BLOB_MAX_BYTES: usize = 16 << 10;

/// `esc(soul) 00 00`: the record of a node kept whole; also the lowest sled key
/// of `soul` in either form.
pub(crate) fn blob_key(soul: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(soul.len() + 2);
    escape_soul(soul, &mut v);
    v.extend_from_slice(&[0x00, 0x00]);
    v
}

/// Appends one `(key, entry)` pair to a blob under construction.
pub(crate) fn blob_push(key: &str, state: State, value: &Value, out: &mut Vec<u8>) {
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    encode_entry(state, value, out);
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

/// Whether `k` is the key of a whole-node record, `esc(soul) 00 00`, rather
/// than of one key's entry (`esc(soul) 00 01 key`, which also ends in `00 00`
/// when the key ends in two NULs).
pub(crate) fn is_blob_key(k: &[u8]) -> bool {
    let Some(esc) = k.strip_suffix(&[0x00, 0x00]) else {
        return false;
    };
    // An escaped soul has a 0xFF after every 0x00; an entry key has its
    // terminator's 0x01 after one.
    !esc.is_empty()
        && esc
            .iter()
            .enumerate()
            .all(|(i, &b)| b != 0 || esc.get(i + 1) == Some(&0xFF))
}

/// Decodes a whole-node record into its `(key, state, value)` entries.
pub(crate) fn decode_blob(mut v: &[u8]) -> Result<Vec<(String, State, Value)>, &'static str> {
    fn take<'a>(v: &mut &'a [u8]) -> Result<&'a [u8], &'static str> {
        let (len, rest) = v.split_first_chunk::<4>().ok_or("node record cut short")?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err("node record cut short");
        }
        let (item, rest) = rest.split_at(len);
        *v = rest;
        Ok(item)
    }
    let mut out = Vec::new();
    while !v.is_empty() {
        let key = std::str::from_utf8(take(&mut v)?).map_err(|_| "key is not UTF-8")?;
        let (state, value) = decode_entry(take(&mut v)?)?;
        out.push((key.to_string(), state, value));
    }
    Ok(out)
}

/// The soul of any record key (whole-node or per-key); `None` when malformed.
pub(crate) fn split_soul(k: &[u8]) -> Option<String> {
    match k.strip_suffix(&[0x00, 0x00]) {
        Some(esc) if !esc.is_empty() => {
            let mut soul = Vec::with_capacity(esc.len());
            let mut i = 0;
            while i < esc.len() {
                soul.push(esc[i]);
                if esc[i] == 0 {
                    if esc.get(i + 1) != Some(&0xFF) {
                        return None;
                    }
                    i += 1;
                }
                i += 1;
            }
            String::from_utf8(soul).ok()
        }
        _ => split_key(k).map(|(s, _)| s),
    }
}

/// `esc(soul) 00 01`: the prefix of all keys of `soul`.
pub(crate) fn node_prefix(soul: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(soul.len() + 2);
    escape_soul(soul, &mut v);
    v.extend_from_slice(&[0x00, 0x01]);
    v
}

/// `esc(soul) 00 02`: just past the last key of `soul`.
pub(crate) fn node_end(soul: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(soul.len() + 2);
    escape_soul(soul, &mut v);
    v.extend_from_slice(&[0x00, 0x02]);
    v
}

/// The sled key of `soul`'s `key`.
pub(crate) fn entry_key(soul: &str, key: &str) -> Vec<u8> {
    let mut v = node_prefix(soul);
    v.extend_from_slice(key.as_bytes());
    v
}

/// Splits a sled key into `(soul, key)`; `None` when it is not a well-formed entry key.
pub(crate) fn split_key(k: &[u8]) -> Option<(String, &str)> {
    let mut soul = Vec::with_capacity(k.len());
    let mut i = 0;
    while i < k.len() {
        let b = k[i];
        if b == 0 {
            match k.get(i + 1) {
                Some(0xFF) => soul.push(0),
                Some(0x01) => {
                    let key = std::str::from_utf8(&k[i + 2..]).ok()?;
                    let soul = String::from_utf8(soul).ok()?;
                    return (!soul.is_empty()).then_some((soul, key));
                }
                _ => return None,
            }
            i += 2;
        } else {
            soul.push(b);
            i += 1;
        }
    }
    None
}

/// Encodes an entry's state and value.
pub(crate) fn encode_entry(state: State, value: &Value, out: &mut Vec<u8>) {
    out.extend_from_slice(&state.as_f64().to_bits().to_be_bytes());
    match value {
        Value::Null => out.push(0),
        Value::Bool(false) => out.push(1),
        Value::Bool(true) => out.push(2),
        Value::Number(n) => {
            out.push(3);
            out.extend_from_slice(&n.to_bits().to_be_bytes());
        }
        Value::String(s) => {
            out.push(4);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Link(s) => {
            out.push(5);
            out.extend_from_slice(s.as_str().as_bytes());
        }
    }
}

/// Decodes an entry; the error says what is wrong.
pub(crate) fn decode_entry(v: &[u8]) -> Result<(State, Value), &'static str> {
    let (state, rest) = v
        .split_first_chunk::<8>()
        .ok_or("entry shorter than its state")?;
    let state = State::new(f64::from_bits(u64::from_be_bytes(*state)))
        .map_err(|_| "state is not finite")?;
    let (&tag, payload) = rest.split_first().ok_or("entry without a value tag")?;
    let text = || std::str::from_utf8(payload).map_err(|_| "text is not UTF-8");
    let value = match tag {
        0..=2 if !payload.is_empty() => return Err("trailing bytes after a literal"),
        0 => Value::Null,
        1 => Value::Bool(false),
        2 => Value::Bool(true),
        3 => {
            let bits: [u8; 8] = payload.try_into().map_err(|_| "number is not 8 bytes")?;
            Value::number(f64::from_bits(u64::from_be_bytes(bits)))
                .map_err(|_| "number is not finite")?
        }
        4 => Value::string(text()?),
        5 => Value::Link(Soul::new(text()?).map_err(|_| "link to an empty soul")?),
        _ => return Err("unknown value tag"),
    };
    Ok((state, value))
}

/// The metadata record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) souls: u64,
    pub(crate) keys: u64,
    pub(crate) bytes: u64,
    /// Souls kept one record per key (never decreases: a node does not move
    /// back to the whole form). `None`: not known, for a record of format 1
    /// or 2 until the store is counted.
    pub(crate) per_key_souls: Option<u64>,
}

/// How `per_key_souls: None` is written (never a real count).
const UNKNOWN: u64 = u64::MAX;

impl Meta {
    pub(crate) fn encode(&self) -> [u8; 33] {
        let mut out = [0u8; 33];
        out[0] = FORMAT_VERSION;
        out[1..9].copy_from_slice(&self.souls.to_be_bytes());
        out[9..17].copy_from_slice(&self.keys.to_be_bytes());
        out[17..25].copy_from_slice(&self.bytes.to_be_bytes());
        out[25..33].copy_from_slice(&self.per_key_souls.unwrap_or(UNKNOWN).to_be_bytes());
        out
    }

    /// Whether no soul is kept per key: a soul without a whole record is new.
    pub(crate) fn all_whole(&self) -> bool {
        self.per_key_souls == Some(0)
    }

    pub(crate) fn decode(v: &[u8]) -> Result<Meta, String> {
        let n = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&v[i..i + 8]);
            u64::from_be_bytes(b)
        };
        match v.first() {
            Some(&FORMAT_VERSION) if v.len() == 33 => Ok(Meta {
                souls: n(1),
                keys: n(9),
                bytes: n(17),
                per_key_souls: Some(n(25)).filter(|&c| c != UNKNOWN),
            }),
            Some(&(FORMAT_V2 | FORMAT_V1)) if v.len() == 25 => Ok(Meta {
                souls: n(1),
                keys: n(9),
                bytes: n(17),
                per_key_souls: None,
            }),
            Some(&(FORMAT_VERSION | FORMAT_V2 | FORMAT_V1)) => {
                Err(format!("metadata record of {} bytes", v.len()))
            }
            Some(other) => Err(format!(
                "written in format version {other}; this build reads versions 1 to {FORMAT_VERSION}"
            )),
            None => Err("empty metadata record".into()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn whole_records_are_told_from_entries_ending_in_two_nuls() {
        assert!(is_blob_key(&blob_key("s")));
        assert!(is_blob_key(&blob_key("a\u{0}b\u{0}")));
        assert!(!is_blob_key(&entry_key("s", "k")));
        assert!(!is_blob_key(&entry_key("s", "\u{0}\u{0}")));
        assert!(!is_blob_key(&entry_key("a\u{0}", "x\u{0}\u{0}")));
        assert!(!is_blob_key(&[0, 0]));
    }

    #[test]
    fn metadata_of_every_format_decodes() {
        let m = Meta {
            souls: 3,
            keys: 40,
            bytes: 900,
            per_key_souls: Some(2),
        };
        assert_eq!(Meta::decode(&m.encode()), Ok(m));
        let unknown = Meta {
            per_key_souls: None,
            ..m
        };
        assert_eq!(Meta::decode(&unknown.encode()), Ok(unknown));
        for old in [FORMAT_V1, FORMAT_V2] {
            let mut v = m.encode()[..25].to_vec();
            v[0] = old;
            assert_eq!(Meta::decode(&v), Ok(unknown));
        }
        assert!(Meta::decode(&m.encode()[..25]).is_err());
        assert!(Meta::decode(&[2]).is_err());
        assert!(Meta::decode(&[3]).is_err());
        let mut future = m.encode();
        future[0] = 4;
        assert!(
            Meta::decode(&future)
                .unwrap_err()
                .contains("format version 4")
        );
    }

    #[test]
    fn keys_order_like_soul_key_pairs() {
        let pairs = [
            ("a", ""),
            ("a", "\u{0}"),
            ("a", "b"),
            ("a", "\u{10FFFF}"),
            ("a\u{0}", "a"),
            ("a\u{0}\u{0}", "a"),
            ("a\u{0}b", ""),
            ("a\u{1}", "z"),
            ("ab", "a"),
            ("b", "a"),
            ("é", "x"),
        ];
        let keys: Vec<Vec<u8>> = pairs.iter().map(|(s, k)| entry_key(s, k)).collect();
        for w in keys.windows(2) {
            assert!(w[0] < w[1], "{:?} < {:?}", w[0], w[1]);
        }
        for ((s, k), enc) in pairs.iter().zip(&keys) {
            let (s2, k2) = split_key(enc).unwrap();
            assert_eq!((s2.as_str(), k2), (*s, *k));
            assert!(
                enc.as_slice() >= node_prefix(s).as_slice()
                    && enc.as_slice() < node_end(s).as_slice()
            );
        }
        assert!(split_key(b"abc").is_none());
        assert!(split_key(b"a\x00\x05").is_none());
        assert!(split_key(b"\x00\x01k").is_none(), "empty soul");
        assert!(split_key(b"a\x00\x01\xFF").is_none(), "key not UTF-8");
    }

    #[test]
    fn entries_round_trip_and_reject_garbage() {
        let s = |x: f64| State::new(x).unwrap();
        for (st, v) in [
            (s(0.0), Value::Null),
            (s(-1.5), Value::Bool(true)),
            (s(1795643451809.001), Value::Bool(false)),
            (s(f64::MAX), Value::number(5e-324).unwrap()),
            (s(1.0), Value::from("")),
            (s(1.0), Value::from("a\u{0}😀")),
            (s(1.0), Value::Link(Soul::new("x\u{0}").unwrap())),
        ] {
            let mut b = Vec::new();
            encode_entry(st, &v, &mut b);
            assert_eq!(decode_entry(&b), Ok((st, v)));
        }
        assert!(decode_entry(&[]).is_err());
        assert!(decode_entry(&[0; 8]).is_err());
        assert!(decode_entry(&[0, 0, 0, 0, 0, 0, 0, 0, 9]).is_err());
        assert!(decode_entry(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 1]).is_err());
        assert!(
            decode_entry(&[0x7F, 0xF0, 0, 0, 0, 0, 0, 0, 0]).is_err(),
            "infinite state"
        );
        assert!(
            decode_entry(&[0, 0, 0, 0, 0, 0, 0, 0, 5]).is_err(),
            "empty link"
        );
        assert!(decode_entry(&[0, 0, 0, 0, 0, 0, 0, 0, 4, 0xFF]).is_err());
    }
}
