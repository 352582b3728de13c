//! # gun-store-postgres: a gun-rs [`Store`] on PostgreSQL, shared by a fleet
//!
//! One row per `(soul, key)` with its state and value; the HAM merge runs in
//! PostgreSQL, in the upsert itself, so any number of relays (or other
//! writers) can share one database and every key converges; puts that arrive
//! together share one transaction (group commit) and resolve only after it
//! committed; lexical reads and `%` budgets are range scans of the primary
//! key. Every commit also notifies (`LISTEN`/`NOTIFY`) the other stores on the
//! same database with what it applied, so a relay learns of writes made
//! through another relay within milliseconds ([`Store::changes`]).
//!
//! ```no_run
//! use gun_graph::{Graph, Soul, State, Value};
//! use gun_store::Store;
//! use gun_store_postgres::{Options, PostgresStore};
//!
//! # async fn demo() -> Result<(), gun_store::Error> {
//! let store = PostgresStore::connect(Options::new("postgres://gun@db.internal/gun")).await?;
//! let mut diff = Graph::new();
//! diff.put(Soul::new("fruit").unwrap(), "apple", State::new(1.0).unwrap(), Value::from("red")).unwrap();
//! let applied = store.put(&diff).await?; // committed once this resolves
//! assert_eq!(applied, diff);
//! # Ok(()) }
//! ```
//!
//! ## Schema
//!
//! Created at [`PostgresStore::connect`] when absent, in the schema of
//! [`Options::schema`] (created too), and versioned in `gun_meta` (a store
//! refuses a database whose version is newer than it knows; migrations of
//! older versions run under an advisory lock, so relays starting together do
//! not race):
//!
//! * `gun_entries (soul bytea, key bytea, state float8, value bytea, PRIMARY
//!   KEY (soul, key))`: souls and keys as UTF-8 bytes (`bytea`, so that any
//!   string, NUL included, is kept exactly and the index is in byte order with
//!   no collation involved); the value is its JSON text in the *order form* of
//!   `codec` (two byte values swapped so that byte order is UTF-16 order);
//! * `gun_souls (soul bytea PRIMARY KEY)` and `gun_counts (slot, souls, keys)`:
//!   exact counters for [`Store::stats`], updated in the same transaction as
//!   the data (16 slots, so writers rarely wait for each other);
//! * `gun_outbox (owner text, id bytea, diff bytea)`: the outbox of
//!   [`Store::outbox_put`], per [`Options::outbox_owner`].
//!
//! ## HAM in SQL
//!
//! ```sql
//! INSERT INTO gun_entries AS e (soul, key, state, value) SELECT … FROM unnest(…)
//! ON CONFLICT (soul, key) DO UPDATE SET state = excluded.state, value = excluded.value
//! WHERE excluded.state > e.state
//!    OR (excluded.state = e.state AND excluded.value > e.value)
//! RETURNING soul, key, (xmax = 0)
//! ```
//!
//! Higher state wins; equal states: the greater value wins, where `bytea`
//! comparison of the order form is exactly gun-ham's comparison of the JSON
//! texts in UTF-16 code units — tested against [`gun_graph::HamValue`] with
//! non-ASCII and supplementary characters, in SQL too. No collation is relied
//! on: the columns are `bytea`. The rows returned are what the put applied
//! (its answer). Rows are sent sorted, and a transaction holds one such
//! statement, so concurrent writers lock rows in the same order and do not
//! deadlock; a put that touches a key already in the forming group waits for
//! the next group.
//!
//! ## Failures
//!
//! Every operation is bounded by [`Options::timeout`]. A put fails (its
//! future resolves to an error) when the database cannot be reached, the
//! transaction fails, or the commit's outcome is unknown (a connection lost
//! mid-commit): never a false success. A failed connection is discarded and
//! the pool connects again on the next operation, so the store recovers by
//! itself when the database is back. The change feed reconnects by itself
//! too; changes it may have missed meanwhile are reported as
//! [`ExternalChange::Gap`].

mod codec;
mod feed;
mod query;
mod schema;
mod writer;

#[cfg(feature = "testing")]
pub mod testing;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use gun_graph::{Graph, Lex, Node, Soul, State};
use gun_store::{BoxFuture, ChangeFeed, Error, Store, StoreStats};
use tokio::sync::{broadcast, mpsc, oneshot};

