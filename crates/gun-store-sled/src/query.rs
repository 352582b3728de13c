//! Lexical reads as range scans over the layout of [`crate::layout`].
//!
//! The answers equal [`gun_graph::lex::query_graph`]'s on the same data: the same
//! keys are visited in the same order, with the same budget rule. Lex compares
//! strings in JavaScript's UTF-16 order while sled orders UTF-8 bytes; the two
//! differ only between supplementary characters (U+10000 and up) and
//! U+E000..U+FFFF, so a bound is used to narrow a scan only when it contains
//! no character for which the orders could disagree; otherwise that side of the
//! scan stays open and [`Lex::matches`] filters.

use std::ops::Bound;

use gun_graph::{Graph, Lex, Node, Soul, State, Value, lex};
use gun_store::Error;

use crate::layout::{self, DATA_END};

/// An exclusive upper bound on strings.
#[derive(Debug, Clone)]
enum Hi {
    /// Strings `<= s`.
    UpTo(String),
    /// Strings `<` every string starting with `s` … i.e. those below `s` or starting with `s`.
    Prefix(String),
}

impl Hi {
    /// The bound as raw bytes (exclusive): what it is in the key space.
    fn raw(&self) -> Vec<u8> {
        match self {
            Hi::UpTo(s) => [s.as_bytes(), &[0x00]].concat(),
            Hi::Prefix(p) => [p.as_bytes(), &[0xFF]].concat(),
        }
    }

    /// The bound in the soul space (exclusive, on sled keys).
    fn soul_space(&self) -> Vec<u8> {
        match self {
            Hi::UpTo(s) => layout::node_end(s),
            Hi::Prefix(p) => {
                let mut v = Vec::with_capacity(p.len() + 1);
                layout::escape_soul(p, &mut v);
                v.push(0xFF);
                v
            }
        }
    }
}

/// The part of the (UTF-8 ordered) string space that can hold matches of a Lex.
#[derive(Debug, Clone, Default)]
struct Region {
    /// Inclusive lower bound.
    lo: String,
    /// Exclusive upper bound, `None` when open.
    hi: Option<Hi>,
}

fn has_supplementary(s: &str) -> bool {
    s.chars().any(|c| c > '\u{FFFF}')
}

fn has_high_bmp(s: &str) -> bool {
    s.chars().any(|c| ('\u{E000}'..='\u{FFFF}').contains(&c))
}

impl Region {
    fn of(lex: &Lex) -> Region {
        let mut r = Region::default();
        if let Some(x) = &lex.exact {
            r.raise(x);
            r.lower(Hi::UpTo(x.clone()));
        }
        if let Some(p) = &lex.prefix {
            r.raise(p);
            r.lower(Hi::Prefix(p.clone()));
        }
        // A start bound with a supplementary character can be met by smaller
        // UTF-8 strings (U+E000..U+FFFF sort above surrogates in UTF-16).
        if let Some(s) = lex.start.as_ref().filter(|s| !has_supplementary(s)) {
            r.raise(s);
        }
        // An end bound with U+E000..U+FFFF can be met by greater UTF-8 strings.
        if let Some(e) = lex.end.as_ref().filter(|e| !has_high_bmp(e)) {
            r.lower(Hi::UpTo(e.clone()));
        }
        r
    }

    fn raise(&mut self, lo: &str) {
        if lo > self.lo.as_str() {
            self.lo = lo.to_string();
        }
    }

    fn lower(&mut self, hi: Hi) {
        match &self.hi {
            Some(cur) if cur.raw() <= hi.raw() => {}
            _ => self.hi = Some(hi),
        }
    }

    fn is_empty(&self) -> bool {
        self.hi
            .as_ref()
            .is_some_and(|h| h.raw().as_slice() <= self.lo.as_bytes())
    }
}

fn sled_err(e: sled::Error, path: &std::path::Path) -> Error {
    crate::map_sled_error(e, path)
}

/// Reads matching keys of one node, in gun_graph's order, within the budget.
pub(crate) struct Reader<'a> {
    pub(crate) tree: &'a sled::Tree,
    pub(crate) path: &'a std::path::Path,
}

