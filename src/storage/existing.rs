//! Opening a database that must already be Tandem's (`tandem audit`).

use std::time::Duration;

use anyhow::Context as _;
use diesel_migrations::MigrationHarness;

use super::{ConnectionManager, DbConn, Pool, PG_MIGRATIONS, SQLITE_MIGRATIONS};
use crate::core::config::{DatabaseUrl, SqliteSync};

/// Opens a database that must exist already, for commands that inspect data
/// (`tandem audit`): a mistyped SQLite path is refused instead of creating an
/// empty database, and so is a database this version has not migrated.
pub fn open_existing(url: &DatabaseUrl) -> anyhow::Result<Pool> {
    if let DatabaseUrl::Sqlite(path) = url {
        if !std::path::Path::new(path).is_file() {
            anyhow::bail!("no database at {path}: this command inspects an existing database and creates none");
        }
    }
    let pool = r2d2::Pool::builder()
        .max_size(2)
        .connection_timeout(Duration::from_secs(10))
        .build(ConnectionManager {
            url: url.clone(),
            sqlite_sync: SqliteSync::Full,
        })
        .with_context(|| format!("connecting to {url:?}"))?;
    let mut conn = pool.get().context("getting a database connection")?;
    // Read first whether migrations were ever applied: asking diesel would
    // create its bookkeeping table in a database that is not ours.
    #[derive(diesel::QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let found: Found = match &mut *conn {
        DbConn::Pg(c) => diesel::RunQueryDsl::get_result(
            diesel::sql_query(
                "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM information_schema.tables \
                 WHERE table_name = '__diesel_schema_migrations'",
            ),
            c,
        ),
        DbConn::Sqlite(c) => diesel::RunQueryDsl::get_result(
            diesel::sql_query(
                "SELECT COUNT(*) AS n FROM sqlite_master \
                 WHERE type = 'table' AND name = '__diesel_schema_migrations'",
            ),
            c,
        ),
    }
    .with_context(|| format!("reading {url:?}"))?;
    let pending = found.n == 0
        || match &mut *conn {
            DbConn::Pg(c) => c.has_pending_migration(PG_MIGRATIONS),
            DbConn::Sqlite(c) => c.has_pending_migration(SQLITE_MIGRATIONS),
        }
        .map_err(|e| anyhow::anyhow!("reading the migrations applied to {url:?}: {e}"))?;
    if pending {
        anyhow::bail!(
            "{url:?} is not a Tandem database of this version (migrations are missing): \
             start the server or run `tandem migrate` against it first"
        );
    }
    drop(conn);
    Ok(pool)
}
