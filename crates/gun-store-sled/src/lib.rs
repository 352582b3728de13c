//! # gun-store-sled: the embedded default gun-rs [`Store`], on sled
//!
//! A small node is one sled record and a large one is one record per key,
//! laid out so that a node read, a key read, a lexical key range and a soul
//! prefix are each a range scan of sled's ordered key space (see
//! [Key layout](#key-layout)). Puts merge through HAM against the stored and
//! staged entries; the writes of all puts that arrive while a flush runs are
//! applied as one atomic `sled::Batch` and made durable by one flush (group
//! commit), and each put resolves only after that flush.
//!
//! No sled type appears in this crate's API; errors are [`gun_store::Error`].
//!
//! ```
//! use gun_graph::{Graph, Lex, Soul, State, Value};
//! use gun_store::Store;
//! use gun_store_sled::SledStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! {
//!     let store = SledStore::open(dir.path().join("db"))?;
//!     let mut diff = Graph::new();
//!     diff.put(Soul::new("fruit")?, "apple", State::new(1.0)?, Value::from("red"))?;
//!     diff.put(Soul::new("fruit")?, "banana", State::new(1.0)?, Value::from("yellow"))?;
//!     store.put(&diff).await?; // durable once this resolves
//! }
//! let store = SledStore::open(dir.path().join("db"))?;
//! let b = store.query(&Lex::exact("fruit"), &Lex::prefix("b"), None).await?;
//! assert_eq!(b.get("fruit").and_then(|n| n.value("banana")), Some(&Value::from("yellow")));
//! # Ok(()) }
//! ```
//!
//! ## Key layout
//!
//! One sled tree, `gun`, holds `esc(soul) 00 01 key` → `state ++ tag ++
//! payload` for nodes stored per key, and `esc(soul) 00 00` → all entries for
//! nodes of at most 64 keys and 16 KiB, kept whole. `esc` doubles NUL bytes as
//! `0x00 0xFF`, so souls and keys may hold any character (NUL and ESC included)
//! without ambiguity, and sled's byte order is the order of `(soul, key)` by
//! UTF-8 bytes. A node in either form is the range `[esc(s) 00 00, esc(s) 00
//! 02)`; souls with prefix `p` are `[esc(p), esc(p) FF)`. States and numbers are
//! stored as their f64 bits, strings and links as UTF-8. A metadata record
//! under a key starting with 0xFF (never the first byte of UTF-8 text) holds
//! the format version and the counts of souls, keys, bytes and per-key souls,
//! updated in the same batch as the data. While no soul is kept per key, a
//! write reads one record per soul (a point read) instead of its range.
//! Formats 1 (everything per key) and 2 (no per-key count) are read as they
//! are, counted once when opened and rewritten as format 3.
//!
//! ## Durability and failures
//!
//! A put resolves only after `flush_async` covering its batch completed. Batches
//! are atomic: if applying one fails, nothing of its group is stored, its puts
//! fail, and the store refuses further writes ([`Error::Poisoned`]). If the
//! *flush* fails after the batch was applied, the data may or may not be on disk:
//! the put fails, and the store refuses further writes ([`Error::Poisoned`]) until
//! it is reopened (sled recovers to a consistent state on open).
//!
//! Opening is blocking (sled recovers its log); reads and writes of many keys run
//! on tokio's blocking pool when called inside a tokio runtime.

mod health;
mod layout;
mod query;
mod souls;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use gun_graph::{Graph, Lex, Node, decide};
use gun_store::{BoxFuture, Error, Store, StoreStats, machine_state};
use tokio::sync::Notify;

use crate::layout::{META_KEY, Meta};
use crate::query::Reader;
use crate::souls::{Phase, SoulFilter};

/// Diffs with at most this many keys are merged on the calling task; larger
/// ones on tokio's blocking pool.
const INLINE_KEYS: usize = 64;

/// The name of the sled tree holding the outbox (this peer's writes no peer
/// acked yet).
pub const OUTBOX_TREE: &str = "gun-outbox";

/// The name of the sled tree holding the graph.
pub(crate) const TREE: &str = "gun";

/// sled's own page cache capacity, used when [`Options::cache_bytes`] is `None`.
pub const SLED_DEFAULT_CACHE_BYTES: u64 = 1 << 30;

/// Options for [`SledStore::open_with`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Options {
    /// sled's page cache capacity in bytes (`None`: sled's default,
    /// [`SLED_DEFAULT_CACHE_BYTES`]). The cache grows up to about this size as
    /// data is written and read; what it does not hold is read from the files
    /// again (through the OS's page cache).
    pub cache_bytes: Option<u64>,
    /// Group-commit window: when writes are arriving concurrently, a flush
    /// waits this long before it starts, so that it covers more of them (one
    /// flush costs the same for one put as for a thousand). `None`: 1 ms. A
    /// lone writer never waits, nor does a group that has 64 writes waiting
    /// already.
    pub commit_window: Option<std::time::Duration>,
}

impl Options {
    /// The defaults.
    pub fn new() -> Options {
        Options::default()
    }

    /// Sets the group-commit window (see [`Options::commit_window`]).
    pub fn commit_window(mut self, window: std::time::Duration) -> Options {
        self.commit_window = Some(window);
        self
    }

    /// Sets the page cache capacity in bytes.
    pub fn cache_bytes(mut self, bytes: u64) -> Options {
        self.cache_bytes = Some(bytes);
        self
    }
}

