//! The conformance suite itself: a minimal correct store passes it, and stores
//! with typical bugs fail the test meant to catch them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;

use gun_graph::{Graph, Lex, Node, lex};
use gun_store::conformance::{self, Capabilities};
use gun_store::{BoxFuture, Error, Store, StoreStats, machine_state};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Bug {
    None,
    LastWriteWins,
    IgnoresBudget,
    IgnoresReverse,
    DropsTombstones,
    FoldsCase,
    /// Merges right but answers the whole diff as applied.
    OverReports,
    /// Merges right but answers nothing as applied.
    UnderReports,
}

struct Toy {
    g: Mutex<Graph>,
    bug: Bug,
}

impl Toy {
    fn soul(&self, s: &str) -> String {
        if self.bug == Bug::FoldsCase {
            s.to_lowercase()
        } else {
            s.to_string()
        }
    }
}

impl Store for Toy {
    fn get_node<'a>(&'a self, soul: &'a str) -> BoxFuture<'a, Result<Option<Node>, Error>> {
        Box::pin(async move { Ok(self.g.lock().unwrap().get(&self.soul(soul)).cloned()) })
    }
    fn get_key<'a>(
        &'a self,
        soul: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Node>, Error>> {
        Box::pin(async move {
            let g = self.g.lock().unwrap();
            Ok(g.get(&self.soul(soul))
                .map(|n| n.select([key]))
                .filter(|n| !n.is_empty()))
        })
    }
    fn query<'a>(
        &'a self,
        souls: &'a Lex,
        keys: &'a Lex,
        budget: Option<u64>,
    ) -> BoxFuture<'a, Result<Graph, Error>> {
        Box::pin(async move {
            let g = self.g.lock().unwrap();
            let budget = if self.bug == Bug::IgnoresBudget {
                None
            } else {
                budget
            };
            let (mut s, mut k) = (souls.clone(), keys.clone());
            if self.bug == Bug::IgnoresReverse {
                s.reverse = false;
                k.reverse = false;
            }
            Ok(lex::query_graph(&g, &s, &k, budget))
        })
    }
    fn put<'a>(&'a self, diff: &'a Graph) -> BoxFuture<'a, Result<Graph, Error>> {
        Box::pin(async move {
            let mut g = self.g.lock().unwrap();
            let mut applied = Graph::new();
            for (soul, node) in diff.iter() {
                let soul = gun_graph::Soul::new(self.soul(soul.as_str())).unwrap();
                for (key, e) in node.iter() {
                    match self.bug {
                        Bug::LastWriteWins => {
                            g.put(soul.clone(), key.clone(), e.state, e.value.clone())
                                .unwrap();
                            applied
                                .put(soul.clone(), key.clone(), e.state, e.value.clone())
                                .unwrap();
                        }
                        Bug::DropsTombstones if e.value.is_null() => {
                            if let Some(n) = g.get_mut(soul.as_str()) {
                                n.remove(key);
                            }
                        }
                        _ => {
                            let d = g.merge_key(&soul, key, e.state, &e.value, machine_state());
                            if d.is_accept() || self.bug == Bug::OverReports {
                                applied
                                    .put(soul.clone(), key.clone(), e.state, e.value.clone())
                                    .unwrap();
                            }
                        }
                    }
                }
                if g.get(soul.as_str()).is_some_and(Node::is_empty) {
                    g.remove(soul.as_str());
                }
            }
            if self.bug == Bug::UnderReports {
                applied = Graph::new();
            }
            Ok(applied)
        })
    }
    fn flush(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }
    fn stats(&self) -> BoxFuture<'_, Result<StoreStats, Error>> {
        Box::pin(async move {
            let g = self.g.lock().unwrap();
            Ok(StoreStats::new(
                g.len() as u64,
                g.key_count() as u64,
                1 + g.key_count() as u64,
            ))
        })
    }
}

macro_rules! opener {
    ($name:ident, $bug:expr) => {
        async fn $name(_dir: PathBuf) -> Result<Toy, Error> {
            Ok(Toy {
                g: Mutex::new(Graph::new()),
                bug: $bug,
            })
        }
    };
}
opener!(correct, Bug::None);
opener!(last_write_wins, Bug::LastWriteWins);
opener!(ignores_budget, Bug::IgnoresBudget);
opener!(ignores_reverse, Bug::IgnoresReverse);
opener!(drops_tombstones, Bug::DropsTombstones);
opener!(folds_case, Bug::FoldsCase);
opener!(over_reports, Bug::OverReports);
opener!(under_reports, Bug::UnderReports);

fn volatile() -> Capabilities {
    Capabilities::new().durable(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_store_passes_everything() {
    conformance::run_all(&correct, &volatile()).await;
}

/// Runs `test` in a task and says whether it panicked (failed).
async fn fails<F>(test: F) -> bool
where
    F: Future<Output = ()> + Send + 'static,
{
    match tokio::spawn(test).await {
        Ok(()) => false,
        Err(e) => e.is_panic(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bug_is_caught() {
    assert!(fails(async { conformance::ham_merge(&last_write_wins, &volatile()).await }).await);
    assert!(
        fails(async { conformance::concurrent_writers(&last_write_wins, &volatile()).await }).await
    );
    assert!(
        fails(async {
            conformance::lexical_key_ranges_and_budgets(&ignores_budget, &volatile()).await
        })
        .await
    );
    assert!(
        fails(async { conformance::lexical_soul_queries(&ignores_budget, &volatile()).await })
            .await
    );
    assert!(
        fails(async {
            conformance::lexical_key_ranges_and_budgets(&ignores_reverse, &volatile()).await
        })
        .await
    );
    assert!(fails(async { conformance::tombstones(&drops_tombstones, &volatile()).await }).await);
    assert!(fails(async { conformance::hostile_souls(&folds_case, &volatile()).await }).await);
    assert!(
        fails(async { conformance::put_answers_what_it_applied(&over_reports, &volatile()).await })
            .await
    );
    assert!(
        fails(async {
            conformance::put_answers_what_it_applied(&under_reports, &volatile()).await
        })
        .await
    );
    assert!(
        fails(async { conformance::concurrent_writers(&under_reports, &volatile()).await }).await
    );
    // And the volatile store's reopen test is skipped, not failed.
    assert!(!fails(async { conformance::reopen_after_close(&correct, &volatile()).await }).await);
}
