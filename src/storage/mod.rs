//! Storage: one diesel schema and one set of queries for SQLite and PostgreSQL.
//!
//! The backend is chosen by the URL scheme (see [`crate::core::config::DatabaseUrl`]).
//! Blocking diesel calls only ever run on the threads of the [`DbExecutor`]
//! sync actors (or other sync writer actors); HTTP handlers reach them through
//! [`Db::call`], which bounds how many requests may wait.

pub mod appends;
pub mod checkpoint;
pub mod conflicts;
pub mod dead_letter;
pub mod direct;
pub mod existing;
mod wal;
pub use existing::open_existing;
mod error;
pub use error::is_connection_lost;
pub mod group;
pub mod held;
pub mod idempotency;
pub mod lease;
pub mod outbox;
pub mod partial_index;
pub mod references;
pub mod schema;
pub mod unnest;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Addr, Handler, Message, SyncArbiter, SyncContext};
use anyhow::Context as _;
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::core::config::{DatabaseUrl, SqliteSync};
use crate::core::error::ApiError;

pub const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// The storage layer's result and error, for code above it that runs
/// store functions in its own transaction (a writer actor, a consumer)
/// without writing queries itself.
pub use diesel::result::Error as DbError;
pub use diesel::QueryResult;

/// A connection to either backend. Queries written against `DbConn` run on both.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

pub type Pool = r2d2::Pool<ConnectionManager>;

/// Runs one statement with the concrete connection, for the few statements
/// diesel's `MultiConnection` cannot express (multi-row `INSERT ... VALUES`).
#[macro_export]
macro_rules! per_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::storage::DbConn::Pg($c) => $body,
            $crate::storage::DbConn::Sqlite($c) => $body,
        }
    };
}
pub type PooledConn = r2d2::PooledConnection<ConnectionManager>;

/// r2d2 manager that opens the right backend for the URL, instead of letting
/// `MultiConnection::establish` try each backend in turn.
#[derive(Debug)]
pub struct ConnectionManager {
    url: DatabaseUrl,
    sqlite_sync: SqliteSync,
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConn;
    type Error = diesel::ConnectionError;

    fn connect(&self) -> Result<DbConn, Self::Error> {
        match &self.url {
            DatabaseUrl::Postgres(url) => PgConnection::establish(url).map(DbConn::Pg),
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(path)?;
                // WAL lets readers run beside the writer; the busy timeout makes
                // a second writer wait instead of failing; foreign keys are off
                // by default in SQLite and must be switched on per connection.
                let sync = match self.sqlite_sync {
                    SqliteSync::Full => "FULL",
                    SqliteSync::Normal => "NORMAL",
                };
                // Temporary files (savepoint sub-journals above all: every
                // group-commit job has one) stay in memory instead of costing
                // a write() per page.
                // The WAL is checkpointed by `checkpoint` off the writers'
                // threads; the connection's own automatic checkpoint is a
                // backstop only. A 16 MiB page cache per connection: at the
                // default 2 MiB the group-commit thread re-read index pages
                // with pread on every batch.
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                     PRAGMA foreign_keys = ON; PRAGMA synchronous = {sync}; \
                     PRAGMA temp_store = MEMORY; PRAGMA cache_size = -16384; \
                     PRAGMA wal_autocheckpoint = {};",
                    checkpoint::AUTOCHECKPOINT_PAGES
                ))
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConn::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        match conn {
            DbConn::Pg(c) => diesel::r2d2::R2D2Connection::is_broken(c),
            DbConn::Sqlite(_) => false,
        }
    }
}

/// Opens the pool; creates the SQLite file's directory if needed.
pub fn open_pool(url: &DatabaseUrl, size: u32, sqlite_sync: SqliteSync) -> anyhow::Result<Pool> {
    if let DatabaseUrl::Sqlite(path) = url {
        if let Some(dir) = std::path::Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating directory {}", dir.display()))?;
            }
        }
        wal::switch_to_wal(path)?;
    }
    let manager = ConnectionManager {
        url: url.clone(),
        sqlite_sync,
    };
    r2d2::Pool::builder()
        .max_size(size.max(2))
        .connection_timeout(Duration::from_secs(10))
        .build(manager)
        .with_context(|| format!("connecting to {url:?}"))
}