/// The sled-backed [`Store`]. Cheap to share behind an `Arc`; dropping the last
/// handle flushes and closes the database.
pub struct SledStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// Kept so the database lives as long as the store.
    _db: sled::Db,
    tree: sled::Tree,
    /// The outbox ([`Store::outbox_put`]): message id → the write's wire JSON,
    /// in its own tree so that no read of the graph sees it.
    outbox: sled::Tree,
    path: PathBuf,
    /// Serialises HAM's read-modify-write; holds the persisted counters.
    write: Mutex<Staged>,
    /// A copy of the counters for `stats`, so it never waits for a long put.
    stats: Mutex<Meta>,
    commit: Mutex<Commit>,
    flushed: Notify,
    /// Number of flushes run (for tests of the group commit).
    flushes: AtomicU64,
    /// See [`Options::commit_window`].
    commit_window: std::time::Duration,
    /// The background check started at open (see `health`).
    verifier: Mutex<Option<health::Verifier>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(mut v) = lock(&self.verifier).take() {
            v.stop();
        }
        // A clean close: everything staged is applied and flushed, and the
        // marker records the counts for the next open to check against.
        if lock(&self.commit).failed.is_some() || self.apply_staged().is_err() {
            return;
        }
        if self.tree.flush().is_ok() {
            let meta = lock(&self.write).meta;
            if let Err(e) = health::write_marker(&self.path, health::Marker::new(true, &meta)) {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot record the clean close");
            }
        }
    }
}

/// A group with at least this many writes waiting is flushed without the
/// commit window: the flush's fixed cost (about a millisecond here, two sled
/// buffer writes and their syncs) is shared well enough. Measured with four
/// writers of 256 puts in flight: 4 % more acks/s than always waiting
/// (BENCHMARKS.md, eighth round).
const WINDOW_SKIP_GROUP: u64 = 64;

/// Group commit: batches are numbered as they are applied; a flush started after
/// batch `n` was applied makes every batch up to `n` durable.
#[derive(Debug, Default)]
struct Commit {
    /// Number of batches applied.
    applied: u64,
    /// Every batch up to this number is durable.
    durable: u64,
    /// Whether a flush is running.
    flushing: bool,
    /// How many batches the last flush covered.
    last_group: u64,
    /// Why the store stopped taking writes, after a failed flush.
    failed: Option<String>,
}

/// Writes merged but not yet applied to sled: the group being formed.
///
/// `sled::Tree::apply_batch` rolls sled's I/O buffer twice per call, so every
/// batch costs two writes and a `sync_file_range` whatever its size. Puts are
/// therefore merged here, into one batch per group, which the flusher applies
/// just before the flush that makes the group durable. While sled applies a
/// group (milliseconds for a large one) puts go on: the group is moved to
/// `applying`, read after the new overlay and before sled, so no put waits for
/// the batch nor reads stale entries.
struct Staged {
    /// The persisted counters, including staged writes.
    meta: Meta,
    /// What the staged writes changed (`None`: removed): read before sled,
    /// and turned into the group's one `sled::Batch` when it is applied (a
    /// batch keeps the last write of each key, as this map does).
    overlay: Overlay,
    /// The group sled is applying now (empty when none).
    applying: Arc<Overlay>,
    /// Puts staged in `overlay`.
    puts: u64,
    /// Every soul the tree or the staged groups may hold (see `souls`).
    souls: SoulFilter,
}

type Overlay = BTreeMap<Vec<u8>, Option<sled::IVec>>;

impl Staged {
    fn new(meta: Meta, souls: SoulFilter) -> Staged {
        Staged {
            meta,
            overlay: BTreeMap::new(),
            applying: Arc::new(BTreeMap::new()),
            puts: 0,
            souls,
        }
    }

    fn insert(&mut self, k: Vec<u8>, v: Vec<u8>) {
        self.overlay.insert(k, Some(sled::IVec::from(v)));
    }

    fn remove(&mut self, k: Vec<u8>) {
        self.overlay.insert(k, None);
    }

    /// The staged record under `k`, newest group first: `Some(None)` when a
    /// staged write removed it, `None` when sled answers for it.
    fn get(&self, k: &[u8]) -> Option<&Option<sled::IVec>> {
        self.overlay.get(k).or_else(|| self.applying.get(k))
    }

    /// Staged records in `[lo, hi)`, each key's newest (both groups).
    fn range<'a>(
        &'a self,
        lo: &'a [u8],
        hi: &'a [u8],
    ) -> impl Iterator<Item = (&'a [u8], &'a Option<sled::IVec>)> + 'a {
        let bounds = (Bound::Included(lo), Bound::Excluded(hi));
        let newer = self.overlay.range::<[u8], _>(bounds);
        let older = self
            .applying
            .range::<[u8], _>(bounds)
            .filter(|(k, _)| !self.overlay.contains_key(k.as_slice()));
        newer.chain(older).map(|(k, v)| (k.as_slice(), v))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data is plain counters; a panic elsewhere cannot tear them.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Maps a sled error to the store's error, keeping it as the source.
pub(crate) fn map_sled_error(e: sled::Error, path: &Path) -> Error {
    match e {
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => Error::Locked {
            path: path.to_path_buf(),
        },
        sled::Error::Io(io) => Error::io(path, io),
        sled::Error::Corruption { at: Some(at), .. } => {
            Error::corrupt(path, format!("sled found corrupt data at {at:?}"))
        }
        sled::Error::Corruption { at: None, .. } => Error::corrupt(
            path,
            "sled found corrupt data in its files (conf, db, or a snap.* file)",
        ),
        other => Error::backend(other),
    }
}

