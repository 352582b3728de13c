//! Importing a Gun.js radisk directory (`radata`, the Node default store).
//!
//! What radisk (gun 0.2020.x, `lib/radisk.js` with `lib/rfs.js`) leaves on disk:
//!
//! * each file is one JSON document, a compressed radix tree: object keys are edge
//!   labels, and the label `""` holds the value found at that point;
//! * a value's full key is `soul + "\u{1b}" + key`, and the value is
//!   `{":": value, ">": state}` (the state as received: a number, or by a Gun.js
//!   bug a string);
//! * the file `%1C` (the name `"\u{1c}"`) is itself such a tree listing the data
//!   file names with the value 1 (0 once radisk found a file unreadable); the
//!   first data file is `!`; file names on disk are `encodeURIComponent(name)` with
//!   `*` as `%2A`;
//! * files written by gun 0.2019 use a line-based "RAD" encoding (they do not
//!   start with `{`): those are reported as unsupported, not guessed at.
//!
//! Every value and state is validated as [`gun_graph`] validates wire data;
//! entries that fail are skipped and listed in the [`ImportReport`] with the
//! reason, as are files that could not be used. Nothing in the directory is
//! changed.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use gun_graph::json::truthy;
use gun_graph::{Graph, InvalidValue, Soul, State, Value};
use gun_store::{Error, Store, machine_state};
use serde_json::Value as J;

/// The name of radisk's directory file, `"\u{1c}"` encoded.
const DIRECTORY_FILE: &str = "%1C";
/// radisk's first data file.
const FIRST_FILE: &str = "!";

/// What [`import_radisk`] did.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ImportReport {
    /// The data files read, by their radisk names (decoded), in the order read.
    pub files: Vec<String>,
    /// Distinct souls put into the store.
    pub souls: usize,
    /// Distinct `(soul, key)` entries put into the store (the store's HAM then
    /// keeps whichever of those and its own data is newer).
    pub keys: usize,
    /// Entries that were not imported, and why.
    pub skipped: Vec<Skipped>,
    /// Files that were not (fully) read, and why.
    pub skipped_files: Vec<SkippedFile>,
}

/// An entry that was not imported.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Skipped {
    /// The radisk file name (decoded) it was found in.
    pub file: String,
    /// Its radisk key (`soul`, ESC, `key`).
    pub key: String,
    /// Why it was skipped.
    pub reason: SkipReason,
}

/// Why an entry was not imported.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SkipReason {
    /// The radisk key holds no ESC (`\u{1b}`) between soul and key.
    NoSeparator,
    /// The radisk key holds several ESCs, so soul and key cannot be told apart.
    AmbiguousSeparator,
    /// The soul part is empty.
    EmptySoul,
    /// The key is `_`, which is reserved for node metadata.
    ReservedKey,
    /// A tree node that is not a JSON object.
    MalformedTree,
    /// The leaf is not an object `{":": value, ">": state}`.
    MalformedLeaf,
    /// The leaf is a string: the pre-2020 RAD value encoding, not supported.
    LegacyLeaf,
    /// The leaf has no `":"` (value).
    NoValue,
    /// The value is not a valid Gun value.
    InvalidValue(InvalidValue),
    /// The leaf has no `">"` (state).
    NoState,
    /// The state is a string (Gun.js stores states as received; gun-rs refuses them).
    StringState(String),
    /// The state is not a finite number.
    InvalidState,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::NoSeparator => f.write_str("no \\u001b between soul and key"),
            SkipReason::AmbiguousSeparator => {
                f.write_str("several \\u001b: soul and key are ambiguous")
            }
            SkipReason::EmptySoul => f.write_str("empty soul"),
            SkipReason::ReservedKey => f.write_str("the key \"_\" is reserved"),
            SkipReason::MalformedTree => f.write_str("a radix tree node that is not an object"),
            SkipReason::MalformedLeaf => {
                f.write_str("a leaf that is not {\":\": value, \">\": state}")
            }
            SkipReason::LegacyLeaf => {
                f.write_str("a leaf in the pre-2020 RAD string encoding (unsupported)")
            }
            SkipReason::NoValue => f.write_str("no value (\":\")"),
            SkipReason::InvalidValue(e) => write!(f, "invalid value: {e}"),
            SkipReason::NoState => f.write_str("no state (\">\")"),
            SkipReason::StringState(s) => write!(f, "the state is a string ({s:?})"),
            SkipReason::InvalidState => f.write_str("the state is not a finite number"),
        }
    }
}