pub use gun_store::ExternalChange;

/// Rows read per round trip in budgeted lexical reads.
const PORTAL_ROWS: i32 = 256;

/// How to reach and lay out the database.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// A libpq-style connection string or URL, e.g.
    /// `postgres://gun:secret@db.internal:5432/gun` or `host=/run/postgresql
    /// dbname=gun`. TLS is not supported: reach the database over a trusted
    /// network or a local socket.
    pub url: String,
    /// The PostgreSQL schema holding the tables (created if missing).
    /// Default `public`. Several independent graphs can share a database in
    /// different schemas; relays of one fleet use the same one.
    pub schema: String,
    /// Connections for reads and writes (the change feed has one more of its
    /// own). Default 8.
    pub pool_size: usize,
    /// Bound on each operation, connecting included. Default 5 s.
    pub timeout: Duration,
    /// Listen for other writers' changes ([`Store::changes`]). Default `true`.
    pub listen: bool,
    /// Most rows one group commit writes (a bigger single put is written
    /// alone). Default 20 000.
    pub max_group_rows: usize,
    /// Whose outbox this store reads and writes: each process that makes
    /// writes of its own (not just relaying) and shares the database with
    /// others should have its own name. Default `default`.
    pub outbox_owner: String,
}

impl Options {
    /// The defaults, for the database at `url`.
    pub fn new(url: impl Into<String>) -> Options {
        Options {
            url: url.into(),
            schema: "public".to_owned(),
            pool_size: 8,
            timeout: Duration::from_secs(5),
            listen: true,
            max_group_rows: 20_000,
            outbox_owner: "default".to_owned(),
        }
    }

    /// Sets [`Options::schema`].
    pub fn schema(mut self, schema: impl Into<String>) -> Options {
        self.schema = schema.into();
        self
    }

    /// Sets [`Options::timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Options {
        self.timeout = timeout;
        self
    }

    /// Sets [`Options::listen`].
    pub fn listen(mut self, listen: bool) -> Options {
        self.listen = listen;
        self
    }

    /// Sets [`Options::pool_size`].
    pub fn pool_size(mut self, n: usize) -> Options {
        self.pool_size = n.max(1);
        self
    }

    /// Sets [`Options::outbox_owner`].
    pub fn outbox_owner(mut self, owner: impl Into<String>) -> Options {
        self.outbox_owner = owner.into();
        self
    }
}

/// What went wrong, behind [`gun_store::Error::Backend`] (or
/// [`gun_store::Error::Corrupt`] for rows that cannot be read back).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The connection string could not be parsed.
    #[error("invalid PostgreSQL connection string: {0}")]
    Url(#[source] tokio_postgres::Error),
    /// The schema name is not usable.
    #[error("invalid schema name {0:?}: use letters, digits and _ (at most 40 bytes)")]
    SchemaName(String),
    /// No connection could be had from the pool (the database is down,
    /// unreachable, or refuses us).
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(String),
    /// A stored row cannot be read back (not UTF-8, not a Gun value).
    #[error("a stored row cannot be read back: {0}")]
    Row(String),
    /// A statement failed (connection lost, constraint, …).
    #[error("PostgreSQL: {0}")]
    Query(#[from] tokio_postgres::Error),
    /// The operation did not finish within [`Options::timeout`]; for a put,
    /// whether it committed is unknown (a replay is harmless: HAM).
    #[error("PostgreSQL did not answer within {0:?}")]
    Timeout(Duration),
    /// The database was laid out by a newer version of this crate.
    #[error("the database schema is version {found}; this build knows versions up to {known}")]
    SchemaTooNew {
        /// The version found in `gun_meta`.
        found: i32,
        /// The newest version this build knows.
        known: i32,
    },
    /// A put of a group commit that failed (the group's first put carries
    /// the original error; this is its text).
    #[error("the write failed: {0}")]
    Write(String),
    /// The store was dropped while the operation waited.
    #[error("the PostgreSQL store is closed")]
    Closed,
    /// `connect` needs a tokio runtime.
    #[error("PostgresStore::connect must run inside a tokio runtime")]
    NoRuntime,
}

impl From<PgError> for Error {
    fn from(e: PgError) -> Error {
        match e {
            PgError::Closed => Error::Closed,
            e => Error::backend(e),
        }
    }
}

/// Runs `f` within `timeout`.
pub(crate) async fn bounded<T>(
    timeout: Duration,
    f: impl Future<Output = Result<T, PgError>>,
) -> Result<T, PgError> {
    tokio::time::timeout(timeout, f)
        .await
        .unwrap_or(Err(PgError::Timeout(timeout)))
}

/// Table names, quoted and schema-qualified.
#[derive(Debug, Clone)]
pub(crate) struct Tables {
    pub(crate) schema: String,
    pub(crate) entries: String,
    pub(crate) souls: String,
    pub(crate) counts: String,
    pub(crate) outbox: String,
    pub(crate) meta: String,
    /// The NOTIFY channel of this schema.
    pub(crate) channel: String,
}

impl Tables {
    fn new(schema: &str) -> Result<Tables, PgError> {
        if schema.is_empty()
            || schema.len() > 40
            || !schema
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(PgError::SchemaName(schema.to_owned()));
        }
        let q = |t: &str| format!("\"{schema}\".\"{t}\"");
        Ok(Tables {
            schema: format!("\"{schema}\""),
            entries: q("gun_entries"),
            souls: q("gun_souls"),
            counts: q("gun_counts"),
            outbox: q("gun_outbox"),
            meta: q("gun_meta"),
            channel: format!("gun_changes_{schema}"),
        })
    }
}

