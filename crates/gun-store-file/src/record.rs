//! The record framing shared by the journal and the snapshots.
//!
//! ```text
//! file    = magic(8) record*
//! record  = len: u32 LE | crc: u32 LE | kind: u8 | payload: len bytes
//! crc     = CRC-32 (IEEE) of kind and payload
//! ```
//!
//! A reader stops at the first record that is cut short, claims more bytes than
//! the file has, or fails its checksum, and reports the byte offset where the
//! damage starts. [`Reader::resync`] then looks for the next offset where a
//! whole record with a valid checksum starts, so that records behind damage in
//! the middle of a file (a disk error, an overwritten block) can still be read.

use std::io::{self, Read, Seek, SeekFrom};

/// Magic of a journal file.
pub(crate) const JOURNAL_MAGIC: &[u8; 8] = b"GUNJRNL1";
/// Magic of a snapshot file.
pub(crate) const SNAPSHOT_MAGIC: &[u8; 8] = b"GUNSNAP1";

/// A journal record: one accepted diff, as Gun wire JSON.
pub(crate) const KIND_DIFF: u8 = 1;
/// A snapshot record: some whole nodes, as Gun wire JSON.
pub(crate) const KIND_NODES: u8 = 2;
/// The last snapshot record: number of node records, souls, keys (u64 LE each).
pub(crate) const KIND_END: u8 = 3;

/// Bytes before a record's payload.
pub(crate) const HEADER_LEN: usize = 9;

/// Appends one framed record to `out`. Fails if the payload exceeds 4 GiB.
pub(crate) fn frame(kind: u8, payload: &[u8], out: &mut Vec<u8>) -> Result<(), usize> {
    let len = u32::try_from(payload.len()).map_err(|_| payload.len())?;
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind]);
    h.update(payload);
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
    Ok(())
}

/// What the reader found next.
#[derive(Debug)]
pub(crate) enum Next {
    /// A record with a valid checksum, starting at `offset`.
    Record {
        offset: u64,
        kind: u8,
        payload: Vec<u8>,
    },
    /// The clean end of the file.
    End,
    /// Damage starting at `offset`; everything from there on is unusable.
    Damaged { offset: u64, why: String },
}

/// Reads records one by one from a file of known length.
pub(crate) struct Reader<R> {
    r: R,
    /// Offset of the next record.
    offset: u64,
    len: u64,
}

/// Fills `buf` as far as the input allows; returns how many bytes were read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The result of checking a file's magic.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Magic {
    /// The expected magic.
    Ok,
    /// Fewer than 8 bytes: a file whose creation was interrupted.
    Short,
    /// Something else: not our file.
    Wrong,
}

impl<R: Read> Reader<R> {
    /// Starts reading a file of `len` bytes, checking its magic.
    pub(crate) fn new(mut r: R, len: u64, magic: &[u8; 8]) -> io::Result<(Reader<R>, Magic)> {
        let mut m = [0u8; 8];
        let n = read_full(&mut r, &mut m)?;
        let state = if n < 8 {
            Magic::Short
        } else if &m == magic {
            Magic::Ok
        } else {
            Magic::Wrong
        };
        Ok((Reader { r, offset: 8, len }, state))
    }

    /// Offset just past the last good record read so far.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The next record.
    pub(crate) fn next_record(&mut self) -> io::Result<Next> {
        let offset = self.offset;
        let mut h = [0u8; HEADER_LEN];
        let n = read_full(&mut self.r, &mut h)?;
        if n == 0 {
            return Ok(Next::End);
        }
        let damaged = |why: String| Ok(Next::Damaged { offset, why });
        if n < HEADER_LEN {
            return damaged(format!(
                "record header cut short ({n} of {HEADER_LEN} bytes)"
            ));
        }
        let len = u64::from(u32::from_le_bytes([h[0], h[1], h[2], h[3]]));
        let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        let kind = h[8];
        let available = self.len.saturating_sub(offset + HEADER_LEN as u64);
        if len > available {
            return damaged(format!(
                "record claims {len} bytes, only {available} follow"
            ));
        }
        let Ok(len_usize) = usize::try_from(len) else {
            return damaged(format!("record of {len} bytes does not fit in memory"));
        };
        let mut payload = vec![0u8; len_usize];
        let got = read_full(&mut self.r, &mut payload)?;
        if got < len_usize {
            return damaged(format!("record cut short ({got} of {len} bytes)"));
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&[kind]);
        hasher.update(&payload);
        if hasher.finalize() != crc {
            return damaged("checksum mismatch".to_string());
        }
        self.offset = offset + HEADER_LEN as u64 + len;
        Ok(Next::Record {
            offset,
            kind,
            payload,
        })
    }
}

