//! The change feed: `LISTEN`/`NOTIFY` between the stores sharing a database.
//!
//! Every commit that applied something sends, in the same transaction (so
//! only committed writes are announced, in commit order), notifications on
//! the channel `gun_changes_SCHEMA`, each at most [`NOTIFY_LIMIT`] bytes
//! (PostgreSQL's payload limit is 8000):
//!
//! * `WRITER g {wire graph}` — the applied diff itself (a group is split by
//!   soul, then by key, to fit);
//! * `WRITER r [[soul,key],…]` — the ids of entries too large to carry: the
//!   listeners read them from the database;
//! * `WRITER x` — an entry whose very ids do not fit (a soul or key of
//!   kilobytes): listeners treat it as a gap.
//!
//! `WRITER` is the writing store's random id: a store skips its own
//! notifications. The listening connection is not pooled; when it is lost,
//! the feed reconnects (with backoff, and a ping every few seconds notices a
//! silent network) and then reports [`ExternalChange::Gap`], because
//! notifications sent meanwhile are gone.

use std::sync::Weak;
use std::time::Duration;

use futures_util::StreamExt;
use gun_graph::{Graph, json};
use gun_store::{BoxFuture, ChangeFeed, ExternalChange};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_postgres::AsyncMessage;

use crate::{PostgresStore, Shared};

/// Largest payload sent (PostgreSQL refuses 8000 bytes and more).
pub(crate) const NOTIFY_LIMIT: usize = 7_900;

/// How often the idle listening connection is checked.
const PING_EVERY: Duration = Duration::from_secs(2);

/// The notifications announcing `applied`, each at most `limit` bytes.
pub(crate) fn payloads(writer: &str, applied: &Graph, limit: usize) -> Vec<String> {
    let head = format!("{writer} g ");
    let mut out = Vec::new();
    let mut chunk = String::new();
    let mut refs: Vec<String> = Vec::new();
    let mut refs_len = 0usize;
    let mut gap = false;
    let flush = |chunk: &mut String, out: &mut Vec<String>| {
        if !chunk.is_empty() {
            out.push(format!("{head}{{{chunk}}}"));
            chunk.clear();
        }
    };
    let add = |piece: String, chunk: &mut String, out: &mut Vec<String>| -> bool {
        if head.len() + piece.len() + 2 > limit {
            return false;
        }
        if head.len() + chunk.len() + piece.len() + 3 > limit {
            flush(chunk, out);
        }
        if !chunk.is_empty() {
            chunk.push(',');
        }
        chunk.push_str(&piece);
        true
    };
    for (soul, node) in applied.iter() {
        let mut piece = String::new();
        json::write_str(&mut piece, soul.as_str());
        piece.push(':');
        node.write_wire(&mut piece);
        if add(piece, &mut chunk, &mut out) {
            continue;
        }
        // Too big as a whole: parts of it, each its own notification (a
        // soul appears once per notification).
        let mut empty = String::new();
        json::write_str(&mut empty, soul.as_str());
        empty.push(':');
        let header = empty.len() + gun_graph::Node::new(soul.clone()).to_wire().len();
        let budget = limit.saturating_sub(head.len() + 2);
        let mut part = gun_graph::Node::new(soul.clone());
        let mut part_len = header;
        for (k, e) in node.iter() {
            // What one more key adds: `"k":state,` in `>` and `"k":value,`.
            let mut one = String::new();
            json::write_str(&mut one, k);
            let cost = 2 * one.len() + 4 + {
                let mut t = String::new();
                json::write_number(&mut t, e.state.as_f64());
                e.value.write_json(&mut t);
                t.len()
            };
            if header + cost <= budget {
                if part_len + cost > budget && !part.is_empty() {
                    let mut p = empty.clone();
                    part.write_wire(&mut p);
                    out.push(format!("{head}{{{p}}}"));
                    part = gun_graph::Node::new(soul.clone());
                    part_len = header;
                }
                let _ = part.insert(k.clone(), e.state, e.value.clone());
                part_len += cost;
                continue;
            }
            let mut r = String::from("[");
            json::write_str(&mut r, soul.as_str());
            r.push(',');
            json::write_str(&mut r, k);
            r.push(']');
            if writer.len() + r.len() + 8 > limit {
                gap = true;
                continue;
            }
            if writer.len() + refs_len + r.len() + 8 > limit {
                out.push(format!("{writer} r [{}]", refs.join(",")));
                refs.clear();
                refs_len = 0;
            }
            refs_len += r.len() + 1;
            refs.push(r);
        }
        if !part.is_empty() {
            let mut p = empty.clone();
            part.write_wire(&mut p);
            out.push(format!("{head}{{{p}}}"));
        }
    }
    if !chunk.is_empty() {
        out.push(format!("{head}{{{chunk}}}"));
    }
    if !refs.is_empty() {
        out.push(format!("{writer} r [{}]", refs.join(",")));
    }
    if gap {
        out.push(format!("{writer} x"));
    }
    out
}

