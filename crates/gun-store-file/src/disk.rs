//! The files of a store directory: loading, the journal, snapshots, compaction.
//!
//! | file | holds |
//! |---|---|
//! | `LOCK` | nothing; locked while a store has the directory open |
//! | `journal` | diffs accepted since `snapshot` was written |
//! | `snapshot` | every node, as of the last compaction |
//! | `snapshot.prev`, `journal.prev` | the snapshot before, and the journal folded into `snapshot` |
//! | `snapshot.tmp` | a snapshot being written (removed on open) |
//! | `snapshot.corrupt` (`.1`, …) | a copy of a damaged snapshot, kept for inspection |
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
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use gun_graph::{Graph, json};
use gun_store::{Error, machine_state};

use crate::record::{
    self, HEADER_LEN, JOURNAL_MAGIC, KIND_DIFF, KIND_END, KIND_NODES, Magic, Next, SNAPSHOT_MAGIC,
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

/// A byte range of a file that could not be read, and why.
#[derive(Debug, Clone)]
pub(crate) struct Damage {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) why: String,
}

/// `bytes 10..20 (checksum mismatch), bytes …`, for the logs.
fn describe(damage: &[Damage]) -> String {
    damage
        .iter()
        .map(|d| format!("bytes {}..{} ({})", d.start, d.end, d.why))
        .collect::<Vec<_>>()
        .join(", ")
}

fn damaged_bytes(damage: &[Damage]) -> u64 {
    damage.iter().map(|d| d.end.saturating_sub(d.start)).sum()
}

/// What reading every readable record of a file found.
struct Scan {
    /// The ranges that could not be read.
    damage: Vec<Damage>,
    /// Offset just past the last record read (where reading started when none).
    good_end: u64,
}

/// Hands every record of `r` with a valid checksum to `each`, skipping damaged
/// ranges (see [`record::Reader::resync`]); `each` returns why a record is
/// unusable (its bytes then count as damaged).
fn scan<R: Read + Seek>(
    r: &mut record::Reader<R>,
    len: u64,
    kinds: &[u8],
    mut each: impl FnMut(u64, u8, Vec<u8>) -> Result<(), String>,
) -> io::Result<Scan> {
    let mut out = Scan {
        damage: Vec::new(),
        good_end: r.offset(),
    };
    loop {
        match r.next_record()? {
            Next::Record {
                offset,
                kind,
                payload,
            } => {
                let end = r.offset();
                out.good_end = end;
                if let Err(why) = each(offset, kind, payload) {
                    out.damage.push(Damage {
                        start: offset,
                        end,
                        why,
                    });
                }
            }
            Next::End => return Ok(out),
            Next::Damaged { offset, why } => {
                let next = r.resync(offset + 1, kinds)?;
                out.damage.push(Damage {
                    start: offset,
                    end: next.unwrap_or(len),
                    why,
                });
                if next.is_none() {
                    return Ok(out);
                }
            }
        }
    }
}

/// The record kinds of a snapshot.
const SNAPSHOT_KINDS: &[u8] = &[KIND_NODES, KIND_END];
/// The record kinds of a journal.
const JOURNAL_KINDS: &[u8] = &[KIND_DIFF];

/// A snapshot as read: every readable node, and what could not be read.
struct SnapshotRead {
    graph: Graph,
    len: u64,
    /// Empty when the snapshot is whole (every record, and the end record's
    /// counts match).
    damage: Vec<Damage>,
}

impl SnapshotRead {
    fn whole(&self) -> bool {
        self.damage.is_empty()
    }
}