pub(crate) struct Shared {
    pub(crate) pool: Pool,
    pub(crate) tables: Tables,
    pub(crate) opts: Options,
    pub(crate) config: tokio_postgres::Config,
    /// This store's id in notifications (its own are skipped).
    pub(crate) writer_id: String,
    pub(crate) changes: broadcast::Sender<ExternalChange>,
    /// Whether the change feed is listening now.
    pub(crate) listening: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    /// A pooled connection, within the timeout.
    pub(crate) async fn conn(&self) -> Result<deadpool_postgres::Object, PgError> {
        match tokio::time::timeout(self.opts.timeout, self.pool.get()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(PgError::Connect(e.to_string())),
            Err(_) => Err(PgError::Timeout(self.opts.timeout)),
        }
    }
}

/// The PostgreSQL [`Store`] (see the [crate docs](crate)). Dropping it stops
/// its writer and its change feed.
pub struct PostgresStore {
    shared: Arc<Shared>,
    writes: mpsc::Sender<writer::Request>,
    /// Dropped with the store: stops the change feed.
    _stop: oneshot::Sender<()>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.shared.opts.schema)
            .field("writer_id", &self.shared.writer_id)
            .finish_non_exhaustive()
    }
}

fn writer_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

impl PostgresStore {
    /// Connects, creates or migrates the schema, and starts the writer and
    /// (with [`Options::listen`]) the change feed. Fails when the database
    /// cannot be reached within [`Options::timeout`].
    pub async fn connect(opts: Options) -> Result<PostgresStore, Error> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(PgError::NoRuntime.into());
        }
        let tables = Tables::new(&opts.schema)?;
        let mut config: tokio_postgres::Config = opts.url.parse().map_err(PgError::Url)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(opts.timeout);
        }
        config.application_name("gun-store-postgres");
        // TCP keepalives notice a dead peer while a connection idles.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(10));
        let manager = Manager::from_config(
            config.clone(),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(opts.pool_size.max(1))
            .build()
            .map_err(|e| PgError::Connect(e.to_string()))?;
        let (changes, _) = broadcast::channel(4096);
        let shared = Arc::new(Shared {
            pool,
            tables,
            config,
            writer_id: writer_id(),
            changes,
            listening: tokio::sync::watch::Sender::new(false),
            opts,
        });
        bounded(shared.opts.timeout * 4, schema::migrate(&shared)).await?;
        let (writes, rx) = mpsc::channel(4096);
        tokio::spawn(writer::run(shared.clone(), rx));
        let (stop, stopped) = oneshot::channel();
        if shared.opts.listen {
            tokio::spawn(feed::run(Arc::downgrade(&shared), stopped));
        }
        Ok(PostgresStore {
            shared,
            writes,
            _stop: stop,
        })
    }

    /// The options in force.
    pub fn options(&self) -> &Options {
        &self.shared.opts
    }

    /// Waits (at most `timeout`) until the change feed listens; `false` if
    /// it does not (no [`Options::listen`], or the database is unreachable).
    /// Writes committed by others from then on reach [`Store::changes`].
    pub async fn listening(&self, timeout: Duration) -> bool {
        let mut rx = self.shared.listening.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|l| *l))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    async fn rows_to_graph(rows: Vec<tokio_postgres::Row>) -> Result<Graph, Error> {
        let mut g = Graph::new();
        for n in rows_to_nodes(&rows)? {
            g.insert_node(n);
        }
        Ok(g)
    }

    async fn read_node(&self, soul: &str, key: Option<&str>) -> Result<Option<Node>, Error> {
        let sh = &self.shared;
        let rows = bounded(sh.opts.timeout, async {
            let c = sh.conn().await?;
            let rows = match key {
                None => {
                    let st = c
                        .prepare_cached(&format!(
                            "SELECT soul, key, state, value FROM {} WHERE soul = $1",
                            sh.tables.entries
                        ))
                        .await?;
                    c.query(&st, &[&soul.as_bytes()]).await?
                }
                Some(k) => {
                    let st = c
                        .prepare_cached(&format!(
                            "SELECT soul, key, state, value FROM {} WHERE soul = $1 AND key = $2",
                            sh.tables.entries
                        ))
                        .await?;
                    c.query(&st, &[&soul.as_bytes(), &k.as_bytes()]).await?
                }
            };
            Ok(rows)
        })
        .await?;
        let g = PostgresStore::rows_to_graph(rows).await?;
        Ok(g.into_iter().next().map(|(_, n)| n))
    }

    /// A page of whole nodes for [`Store::scan`]: the next `limit` souls
    /// after `after` from the souls table (its primary key, in byte order),
    /// and their entries, in one statement (one snapshot).
    async fn scan_page(&self, after: Option<&str>, limit: usize) -> Result<Vec<Node>, Error> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let sh = &self.shared;
        // Souls are never empty, so every soul sorts after the empty bytes.
        let after: &[u8] = after.map_or(&[], str::as_bytes);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = bounded(sh.opts.timeout * 4, async {
            let c = sh.conn().await?;
            let st = c
                .prepare_cached(&format!(
                    "WITH page AS (SELECT soul FROM {souls} WHERE soul > $1 ORDER BY soul LIMIT $2) \
                     SELECT e.soul, e.key, e.state, e.value FROM page JOIN {entries} e \
                     ON e.soul = page.soul ORDER BY e.soul, e.key",
                    souls = sh.tables.souls,
                    entries = sh.tables.entries
                ))
                .await?;
            Ok(c.query(&st, &[&after, &limit]).await?)
        })
        .await?;
        rows_to_nodes(&rows)
    }

    async fn lexical(&self, souls: &Lex, keys: &Lex, budget: Option<u64>) -> Result<Graph, Error> {
        let sh = &self.shared;
        let (sql, params) = query::select(&sh.tables.entries, souls, keys);
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
            .iter()
            .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let mut out = Graph::new();
        let mut node: Option<Node> = None;
        let mut spent = 0u64;
        let mut done = false;
        let mut take = |row: &tokio_postgres::Row,
                        out: &mut Graph,
                        node: &mut Option<Node>|
         -> Result<bool, Error> {
            let (soul, key, state, value) = decode_row(row)?;
            if !query::row_matches(souls, keys, soul.as_str(), &key) {
                return Ok(true);
            }
            if budget.is_some_and(|b| spent >= b) {
                return Ok(false);
            }
            spent += gun_graph::lex::cost(&value);
            if node.as_ref().is_none_or(|n| n.soul() != &soul) {
                if let Some(n) = node.take() {
                    out.insert_node(n);
                }
                *node = Some(Node::new(soul));
            }
            if let Some(n) = node.as_mut() {
                insert(n, key, state, value);
            }
            Ok(true)
        };
        bounded(sh.opts.timeout * 4, async {
            let mut c = sh.conn().await?;
            let st = c.prepare_cached(&sql).await?;
            if budget.is_none() {
                for row in c.query(&st, &refs).await? {
                    take(&row, &mut out, &mut node).map_err(store_to_pg)?;
                }
                return Ok(());
            }
            // A budget: read in chunks through a portal, stop when spent.
            let tx = c.transaction().await?;
            let portal = tx.bind(&st, &refs).await?;
            while !done {
                let rows = tx.query_portal(&portal, PORTAL_ROWS).await?;
                let last = rows.len() < PORTAL_ROWS as usize;
                for row in &rows {
                    if !take(row, &mut out, &mut node).map_err(store_to_pg)? {
                        done = true;
                        break;
                    }
                }
                done |= last;
            }
            tx.commit().await?;
            Ok(())
        })
        .await?;
        if let Some(n) = node {
            out.insert_node(n);
        }
        Ok(out)
    }
}

