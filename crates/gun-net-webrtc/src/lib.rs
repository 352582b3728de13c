//! WebRTC transport for gun-rs: direct links between peers that found each
//! other through a relay, signalled through the mesh exactly as Gun.js's
//! `lib/webrtc.js` does (spec §11.3), so gun-rs peers and Gun.js browser peers
//! connect to each other.
//!
//! Two peers that joined the same *room* through a relay open a data channel
//! between them; from then on writes go both ways directly, and a relay that
//! goes down (or is slow) does not stop them.
//!
//! * [`signal`]: the signalling, without WebRTC: the `ok.rtc` payloads and the
//!   [`Room`](signal::Room) state machine (who offers, who answers, the peer
//!   limit, simultaneous offers). Always built.
//! * `Rtc` (feature **`webrtc`**, off by default): the transport on the
//!   [`webrtc`](https://docs.rs/webrtc) crate (0.21, pure Rust). Each open data
//!   channel is a `gun_dam::Direction::Direct` link of the engine.
//!   The feature adds about 200 crates and about 70 s to a cold debug build on
//!   two cores, which is why it is off by default.
//!
//! # How a connection is made (wire)
//!
//! 1. Each peer writes its pid to `/RTC/<room><?99` key `+` and listens to it.
//! 2. A peer that sees a newer pid there answers that write's `#` with an
//!    offer: `{"@":…,"#":ask,"ok":{"rtc":{"offer":{"type":"offer","sdp":…},"id":pid}}}`.
//! 3. The newcomer answers `ask` with `{"rtc":{"answer":…,"id":…}}`; candidates
//!    trickle the same ways. Relays route the `@` messages back unchanged.
//! 4. The data channel `dc` (unordered, at most 2 retransmits) carries the same
//!    JSON frames as a websocket.
//!
//! # Example: the signalling (always built)
//!
//! ```
//! use gun_net_webrtc::signal::{RtcMessage, Signal, room_soul};
//! use serde_json::json;
//!
//! assert_eq!(room_soul("my-room"), "/RTC/my-room<?99");
//! // The `ok` of a message from a Gun.js peer offering a connection:
//! let ok = json!({"rtc": {"offer": {"type": "offer", "sdp": "v=0\\r\\n"}, "id": "peerA"}});
//! let msg = RtcMessage::from_ok(Some(&ok)).unwrap().expect("an rtc payload");
//! assert_eq!(msg.from, "peerA");
//! assert_eq!(msg.signal, Signal::Offer("v=0\r\n".into()));
//! assert_eq!(msg.to_ok()["rtc"]["id"], "peerA");
//! ```
//!
//! # Example (feature `webrtc`)
//!
//! ```no_run
//! # #[cfg(feature = "webrtc")]
//! # async fn demo(engine: gun_core::Engine) -> Result<(), Box<dyn std::error::Error>> {
//! use gun_net_webrtc::{Rtc, RtcOptions};
//! // `engine` is a gun-rs engine that dialed a relay (gun-net-ws) or expects one.
//! let rtc = Rtc::start(engine.clone(), RtcOptions::new("my-room"))?;
//! // Peers in "my-room" now connect directly; `rtc.connected()` lists them.
//! println!("joined as {}", rtc.pid());
//! # rtc.close().await;
//! # Ok(()) }
//! ```

pub mod signal;

#[cfg(feature = "webrtc")]
mod rtc;
#[cfg(feature = "webrtc")]
pub use rtc::{Error, Rtc, RtcOptions};
