//! Lexical queries on keys and souls (§4.1), as radisk answers them.
//!
//! A query is `=` (exact), `*` (prefix), `>` (from, inclusive), `<` (to,
//! inclusive), optionally `-` (reverse order). Strings compare as JavaScript
//! compares them (UTF-16 code units). A byte budget (`%`) bounds the answer:
//! each value costs its string length in UTF-16 units, or 9 for an empty string
//! and for non-strings; values are taken while the total is below the budget, so
//! the first match is always returned.
//!
//! ```
//! use gun_graph::{Graph, Lex, Soul, State, Value, lex};
//! let mut g = Graph::new();
//! let s = Soul::new("fruit")?;
//! let st = State::new(1.0).unwrap();
//! for k in ["apple", "apricot", "banana", "cherry"] {
//!     g.put(s.clone(), k, st, Value::from(k))?;
//! }
//! let n = g.get("fruit").unwrap();
//! let prefix = Lex::prefix("ap");
//! let keys: Vec<String> = lex::query_node(n, &prefix, None).keys().map(String::from).collect();
//! assert_eq!(keys, ["apple", "apricot"]);
//! // Gun relays clamp lexical reads without `%` to a budget of 1: one key.
//! let budget = lex::budget(None, true);
//! assert_eq!(lex::query_node(n, &prefix, budget).len(), 1);
//! let range = Lex::range(Some("b"), Some("c"));
//! assert_eq!(lex::query_node(n, &range, None).keys().collect::<Vec<_>>(), ["banana"]);
//! # Ok::<(), gun_graph::Error>(())
//! ```

use std::cmp::Ordering;

use crate::json::cmp_utf16;
use crate::{Error, Graph, Node, Value};

/// The largest budget Gun relays honour; larger ones are clamped to 1 (§4.1).
pub const MAX_BUDGET: u64 = 100_000;

/// A lexical condition on a string (a key or a soul).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lex {
    /// `=`: exactly this string.
    pub exact: Option<String>,
    /// `*`: starts with this.
    pub prefix: Option<String>,
    /// `>`: at least this (inclusive).
    pub start: Option<String>,
    /// `<`: at most this (inclusive).
    pub end: Option<String>,
    /// `-`: answer in reverse order.
    pub reverse: bool,
}

impl Lex {
    /// Matches exactly `s`.
    pub fn exact(s: impl Into<String>) -> Lex {
        Lex {
            exact: Some(s.into()),
            ..Lex::default()
        }
    }

    /// Matches strings starting with `p`.
    pub fn prefix(p: impl Into<String>) -> Lex {
        Lex {
            prefix: Some(p.into()),
            ..Lex::default()
        }
    }

    /// Matches strings in `[start, end]` (either bound optional).
    pub fn range(start: Option<&str>, end: Option<&str>) -> Lex {
        Lex {
            start: start.map(String::from),
            end: end.map(String::from),
            ..Lex::default()
        }
    }

    /// Whether this is a plain exact match (or matches everything).
    pub fn is_exact(&self) -> bool {
        self.prefix.is_none() && self.start.is_none() && self.end.is_none()
    }

    /// Whether the query restricts nothing.
    pub fn is_all(&self) -> bool {
        self.is_exact() && self.exact.is_none()
    }

    /// Whether `s` matches.
    pub fn matches(&self, s: &str) -> bool {
        if let Some(x) = &self.exact
            && s != x
        {
            return false;
        }
        if let Some(p) = &self.prefix
            && !s.starts_with(p.as_str())
        {
            return false;
        }
        if let Some(a) = &self.start
            && cmp_utf16(s, a) == Ordering::Less
        {
            return false;
        }
        if let Some(b) = &self.end
            && cmp_utf16(s, b) == Ordering::Greater
        {
            return false;
        }
        true
    }

    /// Reads the wire form: a string (exact), or an object with `=`, `*`, `>`,
    /// `<`, `-`. Other members are ignored; non-string bounds are refused.
    pub fn from_json(v: &serde_json::Value) -> Result<Lex, Error> {
        use serde_json::Value as J;
        match v {
            J::String(s) => Ok(Lex::exact(s.clone())),
            J::Object(m) => {
                let field = |k: &str| -> Result<Option<String>, Error> {
                    match m.get(k) {
                        None => Ok(None),
                        Some(J::String(s)) => Ok(Some(s.clone())),
                        Some(_) => Err(Error::InvalidQuery("lexical bounds must be strings")),
                    }
                };
                Ok(Lex {
                    exact: field("=")?,
                    prefix: field("*")?,
                    start: field(">")?,
                    end: field("<")?,
                    reverse: m
                        .get("-")
                        .is_some_and(|x| !matches!(x, J::Null | J::Bool(false))),
                })
            }
            _ => Err(Error::InvalidQuery(
                "a lexical query is a string or an object",
            )),
        }
    }

