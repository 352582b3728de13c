//! The `##` hash of a put (§7.5): Java's 31-multiplier string hash, wrapped to a
//! signed 32-bit integer, over the UTF-16 code units of the put's JSON text with
//! object keys sorted at every level.

use crate::json;
use crate::{Graph, Node};

/// Gun.js's `String.hash`: `h = h * 31 + unit` over UTF-16 code units, as int32.
pub fn string_hash(s: &str) -> i32 {
    hash_units(0, s)
}

fn hash_units(mut h: i32, s: &str) -> i32 {
    for u in s.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(u));
    }
    h
}

/// The key-sorted JSON text of a graph, as Gun.js hashes it.
pub fn sorted_text(graph: &Graph) -> String {
    let mut out = String::with_capacity(128);
    out.push('{');
    // Souls and keys are sorted in JavaScript order (UTF-16 code units).
    let mut souls: Vec<&Node> = graph.nodes().collect();
    souls.sort_by(|a, b| json::cmp_utf16(a.soul().as_str(), b.soul().as_str()));
    for (i, node) in souls.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::write_str(&mut out, node.soul().as_str());
        out.push(':');
        write_sorted_node(&mut out, node);
    }
    out.push('}');
    out
}

fn write_sorted_node(out: &mut String, node: &Node) {
    let mut keys: Vec<&str> = node.keys().collect();
    keys.push("_");
    keys.sort_by(|a, b| json::cmp_utf16(a, b));
    out.push('{');
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::write_str(out, k);
        out.push(':');
        if *k == "_" {
            out.push_str("{\"#\":");
            json::write_str(out, node.soul().as_str());
            out.push_str(",\">\":{");
            let mut first = true;
            for s in keys.iter().filter(|s| **s != "_") {
                if let Some(e) = node.get(s) {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    json::write_str(out, s);
                    out.push(':');
                    json::write_number(out, e.state.as_f64());
                }
            }
            out.push_str("}}");
        } else if let Some(e) = node.get(k) {
            e.value.write_json(out);
        }
    }
    out.push('}');
}

/// The `##` of a put or get reply carrying `graph`.
pub fn graph_hash(graph: &Graph) -> i32 {
    string_hash(&sorted_text(graph))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_captured_hashes() {
        // From raw-basic: a reply for `alice2ie3` carried "##":1715850078.
        let put = r##"{"alice2ie3":{"_":{"#":"alice2ie3",">":{"age":1795643412520,"car":1795643412520,"name":1795643412520}},"age":30,"car":{"#":"car2ie3"},"name":"Alice"}}"##;
        let g = Graph::from_wire(put).unwrap_or_default();
        assert_eq!(graph_hash(&g), 1715850078);
        // And the single-key reply carried -1528196833.
        let put =
            r##"{"alice2ie3":{"_":{"#":"alice2ie3",">":{"name":1795643412520}},"name":"Alice"}}"##;
        let g = Graph::from_wire(put).unwrap_or_default();
        assert_eq!(graph_hash(&g), -1528196833);
    }

    #[test]
    fn string_hash_like_javascript() {
        assert_eq!(string_hash(""), 0);
        assert_eq!(string_hash("a"), 97);
        assert_eq!(string_hash("hello"), 99162322);
        // Values computed by Gun.js's own String.hash on node 20.
        assert_eq!(string_hash("the quick brown fox"), 1302335171);
        assert_eq!(string_hash("\u{1F600}\u{e9}\u{0}"), 1703763162);
    }
}
