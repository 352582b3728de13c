//! Integration tests of gun-net-ws over loopback: server, client, HTTP side, TLS, and a smoke
//! test against a genuine Gun.js relay.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod client;
mod gunjs;
mod http;
mod hub;
mod server;
#[cfg(feature = "tls")]
mod tls;