/// Whether a record of `kind` may start with payload byte `first` and be `len`
/// bytes long: diffs and node records are JSON objects, end records 24 bytes.
fn plausible(kind: u8, len: u64, first: Option<u8>) -> bool {
    match kind {
        KIND_DIFF | KIND_NODES => len >= 2 && first.is_none_or(|b| b == b'{'),
        KIND_END => len == 24,
        _ => false,
    }
}

impl<R: Read + Seek> Reader<R> {
    /// Looks for the first offset at or after `from` where a whole record of one
    /// of `kinds` with a valid checksum starts, and continues reading from
    /// there. `None` when there is none (the reader is then at the file's end).
    ///
    /// A candidate must have a known kind, a plausible length (one that fits in
    /// the file; a JSON payload starting with `{`), and its CRC-32 must match,
    /// so damage is practically never mistaken for a record.
    pub(crate) fn resync(&mut self, from: u64, kinds: &[u8]) -> io::Result<Option<u64>> {
        const BLOCK: usize = 1 << 16;
        // A candidate needs its header and the first payload byte in the window.
        const NEED: usize = HEADER_LEN + 1;
        let mut base = from; // file offset of buf[0]
        let mut buf: Vec<u8> = Vec::with_capacity(BLOCK + NEED);
        self.r.seek(SeekFrom::Start(base))?;
        let mut eof = false;
        loop {
            // Top the window up.
            if !eof && buf.len() < BLOCK {
                let old = buf.len();
                buf.resize(BLOCK + NEED, 0);
                let n = read_full(&mut self.r, &mut buf[old..])?;
                buf.truncate(old + n);
                eof = n == 0 || base + buf.len() as u64 >= self.len;
            }
            // Positions whose header lies wholly in the window.
            let usable = buf.len().saturating_sub(HEADER_LEN - 1);
            let scan_to = if eof {
                usable
            } else {
                buf.len().saturating_sub(NEED - 1)
            };
            let mut found = None;
            for i in 0..scan_to {
                let h = &buf[i..i + HEADER_LEN];
                let kind = h[8];
                if !kinds.contains(&kind) {
                    continue;
                }
                let at = base + i as u64;
                let len = u64::from(u32::from_le_bytes([h[0], h[1], h[2], h[3]]));
                if len > self.len.saturating_sub(at + HEADER_LEN as u64) {
                    continue;
                }
                if !plausible(kind, len, buf.get(i + HEADER_LEN).copied()) {
                    continue;
                }
                // Check the whole record (this moves the file position).
                let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
                self.r.seek(SeekFrom::Start(at + HEADER_LEN as u64))?;
                if checksum_matches(&mut self.r, kind, len, crc)? {
                    found = Some(at);
                    break;
                }
                self.r.seek(SeekFrom::Start(base + buf.len() as u64))?;
            }
            if let Some(at) = found {
                self.r.seek(SeekFrom::Start(at))?;
                self.offset = at;
                return Ok(Some(at));
            }
            if eof {
                self.r.seek(SeekFrom::Start(self.len))?;
                self.offset = self.len;
                return Ok(None);
            }
            buf.drain(..scan_to);
            base += scan_to as u64;
        }
    }
}