/// What a notification says.
#[derive(Debug, PartialEq)]
enum Note {
    Own,
    Diff(Graph),
    Refs(Vec<(String, String)>),
    Gap,
}

fn parse(own: &str, payload: &str) -> Option<Note> {
    let (writer, rest) = payload.split_once(' ')?;
    if writer == own {
        return Some(Note::Own);
    }
    let (kind, body) = rest.split_once(' ').unwrap_or((rest, ""));
    match kind {
        "g" => Graph::from_wire(body).ok().map(Note::Diff),
        "r" => serde_json::from_str::<Vec<(String, String)>>(body)
            .ok()
            .map(Note::Refs),
        "x" => Some(Note::Gap),
        _ => None,
    }
}

/// A subscriber's end of the feed ([`gun_store::Store::changes`]).
pub(crate) struct Receiver {
    rx: broadcast::Receiver<ExternalChange>,
}

impl Receiver {
    pub(crate) fn new(rx: broadcast::Receiver<ExternalChange>) -> Receiver {
        Receiver { rx }
    }
}

impl ChangeFeed for Receiver {
    fn next(&mut self) -> BoxFuture<'_, Option<ExternalChange>> {
        Box::pin(async move {
            match self.rx.recv().await {
                Ok(c) => Some(c),
                // Fell behind: whatever was dropped is a gap.
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(dropped = n, "change feed subscriber fell behind");
                    Some(ExternalChange::Gap)
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
    }
}

/// Reads the entries named by a `r` notification.
async fn read_refs(sh: &Shared, refs: &[(String, String)]) -> Result<Graph, gun_store::Error> {
    let souls: Vec<&[u8]> = refs.iter().map(|(s, _)| s.as_bytes()).collect();
    let keys: Vec<&[u8]> = refs.iter().map(|(_, k)| k.as_bytes()).collect();
    let rows = crate::bounded(sh.opts.timeout, async {
        let c = sh.conn().await?;
        let st = c
            .prepare_cached(&format!(
                "SELECT e.soul, e.key, e.state, e.value FROM {} e \
                 JOIN unnest($1::bytea[], $2::bytea[]) AS r(soul, key) \
                 ON e.soul = r.soul AND e.key = r.key ORDER BY e.soul, e.key",
                sh.tables.entries
            ))
            .await?;
        Ok(c.query(&st, &[&souls, &keys]).await?)
    })
    .await?;
    PostgresStore::rows_to_graph(rows).await
}

async fn handle(sh: &Shared, payload: &str) {
    let change = match parse(&sh.writer_id, payload) {
        Some(Note::Own) => return,
        Some(Note::Diff(g)) => ExternalChange::Applied(g),
        Some(Note::Refs(refs)) => match read_refs(sh, &refs).await {
            Ok(g) => ExternalChange::Applied(g),
            Err(e) => {
                tracing::warn!(%e, "cannot read the entries a notification named");
                ExternalChange::Gap
            }
        },
        Some(Note::Gap) => ExternalChange::Gap,
        None => {
            tracing::warn!(
                bytes = payload.len(),
                "unreadable notification on the gun channel; treated as a gap"
            );
            ExternalChange::Gap
        }
    };
    let _ = sh.changes.send(change);
}

/// The feed task: listens until the store is dropped, reconnecting as needed.
pub(crate) async fn run(shared: Weak<Shared>, mut stop: oneshot::Receiver<()>) {
    let mut connected_before = false;
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(sh) = shared.upgrade() else { return };
        let config = sh.config.clone();
        let channel = sh.tables.channel.clone();
        let timeout = sh.opts.timeout;
        drop(sh);
        let connected = tokio::time::timeout(timeout, config.connect(tokio_postgres::NoTls)).await;
        let (client, mut connection) = match connected {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::debug!(%e, "change feed cannot connect");
                if wait(&mut stop, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
            Err(_) => {
                if wait(&mut stop, backoff).await {
                    return;
                }
                continue;
            }
        };
        let (ntx, mut nrx) = mpsc::unbounded_channel::<String>();
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(m) = messages.next().await {
                match m {
                    Ok(AsyncMessage::Notification(n)) => {
                        if ntx.send(n.payload().to_owned()).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(%e, "change feed connection ended");
                        return;
                    }
                }
            }
        });
        let listened = tokio::time::timeout(
            timeout,
            client.batch_execute(&format!("LISTEN \"{channel}\"")),
        )
        .await;
        if !matches!(listened, Ok(Ok(()))) {
            driver.abort();
            if wait(&mut stop, backoff).await {
                return;
            }
            continue;
        }
        backoff = Duration::from_millis(100);
        // Changes committed before LISTEN took effect were not notified, and
        // reads may have been cached meanwhile (even before the first
        // connection: the store serves reads from the start).
        if connected_before {
            tracing::info!("change feed reconnected; caches start over");
        }
        match shared.upgrade() {
            Some(sh) => {
                let _ = sh.changes.send(ExternalChange::Gap);
                sh.listening.send_replace(true);
            }
            None => return,
        }
        connected_before = true;
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            tokio::select! {
                _ = &mut stop => {
                    driver.abort();
                    return;
                }
                note = nrx.recv() => match note {
                    Some(payload) => {
                        let Some(sh) = shared.upgrade() else {
                            driver.abort();
                            return;
                        };
                        handle(&sh, &payload).await;
                    }
                    None => break,
                },
                _ = ping.tick() => {
                    let alive = tokio::time::timeout(timeout, client.simple_query("")).await;
                    if !matches!(alive, Ok(Ok(_))) {
                        break;
                    }
                }
            }
        }
        driver.abort();
        if let Some(sh) = shared.upgrade() {
            sh.listening.send_replace(false);
        }
        tracing::warn!("change feed lost its connection to PostgreSQL; reconnecting");
    }
}

