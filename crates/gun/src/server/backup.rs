//! Backups as JSON Lines: one node per line in Gun's wire form with its
//! states, `{"_":{"#":soul,">":{key:state}},key:value}`.
//!
//! [`export_jsonl`] writes the graph of a stopped relay's store,
//! [`import_jsonl`] merges such a file into a store through HAM, and
//! [`Admin`] answers `GET /admin/export` on a running relay.

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;

use gun_net_ws::{HttpBodySender, HttpBodyStream, HttpHandler, HttpRequest, HttpResponse};

use super::{ServerError, StoreKind, open_data, open_store};
use crate::{Graph, Lex, Node, Store};

/// Nodes merged into the store per `put` during an import.
const IMPORT_BATCH: usize = 512;
/// Bytes per chunk of the online export.
const EXPORT_CHUNK: usize = 64 << 10;
/// Chunks of the online export queued for a slow client.
const EXPORT_QUEUE: usize = 4;
/// Nodes read per page when the store reads by pages ([`Store::scan`]): what
/// an export holds in memory at a time, instead of the whole graph.
const EXPORT_PAGE: usize = 512;

/// What [`export_jsonl`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportReport {
    /// Souls (lines) written.
    pub souls: usize,
    /// Keys written.
    pub keys: usize,
}

/// What [`import_jsonl`] merged. Its `Display` is the report gun-relay prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonlReport {
    /// Lines holding a node (blank lines are skipped).
    pub lines: usize,
    /// Distinct souls imported.
    pub souls: usize,
    /// Keys imported (a key on several lines counts each time).
    pub keys: usize,
}

impl std::fmt::Display for JsonlReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "imported {} souls, {} keys from {} lines",
            self.souls, self.keys, self.lines
        )
    }
}

/// The whole graph of `store`: a point-in-time read of every soul.
async fn snapshot(store: &dyn Store) -> Result<Graph, gun_store::Error> {
    store.query(&Lex::default(), &Lex::default(), None).await
}

/// Appends `node` as one JSON Lines line to `out`, counting it in `report`.
fn push_line(node: &Node, out: &mut String, report: &mut ExportReport) {
    node.write_wire(out);
    out.push('\n');
    report.souls += 1;
    report.keys += node.len();
}

/// Appends `nodes` as JSON Lines to `out`, counting them in `report`.
fn write_lines<'a>(
    nodes: impl Iterator<Item = &'a Node>,
    out: &mut String,
    report: &mut ExportReport,
) {
    for node in nodes {
        push_line(node, out, report);
    }
}

/// Writes the whole graph of the store of `kind` under `data_dir` to `out` as
/// JSON Lines (one node per line, with its states), souls in the store's
/// order.
///
/// For a stopped relay: the durable stores lock their directory, so this
/// fails while a relay serves it (use `GET /admin/export` then). Fails for
/// the memory store (nothing on disk) and for a data directory without a
/// store of `kind` (rather than exporting a new empty store).
pub async fn export_jsonl(
    kind: StoreKind,
    data_dir: &Path,
    out: &mut dyn Write,
) -> Result<ExportReport, ServerError> {
    let dir = match kind {
        StoreKind::Memory => {
            return Err(ServerError::Export(
                "the memory store keeps nothing on disk: export a running memory relay with \
                 GET /admin/export"
                    .to_owned(),
            ));
        }
        StoreKind::File => data_dir.join("file"),
        StoreKind::Sled => data_dir.join("sled"),
        #[cfg(feature = "store-postgres")]
        StoreKind::Postgres => {
            return Err(ServerError::Export(
                "the postgres store needs its database URL: use export_jsonl_with".to_owned(),
            ));
        }
    };
    // Opening a missing store would create an empty one.
    if !dir.is_dir() {
        return Err(ServerError::Export(format!(
            "no {} store in {} ({} does not exist)",
            kind.name(),
            data_dir.display(),
            dir.display()
        )));
    }
    let store = open_store(kind, data_dir, Some(super::DEFAULT_SLED_CACHE_BYTES))?;
    export_store(store.as_ref(), out).await
}

