//! Group commit: one task takes the puts that are waiting, writes them in one
//! transaction (one HAM upsert of all their rows, sorted), notifies the other
//! stores on the database of what it applied, commits, and only then answers
//! each put with its part of what was applied.

use std::collections::HashSet;
use std::sync::Arc;

use gun_graph::{Graph, Node};
use tokio::sync::{mpsc, oneshot};

use crate::codec::encode_value;
use crate::feed::{NOTIFY_LIMIT, payloads};
use crate::schema::COUNT_SLOTS;
use crate::{PgError, Shared};

/// One put waiting to be written.
pub(crate) struct Request {
    pub(crate) diff: Graph,
    pub(crate) done: oneshot::Sender<Result<Graph, PgError>>,
}

fn keys_of(diff: &Graph) -> impl Iterator<Item = (&str, &str)> + '_ {
    diff.iter()
        .flat_map(|(s, n)| n.keys().map(move |k| (s.as_str(), k)))
}

/// The writer task: runs until the store is dropped.
pub(crate) async fn run(sh: Arc<Shared>, mut rx: mpsc::Receiver<Request>) {
    let slot = (sh
        .writer_id
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % COUNT_SLOTS as u32) as i32;
    let mut carry: Option<Request> = None;
    loop {
        let first = match carry.take() {
            Some(r) => r,
            None => match rx.recv().await {
                Some(r) => r,
                None => return,
            },
        };
        let mut rows = first.diff.key_count();
        let mut group = vec![first];
        // A put touching a key already in the group waits for the next one:
        // each transaction writes every key at most once, so each put's answer
        // is exactly what it applied.
        let mut taken: HashSet<(String, String)> = HashSet::new();
        if rx.is_empty() {
            // A lone put: no set needed.
        } else {
            for (s, k) in keys_of(&group[0].diff) {
                taken.insert((s.to_owned(), k.to_owned()));
            }
            while rows < sh.opts.max_group_rows {
                let Ok(next) = rx.try_recv() else { break };
                if keys_of(&next.diff).any(|(s, k)| taken.contains(&(s.to_owned(), k.to_owned()))) {
                    carry = Some(next);
                    break;
                }
                for (s, k) in keys_of(&next.diff) {
                    taken.insert((s.to_owned(), k.to_owned()));
                }
                rows += next.diff.key_count();
                group.push(next);
            }
        }
        match commit(&sh, &group, slot).await {
            Ok(answers) => {
                for (req, answer) in group.into_iter().zip(answers) {
                    let _ = req.done.send(Ok(answer));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, puts = group.len(), "group commit failed");
                let text = e.to_string();
                let mut first = Some(e);
                for req in group {
                    let err = first.take().unwrap_or_else(|| PgError::Write(text.clone()));
                    let _ = req.done.send(Err(err));
                }
            }
        }
    }
}

struct Row<'a> {
    soul: &'a str,
    key: &'a str,
    state: f64,
    value: Vec<u8>,
    put: usize,
}

