//! The writer thread: the only code that changes the graph or the files.
//!
//! Puts queue in a channel. The writer takes everything queued, merges each diff
//! through HAM against the graph (and the diffs before it in the batch), appends
//! one journal record per diff that changed something, fsyncs **once** for the
//! whole batch (group commit: puts that arrive during an fsync share the next
//! one), and only then applies the batch to the graph and answers the puts. If
//! the append or the fsync fails, the journal is cut back to its previous length
//! and every put of the batch fails with nothing applied.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, mpsc};

use gun_graph::{Graph, decide};
use gun_store::{Error, machine_state};
use tokio::sync::oneshot;

use crate::disk::{self, Compacted, FailPoint, Journal};
use crate::record::{self, KIND_DIFF};

/// At most this many requests are committed together.
const MAX_BATCH: usize = 1024;

pub(crate) type Reply = oneshot::Sender<Result<(), Error>>;
/// A put's answer: what it applied.
pub(crate) type PutReply = oneshot::Sender<Result<Graph, Error>>;

/// Work for the writer.
pub(crate) enum Request {
    /// Merge and persist a diff.
    Put { diff: Graph, done: PutReply },
    /// Answer once everything queued before is durable.
    Flush { done: Reply },
    /// Write a snapshot and start a new journal.
    Compact { done: Reply },
}

/// What the store's handle and the writer share.
#[derive(Debug)]
pub(crate) struct Shared {
    graph: RwLock<Graph>,
    /// Bytes of the snapshot and the journal on disk.
    pub(crate) disk_bytes: AtomicU64,
    /// Number of journal appends (each one fsync), for tests of the group commit.
    pub(crate) commits: AtomicU64,
}

impl Shared {
    pub(crate) fn new(graph: Graph, disk_bytes: u64) -> Shared {
        Shared {
            graph: RwLock::new(graph),
            disk_bytes: AtomicU64::new(disk_bytes),
            commits: AtomicU64::new(0),
        }
    }

    // Only the writer mutates the graph, and merging does not panic on any
    // input; a poisoned lock still holds a whole graph, so it is used as is.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Graph> {
        self.graph.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Graph> {
        self.graph.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A copy of an error for each put of a failed batch.
fn copy_err(e: &Error) -> Error {
    match e {
        Error::Io { path, source } => Error::io(
            path.clone(),
            io::Error::new(source.kind(), source.to_string()),
        ),
        Error::Corrupt { path, detail } => Error::corrupt(path.clone(), detail.clone()),
        Error::Locked { path } => Error::Locked { path: path.clone() },
        Error::Closed => Error::Closed,
        Error::Poisoned { reason } => Error::Poisoned {
            reason: reason.clone(),
        },
        other => Error::backend(other.to_string()),
    }
}

pub(crate) struct Writer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) dir: PathBuf,
    pub(crate) journal: Option<Journal>,
    pub(crate) snapshot_len: u64,
    pub(crate) compact_min_bytes: u64,
    /// The fail hook for a journal created later (when `journal` is `None`).
    pub(crate) fail: Option<FailPoint>,
    /// Why the writer stopped taking writes.
    pub(crate) poisoned: Option<String>,
    /// Compactions to run before serving requests (to replace damaged files).
    pub(crate) startup_compactions: usize,
}