/// Runs `f` on tokio's blocking pool when inside a runtime, else right here.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => match h.spawn_blocking(f).await {
            Ok(r) => r,
            Err(e) => Err(Error::backend(e)),
        },
        Err(_) => f(),
    }
}

impl SledStore {
    /// Opens (creating if needed) the store in directory `path`.
    ///
    /// Fails with [`Error::Locked`] if another store has it open.
    pub fn open(path: impl AsRef<Path>) -> Result<SledStore, Error> {
        SledStore::open_with(path, &Options::default())
    }

    /// Opens (creating if needed) the store in directory `path` with `options`.
    pub fn open_with(path: impl AsRef<Path>, options: &Options) -> Result<SledStore, Error> {
        let path = path.as_ref().to_path_buf();
        // Every put flushes (group commit) before it is acked, so sled's own
        // periodic background flush only adds work; throughput mode favours the
        // large batches group commit produces.
        let cache = options.cache_bytes;
        let cfg = |dir: &Path| {
            let cfg = sled::Config::new()
                .path(dir)
                .flush_every_ms(None)
                .mode(sled::Mode::HighThroughput);
            match cache {
                Some(c) => cfg.cache_capacity(c),
                None => cfg,
            }
        };
        // sled reports almost no damage itself: see `health`.
        let (db, tree, meta) = health::open_checked(&path, &cfg)?;
        let outbox = db
            .open_tree(OUTBOX_TREE)
            .map_err(|e| map_sled_error(e, &path))?;
        let check = (meta.keys > 0).then(|| tree.clone());
        // An empty tree needs no scan for its soul filter; any other waits for
        // the check's scan (a tree with records but a record of no keys is
        // not checked, and its filter never used).
        let empty = check.is_none() && tree.range::<&[u8], _>(..layout::DATA_END).next().is_none();
        let filter = SoulFilter::new(
            meta.souls,
            if empty { Phase::Ready } else { Phase::Building },
        );
        let blank = filter.blank();
        tracing::info!(
            path = %path.display(),
            souls = meta.souls,
            cache_bytes = cache.unwrap_or(SLED_DEFAULT_CACHE_BYTES),
            "sled store open"
        );
        let store = SledStore {
            inner: Arc::new(Inner {
                _db: db,
                tree,
                outbox,
                path,
                write: Mutex::new(Staged::new(meta, filter)),
                stats: Mutex::new(meta),
                commit: Mutex::new(Commit::default()),
                flushed: Notify::new(),
                flushes: AtomicU64::new(0),
                commit_window: options
                    .commit_window
                    .unwrap_or(std::time::Duration::from_millis(1)),
                verifier: Mutex::new(None),
            }),
        };
        if let Some(tree) = check {
            let weak = Arc::downgrade(&store.inner);
            let weak2 = weak.clone();
            let path = store.inner.path.clone();
            let v = health::Verifier::start(
                tree,
                path,
                meta,
                blank,
                move |souls, keys| {
                    if let Some(inner) = weak.upgrade() {
                        inner.stop_writes(souls, keys);
                    }
                },
                move |scanned| {
                    if let Some(inner) = weak2.upgrade() {
                        lock(&inner.write).souls.absorb(&scanned);
                    }
                },
            );
            *lock(&store.inner.verifier) = Some(v);
        }
        Ok(store)
    }

    /// The directory of the database.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}

/// Counts souls, keys, bytes and per-key souls by a full scan (for a tree
/// without metadata, or one being rebuilt).
pub(crate) fn count(tree: &sled::Tree, path: &Path) -> Result<Meta, Error> {
    let mut m = Meta::default();
    let mut per_key = 0u64;
    // The soul being read, and whether it has per-key records.
    let mut last: Option<(String, bool)> = None;
    for item in tree.range::<&[u8], _>(..layout::DATA_END) {
        let (k, v) = item.map_err(|e| map_sled_error(e, path))?;
        let soul =
            layout::split_soul(&k).ok_or_else(|| Error::corrupt(path, "malformed entry key"))?;
        if last.as_ref().is_none_or(|(s, _)| *s != soul) {
            m.souls += 1;
            last = Some((soul, false));
        }
        if layout::is_blob_key(&k) {
            let entries = layout::decode_blob(&v).map_err(|d| Error::corrupt(path, d))?;
            m.keys += entries.len() as u64;
        } else {
            m.keys += 1;
            if let Some((_, seen @ false)) = &mut last {
                *seen = true;
                per_key += 1;
            }
        }
        m.bytes += (k.len() + v.len()) as u64;
    }
    m.per_key_souls = Some(per_key);
    Ok(m)
}

impl Inner {
    fn reader(&self) -> Reader<'_> {
        Reader {
            tree: &self.tree,
            path: &self.path,
        }
    }

    fn sled(&self, e: sled::Error) -> Error {
        map_sled_error(e, &self.path)
    }

    /// After the check at open found `souls` souls and `keys` keys fewer than
    /// the metadata record (sled recovered a tree that contradicts itself):
    /// reads go on, writes are refused (writing into such a tree has made
    /// sled's next recovery fail), and the next open rebuilds the database.
    fn stop_writes(&self, souls: u64, keys: u64) {
        let reason = format!(
            "sled's database in {} is damaged ({souls} souls, {keys} keys fewer than its \
             metadata record): it is served read-only until the next start, which rebuilds it \
             from what is readable",
            self.path.display()
        );
        let flag = self.path.join(health::REBUILD);
        if let Err(e) = std::fs::write(&flag, b"rebuild on next open\n") {
            tracing::warn!(path = %flag.display(), error = %e, "cannot leave the rebuild flag");
        }
        tracing::error!(path = %self.path.display(), "the store refuses writes from now on: {reason}");
        lock(&self.commit).failed.get_or_insert(reason);
    }

