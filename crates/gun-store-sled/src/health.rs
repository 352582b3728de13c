//! Damage detection around sled, which does not report damage itself.
//!
//! What sled 0.34 does with damaged files (see gun-relay's
//! `tests/corruption.rs`): on most damage inside `db` (garbage, a flipped byte,
//! `db` cut short past its first segments) its recovery **panics**; with `db`
//! cut short to its first segments it **silently opens an empty database**;
//! with the tail of `db` cut off it **silently opens with the last writes
//! missing** — and after such a recovery and a clean close, its next recovery
//! has failed with "corrupt data". So:
//!
//! * opening runs under `catch_unwind`, and a panic becomes [`Error::Corrupt`]
//!   naming the directory;
//! * a marker file, [`MARKER`], says that the directory holds a store (it is
//!   written once the metadata record is durable) and, after a clean close, how
//!   many souls and keys it held. A directory with a marker whose database has no
//!   metadata record (sled recovered nothing) is [`Error::Corrupt`]. Fewer souls
//!   or keys than at the last clean close is reported with `error!`, and the
//!   database is **rebuilt**: every entry sled can read is copied into a new
//!   database, which takes the old one's place; the damaged one is kept as
//!   `<dir>.damaged` (then `.damaged.1`, …). The store then serves and takes
//!   writes as usual, and later starts are clean;
//! * after opening, a background scan counts the entries and reports with
//!   `error!` when it finds fewer souls or keys than the metadata record (which
//!   is written in the same atomic batch as the data, and never decreases: Gun
//!   deletes nothing). Such a tree contradicts itself: the store serves reads,
//!   refuses writes ([`Error::Poisoned`]) and leaves [`REBUILD`], so that the
//!   next open rebuilds the database.
//!
//! What was lost cannot be named (sled gives no hint); the reports say how much.
//! After a crash (no clean close recorded) a lost tail cannot be told from
//! writes that were never flushed, so only the scan checks such a start.

use std::fs::{self, File};
use std::io::{self, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use gun_store::Error;

use crate::layout::{self, META_KEY, Meta};
use crate::souls::{SoulFilter, escaped_soul};
use crate::{TREE, map_sled_error};

/// The marker file in the database directory.
pub(crate) const MARKER: &str = "gun-store.marker";

/// A file the background check leaves when the tree contradicts itself: the
/// next open rebuilds the database.
pub(crate) const REBUILD: &str = "gun-store.rebuild";

/// What the marker file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Marker {
    /// Whether the store was closed cleanly (every write flushed).
    pub(crate) clean: bool,
    /// Souls and keys at that moment.
    pub(crate) souls: u64,
    pub(crate) keys: u64,
}

impl Marker {
    pub(crate) fn new(clean: bool, meta: &Meta) -> Marker {
        Marker {
            clean,
            souls: meta.souls,
            keys: meta.keys,
        }
    }

    fn encode(&self) -> String {
        format!(
            "gun-store-sled marker 1\nclean {}\nsouls {}\nkeys {}\n",
            u8::from(self.clean),
            self.souls,
            self.keys
        )
    }

    fn decode(text: &str) -> Option<Marker> {
        let mut lines = text.lines();
        if lines.next()? != "gun-store-sled marker 1" {
            return None;
        }
        let mut field = |name: &str| -> Option<u64> {
            let (k, v) = lines.next()?.split_once(' ')?;
            if k == name { v.parse().ok() } else { None }
        };
        Some(Marker {
            clean: field("clean")? == 1,
            souls: field("souls")?,
            keys: field("keys")?,
        })
    }
}

