//! The schema, created or migrated at start (versioned in `gun_meta`).

use crate::{PgError, Shared};

/// The newest schema version this build writes and reads.
pub(crate) const VERSION: i32 = 1;

/// Number of counter rows in `gun_counts` (writers pick one at random, so
/// that they rarely wait for each other's row lock).
pub(crate) const COUNT_SLOTS: i32 = 16;

/// Creates the schema and tables, or checks and migrates them, under an
/// advisory lock (relays starting together do not race).
pub(crate) async fn migrate(sh: &Shared) -> Result<(), PgError> {
    let t = &sh.tables;
    let mut c = sh.conn().await?;
    let tx = c.transaction().await?;
    // One lock per schema name (hashtext is stable across versions).
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('gun-store-postgres:' || $1::text))",
        &[&sh.opts.schema],
    )
    .await?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {meta} (
             one boolean PRIMARY KEY DEFAULT true CHECK (one),
             version integer NOT NULL
         );",
        schema = t.schema,
        meta = t.meta
    ))
    .await?;
    let found: Option<i32> = tx
        .query_opt(&format!("SELECT version FROM {}", t.meta), &[])
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    match found {
        Some(v) if v > VERSION => {
            return Err(PgError::SchemaTooNew {
                found: v,
                known: VERSION,
            });
        }
        Some(VERSION) => {}
        // Version 1 is the first: nothing older to migrate from yet. A
        // version 2 adds its steps here, from `found` up.
        _ => {
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {entries} (
                     soul bytea NOT NULL,
                     key bytea NOT NULL,
                     state float8 NOT NULL,
                     value bytea NOT NULL,
                     PRIMARY KEY (soul, key)
                 );
                 CREATE TABLE IF NOT EXISTS {souls} (soul bytea PRIMARY KEY);
                 CREATE TABLE IF NOT EXISTS {counts} (
                     slot integer PRIMARY KEY,
                     souls bigint NOT NULL DEFAULT 0,
                     keys bigint NOT NULL DEFAULT 0
                 );
                 INSERT INTO {counts} (slot) SELECT generate_series(0, {last})
                     ON CONFLICT DO NOTHING;
                 CREATE TABLE IF NOT EXISTS {outbox} (
                     owner text NOT NULL,
                     id bytea NOT NULL,
                     diff bytea NOT NULL,
                     PRIMARY KEY (owner, id)
                 );
                 INSERT INTO {meta} (version) VALUES ({VERSION})
                     ON CONFLICT (one) DO UPDATE SET version = excluded.version;",
                entries = t.entries,
                souls = t.souls,
                counts = t.counts,
                outbox = t.outbox,
                meta = t.meta,
                last = COUNT_SLOTS - 1,
            ))
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}