/// [`export_jsonl`] of the store `opts` names: as the relay would open it
/// (`opts.store`, `opts.data_dir`, and for PostgreSQL `opts.postgres_url`
/// and `opts.postgres_schema`; a PostgreSQL store is read while relays serve
/// it, page by page, each page one statement). Needs a multi-thread tokio
/// runtime for PostgreSQL.
pub async fn export_jsonl_with(
    opts: &super::RelayOptions,
    out: &mut dyn Write,
) -> Result<ExportReport, ServerError> {
    #[cfg(feature = "store-postgres")]
    if opts.store == StoreKind::Postgres {
        let store = super::open_postgres(opts)?;
        return export_store(store.as_ref(), out).await;
    }
    export_jsonl(opts.store, &opts.data_dir, out).await
}

/// Writes every node of `store` to `out` as JSON Lines, page by page where
/// the store can ([`Store::scan`]), else from one read of the whole graph.
pub async fn export_store(
    store: &dyn Store,
    out: &mut dyn Write,
) -> Result<ExportReport, ServerError> {
    let read_err = |e: gun_store::Error| ServerError::Export(format!("cannot read the store: {e}"));
    let write_err =
        |e: std::io::Error| ServerError::Export(format!("cannot write the export: {e}"));
    let mut report = ExportReport { souls: 0, keys: 0 };
    let mut text = String::new();
    // Page by page where the store can (every durable store here): memory
    // holds one page, not the graph.
    let mut page = store.scan(None, EXPORT_PAGE).await.map_err(read_err)?;
    if page.is_none() {
        let graph = snapshot(store).await.map_err(read_err)?;
        write_lines(graph.nodes(), &mut text, &mut report);
        out.write_all(text.as_bytes()).map_err(write_err)?;
    }
    while let Some(nodes) = page.take().filter(|p| !p.is_empty()) {
        text.clear();
        write_lines(nodes.iter(), &mut text, &mut report);
        out.write_all(text.as_bytes()).map_err(write_err)?;
        let last = nodes.last().map(|n| n.soul().as_str());
        page = store.scan(last, EXPORT_PAGE).await.map_err(read_err)?;
    }
    out.flush().map_err(write_err)?;
    Ok(report)
}

/// Parses one JSON Lines line into a graph of one node.
fn parse_line(line: &str) -> Result<Graph, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let soul = value
        .get("_")
        .and_then(|meta| meta.get("#"))
        .and_then(serde_json::Value::as_str)
        .ok_or("not a node: no soul in _.#")?
        .to_owned();
    let mut wrapped = serde_json::Map::new();
    wrapped.insert(soul, value);
    let graph = Graph::from_json(&serde_json::Value::Object(wrapped))
        .map_err(|e| format!("not a valid node: {e}"))?;
    Ok(graph)
}

/// Merges the JSON Lines backup `file` (as [`export_jsonl`] writes it) into
/// the store of `kind` under `data_dir` (created if missing) through HAM, then
/// flushes: a key already stored with a newer state keeps its value.
///
/// Blank lines are skipped. A malformed line stops the import with an error
/// naming its line number; nothing of that line is imported (the lines before
/// it are: importing the fixed file again is harmless, HAM makes it
/// idempotent).
pub async fn import_jsonl(
    kind: StoreKind,
    data_dir: &Path,
    file: &Path,
) -> Result<JsonlReport, ServerError> {
    // A file that cannot be read fails before a store is created.
    std::fs::File::open(file).map_err(|e| ServerError::ImportJsonl {
        file: file.to_owned(),
        message: format!("cannot open: {e}"),
    })?;
    let store = open_data(kind, data_dir, Some(super::DEFAULT_SLED_CACHE_BYTES))?;
    import_into(store.as_ref(), file).await
}