/// Whether the next `len` bytes of `r`, after `kind`, have CRC-32 `crc`.
fn checksum_matches<R: Read>(r: &mut R, kind: u8, len: u64, crc: u32) -> io::Result<bool> {
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind]);
    let mut left = len;
    let mut chunk = vec![0u8; 1 << 16];
    while left > 0 {
        let want = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
        let n = read_full(r, &mut chunk[..want])?;
        if n == 0 {
            return Ok(false);
        }
        h.update(&chunk[..n]);
        left -= n as u64;
    }
    Ok(h.finalize() == crc)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn file(records: &[(u8, &[u8])]) -> Vec<u8> {
        let mut v = JOURNAL_MAGIC.to_vec();
        for (k, p) in records {
            frame(*k, p, &mut v).unwrap();
        }
        v
    }

    type Records = Vec<(u64, u8, Vec<u8>)>;

    fn read_all(bytes: &[u8]) -> (Records, Option<(u64, String)>) {
        let (mut r, m) = Reader::new(bytes, bytes.len() as u64, JOURNAL_MAGIC).unwrap();
        assert_eq!(m, Magic::Ok);
        let mut out = Vec::new();
        loop {
            match r.next_record().unwrap() {
                Next::Record {
                    offset,
                    kind,
                    payload,
                } => out.push((offset, kind, payload)),
                Next::End => return (out, None),
                Next::Damaged { offset, why } => return (out, Some((offset, why))),
            }
        }
    }

    #[test]
    fn round_trip() {
        let f = file(&[(1, b"hello"), (2, b""), (3, &[0xFF; 300])]);
        let (recs, bad) = read_all(&f);
        assert!(bad.is_none());
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0], (8, 1, b"hello".to_vec()));
        assert_eq!(recs[1].0, 8 + 9 + 5);
        assert_eq!(recs[2].2.len(), 300);
    }

    #[test]
    fn every_truncation_is_detected_at_the_right_offset() {
        let f = file(&[(1, b"first record"), (1, b"second record")]);
        let second = 8 + 9 + 12;
        for cut in second..f.len() {
            let (recs, bad) = read_all(&f[..cut]);
            assert_eq!(recs.len(), 1, "cut at {cut}");
            if cut == second {
                assert!(bad.is_none());
            } else {
                assert_eq!(bad.unwrap().0, second as u64, "cut at {cut}");
            }
        }
    }

    #[test]
    fn every_bit_flip_is_detected() {
        let f = file(&[(1, b"payload")]);
        for i in 8..f.len() {
            for bit in 0..8 {
                let mut g = f.clone();
                g[i] ^= 1 << bit;
                let (recs, bad) = read_all(&g);
                assert!(
                    recs.is_empty() && bad.is_some(),
                    "flip of bit {bit} in byte {i}"
                );
            }
        }
    }

    #[test]
    fn garbage_lengths_do_not_allocate() {
        let mut f = JOURNAL_MAGIC.to_vec();
        f.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 1, 0]);
        let (recs, bad) = read_all(&f);
        assert!(recs.is_empty());
        assert!(bad.unwrap().1.contains("claims"));
    }

    /// Reads every record, resynchronising after damage; returns the payloads
    /// and the damaged ranges.
    fn read_resync(bytes: &[u8], kinds: &[u8]) -> (Vec<Vec<u8>>, Vec<(u64, u64)>) {
        let len = bytes.len() as u64;
        let (mut r, m) = Reader::new(io::Cursor::new(bytes), len, JOURNAL_MAGIC).unwrap();
        assert_eq!(m, Magic::Ok);
        let mut out = Vec::new();
        let mut bad = Vec::new();
        loop {
            match r.next_record().unwrap() {
                Next::Record { payload, .. } => out.push(payload),
                Next::End => return (out, bad),
                Next::Damaged { offset, .. } => {
                    let next = r.resync(offset + 1, kinds).unwrap();
                    bad.push((offset, next.unwrap_or(len)));
                    if next.is_none() {
                        return (out, bad);
                    }
                }
            }
        }
    }

    #[test]
    fn records_after_damage_are_found_again() {
        let payloads: Vec<Vec<u8>> = (0..6)
            .map(|i| format!("{{\"record {i}\":\"{}\"}}", "x".repeat(i * 7)).into_bytes())
            .collect();
        let recs: Vec<(u8, &[u8])> = payloads.iter().map(|p| (KIND_DIFF, &p[..])).collect();
        let f = file(&recs);
        let mut starts = vec![8usize];
        for p in &payloads {
            starts.push(starts.last().unwrap() + HEADER_LEN + p.len());
        }
        for garbage in [vec![0xA5u8], vec![0; 5], vec![0xFF; 23], vec![1; 40]] {
            for at in 8..f.len() {
                let end = (at + garbage.len()).min(f.len());
                let mut g = f.clone();
                g[at..end].copy_from_slice(&garbage[..end - at]);
                if g == f {
                    continue;
                }
                let (got, bad) = read_resync(&g, &[KIND_DIFF]);
                // Exactly the records the garbage did not touch.
                let want: Vec<Vec<u8>> = payloads
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| starts[i + 1] <= at || starts[*i] >= end)
                    .map(|(_, p)| p.clone())
                    .collect();
                assert_eq!(got, want, "garbage {garbage:?} at {at}");
                assert!(!bad.is_empty(), "garbage at {at} unreported");
                assert!(
                    bad.iter().all(|&(s, e)| s <= at as u64 && e >= end as u64
                        || s >= at as u64 && s < end as u64)
                );
            }
        }
        // A cut-off file: resync finds nothing and ends at the file's end.
        let (got, bad) = read_resync(&f[..starts[3] + 4], &[KIND_DIFF]);
        assert_eq!(got.len(), 3);
        assert_eq!(bad, [(starts[3] as u64, (starts[3] + 4) as u64)]);
    }

    #[test]
    fn magic() {
        let (_, m) = Reader::new(&b"GUNJ"[..], 4, JOURNAL_MAGIC).unwrap();
        assert_eq!(m, Magic::Short);
        let (_, m) = Reader::new(&b"GUNSNAP1"[..], 8, JOURNAL_MAGIC).unwrap();
        assert_eq!(m, Magic::Wrong);
    }
}