/// Writes `group` in one transaction; the answer of each put, in order.
async fn commit(sh: &Shared, group: &[Request], slot: i32) -> Result<Vec<Graph>, PgError> {
    let mut rows: Vec<Row<'_>> = Vec::new();
    for (i, req) in group.iter().enumerate() {
        for (soul, node) in req.diff.iter() {
            for (k, e) in node.iter() {
                rows.push(Row {
                    soul: soul.as_str(),
                    key: k,
                    state: e.state.as_f64(),
                    value: encode_value(&e.value),
                    put: i,
                });
            }
        }
    }
    // One lock order for every writer: no deadlocks between transactions.
    rows.sort_unstable_by(|a, b| {
        (a.soul.as_bytes(), a.key.as_bytes()).cmp(&(b.soul.as_bytes(), b.key.as_bytes()))
    });
    let mut souls: Vec<&[u8]> = rows.iter().map(|r| r.soul.as_bytes()).collect();
    souls.dedup();
    let s: Vec<&[u8]> = rows.iter().map(|r| r.soul.as_bytes()).collect();
    let k: Vec<&[u8]> = rows.iter().map(|r| r.key.as_bytes()).collect();
    let st: Vec<f64> = rows.iter().map(|r| r.state).collect();
    let v: Vec<&[u8]> = rows.iter().map(|r| r.value.as_slice()).collect();

    let mut conn = sh.conn().await?;
    let work = async {
        let t = &sh.tables;
        let tx = conn.transaction().await?;
        let ins_souls = tx
            .prepare_cached(&format!(
                "INSERT INTO {} (soul) SELECT unnest($1::bytea[]) ON CONFLICT DO NOTHING RETURNING 1",
                t.souls
            ))
            .await?;
        let upsert = tx
            .prepare_cached(&format!(
                "INSERT INTO {} AS e (soul, key, state, value) \
                 SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::float8[], $4::bytea[]) \
                 ON CONFLICT (soul, key) DO UPDATE SET state = excluded.state, value = excluded.value \
                 WHERE excluded.state > e.state \
                    OR (excluded.state = e.state AND excluded.value > e.value) \
                 RETURNING soul, key, (xmax = 0) AS inserted",
                t.entries
            ))
            .await?;
        let new_souls = tx.query(&ins_souls, &[&souls]).await?.len() as i64;
        let returned = tx.query(&upsert, &[&s, &k, &st, &v]).await?;
        let mut new_keys = 0i64;
        let mut applied_keys: HashSet<(Vec<u8>, Vec<u8>)> = HashSet::with_capacity(returned.len());
        for r in &returned {
            let soul: Vec<u8> = r.try_get(0)?;
            let key: Vec<u8> = r.try_get(1)?;
            if r.try_get::<_, bool>(2)? {
                new_keys += 1;
            }
            applied_keys.insert((soul, key));
        }
        if new_souls > 0 || new_keys > 0 {
            let counts = tx
                .prepare_cached(&format!(
                    "UPDATE {} SET souls = souls + $1, keys = keys + $2 WHERE slot = $3",
                    t.counts
                ))
                .await?;
            tx.execute(&counts, &[&new_souls, &new_keys, &slot]).await?;
        }
        // Each put's answer, and everything applied for the notification.
        let mut answers: Vec<Graph> = (0..group.len()).map(|_| Graph::new()).collect();
        let mut all = Graph::new();
        for row in &rows {
            if !applied_keys.contains(&(row.soul.as_bytes().to_vec(), row.key.as_bytes().to_vec()))
            {
                continue;
            }
            let Some(node) = group[row.put].diff.get(row.soul) else {
                continue;
            };
            let Some(e) = node.get(row.key) else {
                continue;
            };
            let key: Arc<str> = Arc::from(row.key);
            for g in [&mut answers[row.put], &mut all] {
                let n = match g.get_mut(row.soul) {
                    Some(n) => n,
                    None => {
                        g.insert_node(Node::new(node.soul().clone()));
                        match g.get_mut(row.soul) {
                            Some(n) => n,
                            None => continue,
                        }
                    }
                };
                let _ = n.insert(key.clone(), e.state, e.value.clone());
            }
        }
        if !all.is_empty() {
            let notes = payloads(&sh.writer_id, &all, NOTIFY_LIMIT);
            let notify = tx
                .prepare_cached("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
                .await?;
            tx.query(&notify, &[&t.channel, &notes]).await?;
        }
        tx.commit().await?;
        Ok::<_, PgError>(answers)
    };
    match tokio::time::timeout(sh.opts.timeout, work).await {
        Ok(Ok(answers)) => Ok(answers),
        Ok(Err(e)) => {
            // The connection may be broken: never hand it out again.
            let _ = deadpool_postgres::Object::take(conn);
            Err(e)
        }
        Err(_) => {
            let _ = deadpool_postgres::Object::take(conn);
            Err(PgError::Timeout(sh.opts.timeout))
        }
    }
}