    /// The wire form (a plain string for an exact match).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        if self.is_exact()
            && !self.reverse
            && let Some(x) = &self.exact
        {
            return J::String(x.clone());
        }
        let mut m = serde_json::Map::new();
        for (k, v) in [
            ("=", &self.exact),
            ("*", &self.prefix),
            (">", &self.start),
            ("<", &self.end),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), J::String(v.clone()));
            }
        }
        if self.reverse {
            m.insert("-".into(), J::Number(1.into()));
        }
        J::Object(m)
    }
}

/// The budget a Gun relay applies to a get: `percent` is the `%` field, `lexical`
/// whether the get has a lexical (non-exact) part. `None` means unlimited.
///
/// As in Gun.js: a `%` above [`MAX_BUDGET`] becomes 1, a lexical get without
/// `%` gets 1, a `%` of 0 means no limit.
pub fn budget(percent: Option<f64>, lexical: bool) -> Option<u64> {
    match percent {
        Some(p) if p.is_nan() => lexical.then_some(1),
        Some(0.0) => None,
        Some(p) if p < 1.0 => Some(1),
        Some(p) if p <= MAX_BUDGET as f64 => Some(p as u64),
        Some(_) => Some(1),
        None if lexical => Some(1),
        None => None,
    }
}

/// What one value costs against a budget: its length in UTF-16 units for a
/// non-empty string, else 9.
pub fn cost(v: &Value) -> u64 {
    match v {
        Value::String(s) if !s.is_empty() => s.encode_utf16().count() as u64,
        _ => 9,
    }
}

/// The keys of `node` that match `lex`, within `budget` (see [`budget`]).
pub fn query_node(node: &Node, lex: &Lex, budget: Option<u64>) -> Node {
    let mut spent = 0u64;
    query_node_spent(node, lex, budget, &mut spent)
}

/// [`query_node`] with a budget shared with earlier nodes: `spent` is what was
/// already spent, and grows by what this node returns (what
/// [`query_graph`] does across nodes; stores that keep some nodes whole use it).
pub fn query_node_spent(node: &Node, lex: &Lex, budget: Option<u64>, spent: &mut u64) -> Node {
    let mut out = Node::new(node.soul().clone());
    // Exact match without a budget: a map lookup, no scan.
    if let (Some(x), true) = (&lex.exact, lex.is_exact()) {
        if let Some((k, e)) = node.get_key_value(x.as_str())
            && budget.is_none_or(|b| *spent < b)
        {
            *spent += cost(&e.value);
            out.insert_entry(k.clone(), e.clone());
        }
        return out;
    }
    let mut take = |k: &std::sync::Arc<str>, e: &crate::Entry| -> bool {
        if !lex.matches(k) {
            return true;
        }
        if budget.is_some_and(|b| *spent >= b) {
            return false;
        }
        *spent += cost(&e.value);
        out.insert_entry(k.clone(), e.clone());
        true
    };
    // Narrow the scan to the prefix or start bound where UTF-8 order allows it.
    let from = lex.prefix.as_deref().or(lex.start.as_deref()).unwrap_or("");
    if lex.reverse {
        for (k, e) in node.iter().rev() {
            if !take(k, e) {
                break;
            }
        }
    } else {
        for (k, e) in node.range((std::ops::Bound::Included(from), std::ops::Bound::Unbounded)) {
            if let Some(p) = &lex.prefix
                && !k.starts_with(p.as_str())
                && k.as_ref() > p.as_str()
            {
                break;
            }
            if !take(k, e) {
                break;
            }
        }
        // Keys below `from` in UTF-8 order that JavaScript orders above it (a
        // supplementary character against U+E000..U+FFFF) are not possible when
        // `from` is a prefix of them; for range starts they are picked up here.
        if lex.prefix.is_none() && lex.start.is_some() {
            for (k, e) in node.range((std::ops::Bound::Unbounded, std::ops::Bound::Excluded(from)))
            {
                if lex.matches(k) && !take(k, e) {
                    break;
                }
            }
        }
    }
    out
}