impl Writer {
    /// Serves requests until every sender is gone.
    pub(crate) fn run(mut self, rx: mpsc::Receiver<Request>) {
        for _ in 0..self.startup_compactions {
            match self.compact() {
                Ok(()) => {
                    tracing::info!(dir = %self.dir.display(), "rewrote the store's files after damage")
                }
                Err(e) => {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "compaction after damage failed; the damaged files stay in use");
                    break;
                }
            }
        }
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            self.handle(batch);
        }
    }

    fn handle(&mut self, batch: Vec<Request>) {
        let mut diffs = Vec::new();
        let mut put_replies = Vec::new();
        let mut flushes = Vec::new();
        let mut compacts = Vec::new();
        for r in batch {
            match r {
                Request::Put { diff, done } => {
                    diffs.push(diff);
                    put_replies.push(done);
                }
                Request::Flush { done } => flushes.push(done),
                Request::Compact { done } => compacts.push(done),
            }
        }
        if !diffs.is_empty() {
            match self.commit(&diffs) {
                Ok(applied) => {
                    for (done, a) in put_replies.into_iter().zip(applied) {
                        // A dropped receiver (a cancelled put) is fine: the outcome stands.
                        let _ = done.send(Ok(a));
                    }
                }
                Err(e) => {
                    for done in put_replies {
                        let _ = done.send(Err(copy_err(&e)));
                    }
                }
            }
        }
        let due = self
            .journal
            .as_ref()
            .is_some_and(|j| j.len() > self.compact_min_bytes.max(self.snapshot_len));
        if due || !compacts.is_empty() {
            let result = self.compact();
            if let Err(e) = &result {
                tracing::warn!(dir = %self.dir.display(), error = %e, "compaction failed; the journal keeps growing");
            }
            for done in compacts {
                let _ = done.send(result.as_ref().map(|_| ()).map_err(copy_err));
            }
        }
        for done in flushes {
            let r = match &self.poisoned {
                Some(reason) => Err(Error::Poisoned {
                    reason: reason.clone(),
                }),
                None => Ok(()),
            };
            let _ = done.send(r);
        }
    }

    fn journal(&mut self) -> Result<&mut Journal, Error> {
        if self.journal.is_none() {
            self.journal = Some(Journal::create(&self.dir, self.fail)?);
        }
        self.journal.as_mut().ok_or(Error::Closed)
    }

    /// Merges, persists and applies a batch of diffs, all or nothing.
    /// Merges and persists `diffs` as one journal append; answers what each applied.
    fn commit(&mut self, diffs: &[Graph]) -> Result<Vec<Graph>, Error> {
        if let Some(reason) = &self.poisoned {
            return Err(Error::Poisoned {
                reason: reason.clone(),
            });
        }
        let machine = machine_state();
        let mut overlay = Graph::new();
        let mut records = Vec::new();
        let mut answers = Vec::with_capacity(diffs.len());
        {
            let graph = self.shared.read();
            for diff in diffs {
                let mut accepted = Graph::new();
                for (soul, node) in diff.iter() {
                    for (key, e) in node.iter() {
                        let current = overlay
                            .get(soul.as_str())
                            .and_then(|n| n.get(key))
                            .or_else(|| graph.get(soul.as_str()).and_then(|n| n.get(key)));
                        let d = decide(
                            machine,
                            e.state,
                            &e.value,
                            current.map(|c| (c.state, &c.value)),
                        );
                        if d.is_accept() {
                            // Keys of a Node are never "_", so these cannot fail.
                            let _ =
                                accepted.put(soul.clone(), key.clone(), e.state, e.value.clone());
                            let _ =
                                overlay.put(soul.clone(), key.clone(), e.state, e.value.clone());
                        }
                    }
                }
                if !accepted.is_empty() {
                    record::frame(KIND_DIFF, accepted.to_wire().as_bytes(), &mut records).map_err(
                        |n| {
                            Error::corrupt(
                                &self.dir,
                                format!(
                                    "a diff of {n} bytes exceeds the journal's 4 GiB record limit"
                                ),
                            )
                        },
                    )?;
                }
                answers.push(accepted);
            }
        }
        if records.is_empty() {
            return Ok(answers);
        }
        let journal = self.journal()?;
        if let Err((e, rolled_back)) = journal.append(&records) {
            if !rolled_back {
                let reason = format!("{e}, and cutting the journal back failed too");
                tracing::error!(dir = %self.dir.display(), %reason, "the file store stops taking writes");
                self.poisoned = Some(reason);
                self.journal = None;
            }
            return Err(e);
        }
        let journal_len = journal.len();
        self.shared.commits.fetch_add(1, Ordering::Relaxed);
        self.shared.write().merge(&overlay, machine);
        self.shared
            .disk_bytes
            .store(self.snapshot_len + journal_len, Ordering::Relaxed);
        Ok(answers)
    }

    /// Writes a snapshot of the graph and starts a new journal.
    fn compact(&mut self) -> Result<(), Error> {
        if let Some(reason) = &self.poisoned {
            return Err(Error::Poisoned {
                reason: reason.clone(),
            });
        }
        let fail = self.journal.as_ref().map_or(self.fail, Journal::fail_point);
        let outcome = {
            let graph = self.shared.read();
            disk::compact(&self.dir, &graph, fail)
        };
        match outcome {
            Compacted::Failed(e) => Err(e),
            Compacted::Done {
                snapshot_len,
                journal,
            } => {
                self.snapshot_len = snapshot_len;
                self.fail = fail;
                let r = match journal {
                    Ok(j) => {
                        self.journal = Some(j);
                        Ok(())
                    }
                    Err(e) => {
                        // The old journal was renamed away: never append to it
                        // again. The next put creates a new one.
                        self.journal = None;
                        Err(e)
                    }
                };
                let jl = self.journal.as_ref().map_or(0, Journal::len);
                self.shared
                    .disk_bytes
                    .store(self.snapshot_len + jl, Ordering::Relaxed);
                r
            }
        }
    }
}
