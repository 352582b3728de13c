//! Arbitrary text as a frame from a peer.
//!
//! Parsing must never panic, and the envelope shortcut (`frame_fast.rs`) must
//! give exactly the messages (or errors) of the general serde path.
#![no_main]

use gun_dam::frame::{Limits, parse_frame_general, parse_frame_with};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A small batch bound too, so that its edge is reached.
    for limits in [
        Limits::default(),
        Limits {
            max_batch: 2,
            max_value_depth: 4,
            ..Limits::default()
        },
    ] {
        assert_eq!(
            parse_frame_with(text, &limits),
            parse_frame_general(text, &limits),
            "frame: {text}"
        );
    }
});