/// A file that was not (fully) read.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SkippedFile {
    /// The file's radisk name (decoded), or its name on disk if it does not decode.
    pub file: String,
    /// Why.
    pub reason: FileSkipReason,
}

/// Why a file was not (fully) read.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FileSkipReason {
    /// The file does not start with `{`: the line-based RAD format of gun 0.2019,
    /// which this importer does not read.
    LineFormat,
    /// The file is not valid JSON (cut short, or damaged).
    InvalidJson(String),
    /// The JSON is not an object (not a radix tree).
    NotATree,
    /// `%1C` lists the file but it is not in the directory.
    Missing,
    /// The file is in the directory but `%1C` does not list it (or marks it bad),
    /// so radisk does not read it either.
    NotListed,
}

impl fmt::Display for FileSkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileSkipReason::LineFormat => {
                f.write_str("line-based RAD format (gun 0.2019), not supported")
            }
            FileSkipReason::InvalidJson(e) => write!(f, "invalid JSON: {e}"),
            FileSkipReason::NotATree => f.write_str("the JSON is not an object"),
            FileSkipReason::Missing => f.write_str("listed in %1C but missing"),
            FileSkipReason::NotListed => f.write_str("not listed in %1C (radisk ignores it too)"),
        }
    }
}

/// radisk's file name encoding: `encodeURIComponent(name)` with `*` as `%2A`.
pub(crate) fn encode_file_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~'()".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
        }
    }
    out
}

/// Percent-decodes a file name; `None` if it is not a well-formed encoding of UTF-8.
pub(crate) fn decode_file_name(name: &str) -> Option<String> {
    let b = name.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let h = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The leaves of a radix tree: `(full key, value)`, plus the keys of malformed nodes.
fn leaves(tree: &serde_json::Map<String, J>) -> (Vec<(String, &J)>, Vec<String>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    // Iterative: a deep tree cannot overflow the stack.
    let mut stack: Vec<(String, &serde_json::Map<String, J>)> = vec![(String::new(), tree)];
    while let Some((prefix, node)) = stack.pop() {
        for (label, child) in node {
            if label.is_empty() {
                out.push((prefix.clone(), child));
            } else {
                let key = format!("{prefix}{label}");
                match child {
                    J::Object(m) => stack.push((key, m)),
                    _ => bad.push(key),
                }
            }
        }
    }
    (out, bad)
}

/// Reads one leaf into `(soul, key, state, value)`.
fn entry(full: &str, leaf: &J) -> Result<(Soul, String, State, Value), SkipReason> {
    let mut parts = full.split('\u{1b}');
    let (Some(soul), Some(key)) = (parts.next(), parts.next()) else {
        return Err(SkipReason::NoSeparator);
    };
    if parts.next().is_some() {
        return Err(SkipReason::AmbiguousSeparator);
    }
    let soul = Soul::new(soul).map_err(|_| SkipReason::EmptySoul)?;
    if key == "_" {
        return Err(SkipReason::ReservedKey);
    }
    let m = match leaf {
        J::Object(m) => m,
        J::String(_) => return Err(SkipReason::LegacyLeaf),
        _ => return Err(SkipReason::MalformedLeaf),
    };
    let value = m.get(":").ok_or(SkipReason::NoValue)?;
    let value = Value::from_json(value).map_err(SkipReason::InvalidValue)?;
    let state = match m.get(">") {
        None => return Err(SkipReason::NoState),
        Some(J::String(s)) => return Err(SkipReason::StringState(s.clone())),
        Some(J::Number(n)) => n
            .as_f64()
            .and_then(|f| State::new(f).ok())
            .ok_or(SkipReason::InvalidState)?,
        Some(_) => return Err(SkipReason::InvalidState),
    };
    Ok((soul, key.to_string(), state, value))
}

/// Parses one file's text into a radix tree, or says why it can't be.
fn parse_tree(text: &[u8]) -> Result<serde_json::Map<String, J>, FileSkipReason> {
    let first = text.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|&b| b != b'{') {
        return Err(FileSkipReason::LineFormat);
    }
    match serde_json::from_slice::<J>(text) {
        Ok(J::Object(m)) => Ok(m),
        Ok(_) => Err(FileSkipReason::NotATree),
        Err(e) => Err(FileSkipReason::InvalidJson(e.to_string())),
    }
}