    /// The stored record under `k`, staged writes first.
    fn read(&self, st: &Staged, k: &[u8]) -> Result<Option<sled::IVec>, Error> {
        match st.get(k) {
            Some(v) => Ok(v.clone()),
            None => self.tree.get(k).map_err(|e| self.sled(e)),
        }
    }

    /// Where `soul` is kept: its whole record (`bk`) if it has one, and
    /// whether it has per-key records, staged writes included. With nothing
    /// staged for the soul (the common case) one range step over
    /// `[esc(s) 00 00, esc(s) 00 02)` answers both, since the whole record
    /// sorts just before the per-key range.
    fn locate(
        &self,
        st: &Staged,
        soul: &str,
        bk: &[u8],
        new: bool,
    ) -> Result<(Option<sled::IVec>, bool), Error> {
        if new {
            // Never written nor staged (the soul filter says so): no read.
            return Ok((None, false));
        }
        if st.meta.all_whole() {
            // No soul has per-key records (staged ones included: the count is
            // staged with them): the whole record is all there is to read.
            return Ok((self.read(st, bk)?, false));
        }
        let hi = layout::node_end(soul);
        if st.range(bk, &hi).next().is_none() {
            return match self.tree.range(bk..hi.as_slice()).next() {
                None => Ok((None, false)),
                Some(Err(e)) => Err(self.sled(e)),
                Some(Ok((k, v))) if k.as_ref() == bk => Ok((Some(v), false)),
                Some(Ok(_)) => Ok((None, true)),
            };
        }
        let blob = self.read(st, bk)?;
        let per_key = blob.is_none() && self.has_keys(st, soul)?;
        Ok((blob, per_key))
    }

