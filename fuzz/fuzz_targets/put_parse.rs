//! Arbitrary bytes as the wire form of a put's graph.
//!
//! Parsing must never panic. Whatever parses must survive a round trip:
//! `to_wire` then `from_wire_bytes` gives back an equal graph, and emitting that
//! graph again gives the same text.
#![no_main]

use gun_graph::Graph;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(graph) = Graph::from_wire_bytes(data) else {
        return;
    };
    let wire = graph.to_wire();
    let again = match Graph::from_wire_bytes(wire.as_bytes()) {
        Ok(g) => g,
        Err(e) => panic!("re-emitted wire form does not parse: {e}\nwire: {wire}"),
    };
    assert_eq!(
        graph, again,
        "wire round trip changed the graph\nwire: {wire}"
    );
    assert_eq!(wire, again.to_wire(), "wire form is not stable");
});