/// Carries a store error (a row that cannot be decoded) through a `PgError`
/// closure.
fn store_to_pg(e: Error) -> PgError {
    PgError::Row(e.to_string())
}

/// Rows ordered by soul as nodes, in their order.
fn rows_to_nodes(rows: &[tokio_postgres::Row]) -> Result<Vec<Node>, Error> {
    let mut out: Vec<Node> = Vec::new();
    for row in rows {
        let (soul, key, state, value) = decode_row(row)?;
        if out
            .last()
            .is_none_or(|n| n.soul().as_str() != soul.as_str())
        {
            out.push(Node::new(soul));
        }
        if let Some(n) = out.last_mut() {
            insert(n, key, state, value);
        }
    }
    Ok(out)
}

fn insert(n: &mut Node, key: String, state: State, value: gun_graph::Value) {
    if let Err(e) = n.insert(key, state, value) {
        tracing::warn!(soul = %n.soul(), %e, "stored key skipped");
    }
}

/// Reads `(soul, key, state, value)` from a row.
pub(crate) fn decode_row(
    row: &tokio_postgres::Row,
) -> Result<(Soul, String, State, gun_graph::Value), Error> {
    let corrupt = |what: String| Error::corrupt("postgres", what);
    let soul: &[u8] = row.try_get(0).map_err(|e| corrupt(e.to_string()))?;
    let key: &[u8] = row.try_get(1).map_err(|e| corrupt(e.to_string()))?;
    let state: f64 = row.try_get(2).map_err(|e| corrupt(e.to_string()))?;
    let value: &[u8] = row.try_get(3).map_err(|e| corrupt(e.to_string()))?;
    let soul = std::str::from_utf8(soul)
        .ok()
        .and_then(|s| Soul::new(s).ok())
        .ok_or_else(|| corrupt("a stored soul is not UTF-8 text".into()))?;
    let key = String::from_utf8(key.to_vec())
        .map_err(|_| corrupt(format!("a key of soul {soul:?} is not UTF-8 text")))?;
    let state =
        State::new(state).map_err(|e| corrupt(format!("state of {soul:?}.{key:?}: {e}")))?;
    let value = codec::decode_value(value)
        .map_err(|e| corrupt(format!("value of {soul:?}.{key:?}: {e}")))?;
    Ok((soul, key, state, value))
}

