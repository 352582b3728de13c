//! # gun-store-file: a crash-safe gun-rs [`Store`] in one directory
//!
//! The design card's "localStorage-like" store: the whole graph lives in memory
//! (so every read, lexical ones included, is answered from an in-memory index
//! by [`gun_graph::lex`]), and a directory keeps it durable:
//!
//! * a **write-ahead journal**: every put appends one record (its accepted diff
//!   as Gun wire JSON, framed by a length and a CRC-32) and fsyncs before the put
//!   resolves. Puts arriving while an fsync runs share the next one (group
//!   commit). A failed append is cut back off the journal: nothing of the diff is
//!   applied, on disk or in memory.
//! * **snapshots**: when the journal outgrows the snapshot (and
//!   [`Options::compact_min_bytes`]), the graph is written to `snapshot.tmp`,
//!   fsynced, renamed over `snapshot` (the old one becomes `snapshot.prev`), the
//!   directory fsynced, and only then the journal rotated to `journal.prev` and a
//!   new one started: at no moment does data exist in no file.
//! * **loading** reads `snapshot` and replays the journal's records whose checksums
//!   hold. Damage never stops the store from opening; see [Damaged
//!   files](#damaged-files).
//! * the **outbox** (this peer's writes no peer acked yet,
//!   [`Store::outbox_put`]) is one file per entry
//!   in `outbox/`, named by the hex of the message id, written to a temporary
//!   file, fsynced and renamed; an unreadable entry is skipped with a warn event.
//!
//! File names are fixed (`journal`, `snapshot`, …): **souls never become file
//! names**. A soul like `../x`, `CON`, `a/b`, one with NUL bytes, one 10 KB long,
//! or two souls differing only in case are just strings inside records, so there
//! is no path traversal, no reserved device name, no case-insensitive-filesystem
//! collision and no name-length limit to worry about. A `LOCK` file (an advisory
//! `flock`) keeps a second store, in this process or another, from opening the
//! same directory.
//!
//! The crate also imports Gun.js `radata` directories: see [`import_radisk`].
//!
//! ```
//! use gun_graph::{Graph, Lex, Soul, State, Value};
//! use gun_store::Store;
//! use gun_store_file::FileStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! {
//!     let store = FileStore::open(dir.path())?;
//!     let mut diff = Graph::new();
//!     diff.put(Soul::new("../etc/passwd")?, "harmless", State::new(1.0)?, Value::from(true))?;
//!     store.put(&diff).await?; // fsynced to the journal once this resolves
//! }
//! let store = FileStore::open(dir.path())?; // snapshot + journal replay
//! let n = store.get_key("../etc/passwd", "harmless").await?;
//! assert_eq!(n.and_then(|n| n.value("harmless").cloned()), Some(Value::from(true)));
//! # Ok(()) }
//! ```
//!
//! ## Limits
//!
//! * The whole graph is held in memory (that is what makes every read fast).
//! * Puts queue while a compaction writes its snapshot (one writer thread does
//!   both); compaction runs when the journal outgrows the snapshot, so its cost is
//!   spread over at least as many bytes of puts.
//! * Durability is tested against process crashes (SIGKILL at random moments,
//!   `gun-relay`'s `tests/crash.rs`); power loss additionally relies on `fsync`
//!   doing what it promises.
//!
//! ## Damaged files
//!
//! Every record carries a CRC-32, so damage is detected, reported with
//! `tracing` (file, byte range, reason) and skipped; the store then opens and
//! serves everything else:
//!
//! * **a torn journal tail** (a crash mid-append: only puts that were never
//!   acknowledged) is reported with `warn!` and its byte offset, and cut off.
//! * **damage inside the journal** (garbage, a bad block): the reader looks for
//!   the next offset where a whole record with a valid checksum starts and goes
//!   on from there, so only the records overlapping the damage are lost,
//!   reported with `error!` and the byte range. The files are then rewritten
//!   (a compaction) without the damage. A journal whose magic is wrong and which
//!   holds no readable record at all (not a journal of this store) is refused
//!   with [`Error::Corrupt`], so that a foreign file is never overwritten.
//! * **a damaged snapshot** (cut short, garbage, a wrong end record) is copied
//!   to `snapshot.corrupt` (then `.1`, `.2`, …; never deleted), and the store
//!   loads `snapshot.prev + journal.prev + journal` merged with every readable
//!   record of the damaged snapshot. When the older snapshot and the older journal
//!   are both whole, that is everything and the store says so with `warn!`
//!   ("nothing is lost"). Otherwise (no older snapshot, e.g. after the first
//!   compaction, or older files damaged or removed) it serves what it could read
//!   and says with `error!` which byte ranges were unreadable: nodes stored only
//!   there are lost (HAM makes the merge of any subset of the history safe: an
//!   older copy can never override a newer one that was read). Two compactions
//!   then rewrite the snapshot and restore a whole `snapshot.prev`.
//!
//! Resynchronising cannot mistake data for a record: a candidate needs a known
//! kind, a length that fits the file, a JSON payload starting with `{`, and a
//! matching CRC-32; and a header's kind byte (1 to 3) never occurs in our own
//! payloads (JSON text holds no control characters), so no record is ever
//! "found" inside another.
//!
//! ## Journal and snapshot format
//!
//! Both files start with an 8-byte magic (`GUNJRNL1`, `GUNSNAP1`) followed by
//! records `len: u32 LE | crc32: u32 LE | kind: u8 | payload`, the CRC-32 (IEEE)
//! covering kind and payload. Journal records (kind 1) hold one diff as Gun wire
//! JSON (`{soul: {"_": {"#": soul, ">": {key: state}}, key: value}}`); snapshot
//! records (kind 2) hold whole nodes in the same form, about 1 MiB per record,
//! and a final record (kind 3) holds the number of node records, souls and keys,
//! so a snapshot cut short is recognised as incomplete.