    /// Whether `soul` has per-key records, staged writes included.
    fn has_keys(&self, st: &Staged, soul: &str) -> Result<bool, Error> {
        let lo = layout::node_prefix(soul);
        let hi = layout::node_end(soul);
        if st.range(&lo, &hi).any(|(_, v)| v.is_some()) {
            return Ok(true);
        }
        for item in self.tree.range(lo.as_slice()..hi.as_slice()) {
            let (k, _) = item.map_err(|e| self.sled(e))?;
            // Removed by a staged write? (Only a move to the whole form,
            // which never happens: kept for correctness.)
            if !matches!(st.get(k.as_ref()), Some(None)) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Merges `diff` through HAM against the stored and staged entries and
    /// stages the winners for the next group commit. Returns the group
    /// sequence number to wait for.
    /// Merges `diff` into the staged group; answers the sequence number to wait
    /// for and what it applied.
    fn apply(&self, diff: &Graph) -> Result<(u64, Graph), Error> {
        let mut st = lock(&self.write);
        if let Some(reason) = &lock(&self.commit).failed {
            return Err(Error::Poisoned {
                reason: reason.clone(),
            });
        }
        let machine = machine_state();
        let mut m = st.meta;
        // This put's writes, staged only if all of it merged without error.
        let mut writes: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::with_capacity(diff.len());
        let mut applied = Graph::new();
        for (soul_id, node) in diff.iter() {
            let soul = soul_id.as_str();
            let bk = layout::blob_key(soul);
            // `bk` is `esc(soul) 00 00`. The soul is known from now on (before
            // any of its records is staged); one whose write fails below stays
            // in the filter, which only costs a read.
            let new = st.souls.add(&bk[..bk.len() - 2]);
            let (blob, per_key) = self.locate(&st, soul, &bk, new)?;
            if !per_key {
                self.apply_whole(
                    soul,
                    node,
                    bk,
                    blob,
                    machine,
                    &mut m,
                    &mut writes,
                    &mut applied,
                )?;
                continue;
            }
            for (key, e) in node.iter() {
                let k = layout::entry_key(soul, key);
                let old = self.read(&st, &k)?;
                let current = match &old {
                    Some(v) => Some(layout::decode_entry(v).map_err(|d| {
                        Error::corrupt(&self.path, format!("{d} (soul {soul:?}, key {key:?})"))
                    })?),
                    None => None,
                };
                let d = decide(
                    machine,
                    e.state,
                    &e.value,
                    current.as_ref().map(|(s, v)| (*s, v)),
                );
                if !d.is_accept() {
                    continue;
                }
                // Keys of a parsed node are never "_", the only key put refuses.
                let _ = applied.put(soul_id.clone(), key.clone(), e.state, e.value.clone());
                let mut v = Vec::with_capacity(16);
                layout::encode_entry(e.state, &e.value, &mut v);
                match &old {
                    Some(o) => {
                        m.bytes = m
                            .bytes
                            .saturating_sub(o.len() as u64)
                            .saturating_add(v.len() as u64);
                    }
                    None => {
                        m.keys = m.keys.saturating_add(1);
                        m.bytes = m.bytes.saturating_add((k.len() + v.len()) as u64);
                    }
                }
                writes.push((k, Some(v)));
            }
        }
        if !writes.is_empty() {
            for (k, v) in writes {
                match v {
                    Some(v) => st.insert(k, v),
                    None => st.remove(k),
                }
            }
            st.meta = m;
            st.souls.check_capacity(m.souls);
            st.puts += 1;
            *lock(&self.stats) = m;
            let mut commit = lock(&self.commit);
            commit.applied += 1;
            return Ok((commit.applied, applied));
        }
        Ok((lock(&self.commit).applied, applied))
    }

    /// Merges `node` into a soul that is new or kept whole (`blob`, its current
    /// record under `bk`). Writes the result whole while it fits the blob
    /// limits, else moves the node to the per-key form in the same put.
    #[allow(clippy::too_many_arguments)]
    fn apply_whole(
        &self,
        soul: &str,
        node: &Node,
        bk: Vec<u8>,
        blob: Option<sled::IVec>,
        machine: gun_graph::State,
        m: &mut Meta,
        writes: &mut Vec<(Vec<u8>, Option<Vec<u8>>)>,
        applied: &mut Graph,
    ) -> Result<(), Error> {
        let mut current = match &blob {
            Some(v) => Some(self.reader().decode_blob_node(soul, &bk, v)?),
            None => None,
        };
        let mut accepted = Vec::with_capacity(node.len());
        for (key, e) in node.iter() {
            let cur = current.as_ref().and_then(|n| n.get(key));
            let d = decide(machine, e.state, &e.value, cur.map(|c| (c.state, &c.value)));
            if d.is_accept() {
                accepted.push((key, e));
            }
        }
        if accepted.is_empty() {
            return Ok(());
        }
        let before = current.as_ref().map_or(0, Node::len);
        let merged: &Node = if accepted.len() == node.len() {
            // All of it (a new soul, or every key newer): applied as it came,
            // one copy of the node instead of key by key (and none to write a
            // new soul: its record is the node).
            applied.insert_node(node.clone());
            match &mut current {
                None => node,
                Some(merged) => {
                    for (key, e) in node.iter() {
                        let _ = merged.insert(key.clone(), e.state, e.value.clone());
                    }
                    merged
                }
            }
        } else {
            let merged = current.get_or_insert_with(|| node.select(std::iter::empty()));
            for (key, e) in accepted {
                // Keys of a parsed node are never "_", the only key insert refuses.
                let _ = merged.insert(key.clone(), e.state, e.value.clone());
                let _ = applied.put(node.soul().clone(), key.clone(), e.state, e.value.clone());
            }
            merged
        };
        let mut record = Vec::with_capacity(64 * merged.len());
        for (key, e) in merged.iter() {
            layout::blob_push(key, e.state, &e.value, &mut record);
        }
        m.keys = m.keys.saturating_add((merged.len() - before) as u64);
        if let Some(old) = &blob {
            m.bytes = m.bytes.saturating_sub((bk.len() + old.len()) as u64);
        } else {
            m.souls = m.souls.saturating_add(1);
        }
        if merged.len() <= layout::BLOB_MAX_KEYS && record.len() <= layout::BLOB_MAX_BYTES {
            m.bytes = m.bytes.saturating_add((bk.len() + record.len()) as u64);
            writes.push((bk, Some(record)));
        } else {
            if blob.is_some() {
                writes.push((bk, None));
            }
            m.per_key_souls = m.per_key_souls.map(|n| n.saturating_add(1));
            for (key, e) in merged.iter() {
                let k = layout::entry_key(soul, key);
                let mut v = Vec::with_capacity(16);
                layout::encode_entry(e.state, &e.value, &mut v);
                m.bytes = m.bytes.saturating_add((k.len() + v.len()) as u64);
                writes.push((k, Some(v)));
            }
        }
        Ok(())
    }

    /// Applies the staged group to sled as one batch (with the counters).
    /// Returns the sequence number it covers.
    fn apply_staged(&self) -> Result<u64, Error> {
        let (group, meta, target) = {
            let mut st = lock(&self.write);
            let target = lock(&self.commit).applied;
            if st.puts == 0 {
                return Ok(target);
            }
            let group = Arc::new(std::mem::take(&mut st.overlay));
            st.applying = Arc::clone(&group);
            st.puts = 0;
            (group, st.meta, target)
        };
        // Outside the lock: puts go on, reading `applying` before sled.
        let mut batch = sled::Batch::default();
        for (k, v) in group.iter() {
            match v {
                Some(v) => batch.insert(k.as_slice(), v.clone()),
                None => batch.remove(k.as_slice()),
            }
        }
        batch.insert(META_KEY, meta.encode().to_vec());
        let result = self.tree.apply_batch(batch).map_err(|e| self.sled(e));
        // Applied (or failed, and the store poisoned by the caller): sled
        // answers for it now.
        if result.is_ok() {
            let mut st = lock(&self.write);
            if Arc::ptr_eq(&st.applying, &group) {
                st.applying = Arc::new(BTreeMap::new());
            }
        }
        result.map(|()| target)
    }

    /// Waits until batch `seq` is durable, flushing if no flush that covers it is
    /// running (group commit).
    async fn wait_durable(self: &Arc<Self>, seq: u64) -> Result<(), Error> {
        loop {
            let notified = {
                let mut c = lock(&self.commit);
                if c.durable >= seq {
                    return Ok(());
                }
                if let Some(reason) = &c.failed {
                    return Err(Error::Poisoned {
                        reason: reason.clone(),
                    });
                }
                if c.flushing {
                    // Registered now (before the lock is released), so the
                    // wake-up of the running flush cannot be missed.
                    Some(self.flushed.notified())
                } else {
                    c.flushing = true;
                    None
                }
            };
            match notified {
                Some(n) => n.await,
                None => self.flush_once().await?,
            }
        }
    }

    /// Runs one flush covering every batch applied so far: after the commit
    /// window, sled applies the group and flushes it on a blocking thread (not
    /// on the runtime's workers, where it held up the connection or the put it
    /// ran in for as long as the group took).
    async fn flush_once(self: &Arc<Self>) -> Result<(), Error> {
        /// Clears `flushing` and wakes the waiters even if the flush is
        /// dropped; held by the blocking part once it runs, so that no other
        /// flush starts before this one ended.
        struct Done(Arc<Inner>);
        impl Drop for Done {
            fn drop(&mut self) {
                lock(&self.0.commit).flushing = false;
                self.0.flushed.notify_waiters();
            }
        }
        let done = Done(Arc::clone(self));
        // The window lets concurrent writers join a group that is still
        // small; a group that already has enough writes waiting (they came in
        // during the last flush) goes at once: waiting would only add to
        // their latency, and under load to the cycle every write waits for.
        let busy = {
            let c = lock(&self.commit);
            (c.last_group > 1 || c.applied > c.durable + 1)
                && c.applied - c.durable < WINDOW_SKIP_GROUP
        };
        if busy && !self.commit_window.is_zero() {
            tokio::time::sleep(self.commit_window).await;
        }
        {
            let mut c = lock(&self.commit);
            c.last_group = c.applied - c.durable;
        }
        let apply = move || {
            let me = &done.0;
            let target = match me.apply_staged() {
                Ok(t) => t,
                Err(err) => {
                    tracing::error!(path = %me.path.display(), error = %err, "sled batch failed; the store stops taking writes");
                    lock(&me.commit).failed = Some(err.to_string());
                    return Err(err);
                }
            };
            me.flushes.fetch_add(1, Ordering::Relaxed);
            match me.tree.flush() {
                Ok(_) => {
                    let mut c = lock(&me.commit);
                    c.durable = c.durable.max(target);
                    Ok(())
                }
                Err(e) => {
                    let err = me.sled(e);
                    tracing::error!(path = %me.path.display(), error = %err, "sled flush failed; the store stops taking writes");
                    lock(&me.commit).failed = Some(err.to_string());
                    Err(err)
                }
            }
        };
        blocking(apply).await
    }
}

impl Store for SledStore {
    fn get_node<'a>(&'a self, soul: &'a str) -> BoxFuture<'a, Result<Option<Node>, Error>> {
        // A node read is one short range scan, served from sled's page cache in
        // the common case: cheaper inline than a hop to the blocking pool,
        // which cost more than the read itself on every put of a new soul.
        Box::pin(async move { self.inner.reader().node(soul) })
    }

    fn get_key<'a>(
        &'a self,
        soul: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Node>, Error>> {
        Box::pin(async move { self.inner.reader().key(soul, key) })
    }

    fn query<'a>(
        &'a self,
        souls: &'a Lex,
        keys: &'a Lex,
        budget: Option<u64>,
    ) -> BoxFuture<'a, Result<Graph, Error>> {
        let inner = Arc::clone(&self.inner);
        let (souls, keys) = (souls.clone(), keys.clone());
        Box::pin(blocking(move || {
            inner.reader().query(&souls, &keys, budget)
        }))
    }

