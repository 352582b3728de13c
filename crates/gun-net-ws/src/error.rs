//! The crate's one error type.

use std::io;
use std::net::SocketAddr;
#[cfg(feature = "tls")]
use std::path::PathBuf;

/// Errors of `gun-net-ws`.
///
/// Failures on one connection (a bad request, an oversize frame, a peer that stopped reading)
/// never surface here: they close that connection and are reported through `tracing`. What is
/// left are configuration and setup errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listening socket could not be bound (address in use, no permission, ...).
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// An option value that cannot work (zero-sized queue, zero interval, bad path, ...).
    #[error("invalid option {name}: {reason}")]
    InvalidOption {
        /// The field of [`ServerOptions`](crate::ServerOptions) or
        /// [`ClientOptions`](crate::ClientOptions).
        name: &'static str,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Called outside a tokio runtime: the server and the client spawn tasks on the current one.
    #[error("gun-net-ws must be used from inside a tokio runtime")]
    NoRuntime,
    /// A peer URL that cannot be dialed.
    #[error("invalid peer url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `wss://`/`https://` URL or a TLS server option was used, but the crate was built
    /// without the `tls` feature.
    #[error("TLS requested ({url:?}) but gun-net-ws was built without the `tls` feature")]
    TlsUnavailable {
        /// The URL that asked for TLS.
        url: String,
    },
    /// A PEM file (certificate chain, private key or root certificate) could not be used.
    #[cfg(feature = "tls")]
    #[error("cannot use PEM file {path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
        /// The underlying parse or I/O error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// rustls refused the certificate, key or root.
    #[cfg(feature = "tls")]
    #[error("TLS configuration rejected: {reason}")]
    Tls {
        /// What was being configured.
        reason: &'static str,
        /// The error from the TLS library.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The client was closed (by [`ClientHandle::close`](crate::ClientHandle::close)) before it
    /// connected.
    #[error("the client was closed")]
    Closed,
    /// Waiting for something (e.g. the first connection) took longer than allowed.
    #[error("timed out")]
    Timeout,
}