/// The marker of the store in `dir`, if there is one. An unreadable marker is
/// reported and taken as "a store is here, not closed cleanly".
pub(crate) fn read_marker(dir: &Path) -> Result<Option<Marker>, Error> {
    let path = dir.join(MARKER);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(Some(Marker::decode(&text).unwrap_or_else(|| {
            tracing::warn!(path = %path.display(), "unreadable store marker; ignoring what it says");
            Marker {
                clean: false,
                souls: 0,
                keys: 0,
            }
        }))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Replaces the marker (write, fsync, rename, fsync the directory).
pub(crate) fn write_marker(dir: &Path, marker: Marker) -> Result<(), Error> {
    let path = dir.join(MARKER);
    let tmp = dir.join(format!("{MARKER}.tmp"));
    let io = |e| Error::io(&tmp, e);
    let mut f = File::create(&tmp).map_err(io)?;
    f.write_all(marker.encode().as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// The text of a panic's payload.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Opens sled's database and the store's tree and reads the metadata record,
/// turning a panic of sled's recovery into [`Error::Corrupt`].
///
/// sled lets go of its directory lock a moment after the last handle of a
/// database is dropped (its I/O threads finish first), so a store closed and
/// reopened at once may find it still locked: [`Error::Locked`] is retried for
/// up to a second before it is returned.
pub(crate) fn open(
    cfg: sled::Config,
    path: &Path,
) -> Result<(sled::Db, sled::Tree, Option<Meta>), Error> {
    let t0 = Instant::now();
    loop {
        match open_once(cfg.clone(), path) {
            Err(Error::Locked { .. }) if t0.elapsed() < std::time::Duration::from_secs(1) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            r => return r,
        }
    }
}

fn open_once(
    cfg: sled::Config,
    path: &Path,
) -> Result<(sled::Db, sled::Tree, Option<Meta>), Error> {
    let opened = catch_unwind(AssertUnwindSafe(|| {
        let db = cfg.open().map_err(|e| map_sled_error(e, path))?;
        let tree = db.open_tree(TREE).map_err(|e| map_sled_error(e, path))?;
        let meta = match tree.get(META_KEY).map_err(|e| map_sled_error(e, path))? {
            Some(v) => Some(Meta::decode(&v).map_err(|d| Error::corrupt(path, d))?),
            None => None,
        };
        Ok((db, tree, meta))
    }));
    match opened {
        Ok(r) => r,
        Err(p) => Err(Error::corrupt(
            path,
            format!(
                "sled could not recover the database: its recovery panicked ({}); the files are damaged",
                panic_text(p.as_ref())
            ),
        )),
    }
}

/// Opens the store's database in `path` (`cfg` makes sled's configuration for a
/// directory) and checks it against the marker (see the module docs): the
/// database and its counters. A database that lost data since its last clean
/// close, or that the background check flagged, is rebuilt first.
pub(crate) fn open_checked(
    path: &Path,
    cfg: &dyn Fn(&Path) -> sled::Config,
) -> Result<(sled::Db, sled::Tree, Meta), Error> {
    let marker = read_marker(path)?;
    let (db, tree, stored) = open(cfg(path), path)?;
    let meta = match (stored, marker) {
        (Some(m), _) => m,
        (None, Some(mk)) => {
            return Err(Error::corrupt(
                path,
                format!(
                    "sled recovered a database without the store's metadata record, although \
                     {MARKER} says this store held data ({} souls, {} keys at its last clean \
                     close): the database files are damaged or were cut short",
                    mk.souls, mk.keys
                ),
            ));
        }
        (None, None) => {
            // A new store (or one written before the metadata record): the
            // record is made durable before the marker says a store is here.
            let m = crate::count(&tree, path)?;
            tree.insert(META_KEY, m.encode().to_vec())
                .and_then(|_| tree.flush())
                .map_err(|e| map_sled_error(e, path))?;
            m
        }
    };
    let lost = marker.filter(|mk| mk.clean && (meta.souls < mk.souls || meta.keys < mk.keys));
    if let Some(mk) = lost {
        tracing::error!(
            path = %path.display(),
            souls = meta.souls,
            keys = meta.keys,
            souls_at_last_close = mk.souls,
            keys_at_last_close = mk.keys,
            "sled's database holds fewer souls or keys than when the store was last closed cleanly: its files are damaged and the missing data is lost (restore the directory from a backup to get it back). Rebuilding it from what is readable"
        );
    }
    let flagged = path.join(REBUILD).is_file();
    if flagged {
        tracing::warn!(path = %path.display(), "the last check found this database contradicting itself; rebuilding it from what is readable");
    }
    let (db, tree, mut meta) = if lost.is_some() || flagged {
        rebuild(path, db, tree, cfg)?
    } else {
        (db, tree, meta)
    };
    if meta.per_key_souls.is_none() {
        // Format 1 or 2: count the per-key souls once and write format 3. The
        // other counts stay as stored, for the background check to compare.
        match crate::count(&tree, path) {
            Ok(counted) => {
                meta.per_key_souls = counted.per_key_souls;
                tree.insert(META_KEY, meta.encode().to_vec())
                    .and_then(|_| tree.flush())
                    .map_err(|e| map_sled_error(e, path))?;
                tracing::info!(path = %path.display(), per_key_souls = ?meta.per_key_souls, "store metadata rewritten as format {}", layout::FORMAT_VERSION);
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot count the store's per-key souls; writes read each soul's range, as format 2 did");
            }
        }
    }
    write_marker(path, Marker::new(false, &meta))?;
    Ok((db, tree, meta))
}

/// `path` with `suffix` added to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Copies every entry sled can read into a new database beside `path`, sets
/// the damaged one aside (`<path>.damaged`, `.damaged.1`, …), puts the copy in
/// its place and opens it. sled, after recovering a damaged `db` with losses,
/// has failed to open it again after its next clean close; a copy has no such
/// past.
///
/// The outbox (writes of this peer that no peer has acknowledged yet, re-sent
/// at the next start) is copied too, as far as it is readable: losing it would
/// lose writes the application was told were stored.
fn rebuild(
    path: &Path,
    db: sled::Db,
    tree: sled::Tree,
    cfg: &dyn Fn(&Path) -> sled::Config,
) -> Result<(sled::Db, sled::Tree, Meta), Error> {
    let new = sibling(path, ".rebuild");
    if new.exists() {
        // Left by an interrupted rebuild: the damaged database is still in place.
        fs::remove_dir_all(&new).map_err(|e| Error::io(&new, e))?;
    }
    let copied = catch_unwind(AssertUnwindSafe(|| -> Result<u64, Error> {
        let (ndb, ntree, _) = open(cfg(&new), &new)?;
        let sled_err = |e| map_sled_error(e, path);
        let mut batch = sled::Batch::default();
        let mut n = 0u64;
        for item in tree.iter() {
            let (k, v) = item.map_err(sled_err)?;
            if k.as_ref() == META_KEY {
                continue;
            }
            batch.insert(k, v);
            n += 1;
            if n.is_multiple_of(10_000) {
                ntree
                    .apply_batch(std::mem::take(&mut batch))
                    .map_err(sled_err)?;
            }
        }
        ntree.apply_batch(batch).map_err(sled_err)?;
        let m = crate::count(&ntree, &new)?;
        ntree
            .insert(META_KEY, m.encode().to_vec())
            .and_then(|_| ntree.flush())
            .map_err(sled_err)?;
        copy_outbox(&db, &ndb, path).map_err(sled_err)?;
        drop(ntree);
        drop(ndb);
        Ok(n)
    }))
    .unwrap_or_else(|p| {
        Err(Error::corrupt(
            path,
            format!(
                "sled panicked while reading the damaged database ({})",
                panic_text(p.as_ref())
            ),
        ))
    })?;
    drop(tree);
    drop(db);
    let mut aside = sibling(path, ".damaged");
    for i in 1..1000 {
        if !aside.exists() {
            break;
        }
        aside = sibling(path, &format!(".damaged.{i}"));
    }
    fs::rename(path, &aside).map_err(|e| Error::io(path, e))?;
    fs::rename(&new, path).map_err(|e| Error::io(&new, e))?;
    if let Some(parent) = path.parent() {
        File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(parent, e))?;
    }
    let (db, tree, stored) = open(cfg(path), path)?;
    let meta = stored
        .ok_or_else(|| Error::corrupt(path, "the rebuilt database has no metadata record"))?;
    tracing::warn!(
        path = %path.display(),
        kept_as = %aside.display(),
        entries = copied,
        souls = meta.souls,
        keys = meta.keys,
        "rebuilt the database from everything sled could read; the damaged one is kept aside"
    );
    Ok((db, tree, meta))
}

/// Counts souls and keys like `count`, stopping early (`None`) when `stop` is set.
fn scan(
    tree: &sled::Tree,
    stop: &AtomicBool,
    filter: &mut SoulFilter,
) -> Result<Option<(u64, u64)>, String> {
    let (mut souls, mut keys) = (0u64, 0u64);
    let mut last: Vec<u8> = Vec::new();
    for (i, item) in tree.range::<&[u8], _>(..layout::DATA_END).enumerate() {
        if i.is_multiple_of(1024) && stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let (k, v) = item.map_err(|e| e.to_string())?;
        // Keys of one soul are adjacent: each soul is counted (and added to
        // the filter) once.
        let esc = escaped_soul(&k).ok_or("a malformed entry key")?;
        if esc != last.as_slice() {
            layout::split_soul(&k).ok_or("a malformed entry key")?;
            souls += 1;
            filter.insert(esc);
            last.clear();
            last.extend_from_slice(esc);
        }
        if layout::is_blob_key(&k) {
            keys += layout::decode_blob(&v)?.len() as u64;
        } else {
            keys += 1;
        }
    }
    Ok(Some((souls, keys)))
}

/// The background check of a freshly opened database (see the module docs).
pub(crate) struct Verifier {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Verifier {
    /// Starts counting the entries of `tree`, to compare with `expected` (the
    /// metadata record when the store was opened); `lost(souls, keys)` is called
    /// with the shortfall after it was reported. The scan also fills `filter`
    /// (a blank soul filter) with every soul read, handed to `covered` when the
    /// whole tree was read and matched its record.
    pub(crate) fn start(
        tree: sled::Tree,
        path: PathBuf,
        expected: Meta,
        mut filter: SoulFilter,
        lost: impl FnOnce(u64, u64) + Send + 'static,
        covered: impl FnOnce(SoulFilter) + Send + 'static,
    ) -> Verifier {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("gun-store-sled-check".into())
            .spawn(move || {
                let t0 = Instant::now();
                let found = catch_unwind(AssertUnwindSafe(|| scan(&tree, &flag, &mut filter)))
                    .unwrap_or_else(|p| Err(format!("sled panicked: {}", panic_text(p.as_ref()))));
                let ms = t0.elapsed().as_millis();
                match found {
                    Ok(None) => {}
                    Ok(Some((souls, keys))) if souls < expected.souls || keys < expected.keys => {
                        tracing::error!(
                            path = %path.display(),
                            souls_readable = souls,
                            keys_readable = keys,
                            souls_recorded = expected.souls,
                            keys_recorded = expected.keys,
                            "sled's database is damaged: it holds fewer souls or keys than its metadata record (written with the data); the missing ones are lost. Restore the directory from a backup to get them back"
                        );
                        lost(
                            expected.souls.saturating_sub(souls),
                            expected.keys.saturating_sub(keys),
                        );
                    }
                    Ok(Some((souls, keys))) => {
                        tracing::info!(path = %path.display(), souls, keys, ms, "store check: every soul and key is readable");
                        covered(filter);
                    }
                    Err(e) => {
                        tracing::error!(
                            path = %path.display(),
                            error = %e,
                            "sled's database is damaged: reading every entry failed; some data cannot be read. Restore the directory from a backup"
                        );
                    }
                }
            })
            .ok();
        Verifier { stop, thread }
    }

    /// Stops the check and waits for it (unless called on its own thread).
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take()
            && t.thread().id() != std::thread::current().id()
        {
            let _ = t.join();
        }
    }
}

/// Copies the readable records of the outbox tree of `from` into `to` and
/// flushes them. A record sled cannot read ends the copy there (warn event):
/// what was read is kept, and the store opens; only a failure to write the new
/// database fails the rebuild.
fn copy_outbox(from: &sled::Db, to: &sled::Db, path: &Path) -> Result<(), sled::Error> {
    let src = match from.open_tree(crate::OUTBOX_TREE) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(
                path = %path.display(),
                error = %e,
                "outbox of a damaged database unreadable: its writes will not be re-sent"
            );
            return Ok(());
        }
    };
    let dst = to.open_tree(crate::OUTBOX_TREE)?;
    let mut batch = sled::Batch::default();
    let mut n = 0u64;
    for item in src.iter() {
        match item {
            Ok((k, v)) => {
                batch.insert(k, v);
                n += 1;
            }
            Err(e) => {
                tracing::warn!(
                    path = %path.display(),
                    copied = n,
                    error = %e,
                    "outbox of a damaged database only partly readable: the writes after the damage will not be re-sent"
                );
                break;
            }
        }
    }
    dst.apply_batch(batch)?;
    dst.flush()?;
    if n > 0 {
        tracing::info!(path = %path.display(), writes = n, "outbox copied into the rebuilt database");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trip() {
        let m = Marker {
            clean: true,
            souls: 3,
            keys: 30,
        };
        assert_eq!(Marker::decode(&m.encode()), Some(m));
        assert_eq!(Marker::decode("something else"), None);
        assert_eq!(Marker::decode("gun-store-sled marker 1\nclean 1\n"), None);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_marker(dir.path()).unwrap(), None);
        write_marker(dir.path(), m).unwrap();
        assert_eq!(read_marker(dir.path()).unwrap(), Some(m));
    }
}