impl Reader<'_> {
    fn corrupt(&self, what: &str, key: &[u8]) -> Error {
        let shown: String = String::from_utf8_lossy(&key[..key.len().min(80)])
            .escape_debug()
            .collect();
        Error::corrupt(self.path, format!("{what} at sled key \"{shown}\""))
    }

    /// Decodes one sled entry of a known node prefix.
    fn entry(
        &self,
        prefix_len: usize,
        k: &[u8],
        v: &[u8],
    ) -> Result<(String, State, Value), Error> {
        let key = k
            .get(prefix_len..)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or_else(|| self.corrupt("key is not UTF-8", k))?;
        let (state, value) = layout::decode_entry(v).map_err(|e| self.corrupt(e, k))?;
        Ok((key.to_string(), state, value))
    }

    /// The whole-node record of `soul`, decoded, if the node is kept whole.
    pub(crate) fn blob(&self, soul: &str) -> Result<Option<Node>, Error> {
        let k = layout::blob_key(soul);
        let Some(v) = self.tree.get(&k).map_err(|e| sled_err(e, self.path))? else {
            return Ok(None);
        };
        self.decode_blob_node(soul, &k, &v).map(Some)
    }

    /// Decodes the whole-node record `v` (under sled key `k`) of `soul`.
    pub(crate) fn decode_blob_node(&self, soul: &str, k: &[u8], v: &[u8]) -> Result<Node, Error> {
        let s = Soul::new(soul).map_err(|_| self.corrupt("empty soul", k))?;
        let mut node = Node::new(s);
        for (key, state, value) in layout::decode_blob(v).map_err(|e| self.corrupt(e, k))? {
            node.insert(key, state, value)
                .map_err(|e| self.corrupt(&e.to_string(), k))?;
        }
        Ok(node)
    }

    /// The whole node, `None` when it has no keys.
    pub(crate) fn node(&self, soul: &str) -> Result<Option<Node>, Error> {
        let s = Soul::new(soul).map_err(|_| Error::corrupt(self.path, "empty soul"));
        let Ok(s) = s else { return Ok(None) };
        let mut node = Node::new(s);
        let blob = layout::blob_key(soul);
        let prefix = layout::node_prefix(soul);
        for item in self.tree.range(blob.clone()..layout::node_end(soul)) {
            let (k, v) = item.map_err(|e| sled_err(e, self.path))?;
            if *k == *blob {
                node = self.decode_blob_node(soul, &k, &v)?;
                continue;
            }
            let (key, state, value) = self.entry(prefix.len(), &k, &v)?;
            node.insert(key, state, value)
                .map_err(|e| self.corrupt(&e.to_string(), &k))?;
        }
        Ok((!node.is_empty()).then_some(node))
    }

    /// One key, as a node holding just it.
    pub(crate) fn key(&self, soul: &str, key: &str) -> Result<Option<Node>, Error> {
        let Ok(s) = Soul::new(soul) else {
            return Ok(None);
        };
        if let Some(n) = self.blob(soul)? {
            let one = n.select([key]);
            return Ok((!one.is_empty()).then_some(one));
        }
        let k = layout::entry_key(soul, key);
        let Some(v) = self.tree.get(&k).map_err(|e| sled_err(e, self.path))? else {
            return Ok(None);
        };
        let (state, value) = layout::decode_entry(&v).map_err(|e| self.corrupt(e, &k))?;
        let mut node = Node::new(s);
        node.insert(key, state, value)
            .map_err(|e| self.corrupt(&e.to_string(), &k))?;
        Ok(Some(node))
    }

    /// `lex::query_node` with a budget shared across nodes (`spent`).
    fn node_lex(
        &self,
        soul: &Soul,
        keys: &Lex,
        budget: Option<u64>,
        spent: &mut u64,
    ) -> Result<Node, Error> {
        let mut out = Node::new(soul.clone());
        let prefix = layout::node_prefix(soul.as_str());
        if let (Some(x), true) = (&keys.exact, keys.is_exact()) {
            if let Some(n) = self.key(soul.as_str(), x)?
                && budget.is_none_or(|b| *spent < b)
            {
                for (k, e) in n.iter() {
                    *spent += lex::cost(&e.value);
                    let _ = out.insert(k.clone(), e.state, e.value.clone());
                }
            }
            return Ok(out);
        }
        if let Some(n) = self.blob(soul.as_str())? {
            return Ok(lex::query_node_spent(&n, keys, budget, spent));
        }
        let region = Region::of(keys);
        if region.is_empty() {
            return Ok(out);
        }
        let at = |k: &[u8]| [prefix.as_slice(), k].concat();
        let hi = match &region.hi {
            Some(h) => at(&h.raw()),
            None => layout::node_end(soul.as_str()),
        };
        // Returns Ok(false) once the budget is spent.
        let mut take = |k: &[u8], v: &[u8], out: &mut Node| -> Result<bool, Error> {
            let (key, state, value) = self.entry(prefix.len(), k, v)?;
            if !keys.matches(&key) {
                return Ok(true);
            }
            if budget.is_some_and(|b| *spent >= b) {
                return Ok(false);
            }
            *spent += lex::cost(&value);
            out.insert(key, state, value)
                .map_err(|e| self.corrupt(&e.to_string(), k))?;
            Ok(true)
        };
        if keys.reverse {
            for item in self.tree.range(at(region.lo.as_bytes())..hi).rev() {
                let (k, v) = item.map_err(|e| sled_err(e, self.path))?;
                if !take(&k, &v, &mut out)? {
                    break;
                }
            }
            return Ok(out);
        }
        // Forwards, as gun_graph does: from the prefix (or start) up, then the
        // keys below the start that JavaScript orders above it.
        let from = keys
            .prefix
            .as_deref()
            .or(keys.start.as_deref())
            .unwrap_or("");
        let lo1 = if from > region.lo.as_str() {
            from
        } else {
            region.lo.as_str()
        };
        let start1 = at(lo1.as_bytes());
        if start1 < hi {
            for item in self.tree.range(start1..hi.clone()) {
                let (k, v) = item.map_err(|e| sled_err(e, self.path))?;
                if !take(&k, &v, &mut out)? {
                    return Ok(out);
                }
            }
        }
        if keys.prefix.is_none() && keys.start.is_some() && region.lo.as_str() < from {
            let hi2 = at(from.as_bytes()).min(hi);
            for item in self.tree.range(at(region.lo.as_bytes())..hi2) {
                let (k, v) = item.map_err(|e| sled_err(e, self.path))?;
                if !take(&k, &v, &mut out)? {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The soul of the first entry in `range`, from the front or the back.
    fn soul_at(&self, lo: Bound<Vec<u8>>, hi: Vec<u8>, back: bool) -> Result<Option<Soul>, Error> {
        let mut it = self.tree.range::<Vec<u8>, _>((lo, Bound::Excluded(hi)));
        let item = if back { it.next_back() } else { it.next() };
        let Some(item) = item else { return Ok(None) };
        let (k, _) = item.map_err(|e| sled_err(e, self.path))?;
        let soul = layout::split_soul(&k).ok_or_else(|| self.corrupt("malformed entry key", &k))?;
        Soul::new(soul)
            .map(Some)
            .map_err(|_| self.corrupt("empty soul", &k))
    }

    /// `lex::query_graph`, by range scans.
    pub(crate) fn query(
        &self,
        souls: &Lex,
        keys: &Lex,
        budget: Option<u64>,
    ) -> Result<Graph, Error> {
        let mut out = Graph::new();
        let mut spent = 0u64;
        let visit = |soul: &Soul, spent: &mut u64, out: &mut Graph| -> Result<bool, Error> {
            if budget.is_some_and(|b| *spent >= b) {
                return Ok(false);
            }
            let n = self.node_lex(soul, keys, budget, spent)?;
            if !n.is_empty() {
                out.insert_node(n);
            }
            Ok(true)
        };
        if let (Some(x), true) = (&souls.exact, souls.is_exact()) {
            if let Ok(s) = Soul::new(x.as_str()) {
                visit(&s, &mut spent, &mut out)?;
            }
            return Ok(out);
        }
        let region = Region::of(souls);
        if region.is_empty() {
            return Ok(out);
        }
        let mut lo = Vec::with_capacity(region.lo.len());
        layout::escape_soul(&region.lo, &mut lo);
        let hi = match &region.hi {
            Some(h) => h.soul_space().min(DATA_END.to_vec()),
            None => DATA_END.to_vec(),
        };
        if souls.reverse {
            let mut upper = hi;
            while let Some(soul) = self.soul_at(Bound::Included(lo.clone()), upper, true)? {
                if souls.matches(soul.as_str()) && !visit(&soul, &mut spent, &mut out)? {
                    break;
                }
                upper = Vec::with_capacity(soul.as_str().len());
                layout::escape_soul(soul.as_str(), &mut upper);
            }
        } else {
            let mut lower = lo;
            while let Some(soul) = self.soul_at(Bound::Included(lower), hi.clone(), false)? {
                if souls.matches(soul.as_str()) && !visit(&soul, &mut spent, &mut out)? {
                    break;
                }
                lower = layout::node_end(soul.as_str());
            }
        }
        Ok(out)
    }
}

impl Reader<'_> {
    /// Up to `limit` whole nodes after the soul `after`, in soul order
    /// ([`gun_store::Store::scan`]).
    pub(crate) fn scan(&self, after: Option<&str>, limit: usize) -> Result<Vec<Node>, Error> {
        let mut lower = after.map_or_else(Vec::new, layout::node_end);
        let all = Lex::default();
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(soul) = self.soul_at(Bound::Included(lower), DATA_END.to_vec(), false)? else {
                break;
            };
            let n = self.node_lex(&soul, &all, None, &mut 0)?;
            lower = layout::node_end(soul.as_str());
            if !n.is_empty() {
                out.push(n);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn regions() {
        let r = Region::of(&Lex::prefix("ap"));
        assert_eq!(r.lo, "ap");
        assert_eq!(r.hi.unwrap().raw(), b"ap\xFF");
        let r = Region::of(&Lex::range(Some("b"), Some("d")));
        assert_eq!(
            (r.lo.as_str(), r.hi.unwrap().raw()),
            ("b", b"d\x00".to_vec())
        );
        // Unsafe bounds stay open.
        let r = Region::of(&Lex::range(Some("😀"), Some("\u{E000}")));
        assert_eq!(r.lo, "");
        assert!(r.hi.is_none());
        let mut l = Lex::prefix("b");
        l.end = Some("a".into());
        assert!(Region::of(&l).is_empty());
        assert!(!Region::of(&Lex::exact("")).is_empty());
    }
}