mod disk;
mod outbox;
mod radisk;
mod record;
mod writer;

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use gun_graph::{Graph, Lex, Node, lex};
use gun_store::{BoxFuture, Error, Store, StoreStats};
use tokio::sync::oneshot;

pub use radisk::{ImportReport, SkipReason, Skipped, SkippedFile, import_radisk};

use crate::disk::{FailPoint, Journal};
use crate::writer::{Request, Shared, Writer};

/// Options for [`FileStore::open_with`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Compact (write a snapshot, start a new journal) once the journal is larger
    /// than this and larger than the current snapshot. Default: 8 MiB.
    pub compact_min_bytes: u64,
    /// **For tests**: simulate a failing disk. The journal write that would take
    /// this store instance past this many bytes appended writes only up to it
    /// and then fails (as a full disk does), and so do all later appends. The
    /// conformance suite uses it to check that a failed put leaves no trace.
    pub fail_after_bytes: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            compact_min_bytes: 8 << 20,
            fail_after_bytes: None,
        }
    }
}

impl Options {
    /// The defaults.
    pub fn new() -> Options {
        Options::default()
    }

    /// Sets [`Options::compact_min_bytes`].
    pub fn compact_min_bytes(mut self, bytes: u64) -> Options {
        self.compact_min_bytes = bytes;
        self
    }

    /// Sets [`Options::fail_after_bytes`] (tests only).
    pub fn fail_after_bytes(mut self, bytes: u64) -> Options {
        self.fail_after_bytes = Some(bytes);
        self
    }
}