/// Applies every pending embedded migration of the connection's backend.
pub fn run_migrations(conn: &mut DbConn) -> anyhow::Result<usize> {
    let applied = match conn {
        DbConn::Pg(c) => c.run_pending_migrations(PG_MIGRATIONS).map(|v| v.len()),
        DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
    };
    applied.map_err(|e| anyhow::anyhow!("applying migrations: {e}"))
}

/// True when a write failed only because SQLite's single writer lock was held
/// (past the busy timeout) or a snapshot went stale: safe to retry the transaction.
pub fn is_transient(err: &diesel::result::Error) -> bool {
    let Some(kind) = conflict_kind(err) else {
        return false;
    };
    // Conflicts are counted where they are judged: when a diesel error
    // becomes an ApiError (the flag then travels with it), in the chat
    // writer, and in a retry loop over plain diesel errors. An error judged
    // in such a loop and converted afterwards counts twice; no hot path does
    // both.
    conflicts::record(kind);
    true
}

fn conflict_kind(err: &diesel::result::Error) -> Option<conflicts::Conflict> {
    use conflicts::Conflict;
    use diesel::result::DatabaseErrorKind;
    let diesel::result::Error::DatabaseError(kind, info) = err else {
        return None;
    };
    let message = info.message();
    match kind {
        // PostgreSQL reports a deadlock as SQLSTATE 40P01, which diesel
        // files under "unknown": the message says it.
        _ if message.contains("deadlock detected") => Some(Conflict::Deadlock),
        DatabaseErrorKind::SerializationFailure => Some(Conflict::Serialization),
        // A unique violation inside a transaction means a concurrent request
        // inserted the same row first (idempotent follow, like, a direct
        // conversation...): the retry sees that row and answers as a repeat.
        DatabaseErrorKind::UniqueViolation => Some(Conflict::Unique),
        _ if message.contains("database is locked")
            || message.contains("database table is locked") =>
        {
            Some(Conflict::Locked)
        }
        _ => None,
    }
}

/// SQLite has one writer at a time; a second one waits in SQLite's busy
/// handler, which *sleeps* (1 ms up to 100 ms) between polls. Under load that
/// turns lock hand-offs into sleeps. So every write transaction of this
/// process takes this lock first: writers queue on a mutex and hand over at
/// once. Readers (plain queries outside transactions) never take it; WAL lets
/// them run beside the writer. PostgreSQL takes no lock here.
static SQLITE_WRITER: parking_lot::Mutex<()> = parking_lot::const_mutex(());

thread_local! {
    /// Whether this thread already holds `SQLITE_WRITER` (nested transactions,
    /// jobs inside a group commit): the lock is taken once per thread.
    static HOLDS_WRITER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Elide {
    Off,
    On,
    NestedFailed,
}

thread_local! {
    static ELIDE_SAVEPOINTS: std::cell::Cell<Elide> = const { std::cell::Cell::new(Elide::Off) };
}

/// While alive, transactions nested in the current one (on this thread) run
/// without a savepoint, and a failed one is remembered; see `group`.
pub(crate) struct ElideSavepoints(());

impl ElideSavepoints {
    pub(crate) fn enter() -> ElideSavepoints {
        ELIDE_SAVEPOINTS.with(|e| e.set(Elide::On));
        ElideSavepoints(())
    }

    fn active() -> bool {
        ELIDE_SAVEPOINTS.with(|e| e.get() != Elide::Off)
    }

    /// A nested transaction failed since `enter` (and was not rolled back).
    pub(crate) fn nested_failed() -> bool {
        ELIDE_SAVEPOINTS.with(|e| e.get() == Elide::NestedFailed)
    }
}

impl Drop for ElideSavepoints {
    fn drop(&mut self) {
        ELIDE_SAVEPOINTS.with(|e| e.set(Elide::Off));
    }
}

/// The SQLite writer lock, held until dropped.
pub struct WriterGuard {
    _guard: parking_lot::MutexGuard<'static, ()>,
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        HOLDS_WRITER.with(|h| h.set(false));
    }
}

