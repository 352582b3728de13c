//! The files of a store directory: loading, the journal, snapshots, compaction.
//!
//! | file | holds |
//! |---|---|
//! | `LOCK` | nothing; locked while a store has the directory open |
//! | `journal` | diffs accepted since `snapshot` was written |
//! | `snapshot` | every node, as of the last compaction |
//! | `snapshot.prev`, `journal.prev` | the snapshot before, and the journal folded into `snapshot` |
//! | `snapshot.tmp` | a snapshot being written (removed on open) |
//! | `snapshot.corrupt` | a damaged snapshot moved aside after falling back |
//!
//! Invariant: `snapshot + journal` holds everything, and so does
//! `snapshot.prev + journal.prev + journal`. Compaction moves from one state to the
//! next by renames that keep one of those pairs complete at every moment:
//!
//! 1. write `snapshot.tmp`, fsync it;
//! 2. rename `snapshot` → `snapshot.prev`, `snapshot.tmp` → `snapshot`, fsync the directory;
//! 3. rename `journal` → `journal.prev`, create a new empty `journal`, fsync both and the directory.
//!
//! Replaying a diff twice changes nothing (HAM is idempotent), so a crash that
//! leaves a journal's records also inside the snapshot loses nothing and
//! duplicates nothing.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use gun_graph::{Graph, json};
use gun_store::{Error, machine_state};

use crate::record::{
    self, JOURNAL_MAGIC, KIND_DIFF, KIND_END, KIND_NODES, Magic, Next, SNAPSHOT_MAGIC,
};

pub(crate) const LOCK: &str = "LOCK";
pub(crate) const JOURNAL: &str = "journal";
pub(crate) const JOURNAL_PREV: &str = "journal.prev";
pub(crate) const SNAPSHOT: &str = "snapshot";
pub(crate) const SNAPSHOT_PREV: &str = "snapshot.prev";
pub(crate) const SNAPSHOT_TMP: &str = "snapshot.tmp";
pub(crate) const SNAPSHOT_CORRUPT: &str = "snapshot.corrupt";

/// Snapshot records hold nodes up to about this many bytes of JSON (a bigger
/// node is one record of its own).
const SNAPSHOT_CHUNK: usize = 1 << 20;

/// Fsyncs a directory, so that renames and new files in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

fn rename(dir: &Path, from: &str, to: &str) -> Result<(), Error> {
    fs::rename(dir.join(from), dir.join(to)).map_err(|e| Error::io(dir.join(from), e))
}

fn exists(p: &Path) -> Result<bool, Error> {
    match fs::symlink_metadata(p) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(p, e)),
    }
}