/// Sleeps `d`; `true` when the store was dropped meanwhile.
async fn wait(stop: &mut oneshot::Receiver<()>, d: Duration) -> bool {
    tokio::select! {
        _ = stop => true,
        () = tokio::time::sleep(d) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gun_graph::{Soul, State, Value};

    fn graph(rows: &[(&str, &str, &str)]) -> Graph {
        let mut g = Graph::new();
        for (s, k, v) in rows {
            g.put(
                Soul::new(*s).unwrap_or_else(|_| unreachable!()),
                *k,
                State::new(1.0).unwrap_or(State::MIN),
                Value::from(*v),
            )
            .unwrap_or_else(|_| unreachable!());
        }
        g
    }

    #[test]
    fn payloads_fit_and_carry_everything() {
        let big = "v".repeat(3000);
        let huge = "h".repeat(9000);
        let long_soul = "s".repeat(9000);
        let g = graph(&[
            ("a", "x", "1"),
            ("a", "y", &big),
            ("a", "z", &big),
            ("a", "w", &big),
            ("b", "huge", &huge),
            ("c", "k", "small"),
            (&long_soul, "k", &huge),
        ]);
        let ps = payloads("w1", &g, NOTIFY_LIMIT);
        let mut got = Graph::new();
        let mut refs = Vec::new();
        let mut gaps = 0;
        for p in &ps {
            assert!(p.len() <= NOTIFY_LIMIT, "{} bytes", p.len());
            match parse("other", p) {
                Some(Note::Diff(d)) => {
                    got.merge(&d, gun_store::machine_state());
                }
                Some(Note::Refs(r)) => refs.extend(r),
                Some(Note::Gap) => gaps += 1,
                other => panic!("unexpected {other:?}"),
            }
            assert_eq!(parse("w1", p), Some(Note::Own));
        }
        assert_eq!(refs, vec![("b".to_owned(), "huge".to_owned())]);
        assert_eq!(gaps, 1);
        let mut want = g.clone();
        want.remove("b");
        want.remove(long_soul.as_str());
        assert_eq!(got, want);
    }
}