    fn scan<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Option<Vec<Node>>, Error>> {
        let inner = Arc::clone(&self.inner);
        let after = after.map(str::to_owned);
        Box::pin(blocking(move || {
            inner.reader().scan(after.as_deref(), limit).map(Some)
        }))
    }

    fn put<'a>(&'a self, diff: &'a Graph) -> BoxFuture<'a, Result<Graph, Error>> {
        Box::pin(async move {
            let (seq, applied) = if diff.key_count() <= INLINE_KEYS {
                self.inner.apply(diff)?
            } else {
                let inner = Arc::clone(&self.inner);
                let diff = diff.clone();
                blocking(move || inner.apply(&diff)).await?
            };
            self.inner.wait_durable(seq).await?;
            Ok(applied)
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let seq = lock(&self.inner.commit).applied;
            self.inner.wait_durable(seq).await
        })
    }

    /// Souls, keys, and the bytes of the stored records (keys and values as
    /// written to sled, before sled's own overhead).
    fn stats(&self) -> BoxFuture<'_, Result<StoreStats, Error>> {
        Box::pin(async move {
            let m = *lock(&self.inner.stats);
            Ok(StoreStats::new(m.souls, m.keys, m.bytes))
        })
    }

    /// One record in the `gun-outbox` tree, flushed before this resolves.
    fn outbox_put<'a>(&'a self, id: &'a str, diff: &'a Graph) -> BoxFuture<'a, Result<(), Error>> {
        let inner = Arc::clone(&self.inner);
        let (id, wire) = (id.to_owned(), diff.to_wire());
        Box::pin(blocking(move || {
            inner
                .outbox
                .insert(id.as_bytes(), wire.as_bytes())
                .and_then(|_| inner.outbox.flush())
                .map(drop)
                .map_err(|e| inner.sled(e))
        }))
    }

    fn outbox_remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        let inner = Arc::clone(&self.inner);
        let id = id.to_owned();
        Box::pin(blocking(move || {
            inner
                .outbox
                .remove(id.as_bytes())
                .and_then(|_| inner.outbox.flush())
                .map(drop)
                .map_err(|e| inner.sled(e))
        }))
    }

    fn outbox(&self) -> BoxFuture<'_, Result<Vec<(String, Graph)>, Error>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(blocking(move || {
            let mut out = Vec::new();
            for item in inner.outbox.iter() {
                let (k, v) = item.map_err(|e| inner.sled(e))?;
                let id = String::from_utf8_lossy(&k).into_owned();
                match Graph::from_wire_bytes(&v) {
                    Ok(g) => out.push((id, g)),
                    Err(e) => tracing::warn!(
                        path = %inner.path.display(),
                        id,
                        error = %e,
                        "unreadable outbox record skipped (that write will not be re-sent)"
                    ),
                }
            }
            Ok(out)
        }))
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
    async fn concurrent_puts_share_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path().join("db")).unwrap());
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
        let flushes = store.inner.flushes.load(Ordering::Relaxed);
        assert!(flushes < 64, "64 concurrent puts took {flushes} flushes");
        assert_eq!(store.stats().await.unwrap().souls, 64);
        // A put that changes nothing needs no flush of its own.
        let before = store.inner.flushes.load(Ordering::Relaxed);
        let mut d = Graph::new();
        d.put(
            Soul::new("s1").unwrap(),
            "k",
            State::new(1.0).unwrap(),
            Value::from(1),
        )
        .unwrap();
        store.put(&d).await.unwrap();
        assert_eq!(store.inner.flushes.load(Ordering::Relaxed), before);
    }

    fn one(soul: &str, key: &str, state: f64, v: &str) -> Graph {
        let mut d = Graph::new();
        d.put(
            Soul::new(soul).unwrap(),
            key,
            State::new(state).unwrap(),
            Value::from(v),
        )
        .unwrap();
        d
    }

    /// While sled applies a group (outside the staging lock), puts merge
    /// against that group, not against the older copy in sled.
    #[test]
    fn puts_during_a_group_apply_see_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let inner = &store.inner;
        let (_, a) = inner.apply(&one("s", "a", 10.0, "first")).unwrap();
        assert_eq!(a.key_count(), 1);
        // The moment apply_staged has moved the group aside and not yet
        // applied it to sled.
        {
            let mut st = lock(&inner.write);
            st.applying = Arc::new(std::mem::take(&mut st.overlay));
            st.puts = 0;
        }
        // Older than the group's entry: refused by HAM.
        let (_, older) = inner.apply(&one("s", "a", 5.0, "older")).unwrap();
        assert!(
            older.is_empty(),
            "an older write won over the applying group"
        );
        // Another key of the same soul is merged into the whole record, not
        // written as a new node that would drop "a".
        let (_, b) = inner.apply(&one("s", "b", 11.0, "second")).unwrap();
        assert_eq!(b.key_count(), 1);
        {
            let st = lock(&inner.write);
            let rec = st
                .overlay
                .get(&layout::blob_key("s"))
                .unwrap()
                .clone()
                .unwrap();
            let keys: Vec<String> = layout::decode_blob(&rec)
                .unwrap()
                .into_iter()
                .map(|(k, _, _)| k)
                .collect();
            assert_eq!(keys, ["a", "b"]);
        }
        // Nothing of the group is lost once both groups reach sled.
        inner.apply_staged().unwrap();
        {
            let mut st = lock(&inner.write);
            st.applying = Arc::new(BTreeMap::new());
        }
        let node = inner.reader().node("s").unwrap().unwrap();
        assert_eq!(node.get("a").unwrap().value, Value::from("first"));
        assert_eq!(node.get("b").unwrap().value, Value::from("second"));
    }

    fn graph_of(soul: &str, keys: impl IntoIterator<Item = (String, f64)>) -> Graph {
        let mut g = Graph::new();
        for (k, st) in keys {
            g.put(
                Soul::new(soul).unwrap(),
                k.clone(),
                State::new(st).unwrap(),
                Value::from(format!("{soul}:{k}:{st}")),
            )
            .unwrap();
        }
        g
    }

    /// Whether `soul` has a whole-node record in sled.
    fn whole_record(store: &SledStore, soul: &str) -> bool {
        store
            .inner
            .tree
            .get(layout::blob_key(soul))
            .unwrap()
            .is_some()
    }

    fn stored_meta(store: &SledStore) -> Meta {
        Meta::decode(&store.inner.tree.get(META_KEY).unwrap().unwrap()).unwrap()
    }

    /// A store of format 2 (a 25-byte metadata record, no count of per-key
    /// souls) written by hand as an older build left it: one soul per key, one
    /// soul whole. Opening counts its per-key souls and writes format 3; writes
    /// then keep each soul in its form and merge through HAM, and new souls
    /// are written whole.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_format_2_store_is_counted_once_and_keeps_its_forms() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let db = sled::open(&path).unwrap();
            let tree = db.open_tree("gun").unwrap();
            for (key, st) in [("a", 1.0), ("b", 1.0)] {
                let mut v = Vec::new();
                layout::encode_entry(State::new(st).unwrap(), &Value::from(key), &mut v);
                tree.insert(layout::entry_key("old", key), v).unwrap();
            }
            let mut blob = Vec::new();
            layout::blob_push(
                "x",
                State::new(1.0).unwrap(),
                &Value::number(1.0).unwrap(),
                &mut blob,
            );
            tree.insert(layout::blob_key("whole"), blob).unwrap();
            let mut v2 = [0u8; 25];
            v2[0] = layout::FORMAT_V2;
            v2[1..9].copy_from_slice(&2u64.to_be_bytes());
            v2[9..17].copy_from_slice(&3u64.to_be_bytes());
            tree.insert(META_KEY, v2.to_vec()).unwrap();
            tree.flush().unwrap();
        }
        let store = SledStore::open(&path).unwrap();
        let meta = stored_meta(&store);
        assert_eq!(meta.per_key_souls, Some(1));
        assert_eq!(
            (meta.souls, meta.keys),
            (2, 3),
            "the stored counts are kept"
        );
        // The per-key soul stays per key: no whole record appears, and HAM
        // reads its entries (an older state loses, a newer one wins).
        let mut diff = graph_of("old", [("a".to_string(), 0.5), ("b".to_string(), 2.0)]);
        diff.merge(
            &graph_of("new", [("n".to_string(), 1.0)]),
            State::new(1e15).unwrap(),
        );
        let applied = store.put(&diff).await.unwrap();
        assert_eq!(applied.get("old").unwrap().len(), 1);
        assert!(!whole_record(&store, "old"));
        let old = store.get_node("old").await.unwrap().unwrap();
        assert_eq!(old.value("a"), Some(&Value::from("a")));
        assert_eq!(old.value("b"), Some(&Value::from("old:b:2")));
        assert!(whole_record(&store, "new"));
        drop(store);
        let store = SledStore::open(&path).unwrap();
        assert_eq!(stored_meta(&store).per_key_souls, Some(1));
        assert_eq!(store.stats().await.unwrap().souls, 3);
    }

    /// A new store knows no soul is kept per key, and counts the first one
    /// that moves to that form (in the same batch, so it survives a reopen);
    /// from then on writes read each soul's range again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_count_of_per_key_souls_follows_a_node_that_outgrows_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = SledStore::open(&path).unwrap();
            assert_eq!(stored_meta(&store).per_key_souls, Some(0));
            store
                .put(&graph_of("s", (0..10).map(|i| (format!("k{i}"), 1.0))))
                .await
                .unwrap();
            assert_eq!(stored_meta(&store).per_key_souls, Some(0));
            let big = (0..layout::BLOB_MAX_KEYS + 1).map(|i| (format!("b{i:03}"), 1.0));
            store.put(&graph_of("big", big)).await.unwrap();
            assert_eq!(stored_meta(&store).per_key_souls, Some(1));
        }
        let store = SledStore::open(&path).unwrap();
        assert!(!lock(&store.inner.write).meta.all_whole());
        // A write to the per-key soul merges into its records, not a new blob.
        store
            .put(&graph_of("big", [("b000".to_string(), 2.0)]))
            .await
            .unwrap();
        assert!(!whole_record(&store, "big"));
        let big = store.get_node("big").await.unwrap().unwrap();
        assert_eq!(big.len(), layout::BLOB_MAX_KEYS + 1);
        assert_eq!(big.value("b000"), Some(&Value::from("big:b000:2")));
    }

    /// The soul filter lets a write to a new soul skip its read, and never
    /// takes a stored soul for new: not on a fresh store, not after a reopen
    /// while the scan that fills it runs (it is not used then), not after.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_soul_filter_never_takes_a_stored_soul_for_new() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let souls = 3_000;
        {
            let store = SledStore::open(&path).unwrap();
            assert_eq!(lock(&store.inner.write).souls.phase(), Phase::Ready);
            for i in 0..souls {
                store
                    .put(&one(&format!("s{i}"), "a", 1.0, "x"))
                    .await
                    .unwrap();
            }
            // Known now: a second key merges into the record.
            store.put(&one("s0", "b", 1.0, "y")).await.unwrap();
            assert_eq!(store.get_node("s0").await.unwrap().unwrap().len(), 2);
        }
        let store = SledStore::open(&path).unwrap();
        // Written before the scan finished (or after: either way merged).
        store.put(&one("s1", "b", 1.0, "y")).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while lock(&store.inner.write).souls.phase() != Phase::Ready {
            assert!(std::time::Instant::now() < deadline, "the scan did not end");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        for i in (0..souls).step_by(7) {
            let soul = format!("s{i}");
            store.put(&one(&soul, "c", 1.0, "z")).await.unwrap();
            let node = store.get_node(&soul).await.unwrap().unwrap();
            assert_eq!(
                node.value("a"),
                Some(&Value::from("x")),
                "{soul} lost its key"
            );
            assert_eq!(node.value("c"), Some(&Value::from("z")));
        }
        let s1 = store.get_node("s1").await.unwrap().unwrap();
        assert_eq!((s1.len(), s1.value("b")), (2, Some(&Value::from("y"))));
        // New souls are still written (and read back) as such.
        store.put(&one("fresh", "a", 1.0, "n")).await.unwrap();
        assert_eq!(store.get_node("fresh").await.unwrap().unwrap().len(), 1);
        assert_eq!(store.stats().await.unwrap().souls, souls + 1);
    }

    #[test]
    fn usable_without_a_runtime_and_locked_while_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        assert!(matches!(
            SledStore::open(dir.path()),
            Err(Error::Locked { .. })
        ));
        let mut d = Graph::new();
        for i in 0..100 {
            d.put(
                Soul::new("s").unwrap(),
                format!("k{i}"),
                State::new(1.0).unwrap(),
                Value::Null,
            )
            .unwrap();
        }
        // Outside a runtime, the blocking parts run inline.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let store2 = &store;
        let fut = async move {
            store2.put(&d).await.unwrap();
            store2.get_node("s").await.unwrap().unwrap().len()
        };
        assert_eq!(rt.block_on(fut), 100);
    }
}