/// Opens `path` for reading with its length, or `None` when it does not exist.
fn open_read(path: &Path) -> Result<Option<(BufReader<File>, u64)>, Error> {
    match File::open(path) {
        Ok(f) => {
            let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
            Ok(Some((BufReader::with_capacity(1 << 16, f), len)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Why a snapshot could not be used.
enum SnapshotError {
    /// The file is damaged (detail says where).
    Damaged(String),
    /// Reading it failed.
    Io(Error),
}

/// Reads a snapshot into a graph: `Ok(None)` when the file does not exist.
fn read_snapshot(path: &Path) -> Result<Option<(Graph, u64)>, SnapshotError> {
    let Some((f, len)) = open_read(path).map_err(SnapshotError::Io)? else {
        return Ok(None);
    };
    let io = |e: io::Error| SnapshotError::Io(Error::io(path, e));
    let (mut r, magic) = record::Reader::new(f, len, SNAPSHOT_MAGIC).map_err(io)?;
    if magic != Magic::Ok {
        return Err(SnapshotError::Damaged(
            "not a snapshot file (bad magic)".into(),
        ));
    }
    let mut graph = Graph::new();
    let mut chunks = 0u64;
    loop {
        match r.next_record().map_err(io)? {
            Next::Record {
                offset,
                kind: KIND_NODES,
                payload,
            } => {
                let g = Graph::from_wire_bytes(&payload)
                    .map_err(|e| SnapshotError::Damaged(format!("record at byte {offset}: {e}")))?;
                graph.merge(&g, machine_state());
                chunks += 1;
            }
            Next::Record {
                offset,
                kind: KIND_END,
                payload,
            } => {
                let n = |i: usize| -> Option<u64> {
                    payload
                        .get(i..i + 8)
                        .and_then(|b| b.try_into().ok())
                        .map(u64::from_le_bytes)
                };
                let (Some(c), Some(s), Some(k), 24) = (n(0), n(8), n(16), payload.len()) else {
                    return Err(SnapshotError::Damaged(format!(
                        "bad end record at byte {offset}"
                    )));
                };
                if (c, s, k) != (chunks, graph.len() as u64, graph.key_count() as u64) {
                    return Err(SnapshotError::Damaged(format!(
                        "end record says {c} records, {s} souls, {k} keys; found {chunks}, {}, {}",
                        graph.len(),
                        graph.key_count()
                    )));
                }
                return match r.next_record().map_err(io)? {
                    Next::End => Ok(Some((graph, len))),
                    _ => Err(SnapshotError::Damaged(format!(
                        "data after the end record (byte {})",
                        r.offset()
                    ))),
                };
            }
            Next::Record { offset, kind, .. } => {
                return Err(SnapshotError::Damaged(format!(
                    "unknown record kind {kind} at byte {offset}"
                )));
            }
            Next::End => {
                return Err(SnapshotError::Damaged(
                    "no end record: the snapshot was not written completely".into(),
                ));
            }
            Next::Damaged { offset, why } => {
                return Err(SnapshotError::Damaged(format!("byte {offset}: {why}")));
            }
        }
    }
}

/// What replaying a journal found.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Replayed {
    /// Bytes of the file up to the end of the last good record.
    pub(crate) valid_len: u64,
    /// The file's length.
    pub(crate) file_len: u64,
    /// Whether the magic was complete (else the file must be rewritten).
    pub(crate) has_magic: bool,
}

/// Merges the diffs of a journal into `graph`. A damaged tail is reported and
/// ignored; `Ok(None)` when the file does not exist.
fn replay(path: &Path, graph: &mut Graph) -> Result<Option<Replayed>, Error> {
    let Some((f, len)) = open_read(path)? else {
        return Ok(None);
    };
    let (mut r, magic) =
        record::Reader::new(f, len, JOURNAL_MAGIC).map_err(|e| Error::io(path, e))?;
    match magic {
        Magic::Ok => {}
        Magic::Short => {
            tracing::warn!(path = %path.display(), "journal shorter than its header (creation was interrupted); treating it as empty");
            return Ok(Some(Replayed {
                valid_len: 0,
                file_len: len,
                has_magic: false,
            }));
        }
        Magic::Wrong => {
            return Err(Error::corrupt(
                path,
                "not a gun-store-file journal (bad magic)",
            ));
        }
    }
    let machine = machine_state();
    loop {
        match r.next_record().map_err(|e| Error::io(path, e))? {
            Next::Record {
                offset,
                kind: KIND_DIFF,
                payload,
            } => match Graph::from_wire_bytes(&payload) {
                Ok(diff) => {
                    graph.merge(&diff, machine);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), offset, error = %e, "skipping a journal record whose checksum is valid but whose diff is not")
                }
            },
            Next::Record { offset, kind, .. } => {
                tracing::warn!(path = %path.display(), offset, kind, "skipping a journal record of unknown kind");
            }
            Next::End => break,
            Next::Damaged { offset, why } => {
                tracing::warn!(
                    path = %path.display(),
                    offset,
                    ignored_bytes = len.saturating_sub(offset),
                    reason = %why,
                    "the journal ends in a torn or damaged record; ignoring everything from this byte offset on"
                );
                break;
            }
        }
    }
    Ok(Some(Replayed {
        valid_len: r.offset(),
        file_len: len,
        has_magic: true,
    }))
}

/// The state of a directory after loading.
pub(crate) struct Loaded {
    pub(crate) graph: Graph,
    pub(crate) snapshot_len: u64,
    pub(crate) journal: Option<Replayed>,
    /// A damaged snapshot was set aside: compact at once.
    pub(crate) compact_now: bool,
}

/// Loads `snapshot + journal`, falling back to `snapshot.prev + journal.prev +
/// journal` when the snapshot is missing or damaged.
pub(crate) fn load(dir: &Path) -> Result<Loaded, Error> {
    let tmp = dir.join(SNAPSHOT_TMP);
    if exists(&tmp)? {
        tracing::info!(path = %tmp.display(), "removing a snapshot left unfinished by a crash");
        fs::remove_file(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    let snap = dir.join(SNAPSHOT);
    let (mut graph, snapshot_len, fallback, damaged) = match read_snapshot(&snap) {
        Ok(Some((g, len))) => (g, len, false, None),
        Ok(None) => (Graph::new(), 0, true, None),
        Err(SnapshotError::Io(e)) => return Err(e),
        Err(SnapshotError::Damaged(d)) => (Graph::new(), 0, true, Some(d)),
    };
    let mut compact_now = false;
    if fallback {
        let prev = dir.join(SNAPSHOT_PREV);
        match read_snapshot(&prev) {
            Ok(Some((g, _))) => {
                if let Some(d) = &damaged {
                    tracing::warn!(path = %snap.display(), damage = %d, "the snapshot is damaged; recovering from snapshot.prev + journal.prev + journal");
                }
                graph = g;
            }
            Ok(None) => {
                if let Some(d) = damaged {
                    return Err(Error::corrupt(
                        &snap,
                        format!("{d}; there is no older snapshot to recover from"),
                    ));
                }
            }
            Err(SnapshotError::Io(e)) => return Err(e),
            Err(SnapshotError::Damaged(d2)) => {
                if let Some(d) = damaged {
                    return Err(Error::corrupt(
                        &snap,
                        format!("{d}; the older snapshot is damaged too: {d2}"),
                    ));
                }
                return Err(Error::corrupt(&prev, d2));
            }
        }
        replay(&dir.join(JOURNAL_PREV), &mut graph)?;
        if damaged.is_some() {
            // Keep the damaged file for inspection; the next compaction writes a good one.
            rename(dir, SNAPSHOT, SNAPSHOT_CORRUPT)?;
            sync_dir(dir)?;
            compact_now = true;
        }
    }
    let journal = replay(&dir.join(JOURNAL), &mut graph)?;
    Ok(Loaded {
        graph,
        snapshot_len,
        journal,
        compact_now,
    })
}

/// A test hook: the journal fails after this many more bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FailPoint {
    pub(crate) remaining: u64,
}

/// The open journal, appended to by the writer.
pub(crate) struct Journal {
    file: File,
    path: PathBuf,
    /// Bytes that are durable (everything written and fsynced).
    len: u64,
    fail: Option<FailPoint>,
}

impl Journal {
    /// Creates an empty journal (replacing any file of that name), durable.
    pub(crate) fn create(dir: &Path, fail: Option<FailPoint>) -> Result<Journal, Error> {
        let path = dir.join(JOURNAL);
        let io = |e| Error::io(&path, e);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(io)?;
        file.write_all(JOURNAL_MAGIC).map_err(io)?;
        file.sync_all().map_err(io)?;
        sync_dir(dir)?;
        let file = OpenOptions::new().append(true).open(&path).map_err(io)?;
        Ok(Journal {
            file,
            path,
            len: JOURNAL_MAGIC.len() as u64,
            fail,
        })
    }

    /// Opens the existing journal for appending, cutting off a damaged tail.
    pub(crate) fn open(
        dir: &Path,
        found: Replayed,
        fail: Option<FailPoint>,
    ) -> Result<Journal, Error> {
        if !found.has_magic {
            return Journal::create(dir, fail);
        }
        let path = dir.join(JOURNAL);
        let io = |e| Error::io(&path, e);
        let file = OpenOptions::new().append(true).open(&path).map_err(io)?;
        if found.file_len != found.valid_len {
            file.set_len(found.valid_len).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        Ok(Journal {
            file,
            path,
            len: found.valid_len,
            fail,
        })
    }

    /// Durable length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(fp) = &mut self.fail {
            if (bytes.len() as u64) > fp.remaining {
                let cut = usize::try_from(fp.remaining).unwrap_or(bytes.len());
                fp.remaining = 0;
                self.file.write_all(&bytes[..cut])?;
                return Err(io::Error::other(
                    "simulated I/O failure (Options::fail_after_bytes)",
                ));
            }
            fp.remaining -= bytes.len() as u64;
        }
        self.file.write_all(bytes)
    }

    /// Appends framed records and fsyncs them. On failure the journal is cut
    /// back to what it was; `Err((error, rolled_back))` says whether that worked.
    pub(crate) fn append(&mut self, bytes: &[u8]) -> Result<(), (Error, bool)> {
        match self.write_raw(bytes).and_then(|()| self.file.sync_data()) {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                let rolled_back = self
                    .file
                    .set_len(self.len)
                    .and_then(|()| self.file.sync_all())
                    .is_ok();
                Err((Error::io(&self.path, e), rolled_back))
            }
        }
    }

    pub(crate) fn fail_point(&self) -> Option<FailPoint> {
        self.fail
    }
}

/// Writes the graph as `snapshot.tmp`, fsynced. Returns its length.
fn write_snapshot(dir: &Path, graph: &Graph) -> Result<u64, Error> {
    let path = dir.join(SNAPSHOT_TMP);
    let io = |e| Error::io(&path, e);
    let file = File::create(&path).map_err(io)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    w.write_all(SNAPSHOT_MAGIC).map_err(io)?;
    let mut len = SNAPSHOT_MAGIC.len() as u64;
    let mut payload = String::new();
    let mut framed = Vec::new();
    let mut chunks = 0u64;
    let mut flush_chunk =
        |payload: &mut String, w: &mut BufWriter<File>, len: &mut u64| -> Result<(), Error> {
            payload.push('}');
            framed.clear();
            record::frame(KIND_NODES, payload.as_bytes(), &mut framed).map_err(|n| {
                Error::corrupt(
                    &path,
                    format!("a node of {n} bytes is too big for one snapshot record"),
                )
            })?;
            w.write_all(&framed).map_err(|e| Error::io(&path, e))?;
            *len += framed.len() as u64;
            payload.clear();
            chunks += 1;
            Ok(())
        };
    for (soul, node) in graph.iter() {
        payload.push(if payload.is_empty() { '{' } else { ',' });
        json::write_str(&mut payload, soul.as_str());
        payload.push(':');
        node.write_wire(&mut payload);
        if payload.len() >= SNAPSHOT_CHUNK {
            flush_chunk(&mut payload, &mut w, &mut len)?;
        }
    }
    if !payload.is_empty() {
        flush_chunk(&mut payload, &mut w, &mut len)?;
    }
    let mut end = Vec::with_capacity(24);
    end.extend_from_slice(&chunks.to_le_bytes());
    end.extend_from_slice(&(graph.len() as u64).to_le_bytes());
    end.extend_from_slice(&(graph.key_count() as u64).to_le_bytes());
    framed.clear();
    // 24 bytes always fit a record.
    let _ = record::frame(KIND_END, &end, &mut framed);
    w.write_all(&framed).map_err(io)?;
    len += framed.len() as u64;
    let file = w
        .into_inner()
        .map_err(|e| Error::io(&path, e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(len)
}

/// What a compaction changed.
pub(crate) enum Compacted {
    /// Done: the new snapshot's length, and the new journal (if it could be created).
    Done {
        snapshot_len: u64,
        journal: Result<Journal, Error>,
    },
    /// Failed before the journal was touched: keep using the current journal.
    Failed(Error),
}

/// Writes a snapshot of `graph` and starts a new journal (see the module docs).
pub(crate) fn compact(dir: &Path, graph: &Graph, fail: Option<FailPoint>) -> Compacted {
    let snapshot_len = match write_snapshot(dir, graph) {
        Ok(n) => n,
        Err(e) => {
            let _ = fs::remove_file(dir.join(SNAPSHOT_TMP));
            return Compacted::Failed(e);
        }
    };
    let steps = || -> Result<(), Error> {
        if exists(&dir.join(SNAPSHOT))? {
            rename(dir, SNAPSHOT, SNAPSHOT_PREV)?;
        }
        rename(dir, SNAPSHOT_TMP, SNAPSHOT)?;
        sync_dir(dir)?;
        // From here on the old journal is folded into the snapshot.
        if exists(&dir.join(JOURNAL))? {
            rename(dir, JOURNAL, JOURNAL_PREV)?;
        }
        Ok(())
    };
    if let Err(e) = steps() {
        return Compacted::Failed(e);
    }
    Compacted::Done {
        snapshot_len,
        journal: Journal::create(dir, fail),
    }
}