/// Reads a snapshot, as much of it as is readable: `Ok(None)` when the file does
/// not exist; `Err` only when it cannot be read at all (an I/O error).
fn read_snapshot(path: &Path) -> Result<Option<SnapshotRead>, Error> {
    let Some((f, len)) = open_read(path)? else {
        return Ok(None);
    };
    let io = |e: io::Error| Error::io(path, e);
    let (mut r, magic) = record::Reader::new(f, len, SNAPSHOT_MAGIC).map_err(io)?;
    let mut damage = Vec::new();
    let mut graph = Graph::new();
    match magic {
        Magic::Ok => {}
        Magic::Short => {
            damage.push(Damage {
                start: 0,
                end: len,
                why: "shorter than the 8-byte header".into(),
            });
            return Ok(Some(SnapshotRead { graph, len, damage }));
        }
        Magic::Wrong => {
            let next = r.resync(8, SNAPSHOT_KINDS).map_err(io)?;
            damage.push(Damage {
                start: 0,
                end: next.unwrap_or(len),
                why: "not a snapshot header (bad magic)".into(),
            });
            if next.is_none() {
                return Ok(Some(SnapshotRead { graph, len, damage }));
            }
        }
    }
    let machine = machine_state();
    let mut chunks = 0u64;
    // Offset and counts (records, souls, keys) of the end record.
    let mut end: Option<(u64, [u64; 3])> = None;
    let s = scan(&mut r, len, SNAPSHOT_KINDS, |offset, kind, payload| {
        if end.is_some() {
            return Err("a record after the end record".into());
        }
        match kind {
            KIND_NODES => {
                let g = Graph::from_wire_bytes(&payload)
                    .map_err(|e| format!("valid checksum but unreadable nodes: {e}"))?;
                graph.merge(&g, machine);
                chunks += 1;
                Ok(())
            }
            KIND_END => {
                let n = |i: usize| -> Option<u64> {
                    payload
                        .get(i..i + 8)
                        .and_then(|b| b.try_into().ok())
                        .map(u64::from_le_bytes)
                };
                match (n(0), n(8), n(16), payload.len()) {
                    (Some(c), Some(s), Some(k), 24) => {
                        end = Some((offset, [c, s, k]));
                        Ok(())
                    }
                    _ => Err("malformed end record".into()),
                }
            }
            k => Err(format!("unknown record kind {k}")),
        }
    })
    .map_err(io)?;
    damage.extend(s.damage);
    match end {
        None => {
            let from = damage.last().map_or(s.good_end, |d| d.end).max(s.good_end);
            if from < len || damage.is_empty() {
                damage.push(Damage {
                    start: from,
                    end: len,
                    why: "no end record: the snapshot was not written completely".into(),
                });
            }
        }
        Some((offset, [c, so, k])) => {
            let found = [chunks, graph.len() as u64, graph.key_count() as u64];
            if damage.is_empty() && [c, so, k] != found {
                damage.push(Damage {
                    start: offset,
                    end: offset + HEADER_LEN as u64 + 24,
                    why: format!(
                        "the end record says {c} records, {so} souls, {k} keys; found {}, {}, {}",
                        found[0], found[1], found[2]
                    ),
                });
            }
        }
    }
    Ok(Some(SnapshotRead { graph, len, damage }))
}

/// What replaying a journal found.
#[derive(Debug, Clone)]
pub(crate) struct Replayed {
    /// Bytes of the file up to the end of the last good record.
    pub(crate) valid_len: u64,
    /// The file's length.
    pub(crate) file_len: u64,
    /// Whether the file is to be appended to (else it is rewritten empty).
    pub(crate) has_magic: bool,
    /// What could not be read (a torn tail, damage inside).
    pub(crate) damage: Vec<Damage>,
}

impl Replayed {
    /// Whether good records follow damaged bytes (more than a torn tail).
    pub(crate) fn damaged_inside(&self) -> bool {
        self.damage.iter().any(|d| d.end < self.file_len)
    }
}

/// Merges the diffs of a journal into `graph`. Damage is reported and skipped:
/// a torn tail (a crash mid-append) with a warning, damage followed by good
/// records (a disk error) with an error, and the records after it are read.
/// `Ok(None)` when the file does not exist.
fn replay(path: &Path, graph: &mut Graph) -> Result<Option<Replayed>, Error> {
    let Some((f, len)) = open_read(path)? else {
        return Ok(None);
    };
    let io = |e| Error::io(path, e);
    let (mut r, magic) = record::Reader::new(f, len, JOURNAL_MAGIC).map_err(io)?;
    let mut damage = Vec::new();
    match magic {
        Magic::Ok => {}
        Magic::Short => {
            tracing::warn!(path = %path.display(), bytes = len, "journal shorter than its 8-byte header (a crash while creating it); treating it as empty");
            return Ok(Some(Replayed {
                valid_len: 0,
                file_len: len,
                has_magic: false,
                damage,
            }));
        }
        Magic::Wrong => match r.resync(8, JOURNAL_KINDS).map_err(io)? {
            None => {
                return Err(Error::corrupt(
                    path,
                    "not a gun-store-file journal (bad magic, and no readable record in it)",
                ));
            }
            Some(at) => damage.push(Damage {
                start: 0,
                end: at,
                why: "bad magic".into(),
            }),
        },
    }
    let machine = machine_state();
    let s = scan(&mut r, len, JOURNAL_KINDS, |offset, kind, payload| {
        match kind {
            KIND_DIFF => match Graph::from_wire_bytes(&payload) {
                Ok(diff) => {
                    graph.merge(&diff, machine);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), offset, error = %e, "skipping a journal record whose checksum is valid but whose diff is not")
                }
            },
            _ => {
                tracing::warn!(path = %path.display(), offset, kind, "skipping a journal record of unknown kind");
            }
        }
        Ok(())
    })
    .map_err(io)?;
    damage.extend(s.damage);
    for d in &damage {
        if d.end < len {
            tracing::error!(
                path = %path.display(),
                offset = d.start,
                end = d.end,
                lost_bytes = d.end - d.start,
                reason = %d.why,
                "the journal is damaged: the writes stored in these bytes are lost; the records after them were read"
            );
        } else {
            tracing::warn!(
                path = %path.display(),
                offset = d.start,
                ignored_bytes = len.saturating_sub(d.start),
                reason = %d.why,
                "the journal ends in a torn or damaged record; ignoring everything from this byte offset on"
            );
        }
    }
    Ok(Some(Replayed {
        valid_len: s.good_end,
        file_len: len,
        has_magic: true,
        damage,
    }))
}