/// Imports a Gun.js radisk directory (`opt.file`, `radata` by default) into `into`.
///
/// Reads the files `%1C` lists (all files when there is no `%1C`), validates
/// every entry, and puts each file's entries as one diff (merged by the store's
/// HAM, so importing twice, or into a store with newer data, is harmless).
/// Files and entries that cannot be imported are listed in the report, never
/// fatal; errors are only the directory being unreadable or the store failing.
///
/// The files are read with blocking I/O: run it at start-up, or on a blocking
/// thread.
pub async fn import_radisk(dir: &Path, into: &dyn Store) -> Result<ImportReport, Error> {
    let mut report = ImportReport::default();
    // On-disk name -> decoded radisk name.
    let mut on_disk: BTreeMap<String, String> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if !entry
            .file_type()
            .map_err(|e| Error::io(entry.path(), e))?
            .is_file()
        {
            continue;
        }
        let raw = entry.file_name().to_string_lossy().into_owned();
        let name = decode_file_name(&raw).unwrap_or_else(|| raw.clone());
        on_disk.insert(raw, name);
    }

    // The data files radisk would read.
    let mut files: Vec<String> = Vec::new();
    let listed = match on_disk.contains_key(DIRECTORY_FILE) {
        false => None,
        true => {
            let path = dir.join(DIRECTORY_FILE);
            let text = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            match parse_tree(&text) {
                Ok(tree) => Some(
                    leaves(&tree)
                        .0
                        .into_iter()
                        .filter(|(_, v)| truthy(v))
                        .map(|(k, _)| encode_file_name(&k))
                        .collect::<HashSet<String>>(),
                ),
                Err(reason) => {
                    tracing::warn!(path = %path.display(), %reason, "radisk directory file unusable; reading every file");
                    report.skipped_files.push(SkippedFile {
                        file: "\u{1c}".into(),
                        reason,
                    });
                    None
                }
            }
        }
    };
    match &listed {
        Some(listed) => {
            for raw in on_disk.keys() {
                if raw == DIRECTORY_FILE {
                    continue;
                }
                if listed.contains(raw) || raw == FIRST_FILE {
                    files.push(raw.clone());
                } else {
                    report.skipped_files.push(SkippedFile {
                        file: on_disk[raw].clone(),
                        reason: FileSkipReason::NotListed,
                    });
                }
            }
            let mut missing: Vec<&String> = listed
                .iter()
                .filter(|f| !on_disk.contains_key(*f))
                .collect();
            missing.sort();
            for raw in missing {
                report.skipped_files.push(SkippedFile {
                    file: decode_file_name(raw).unwrap_or_else(|| raw.clone()),
                    reason: FileSkipReason::Missing,
                });
            }
        }
        None => files.extend(on_disk.keys().filter(|f| *f != DIRECTORY_FILE).cloned()),
    }

    let machine = machine_state();
    let mut souls: HashSet<Soul> = HashSet::new();
    let mut keys: HashSet<(Soul, String)> = HashSet::new();
    for raw in files {
        let name = on_disk.get(&raw).cloned().unwrap_or_else(|| raw.clone());
        let path = dir.join(&raw);
        let text = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let tree = match parse_tree(&text) {
            Ok(t) => t,
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "skipping a radisk file");
                report
                    .skipped_files
                    .push(SkippedFile { file: name, reason });
                continue;
            }
        };
        let (found, bad) = leaves(&tree);
        for key in bad {
            report.skipped.push(Skipped {
                file: name.clone(),
                key,
                reason: SkipReason::MalformedTree,
            });
        }
        let mut graph = Graph::new();
        for (full, leaf) in found {
            match entry(&full, leaf) {
                Ok((soul, key, state, value)) => {
                    let key: Arc<str> = key.into();
                    graph.merge_key(&soul, &key, state, &value, machine);
                    keys.insert((soul.clone(), key.to_string()));
                    souls.insert(soul);
                }
                Err(reason) => report.skipped.push(Skipped {
                    file: name.clone(),
                    key: full,
                    reason,
                }),
            }
        }
        into.put(&graph).await?;
        report.files.push(name);
    }
    report.souls = souls.len();
    report.keys = keys.len();
    Ok(report)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn file_names_like_radisk() {
        assert_eq!(encode_file_name("!"), "!");
        assert_eq!(encode_file_name("\u{1c}"), "%1C");
        assert_eq!(encode_file_name("soul01500\u{1b}val"), "soul01500%1Bval");
        assert_eq!(encode_file_name("a*b/c d~'()"), "a%2Ab%2Fc%20d~'()");
        assert_eq!(encode_file_name("é"), "%C3%A9");
        for n in ["!", "\u{1c}", "soul01500\u{1b}val", "a*b/c", "é😀"] {
            assert_eq!(decode_file_name(&encode_file_name(n)).as_deref(), Some(n));
        }
        assert_eq!(decode_file_name("%zz"), None);
        assert_eq!(decode_file_name("%C3"), None);
    }

    #[test]
    fn entries_are_validated() {
        let j = |s: &str| serde_json::from_str::<J>(s).unwrap();
        assert!(entry("a\u{1b}b", &j(r#"{":":1,">":2}"#)).is_ok());
        assert_eq!(
            entry("ab", &j(r#"{":":1,">":2}"#)).unwrap_err(),
            SkipReason::NoSeparator
        );
        assert_eq!(
            entry("a\u{1b}b\u{1b}c", &j(r#"{":":1,">":2}"#)).unwrap_err(),
            SkipReason::AmbiguousSeparator
        );
        assert_eq!(
            entry("\u{1b}b", &j(r#"{":":1,">":2}"#)).unwrap_err(),
            SkipReason::EmptySoul
        );
        assert_eq!(
            entry("a\u{1b}_", &j(r#"{":":1,">":2}"#)).unwrap_err(),
            SkipReason::ReservedKey
        );
        assert_eq!(
            entry("a\u{1b}b", &j(r#"{">":2}"#)).unwrap_err(),
            SkipReason::NoValue
        );
        assert_eq!(
            entry("a\u{1b}b", &j(r#"{":":1}"#)).unwrap_err(),
            SkipReason::NoState
        );
        assert_eq!(
            entry("a\u{1b}b", &j(r#"{":":1,">":"5"}"#)).unwrap_err(),
            SkipReason::StringState("5".into())
        );
        assert_eq!(
            entry("a\u{1b}b", &j(r#"{":":[1],">":2}"#)).unwrap_err(),
            SkipReason::InvalidValue(InvalidValue::Array)
        );
        assert_eq!(
            entry("a\u{1b}b", &j(r#""\u001f+1""#)).unwrap_err(),
            SkipReason::LegacyLeaf
        );
        assert_eq!(
            entry("a\u{1b}b", &j("5")).unwrap_err(),
            SkipReason::MalformedLeaf
        );
        assert_eq!(
            entry("a\u{1b}b", &j(r#"{":":1,">":null}"#)).unwrap_err(),
            SkipReason::InvalidState
        );
    }

    #[test]
    fn radix_leaves() {
        let t: J =
            serde_json::from_str(r#"{"a":{"":1,"b":{"":2},"c":{"d":{"":3}}},"x":5}"#).unwrap();
        let J::Object(m) = &t else { panic!() };
        let (mut l, bad) = leaves(m);
        l.sort_by(|a, b| a.0.cmp(&b.0));
        let keys: Vec<&str> = l.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "ab", "acd"]);
        assert_eq!(bad, ["x"]);
        assert_eq!(parse_tree(b"  \x1f#abc"), Err(FileSkipReason::LineFormat));
        assert!(matches!(
            parse_tree(b"{\"a\":"),
            Err(FileSkipReason::InvalidJson(_))
        ));
        assert_eq!(parse_tree(b"[]"), Err(FileSkipReason::LineFormat));
        assert_eq!(parse_tree(b"{}"), Ok(serde_json::Map::new()));
    }
}
