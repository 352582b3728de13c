//! SEA write block lists read from the relay's store.
//!
//! A certificate may name a block list (`wb`): a write under it is refused when
//! the list marks the writer's pub with `true` or `1`. Gun.js reads the list
//! with `gun.get(list).get(pub).once(..)` while it checks the write; the relay
//! reads it from its own store, which holds every write it acknowledged.

use std::sync::Arc;

use gun_graph::Value;
use tokio::runtime::{Handle, RuntimeFlavor};

use crate::Store;

/// Reads block lists from the store, waiting for the read on the validating
/// thread (only writes under a certificate with a block list do).
pub(crate) struct StoreBlockList {
    store: Arc<dyn Store>,
}

impl StoreBlockList {
    pub(crate) fn new(store: Arc<dyn Store>) -> StoreBlockList {
        StoreBlockList { store }
    }
}

impl gun_sea::BlockList for StoreBlockList {
    fn value(&self, soul: &str, key: &str) -> Option<Value> {
        self.try_value(soul, key).ok().flatten()
    }

    fn try_value(&self, soul: &str, key: &str) -> Result<Option<Value>, String> {
        // Validators are synchronous: the read is waited for here. On a
        // multi-threaded runtime the worker hands its other tasks over first
        // (`block_in_place`); on a single-threaded one waiting would stop the
        // very runtime the store may need, so the write is refused instead.
        let handle = Handle::try_current()
            .map_err(|_| "no tokio runtime to read the store on".to_owned())?;
        if handle.runtime_flavor() != RuntimeFlavor::MultiThread {
            let why = "a block list is read only on a multi-threaded tokio runtime";
            tracing::warn!(soul, key, "write under a certificate refused: {why}");
            return Err(why.to_owned());
        }
        // `block_in_place` panics where blocking is not allowed (inside a
        // `LocalSet`): refuse the write rather than take the relay down.
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            tokio::task::block_in_place(|| handle.block_on(self.store.get_key(soul, key)))
        }))
        .map_err(|_| {
            let why = "a block list cannot be read here (blocking not allowed)";
            tracing::warn!(soul, key, "write under a certificate refused: {why}");
            why.to_owned()
        })?;
        match read {
            Ok(node) => Ok(node.and_then(|n| n.get(key).map(|e| e.value.clone()))),
            Err(e) => {
                tracing::warn!(soul, key, error = %e, "write under a certificate refused: its block list could not be read");
                Err(e.to_string())
            }
        }
    }
}
