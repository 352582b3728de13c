//! How values are kept in the `value` column, so that PostgreSQL's byte order
//! on it is HAM's tie-break order.
//!
//! HAM breaks a tie of equal states by comparing the values' `JSON.stringify`
//! texts as JavaScript compares strings: by UTF-16 code units
//! ([`gun_graph::json::cmp_utf16`]). PostgreSQL compares `bytea` by bytes, and
//! UTF-8 byte order is code point order, which differs from UTF-16 order in one
//! place only: a character in U+E000..U+FFFF (UTF-8 lead byte `EE` or `EF`)
//! sorts *after* a supplementary character (lead byte `F0`..`F4`) in UTF-16,
//! where the latter is a surrogate pair (`D800`..`DFFF`), and *before* it in
//! UTF-8.
//!
//! So the column holds the UTF-8 JSON text with the bytes `EE` and `EF`
//! replaced by `F5` and `F6` — bytes that never occur in UTF-8, and `EE`/`EF`
//! only ever occur as lead bytes. After the swap the three-byte sequences of
//! U+E000..U+FFFF sort after every four-byte sequence, every other order is
//! untouched, and the encoding stays prefix-free: `bytea` order is exactly
//! UTF-16 code unit order of the texts, with no collation involved. Reading
//! swaps the two bytes back.

use gun_graph::Value;

/// The column form of `v`: its JSON text, UTF-8, `EE`→`F5`, `EF`→`F6`.
pub(crate) fn encode_value(v: &Value) -> Vec<u8> {
    let mut text = String::new();
    v.write_json(&mut text);
    to_order_form(text.into_bytes())
}

/// `EE`→`F5`, `EF`→`F6` on UTF-8 bytes.
pub(crate) fn to_order_form(mut b: Vec<u8>) -> Vec<u8> {
    for x in &mut b {
        match *x {
            0xEE => *x = 0xF5,
            0xEF => *x = 0xF6,
            _ => {}
        }
    }
    b
}

/// Why a stored value could not be read back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("stored value is not UTF-8 JSON text")]
    Utf8,
    #[error("stored value is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("stored value is not a Gun value: {0}")]
    Value(gun_graph::InvalidValue),
}

/// Reads a column value back.
pub(crate) fn decode_value(stored: &[u8]) -> Result<Value, DecodeError> {
    let mut b = stored.to_vec();
    for x in &mut b {
        match *x {
            0xF5 => *x = 0xEE,
            0xF6 => *x = 0xEF,
            _ => {}
        }
    }
    let text = String::from_utf8(b).map_err(|_| DecodeError::Utf8)?;
    // The common literals without a JSON parse.
    match text.as_str() {
        "null" => return Ok(Value::Null),
        "true" => return Ok(Value::Bool(true)),
        "false" => return Ok(Value::Bool(false)),
        _ => {}
    }
    let j: serde_json::Value = serde_json::from_str(&text)?;
    Value::from_json(&j).map_err(DecodeError::Value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gun_graph::HamValue;
    use gun_graph::Soul;

    #[test]
    fn order_form_orders_like_ham() {
        let texts = [
            "",
            "a",
            "ab",
            "b",
            "\u{7f}",
            "é",
            "\u{D7FF}",
            "\u{E000}",
            "\u{FFFF}",
            "😀",
            "\u{10000}",
            "\u{10FFFF}",
            "a\u{E000}",
            "a😀",
            "a\u{FFFD}z",
            "\"",
            "\\",
            "\u{0}",
        ];
        let mut values: Vec<Value> = texts.iter().map(|t| Value::from(*t)).collect();
        values.push(Value::Null);
        values.push(Value::Bool(true));
        values.push(Value::Bool(false));
        values.push(Value::Number(10.0));
        values.push(Value::Number(9.0));
        values.push(Value::Number(-1.5));
        values.push(Value::Number(1e300));
        for s in ["😀", "\u{E000}", "x"] {
            values.push(Value::Link(Soul::new(s).unwrap_or_else(|_| unreachable!())));
        }
        for a in &values {
            for b in &values {
                assert_eq!(
                    encode_value(a).cmp(&encode_value(b)),
                    a.lexical_cmp(b),
                    "{a:?} vs {b:?}"
                );
            }
            assert!(
                decode_value(&encode_value(a)).is_ok_and(|d| d == *a),
                "{a:?}"
            );
        }
    }
}