/// Nodes of `graph` whose souls match `souls`, each filtered by `keys`, within a
/// budget shared by all values returned.
pub fn query_graph(graph: &Graph, souls: &Lex, keys: &Lex, budget: Option<u64>) -> Graph {
    let mut out = Graph::new();
    let mut spent = 0u64;
    let mut visit = |node: &Node, spent: &mut u64| -> bool {
        if budget.is_some_and(|b| *spent >= b) {
            return false;
        }
        let n = query_node_spent(node, keys, budget, spent);
        if !n.is_empty() {
            out.insert_node(n);
        }
        true
    };
    if let (Some(x), true) = (&souls.exact, souls.is_exact()) {
        if let Some(n) = graph.get(x) {
            visit(n, &mut spent);
        }
        return out;
    }
    let from = souls.prefix.as_deref().unwrap_or("");
    if souls.reverse {
        for (s, n) in graph.iter().rev() {
            if souls.matches(s.as_str()) && !visit(n, &mut spent) {
                break;
            }
        }
    } else {
        for (s, n) in graph.range_from(from) {
            if let Some(p) = &souls.prefix
                && !s.as_str().starts_with(p.as_str())
            {
                break;
            }
            if souls.matches(s.as_str()) && !visit(n, &mut spent) {
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Soul, State};

    fn node(keys: &[(&str, Value)]) -> Node {
        let mut n = Node::new(Soul::new("s").unwrap_or_else(|_| unreachable!()));
        for (k, v) in keys {
            n.insert(*k, State::new(1.0).unwrap_or(State::MIN), v.clone())
                .ok();
        }
        n
    }

    #[test]
    fn budgets_like_radisk() {
        let n = node(&[
            ("a", Value::from("xxxxx")),
            ("b", Value::from(1)),
            ("c", Value::from("yy")),
        ]);
        let all = Lex::range(None, None);
        assert_eq!(query_node(&n, &all, Some(1)).len(), 1);
        assert_eq!(query_node(&n, &all, Some(5)).len(), 1);
        assert_eq!(query_node(&n, &all, Some(6)).len(), 2);
        assert_eq!(query_node(&n, &all, Some(14)).len(), 2);
        assert_eq!(query_node(&n, &all, Some(15)).len(), 3);
        assert_eq!(query_node(&n, &all, None).len(), 3);
        assert_eq!(budget(None, true), Some(1));
        assert_eq!(budget(Some(100_001.0), false), Some(1));
        assert_eq!(budget(Some(100_000.0), true), Some(100_000));
        assert_eq!(budget(None, false), None);
        assert_eq!(budget(Some(0.0), true), None);
    }

    #[test]
    fn reverse_and_ranges() {
        let n = node(&[
            ("a", Value::Null),
            ("b", Value::Null),
            ("c", Value::Null),
            ("d", Value::Null),
        ]);
        let mut l = Lex::range(Some("b"), Some("c"));
        assert_eq!(
            query_node(&n, &l, None).keys().collect::<Vec<_>>(),
            ["b", "c"]
        );
        l.reverse = true;
        assert_eq!(
            query_node(&n, &l, Some(1)).keys().collect::<Vec<_>>(),
            ["c"]
        );
        assert_eq!(query_node(&n, &Lex::exact("d"), None).len(), 1);
        assert_eq!(query_node(&n, &Lex::exact("e"), None).len(), 0);
    }

    #[test]
    fn utf16_range_bounds() {
        // U+1F600 sorts below U+E000 in JavaScript although above it in UTF-8.
        let n = node(&[("\u{1F600}", Value::Null), ("\u{E000}", Value::Null)]);
        let l = Lex::range(Some("\u{E000}"), None);
        assert_eq!(
            query_node(&n, &l, None).keys().collect::<Vec<_>>(),
            ["\u{E000}"]
        );
        let l = Lex::range(Some("\u{D7FF}"), Some("\u{E000}"));
        assert_eq!(query_node(&n, &l, None).len(), 2);
    }

    #[test]
    fn wire_form() {
        let j: serde_json::Value =
            serde_json::from_str(r#"{"*":"ap",">":"a","-":1}"#).unwrap_or_default();
        let l = Lex::from_json(&j).unwrap_or_default();
        assert_eq!(l.prefix.as_deref(), Some("ap"));
        assert!(l.reverse);
        assert_eq!(Lex::from_json(&l.to_json()), Ok(l));
        assert!(Lex::from_json(&serde_json::json!({"*": 5})).is_err());
    }

    #[test]
    fn soul_queries() {
        let mut g = Graph::new();
        let st = State::new(1.0).unwrap_or(State::MIN);
        for s in ["fruit/apple", "fruit/banana", "veg/kale"] {
            g.put(
                Soul::new(s).unwrap_or_else(|_| unreachable!()),
                "k",
                st,
                Value::from("v"),
            )
            .ok();
        }
        let r = query_graph(&g, &Lex::prefix("fruit"), &Lex::default(), None);
        assert_eq!(
            r.souls().map(|s| s.as_str()).collect::<Vec<_>>(),
            ["fruit/apple", "fruit/banana"]
        );
        let r = query_graph(&g, &Lex::prefix("fruit"), &Lex::default(), Some(1));
        assert_eq!(r.len(), 1);
    }
}