/// The state of a directory after loading.
pub(crate) struct Loaded {
    pub(crate) graph: Graph,
    pub(crate) snapshot_len: u64,
    pub(crate) journal: Option<Replayed>,
    /// Compactions to run before any put, to replace damaged files.
    pub(crate) compactions: usize,
}

/// A free name for setting a damaged snapshot aside.
fn aside_name(dir: &Path) -> Result<String, Error> {
    let mut name = SNAPSHOT_CORRUPT.to_string();
    for i in 1..1000 {
        if !exists(&dir.join(&name))? {
            break;
        }
        name = format!("{SNAPSHOT_CORRUPT}.{i}");
    }
    Ok(name)
}

/// Loads `snapshot + journal`. When the snapshot is missing or damaged, loads
/// `snapshot.prev + journal.prev + journal` (complete, see the module docs)
/// merged with every readable record of the damaged snapshot; nothing damaged
/// stops the store from opening (see the crate docs, "Damaged files").
pub(crate) fn load(dir: &Path) -> Result<Loaded, Error> {
    let tmp = dir.join(SNAPSHOT_TMP);
    if exists(&tmp)? {
        tracing::info!(path = %tmp.display(), "removing a snapshot left unfinished by a crash");
        fs::remove_file(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    let snap = dir.join(SNAPSHOT);
    let mut compactions = 0;
    let (mut graph, snapshot_len) = match read_snapshot(&snap)? {
        Some(s) if s.whole() => (s.graph, s.len),
        damaged => {
            let machine = machine_state();
            let mut graph = Graph::new();
            let prev_path = dir.join(SNAPSHOT_PREV);
            let prev = read_snapshot(&prev_path)?;
            if let Some(p) = &prev {
                graph.merge(&p.graph, machine);
                if !p.whole() {
                    tracing::error!(
                        path = %prev_path.display(),
                        damage = %describe(&p.damage),
                        souls_read = p.graph.len(),
                        "the older snapshot is damaged too; using its readable records"
                    );
                    compactions = 2;
                }
            }
            let jprev = replay(&dir.join(JOURNAL_PREV), &mut graph)?;
            if let Some(s) = damaged {
                graph.merge(&s.graph, machine);
                // A copy is kept for inspection; the damaged file itself stays
                // until the compactions below replace it, so a crash before
                // they finish recovers the same way again.
                let aside = aside_name(dir)?;
                let copy = dir.join(&aside);
                fs::copy(&snap, &copy)
                    .and_then(|_| File::open(&copy)?.sync_all())
                    .map_err(|e| Error::io(&copy, e))?;
                sync_dir(dir)?;
                let older_whole = prev.as_ref().is_some_and(SnapshotRead::whole)
                    && jprev.as_ref().is_some_and(|j| j.damage.is_empty());
                if older_whole {
                    tracing::warn!(
                        path = %snap.display(),
                        damage = %describe(&s.damage),
                        kept_as = %aside,
                        "the snapshot is damaged; recovered from snapshot.prev + journal.prev + journal, which hold everything: nothing is lost"
                    );
                } else {
                    tracing::error!(
                        path = %snap.display(),
                        damage = %describe(&s.damage),
                        unreadable_bytes = damaged_bytes(&s.damage),
                        souls_read = s.graph.len(),
                        older_snapshot = prev.is_some(),
                        older_journal = jprev.is_some(),
                        kept_as = %aside,
                        "the snapshot is damaged and there is no whole older snapshot + journal to recover from: serving its readable records merged with snapshot.prev, journal.prev and journal; nodes written only in the unreadable bytes are lost"
                    );
                }
                // Twice: the first writes a good snapshot (the damaged one
                // becomes `snapshot.prev`), the second makes the good one
                // `snapshot.prev`, so that `snapshot.prev + journal.prev` is
                // complete again.
                compactions = 2;
            }
            (graph, 0)
        }
    };
    let journal = replay(&dir.join(JOURNAL), &mut graph)?;
    if journal.as_ref().is_some_and(Replayed::damaged_inside) {
        // Rewrite the data without the damaged bytes.
        compactions = compactions.max(1);
    }
    Ok(Loaded {
        graph,
        snapshot_len,
        journal,
        compactions,
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