/// The one-directory, journaled [`Store`]. See the [crate docs](crate).
///
/// Dropping it lets the writer thread finish what was queued, then closes the
/// files and releases the directory. Dropping a `put` future does not cancel the
/// write: it is applied (or not) as if it had been awaited.
pub struct FileStore {
    shared: Arc<Shared>,
    dir: PathBuf,
    tx: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    /// Held (locked) until the store is dropped.
    _lock: File,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl FileStore {
    /// Opens (creating if needed) the store in directory `dir`.
    ///
    /// Blocking: it reads the snapshot and replays the journal. Fails with
    /// [`Error::Locked`] if another store has the directory open.
    pub fn open(dir: impl AsRef<Path>) -> Result<FileStore, Error> {
        FileStore::open_with(dir, &Options::default())
    }

    /// Opens (creating if needed) the store in directory `dir` with `options`.
    pub fn open_with(dir: impl AsRef<Path>, options: &Options) -> Result<FileStore, Error> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                disk::sync_dir(parent)?;
            }
        }
        let lock_path = dir.join(disk::LOCK);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        match fs4::FileExt::try_lock(&lock) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => return Err(Error::Locked { path: dir }),
            Err(fs4::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
        }

        let loaded = disk::load(&dir)?;
        let fail = options
            .fail_after_bytes
            .map(|remaining| FailPoint { remaining });
        let journal = match loaded.journal {
            Some(found) => Journal::open(&dir, found, fail)?,
            None => Journal::create(&dir, fail)?,
        };
        let shared = Arc::new(Shared::new(
            loaded.graph,
            loaded.snapshot_len + journal.len(),
        ));
        let writer = Writer {
            shared: Arc::clone(&shared),
            dir: dir.clone(),
            journal: Some(journal),
            snapshot_len: loaded.snapshot_len,
            compact_min_bytes: options.compact_min_bytes,
            fail,
            poisoned: None,
            // Run first, before any put.
            startup_compactions: loaded.compactions,
        };
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("gun-store-file".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::io(&dir, e))?;
        Ok(FileStore {
            shared,
            dir,
            tx: Some(tx),
            thread: Some(thread),
            _lock: lock,
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a snapshot now and starts a new journal (normally automatic).
    pub async fn compact(&self) -> Result<(), Error> {
        self.request(|done| Request::Compact { done }).await
    }

    async fn request(&self, make: impl FnOnce(writer::Reply) -> Request) -> Result<(), Error> {
        let (done, wait) = oneshot::channel();
        let tx = self.tx.as_ref().ok_or(Error::Closed)?;
        tx.send(make(done)).map_err(|_| Error::Closed)?;
        wait.await.map_err(|_| Error::Closed)?
    }
}

impl Drop for FileStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer once the queue is drained.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Store for FileStore {
    fn get_node<'a>(&'a self, soul: &'a str) -> BoxFuture<'a, Result<Option<Node>, Error>> {
        Box::pin(async move {
            Ok(self
                .shared
                .read()
                .get(soul)
                .filter(|n| !n.is_empty())
                .cloned())
        })
    }

    fn get_key<'a>(
        &'a self,
        soul: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Node>, Error>> {
        Box::pin(async move {
            Ok(self
                .shared
                .read()
                .get(soul)
                .map(|n| n.select([key]))
                .filter(|n| !n.is_empty()))
        })
    }

    fn query<'a>(
        &'a self,
        souls: &'a Lex,
        keys: &'a Lex,
        budget: Option<u64>,
    ) -> BoxFuture<'a, Result<Graph, Error>> {
        Box::pin(async move { Ok(lex::query_graph(&self.shared.read(), souls, keys, budget)) })
    }

    fn scan<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Option<Vec<Node>>, Error>> {
        Box::pin(async move {
            let g = self.shared.read();
            Ok(Some(g.nodes_after(after).take(limit).cloned().collect()))
        })
    }

    fn put<'a>(&'a self, diff: &'a Graph) -> BoxFuture<'a, Result<Graph, Error>> {
        Box::pin(async move {
            if diff.is_empty() || diff.key_count() == 0 {
                return Ok(Graph::new());
            }
            let (done, wait) = oneshot::channel();
            let tx = self.tx.as_ref().ok_or(Error::Closed)?;
            tx.send(Request::Put {
                diff: diff.clone(),
                done,
            })
            .map_err(|_| Error::Closed)?;
            wait.await.map_err(|_| Error::Closed)?
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(self.request(|done| Request::Flush { done }))
    }

    /// Souls and keys in the index; bytes of the snapshot and journal on disk.
    fn stats(&self) -> BoxFuture<'_, Result<StoreStats, Error>> {
        Box::pin(async move {
            let bytes = self.shared.disk_bytes.load(Ordering::Relaxed);
            let g = self.shared.read();
            Ok(StoreStats::new(g.len() as u64, g.key_count() as u64, bytes))
        })
    }

    /// One file per entry in `DIR/outbox/` (see the crate docs).
    fn outbox_put<'a>(&'a self, id: &'a str, diff: &'a Graph) -> BoxFuture<'a, Result<(), Error>> {
        let (dir, id, diff) = (self.dir.clone(), id.to_owned(), diff.clone());
        Box::pin(outbox::off_thread(move || outbox::put(&dir, &id, &diff)))
    }

    fn outbox_remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        let (dir, id) = (self.dir.clone(), id.to_owned());
        Box::pin(outbox::off_thread(move || outbox::remove(&dir, &id)))
    }

    fn outbox(&self) -> BoxFuture<'_, Result<Vec<(String, Graph)>, Error>> {
        let dir = self.dir.clone();
        Box::pin(outbox::off_thread(move || outbox::list(&dir)))
    }

    fn keeps_outbox(&self) -> bool {
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use gun_graph::{Soul, State, Value};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_puts_share_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FileStore::open(dir.path()).unwrap());
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let mut d = Graph::new();
                    d.put(
                        Soul::new(format!("s{i}")).unwrap(),
                        "k",
                        State::new(1.0).unwrap(),
                        Value::from(i),
                    )
                    .unwrap();
                    store.put(&d).await.unwrap();
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let commits = store.shared.commits.load(Ordering::Relaxed);
        assert!(commits < 64, "64 concurrent puts took {commits} fsyncs");
        assert_eq!(store.stats().await.unwrap().souls, 64);
    }
}
