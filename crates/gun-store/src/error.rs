use std::path::PathBuf;

/// Everything a [`Store`](crate::Store) can fail with.
///
/// Backends wrap their own errors into these variants; no dependency's error type
/// appears in the public API (it may sit behind [`std::error::Error::source`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation on `path` failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Stored data under `path` is damaged and could not be read.
    #[error("corrupt data in {}: {detail}", path.display())]
    Corrupt {
        /// The file or database holding the damaged data.
        path: PathBuf,
        /// What is wrong, and where (byte offset, key) when known.
        detail: String,
    },
    /// The store's directory is already opened by another store instance (in this
    /// process or another one).
    #[error("{} is in use by another store", path.display())]
    Locked {
        /// The directory.
        path: PathBuf,
    },
    /// The store was closed and takes no more operations.
    #[error("the store is closed")]
    Closed,
    /// An earlier failure left the store in a state it cannot vouch for (for
    /// example a failed `fsync`); it refuses further writes. Reopen it.
    #[error("the store stopped after an earlier failure: {reason}")]
    Poisoned {
        /// The failure that stopped the store.
        reason: String,
    },
    /// A backend error that has no better variant (its message and source are kept).
    #[error("storage backend error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// An [`Error::Corrupt`] for `path`.
    pub fn corrupt(path: impl Into<PathBuf>, detail: impl Into<String>) -> Error {
        Error::Corrupt {
            path: path.into(),
            detail: detail.into(),
        }
    }

    /// An [`Error::Backend`] from any error.
    pub fn backend(e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Error {
        Error::Backend(e.into())
    }
}