/// Holds the SQLite writer lock for the guard's life (no-op on PostgreSQL, and
/// when this thread holds it already).
pub fn write_lock(conn: &DbConn) -> Option<WriterGuard> {
    if !matches!(conn, DbConn::Sqlite(_)) || HOLDS_WRITER.with(std::cell::Cell::get) {
        return None;
    }
    let guard = SQLITE_WRITER.lock();
    HOLDS_WRITER.with(|h| h.set(true));
    Some(WriterGuard { _guard: guard })
}

/// True if `conn` is inside a transaction (so a new one would be a savepoint).
pub(crate) fn in_transaction(conn: &mut DbConn) -> bool {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let depth = match conn {
        DbConn::Sqlite(c) => {
            AnsiTransactionManager::transaction_manager_status_mut(c).transaction_depth()
        }
        DbConn::Pg(c) => {
            AnsiTransactionManager::transaction_manager_status_mut(c).transaction_depth()
        }
    };
    matches!(depth, Ok(Some(_)))
}

/// One attempt at a write transaction that holds the write lock from its
/// start. On SQLite that is `BEGIN IMMEDIATE`: a deferred transaction that
/// reads first fails its first write at once ("database is locked", busy
/// timeout or not) when another connection committed in between; an
/// immediate one waits for the lock up front (busy timeout) and cannot read a
/// stale snapshot. PostgreSQL: a plain `BEGIN`. Inside another transaction
/// this is a savepoint.
pub fn write_transaction<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    if in_transaction(conn) {
        if ElideSavepoints::active() {
            // The group committer's savepoint-free attempt: a failure here
            // cannot be rolled back alone, so the committer rolls back the
            // whole attempt and runs the batch again with savepoints.
            let r = f(conn);
            if r.is_err() {
                ELIDE_SAVEPOINTS.with(|e| e.set(Elide::NestedFailed));
            }
            return r;
        }
        // A real savepoint: what its body appended for the batch's set
        // writes leaves with it if it rolls back.
        let mark = appends::mark();
        let r = conn.transaction(f);
        if r.is_err() {
            appends::truncate_to(&mark);
        }
        return r;
    }
    match conn {
        DbConn::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?,
        DbConn::Pg(c) => AnsiTransactionManager::begin_transaction(c)?,
    }
    let result = f(conn);
    let end = match (&result, &mut *conn) {
        (Ok(_), DbConn::Sqlite(c)) => AnsiTransactionManager::commit_transaction(c),
        (Ok(_), DbConn::Pg(c)) => commit_pg_checked(c),
        (Err(_), DbConn::Sqlite(c)) => AnsiTransactionManager::rollback_transaction(c),
        (Err(_), DbConn::Pg(c)) => AnsiTransactionManager::rollback_transaction(c),
    };
    match (result, end) {
        (Ok(v), Ok(())) => Ok(v),
        (Ok(_), Err(e)) => Err(e.into()),
        (Err(e), _) => Err(e),
    }
}

