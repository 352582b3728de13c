//! Lexical reads as range queries on the primary key `(soul, key)`.
//!
//! Souls and keys are `bytea` (UTF-8), so the index is in UTF-8 byte order —
//! the order in which [`gun_graph::lex::query_graph`] walks a graph (Rust's
//! `str` order). Lexical bounds (`>`, `<`) compare in UTF-16 order, which
//! differs for U+E000..U+FFFF against supplementary characters, so the SQL
//! bounds are a superset (widened where a bound holds such a character) and
//! every row is checked with [`Lex::matches`] here; rows come in exactly the
//! order the reference visits them, so the `%` budget stops at the same entry.
//! The query is read through a portal in chunks and stops as soon as the
//! budget is spent.

use gun_graph::Lex;

/// One SQL condition on a column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cond {
    Eq(Vec<u8>),
    Ge(Vec<u8>),
    Le(Vec<u8>),
    Lt(Vec<u8>),
}

/// The byte index of the first character in `s` whose UTF-8 lead byte is at
/// least `lead` (`0xEE`: U+E000 and up; `0xF0`: supplementary).
fn first_lead_at_least(s: &str, lead: u8) -> Option<usize> {
    s.bytes().position(|b| b >= lead)
}

/// The superset of `lex` as byte-order conditions.
pub(crate) fn conditions(lex: &Lex) -> Vec<Cond> {
    let mut out = Vec::new();
    if let Some(x) = &lex.exact {
        out.push(Cond::Eq(x.as_bytes().to_vec()));
    }
    if let Some(p) = &lex.prefix {
        out.push(Cond::Ge(p.as_bytes().to_vec()));
        let mut hi = p.as_bytes().to_vec();
        // 0xFF never occurs in UTF-8: every string starting with p is below.
        hi.push(0xFF);
        out.push(Cond::Lt(hi));
    }
    if let Some(s) = &lex.start {
        // Keys below s in UTF-8 but not in UTF-16 share s's text before its
        // first supplementary character.
        match first_lead_at_least(s, 0xF0) {
            Some(i) => out.push(Cond::Ge(s.as_bytes()[..i].to_vec())),
            None => out.push(Cond::Ge(s.as_bytes().to_vec())),
        }
    }
    if let Some(e) = &lex.end {
        // Keys above e in UTF-8 but not in UTF-16 share e's text before its
        // first U+E000.. character.
        match first_lead_at_least(e, 0xEE).filter(|&i| e.as_bytes()[i] < 0xF0) {
            Some(i) => {
                let mut hi = e.as_bytes()[..i].to_vec();
                hi.push(0xFF);
                out.push(Cond::Lt(hi));
            }
            None => out.push(Cond::Le(e.as_bytes().to_vec())),
        }
    }
    out
}

/// Whether the reference walks a node's keys in two passes: keys from the
/// start bound on, then the keys below it (in UTF-8) that JavaScript orders
/// above it. Only for a forward read with `>` and no `*`.
pub(crate) fn second_pass(keys: &Lex) -> Option<Vec<u8>> {
    (!keys.reverse && keys.prefix.is_none() && !keys.is_exact())
        .then_some(())
        .and(keys.start.as_ref())
        .filter(|s| first_lead_at_least(s, 0xF0).is_some())
        .map(|s| s.as_bytes().to_vec())
}

/// The SQL of a lexical read on `table` and its parameters (all `bytea`):
/// `SELECT soul, key, state, value ... ORDER BY ...`.
pub(crate) fn select(table: &str, souls: &Lex, keys: &Lex) -> (String, Vec<Vec<u8>>) {
    let mut params: Vec<Vec<u8>> = Vec::new();
    let mut wheres: Vec<String> = Vec::new();
    let mut add = |col: &str, conds: Vec<Cond>, params: &mut Vec<Vec<u8>>| {
        for c in conds {
            let (op, v) = match c {
                Cond::Eq(v) => ("=", v),
                Cond::Ge(v) => (">=", v),
                Cond::Le(v) => ("<=", v),
                Cond::Lt(v) => ("<", v),
            };
            params.push(v);
            wheres.push(format!("{col} {op} ${}", params.len()));
        }
    };
    // An exact soul: the reference looks it up, whatever else the query says.
    let soul_conds = match (&souls.exact, souls.is_exact()) {
        (Some(x), true) => vec![Cond::Eq(x.as_bytes().to_vec())],
        _ => conditions(souls),
    };
    add("soul", soul_conds, &mut params);
    add("key", conditions(keys), &mut params);
    let soul_lookup = souls.exact.is_some() && souls.is_exact();
    let soul_dir = if souls.reverse && !soul_lookup {
        "DESC"
    } else {
        "ASC"
    };
    let key_dir = if keys.reverse { "DESC" } else { "ASC" };
    let order = match second_pass(keys) {
        Some(s) => {
            params.push(s);
            format!("soul {soul_dir}, (key < ${}), key ASC", params.len())
        }
        None => format!("soul {soul_dir}, key {key_dir}"),
    };
    let mut sql = format!("SELECT soul, key, state, value FROM {table}");
    if !wheres.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&wheres.join(" AND "));
    }
    sql.push_str(" ORDER BY ");
    sql.push_str(&order);
    (sql, params)
}

/// Whether a row belongs to the answer (the exact check after the SQL
/// superset).
pub(crate) fn row_matches(souls: &Lex, keys: &Lex, soul: &str, key: &str) -> bool {
    let soul_ok = match (&souls.exact, souls.is_exact()) {
        (Some(x), true) => soul == x,
        _ => souls.matches(soul),
    };
    soul_ok && keys.matches(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gun_graph::json::cmp_utf16;
    use std::cmp::Ordering;

    fn sat(c: &Cond, s: &[u8]) -> bool {
        match c {
            Cond::Eq(v) => s == v.as_slice(),
            Cond::Ge(v) => s >= v.as_slice(),
            Cond::Le(v) => s <= v.as_slice(),
            Cond::Lt(v) => s < v.as_slice(),
        }
    }

    #[test]
    fn bounds_are_a_superset() {
        let words = [
            "",
            "a",
            "a\u{E000}",
            "a😀",
            "a\u{FFFF}b",
            "a\u{10FFFF}",
            "b",
            "\u{E000}",
            "😀",
            "\u{FFFF}",
            "\u{10000}",
            "z",
            "ab",
            "a\u{E000}\u{E000}",
            "a😀😀",
        ];
        for s in words {
            for e in words {
                let lexes = [
                    Lex::range(Some(s), Some(e)),
                    Lex::range(Some(s), None),
                    Lex::range(None, Some(e)),
                    Lex::prefix(s),
                ];
                for lex in lexes {
                    let conds = conditions(&lex);
                    for w in words {
                        if lex.matches(w) {
                            assert!(
                                conds.iter().all(|c| sat(c, w.as_bytes())),
                                "{w:?} matches {lex:?} but not {conds:?}"
                            );
                        }
                    }
                }
            }
        }
        assert_eq!(cmp_utf16("😀", "\u{E000}"), Ordering::Less);
    }
}