impl Store for PostgresStore {
    fn get_node<'a>(&'a self, soul: &'a str) -> BoxFuture<'a, Result<Option<Node>, Error>> {
        Box::pin(self.read_node(soul, None))
    }

    fn get_key<'a>(
        &'a self,
        soul: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Node>, Error>> {
        Box::pin(self.read_node(soul, Some(key)))
    }

    fn query<'a>(
        &'a self,
        souls: &'a Lex,
        keys: &'a Lex,
        budget: Option<u64>,
    ) -> BoxFuture<'a, Result<Graph, Error>> {
        Box::pin(self.lexical(souls, keys, budget))
    }

    /// Pages of whole nodes, read from the souls table and the entries of
    /// the page's souls (see [`Store::scan`]).
    fn scan<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Option<Vec<Node>>, Error>> {
        Box::pin(async move { self.scan_page(after, limit).await.map(Some) })
    }

    fn put<'a>(&'a self, diff: &'a Graph) -> BoxFuture<'a, Result<Graph, Error>> {
        Box::pin(async move {
            if diff.is_empty() {
                return Ok(Graph::new());
            }
            let (tx, rx) = oneshot::channel();
            self.writes
                .send(writer::Request {
                    diff: diff.clone(),
                    done: tx,
                })
                .await
                .map_err(|_| PgError::Closed)?;
            Ok(rx.await.map_err(|_| PgError::Closed)??)
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), Error>> {
        // Every put resolved only after its commit: nothing is pending.
        Box::pin(async { Ok(()) })
    }

    fn stats(&self) -> BoxFuture<'_, Result<StoreStats, Error>> {
        Box::pin(async move {
            let sh = &self.shared;
            let row = bounded(sh.opts.timeout, async {
                let c = sh.conn().await?;
                let st = c
                    .prepare_cached(&format!(
                        "SELECT coalesce(sum(souls), 0)::int8, coalesce(sum(keys), 0)::int8, \
                         pg_total_relation_size('{}')::int8 FROM {}",
                        sh.tables.entries.replace('\'', "''"),
                        sh.tables.counts
                    ))
                    .await?;
                Ok(c.query_one(&st, &[]).await?)
            })
            .await?;
            let get = |i: usize| -> u64 { row.try_get::<_, i64>(i).unwrap_or(0).max(0) as u64 };
            Ok(StoreStats::new(get(0), get(1), get(2)))
        })
    }

    fn outbox_put<'a>(&'a self, id: &'a str, diff: &'a Graph) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let sh = &self.shared;
            let wire = diff.to_wire();
            bounded(sh.opts.timeout, async {
                let c = sh.conn().await?;
                let st = c
                    .prepare_cached(&format!(
                        "INSERT INTO {} (owner, id, diff) VALUES ($1, $2, $3) \
                         ON CONFLICT (owner, id) DO UPDATE SET diff = excluded.diff",
                        sh.tables.outbox
                    ))
                    .await?;
                c.execute(
                    &st,
                    &[&sh.opts.outbox_owner, &id.as_bytes(), &wire.as_bytes()],
                )
                .await?;
                Ok(())
            })
            .await?;
            Ok(())
        })
    }

    fn outbox_remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let sh = &self.shared;
            bounded(sh.opts.timeout, async {
                let c = sh.conn().await?;
                let st = c
                    .prepare_cached(&format!(
                        "DELETE FROM {} WHERE owner = $1 AND id = $2",
                        sh.tables.outbox
                    ))
                    .await?;
                c.execute(&st, &[&sh.opts.outbox_owner, &id.as_bytes()])
                    .await?;
                Ok(())
            })
            .await?;
            Ok(())
        })
    }

    fn outbox(&self) -> BoxFuture<'_, Result<Vec<(String, Graph)>, Error>> {
        Box::pin(async move {
            let sh = &self.shared;
            let rows = bounded(sh.opts.timeout, async {
                let c = sh.conn().await?;
                let st = c
                    .prepare_cached(&format!(
                        "SELECT id, diff FROM {} WHERE owner = $1 ORDER BY id",
                        sh.tables.outbox
                    ))
                    .await?;
                Ok(c.query(&st, &[&sh.opts.outbox_owner]).await?)
            })
            .await?;
            let mut out = Vec::new();
            for row in rows {
                let id: Result<&[u8], _> = row.try_get(0);
                let diff: Result<&[u8], _> = row.try_get(1);
                let parsed = match (id, diff) {
                    (Ok(id), Ok(diff)) => std::str::from_utf8(id)
                        .ok()
                        .zip(Graph::from_wire_bytes(diff).ok())
                        .map(|(id, g)| (id.to_owned(), g)),
                    _ => None,
                };
                match parsed {
                    Some(entry) => out.push(entry),
                    None => tracing::warn!("an outbox entry cannot be read back; skipped"),
                }
            }
            Ok(out)
        })
    }

    fn keeps_outbox(&self) -> bool {
        true
    }

    fn changes(&self) -> Option<Box<dyn ChangeFeed>> {
        if !self.shared.opts.listen {
            return None;
        }
        Some(Box::new(feed::Receiver::new(
            self.shared.changes.subscribe(),
        )))
    }
}