/// Commits a PostgreSQL top-level transaction only if it is still healthy.
///
/// Why: on PostgreSQL any failed statement aborts the whole transaction, and
/// `COMMIT` on an aborted transaction *succeeds* with the tag `ROLLBACK`.
/// diesel does not look at the tag, so a statement whose error some code
/// swallowed would turn into "committed" while nothing was stored. The
/// `SELECT 1` in front fails on an aborted transaction ("current transaction
/// is aborted"), and PostgreSQL skips the rest of a multi-statement string
/// after an error, so `COMMIT` runs only on a healthy transaction: one round
/// trip, as a plain `COMMIT` would be. On failure the transaction is rolled
/// back and the error returned (see [`is_aborted_transaction`]).
fn commit_pg_checked(c: &mut PgConnection) -> diesel::QueryResult<()> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    match c.batch_execute("SELECT 1; COMMIT") {
        // libpq reports the connection idle again; diesel's transaction
        // manager follows that and no longer counts a transaction.
        Ok(()) => Ok(()),
        Err(e) => {
            if let Err(rollback) = AnsiTransactionManager::rollback_transaction(c) {
                tracing::error!(error = %rollback, "rollback after a refused commit failed");
            }
            Err(e)
        }
    }
}

/// True if `err` says the transaction had already been aborted by an earlier
/// failed statement (SQLSTATE 25P02, which diesel reports as `Unknown`).
pub fn is_aborted_transaction(err: &diesel::result::Error) -> bool {
    matches!(err, diesel::result::Error::DatabaseError(_, info)
        if info.message().contains("current transaction is aborted"))
}

/// Runs `f` in a transaction, retrying a few times on transient conflicts.
pub fn transaction<T, E, F>(conn: &mut DbConn, mut f: F) -> Result<T, E>
where
    F: FnMut(&mut DbConn) -> Result<T, E>,
    E: From<diesel::result::Error> + AsTransient,
{
    const ATTEMPTS: u32 = 5;
    if in_transaction(conn) {
        // Nested (a group-commit job, a savepoint): retrying cannot help, as
        // the conflict belongs to the outer transaction, and sleeping here
        // would stall the committer thread and every job of its batch. The
        // outer transaction decides (the committer reruns a failed batch
        // with a savepoint per job).
        return write_transaction(conn, f);
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let _writer = write_lock(conn);
        match write_transaction(conn, &mut f) {
            Err(e) if attempt < ATTEMPTS && e.is_transient() => {
                std::thread::sleep(Duration::from_millis(5 * u64::from(attempt)));
            }
            other => return other,
        }
    }
}

/// Lets [`transaction`] see through an error type to a transient database error.
pub trait AsTransient {
    fn is_transient(&self) -> bool;
}

impl AsTransient for diesel::result::Error {
    fn is_transient(&self) -> bool {
        is_transient(self)
    }
}

impl AsTransient for ApiError {
    fn is_transient(&self) -> bool {
        self.is_transient()
    }
}

/// Sync actor for plain reads and writes. Each of its threads takes a pooled
/// connection per message, so blocking diesel work never runs on async workers.
pub struct DbExecutor {
    pub pool: Pool,
    /// The node's id generator, for rows created by handlers.
    pub ids: Arc<crate::core::ids::IdGenerator>,
}

impl Actor for DbExecutor {
    type Context = SyncContext<Self>;
}

impl DbExecutor {
    pub fn conn(&self) -> Result<PooledConn, ApiError> {
        self.pool.get().map_err(ApiError::from)
    }
}

/// Handle to the executor. Counts its own queue: `Addr::send` would wait
/// without bound when the mailbox is full, so past `capacity` waiting requests
/// we answer 503 at once instead (shed load, keep latency).
#[derive(Clone)]
pub struct Db {
    addr: Addr<DbExecutor>,
    in_flight: Arc<AtomicUsize>,
    capacity: usize,
    timeout: Duration,
}

