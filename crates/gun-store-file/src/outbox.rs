//! The file store's outbox ([`gun_store::Store::outbox_put`]): one file per
//! entry in `DIR/outbox/`, named by the hex of the message id (never by the
//! id itself), holding the write's wire JSON. Written as the store writes
//! everything: to a temporary file, fsynced, renamed, and the directory
//! fsynced, so an entry is either whole or absent after a crash. The work runs
//! on a short-lived thread so that no runtime thread waits for an fsync.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use gun_graph::Graph;
use gun_store::Error;
use tokio::sync::oneshot;

use crate::disk::sync_dir;

/// The outbox's directory inside the store's directory.
pub(crate) const OUTBOX_DIR: &str = "outbox";
/// Longest message id the outbox takes (its file name is twice as long).
pub(crate) const MAX_ID_BYTES: usize = 120;
const TMP_SUFFIX: &str = ".tmp";

/// Runs `f` on its own thread and waits for it without blocking the caller's
/// runtime.
pub(crate) async fn off_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("gun-store-file-outbox".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| Error::io("outbox thread", e))?;
    rx.await.map_err(|_| Error::Closed)?
}

fn hex(id: &str) -> String {
    id.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(name: &str) -> Option<String> {
    if !name.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..name.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(name.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

fn entry_path(dir: &Path, id: &str) -> Result<PathBuf, Error> {
    if id.len() > MAX_ID_BYTES {
        return Err(Error::backend(format!(
            "outbox message id of {} bytes (at most {MAX_ID_BYTES})",
            id.len()
        )));
    }
    Ok(dir.join(hex(id)))
}

/// Writes the entry `id` durably.
pub(crate) fn put(store_dir: &Path, id: &str, diff: &Graph) -> Result<(), Error> {
    let dir = store_dir.join(OUTBOX_DIR);
    if !dir.is_dir() {
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        sync_dir(store_dir)?;
    }
    let path = entry_path(&dir, id)?;
    let tmp = path.with_extension(&TMP_SUFFIX[1..]);
    let write = |p: &Path| -> io::Result<()> {
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(p)?;
        f.write_all(diff.to_wire().as_bytes())?;
        f.sync_all()
    };
    write(&tmp).map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    sync_dir(&dir)
}

/// Removes the entry `id`, if any, durably.
pub(crate) fn remove(store_dir: &Path, id: &str) -> Result<(), Error> {
    let dir = store_dir.join(OUTBOX_DIR);
    let path = entry_path(&dir, id)?;
    match fs::remove_file(&path) {
        Ok(()) => sync_dir(&dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Every readable entry; unreadable ones are skipped with a warn event, and
/// temporary files left by a crash are removed.
pub(crate) fn list(store_dir: &Path) -> Result<Vec<(String, Graph)>, Error> {
    let dir = store_dir.join(OUTBOX_DIR);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(&dir, e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(TMP_SUFFIX) {
            if let Err(e) = fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove an unfinished outbox entry");
            }
            continue;
        }
        let Some(id) = unhex(&name) else {
            tracing::warn!(path = %path.display(), "file in the outbox that is not an entry: ignored");
            continue;
        };
        let read = File::open(&path)
            .and_then(|mut f| {
                let mut s = Vec::new();
                io::Read::read_to_end(&mut f, &mut s).map(|_| s)
            })
            .map_err(|e| Error::io(&path, e))?;
        match Graph::from_wire_bytes(&read) {
            Ok(g) => out.push((id, g)),
            Err(e) => tracing::warn!(
                path = %path.display(),
                error = %e,
                "unreadable outbox entry skipped (that write will not be re-sent)"
            ),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_any_id() {
        for id in ["abc123XYZ", "../x\u{0}/é", ""] {
            assert_eq!(unhex(&hex(id)).as_deref(), Some(id));
        }
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("abc"), None);
    }
}