/// [`import_jsonl`] into the store `opts` names, as the relay would open it
/// (for PostgreSQL: `opts.postgres_url`, `opts.postgres_schema`; relays may
/// serve it meanwhile, the import merges through HAM like any writer). Needs
/// a multi-thread tokio runtime for PostgreSQL.
pub async fn import_jsonl_with(
    opts: &super::RelayOptions,
    file: &Path,
) -> Result<JsonlReport, ServerError> {
    #[cfg(feature = "store-postgres")]
    if opts.store == StoreKind::Postgres {
        let store = super::open_postgres(opts)?;
        return import_into(store.as_ref(), file).await;
    }
    import_jsonl(opts.store, &opts.data_dir, file).await
}

/// Merges the JSON Lines backup `file` into `store` (see [`import_jsonl`]).
pub async fn import_into(store: &dyn Store, file: &Path) -> Result<JsonlReport, ServerError> {
    let failed = |message: String| ServerError::ImportJsonl {
        file: file.to_owned(),
        message,
    };
    let reader = std::fs::File::open(file)
        .map(std::io::BufReader::new)
        .map_err(|e| failed(format!("cannot open: {e}")))?;
    let mut report = JsonlReport {
        lines: 0,
        souls: 0,
        keys: 0,
    };
    let mut souls = std::collections::HashSet::new();
    let mut batch = Graph::new();
    for (i, line) in reader.lines().enumerate() {
        let number = i + 1;
        let line = line.map_err(|e| failed(format!("cannot read line {number}: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let graph = match parse_line(&line) {
            Ok(g) => g,
            Err(reason) => {
                // What came before the bad line is still merged.
                put_batch(store, &mut batch, &failed).await?;
                flush(store, &failed).await?;
                return Err(failed(format!(
                    "line {number}: {reason} (nothing of that line was imported; the {} lines \
                     before it were)",
                    report.lines
                )));
            }
        };
        report.lines += 1;
        for node in graph.nodes() {
            report.keys += node.len();
            if souls.insert(node.soul().as_str().to_owned()) {
                report.souls += 1;
            }
            if batch.get(node.soul().as_str()).is_some() || batch.len() >= IMPORT_BATCH {
                put_batch(store, &mut batch, &failed).await?;
            }
            batch.insert_node(node.clone());
        }
    }
    put_batch(store, &mut batch, &failed).await?;
    flush(store, &failed).await?;
    Ok(report)
}

async fn put_batch(
    store: &dyn Store,
    batch: &mut Graph,
    failed: &impl Fn(String) -> ServerError,
) -> Result<(), ServerError> {
    if batch.is_empty() {
        return Ok(());
    }
    store
        .put(batch)
        .await
        .map_err(|e| failed(format!("cannot write to the store: {e}")))?;
    *batch = Graph::new();
    Ok(())
}

async fn flush(
    store: &dyn Store,
    failed: &impl Fn(String) -> ServerError,
) -> Result<(), ServerError> {
    store
        .flush()
        .await
        .map_err(|e| failed(format!("cannot flush the store: {e}")))
}

/// The relay's HTTP handler with `GET /admin/export` in front of the pages
/// (404 without a token).
pub(super) struct Admin {
    token: Option<String>,
    store: Arc<dyn Store>,
    pages: Arc<dyn HttpHandler>,
}

impl Admin {
    pub(super) fn new(
        token: Option<String>,
        store: Arc<dyn Store>,
        pages: Arc<dyn HttpHandler>,
    ) -> Admin {
        Admin {
            token,
            store,
            pages,
        }
    }

    fn authorized(&self, req: &HttpRequest) -> bool {
        let Some(token) = &self.token else {
            return false;
        };
        let Some(given) = req
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
        else {
            return false;
        };
        // Compare every byte, so the time taken does not tell how much matched.
        let (a, b) = (given.trim().as_bytes(), token.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    fn export(&self) -> HttpResponse {
        // The handler runs on a blocking thread of the relay's runtime.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return HttpResponse::text(500, "no runtime\n");
        };
        let failed = |e: gun_store::Error| {
            tracing::error!(%e, "online export: cannot read the store");
            HttpResponse::text(500, format!("cannot read the store: {e}\n"))
        };
        // The first page (or, for a store that cannot page, the whole graph)
        // is read now, before the response starts: a store that fails gets a
        // 500, not a 200 with an empty body.
        let source = match rt.block_on(self.store.scan(None, EXPORT_PAGE)) {
            Ok(Some(first)) => Pages::Scan(Arc::clone(&self.store), first),
            Ok(None) => match rt.block_on(snapshot(self.store.as_ref())) {
                Ok(graph) => Pages::Whole(graph),
                Err(e) => return failed(e),
            },
            Err(e) => return failed(e),
        };
        let (sender, body) = HttpBodyStream::channel(EXPORT_QUEUE);
        rt.spawn(stream_lines(source, sender));
        HttpResponse::new(200)
            .with_header("Cache-Control", "no-store")
            .with_stream("application/x-ndjson; charset=utf-8", body)
    }
}

/// What an online export sends: pages read from the store as the client
/// takes them (from the first, already read), or a graph read whole.
enum Pages {
    Scan(Arc<dyn Store>, Vec<Node>),
    Whole(Graph),
}

/// Sends the nodes of `source` as JSON Lines in chunks of about
/// [`EXPORT_CHUNK`] bytes. A store error after the first page ends the body
/// without its last chunk (error event), so the client sees a cut transfer,
/// not a short export that looks whole.
async fn stream_lines(source: Pages, sender: HttpBodySender) {
    let mut report = ExportReport { souls: 0, keys: 0 };
    let mut chunk = String::with_capacity(EXPORT_CHUNK + 1024);
    match source {
        Pages::Whole(graph) => {
            if !send_nodes(graph.nodes(), &mut chunk, &mut report, &sender).await {
                return;
            }
        }
        Pages::Scan(store, mut page) => {
            while !page.is_empty() {
                if !send_nodes(page.iter(), &mut chunk, &mut report, &sender).await {
                    return;
                }
                let last = page.last().map(|n| n.soul().to_string());
                page = match store.scan(last.as_deref(), EXPORT_PAGE).await {
                    Ok(next) => next.unwrap_or_default(),
                    Err(e) => {
                        tracing::error!(
                            %e,
                            sent_souls = report.souls,
                            "online export: cannot read the store; the transfer is cut"
                        );
                        return;
                    }
                };
            }
        }
    }
    if !sender.send(chunk.into_bytes()).await {
        tracing::warn!("online export: the client went away");
        return;
    }
    sender.finish().await;
    tracing::info!(
        souls = report.souls,
        keys = report.keys,
        "online export served"
    );
}

/// Appends `nodes` to `chunk`, sending each full chunk; false when the client
/// went away (warn event).
async fn send_nodes<'a>(
    nodes: impl Iterator<Item = &'a Node>,
    chunk: &mut String,
    report: &mut ExportReport,
    sender: &HttpBodySender,
) -> bool {
    for node in nodes {
        push_line(node, chunk, report);
        if chunk.len() >= EXPORT_CHUNK && !sender.send(std::mem::take(chunk).into_bytes()).await {
            tracing::warn!(
                sent_souls = report.souls,
                "online export: the client went away"
            );
            return false;
        }
    }
    true
}

impl HttpHandler for Admin {
    fn handle(&self, req: &HttpRequest) -> HttpResponse {
        if req.path != "/admin/export" {
            return self.pages.handle(req);
        }
        if self.token.is_none() {
            return HttpResponse::not_found();
        }
        if req.method != "GET" && req.method != "HEAD" {
            return HttpResponse::text(405, "method not allowed\n");
        }
        if !self.authorized(req) {
            tracing::warn!(remote = %req.remote_addr, "/admin/export without a valid token");
            return HttpResponse::text(401, "unauthorized\n")
                .with_header("WWW-Authenticate", "Bearer");
        }
        self.export()
    }
}