/// Decrements the in-flight count however the request ends (reply, timeout,
/// or the client going away and the future being dropped).
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Db {
    pub fn start(
        threads: usize,
        pool: Pool,
        ids: Arc<crate::core::ids::IdGenerator>,
        capacity: usize,
        timeout: Duration,
    ) -> Db {
        let addr = SyncArbiter::start(threads.max(1), move || DbExecutor {
            pool: pool.clone(),
            ids: ids.clone(),
        });
        Db {
            addr,
            in_flight: Arc::new(AtomicUsize::new(0)),
            capacity,
            timeout,
        }
    }

    /// Sends `msg` to the executor and awaits the reply.
    pub async fn call<M, T>(&self, msg: M) -> Result<T, ApiError>
    where
        M: Message<Result = Result<T, ApiError>> + Send + 'static,
        T: Send + 'static,
        DbExecutor: Handler<M, Result = Result<T, ApiError>>,
    {
        let depth = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let _guard = InFlight(self.in_flight.clone());
        if depth >= self.capacity {
            return Err(ApiError::unavailable("the server is busy; retry shortly"));
        }
        // No timeout on the reply: the executor refuses a message that could
        // not start within `timeout` (then nothing was done), and once a
        // handler runs its outcome is awaited. A timeout here could not tell
        // "never ran" from "committed a moment later".
        let start_by = Instant::now() + self.timeout;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let run: ExecFn = Box::new(move |exec, ctx| {
            let out = if Instant::now() > start_by {
                Err(ApiError::unavailable(
                    "the database could not take this request in time; nothing was done",
                ))
            } else {
                <DbExecutor as Handler<M>>::handle(exec, msg, ctx)
            };
            let _ = tx.send(out);
        });
        self.addr
            .send::<Exec>(Exec(run))
            .await
            .map_err(|e| ApiError::unavailable_because(anyhow::anyhow!("db executor: {e}")))?;
        rx.await
            .map_err(|_| ApiError::unavailable("the database executor stopped"))?
    }

    /// Requests waiting for or being served by the executor (a metric).
    pub fn queue_depth(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    pub fn queue_capacity(&self) -> usize {
        self.capacity
    }
}

type ExecFn = Box<dyn FnOnce(&mut DbExecutor, &mut SyncContext<DbExecutor>) + Send>;

/// One request for the executor, as [`Db::call`] wraps it: the handler to
/// run, which also checks the start deadline and sends the reply.
struct Exec(ExecFn);

impl Message for Exec {
    type Result = ();
}

impl Handler<Exec> for DbExecutor {
    type Result = ();

    fn handle(&mut self, Exec(run): Exec, ctx: &mut Self::Context) {
        run(self, ctx);
    }
}

/// `SELECT 1` through the executor, for `/ready`.
pub struct Ping;

impl Message for Ping {
    type Result = Result<(), ApiError>;
}

impl Handler<Ping> for DbExecutor {
    type Result = Result<(), ApiError>;

    fn handle(&mut self, _: Ping, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        conn.batch_execute("SELECT 1")
            .map_err(ApiError::unavailable_because)
    }
}

/// A scratch PostgreSQL database for unit tests, dropped with the value.
/// `None` (the test then says so and passes) when `TANDEM_TEST_DATABASE_URL`
/// is not set; `.ci/run` sets it.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod test_pg {
    use diesel::{Connection, PgConnection, RunQueryDsl};

    pub(crate) struct ScratchDb {
        pub url: String,
        admin: String,
        name: String,
    }

    pub(crate) fn scratch(label: &str) -> Option<ScratchDb> {
        let Ok(admin) = std::env::var("TANDEM_TEST_DATABASE_URL") else {
            eprintln!("TANDEM_TEST_DATABASE_URL not set: PostgreSQL test not run");
            return None;
        };
        let name = format!(
            "tandem_unit_{label}_{}_{}",
            std::process::id(),
            crate::core::ids::now_ms()
        );
        let mut root = PgConnection::establish(&admin).unwrap();
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut root)
            .unwrap();
        let base = admin.rfind('/').map_or(admin.as_str(), |i| &admin[..i]);
        Some(ScratchDb {
            url: format!("{base}/{name}"),
            admin,
            name,
        })
    }

    impl Drop for ScratchDb {
        fn drop(&mut self) {
            if let Ok(mut root) = PgConnection::establish(&self.admin) {
                let _ = diesel::sql_query(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .execute(&mut root);
            }
        }
    }
}
