//! Append-only rows (outbox events, notifications) written as sets.
//!
//! A group-commit batch runs many small jobs on one connection; each job used
//! to insert its events and notifications one statement at a time, so a
//! batch's statement count grew with its size (on PostgreSQL each statement
//! is a round trip on the committer thread). While a batch runs, [`append`]
//! buffers such rows instead, and the committer writes each kind of row with
//! one multi-row insert per chunk before the commit ([`Collect::flush`]).
//!
//! Only rows nobody reads back inside the same transaction may be appended
//! this way: the owner of each kind of row says so where it calls [`append`].
//! Outside a batch (an executor request, a test), [`append`] writes at once.
//!
//! The buffer follows the transaction: rows appended inside a nested
//! transaction that rolls back are dropped with it ([`mark`],
//! [`truncate_to`]), and a batch attempt that fails drops all of them
//! ([`Collect`]'s `Drop`).

use std::any::{Any, TypeId};
use std::cell::RefCell;

use diesel::QueryResult;

use super::DbConn;

/// Writes rows of one kind (at most a batch's worth) in as few statements as it can.
pub type WriteRows<T> = fn(&mut DbConn, &[T]) -> QueryResult<()>;

thread_local! {
    /// The rows of the batch running on this thread (a committer thread), if any.
    static OPEN: RefCell<Option<Vec<Lane>>> = const { RefCell::new(None) };
    /// Batch attempts opened on this thread so far (see [`batch`]).
    static OPENED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Which batch attempt (one transaction) runs on this thread, if any: a
/// number that changes with every attempt, for reads that may be made once
/// per transaction and reused by its later jobs (the rule set in force, say).
pub fn batch() -> Option<u64> {
    OPEN.with(|open| open.borrow().is_some().then(|| OPENED.get()))
}

/// Where a kind of row stands in the one global lock order.
///
/// Why: on PostgreSQL several committers run batches at once (see
/// `storage::group`). Rows owned by one partition (an order, its payment and
/// its rebate records: every job for them is routed to the order's
/// partition) are never written by two committers at once. Rows that jobs of
/// any partition change (a product's stock, a wallet) are written only as
/// sets at the batch's end, one kind after another in this order and, within
/// a kind, in key order. Every transaction then takes such row locks in one
/// order, so two committers can wait for each other but never in a cycle: no
/// deadlock. Order matters only between kinds of shared rows; appended rows
/// nobody else writes come first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LockRank {
    /// Rows only this batch's partition writes (or new rows): any order.
    Owned,
    /// Merchants' review counters, in merchant id order.
    Merchants,
    /// Products' stock, in product id order.
    Stock,
    /// Wallets, in user id order.
    Balances,
}

/// The buffered rows of one kind.
struct Lane {
    kind: TypeId,
    rank: LockRank,
    rows: Box<dyn Buffered>,
}

trait Buffered {
    fn len(&self) -> usize;
    fn truncate(&mut self, len: usize);
    fn write(&mut self, conn: &mut DbConn) -> QueryResult<()>;
    fn as_any(&mut self) -> &mut dyn Any;
}

struct Rows<T> {
    rows: Vec<T>,
    write: WriteRows<T>,
}

impl<T: 'static> Buffered for Rows<T> {
    fn len(&self) -> usize {
        self.rows.len()
    }
    fn truncate(&mut self, len: usize) {
        self.rows.truncate(len);
    }
    fn write(&mut self, conn: &mut DbConn) -> QueryResult<()> {
        let rows = std::mem::take(&mut self.rows);
        if rows.is_empty() {
            return Ok(());
        }
        (self.write)(conn, &rows)
    }
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

/// Adds an append-only row: buffered while this thread's batch collects,
/// written at once (with `write`) otherwise.
pub fn append<T: 'static>(conn: &mut DbConn, row: T, write: WriteRows<T>) -> QueryResult<()> {
    append_ranked(conn, row, write, LockRank::Owned)
}

/// [`append`] for rows that jobs of several partitions write: their set goes
/// out after the owned rows, at its place in the global lock order.
pub fn append_ranked<T: 'static>(
    conn: &mut DbConn,
    row: T,
    write: WriteRows<T>,
    rank: LockRank,
) -> QueryResult<()> {
    let unbuffered = OPEN.with(|open| {
        let mut open = open.borrow_mut();
        let Some(lanes) = open.as_mut() else {
            return Some(row);
        };
        let kind = TypeId::of::<T>();
        let at = match lanes.iter().position(|l| l.kind == kind) {
            Some(i) => i,
            None => {
                lanes.push(Lane {
                    kind,
                    rank,
                    rows: Box::new(Rows::<T> {
                        rows: Vec::new(),
                        write,
                    }),
                });
                lanes.len() - 1
            }
        };
        if let Some(buffer) = lanes[at].rows.as_any().downcast_mut::<Rows<T>>() {
            buffer.rows.push(row);
            None
        } else {
            Some(row)
        }
    });
    match unbuffered {
        Some(row) => write(conn, std::slice::from_ref(&row)),
        None => Ok(()),
    }
}

/// A set the database refused, or a guarded set that did not hold for every
/// row (an order that is no longer as its actor saw it), for a reason its
/// owner can name: answered 409 with `kind` and `detail` (see
/// `storage::error`). Inside a batch the committer then runs the batch again
/// with each job's rows written in its own savepoint, where the refusal fails
/// only the job whose row it was.
#[derive(Debug)]
pub struct Refused {
    pub kind: crate::core::error::ErrorKind,
    pub detail: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for Refused {}

/// The error a [`WriteRows`] returns when the database refused its set for a
/// reason the caller should hear as `kind`.
pub fn refused(kind: crate::core::error::ErrorKind, detail: String) -> diesel::result::Error {
    diesel::result::Error::QueryBuilderError(Box::new(Refused { kind, detail }))
}

/// The error a [`WriteRows`] returns when its guarded set missed a row.
pub fn guard_missed(why: &str) -> diesel::result::Error {
    refused(crate::core::error::ErrorKind::InvalidState, why.to_owned())
}

/// Where the buffer stands: (kinds, rows of each), taken when a nested
/// transaction begins.
pub struct Mark(Option<Vec<usize>>);

pub fn mark() -> Mark {
    Mark(OPEN.with(|open| {
        open.borrow()
            .as_ref()
            .map(|lanes| lanes.iter().map(|l| l.rows.len()).collect())
    }))
}

/// Drops what was appended since `mark` (its nested transaction rolled back).
pub fn truncate_to(mark: &Mark) {
    let Some(lens) = &mark.0 else { return };
    OPEN.with(|open| {
        if let Some(lanes) = open.borrow_mut().as_mut() {
            lanes.truncate(lens.len());
            for (lane, len) in lanes.iter_mut().zip(lens) {
                lane.rows.truncate(*len);
            }
        }
    });
}

/// A batch collecting its appends on this thread; dropping it drops
/// whatever was not flushed (the attempt failed and rolled back).
pub struct Collect(());

impl Collect {
    pub fn open() -> Collect {
        OPENED.set(OPENED.get().wrapping_add(1));
        OPEN.with(|open| *open.borrow_mut() = Some(Vec::new()));
        Collect(())
    }

    /// Writes everything buffered so far, kind by kind in [`LockRank`]
    /// order (within a rank, in the order each kind was first appended); the
    /// buffer is empty afterwards either way.
    pub fn flush(&self, conn: &mut DbConn) -> QueryResult<()> {
        let mut lanes = OPEN.with(|open| {
            open.borrow_mut()
                .as_mut()
                .map(std::mem::take)
                .unwrap_or_default()
        });
        // Stable: the first-appended order stays within a rank.
        lanes.sort_by_key(|l| l.rank);
        for lane in &mut lanes {
            lane.rows.write(conn)?;
        }
        Ok(())
    }

    /// Drops what was appended since the last flush (the job failed).
    pub fn discard(&self) {
        OPEN.with(|open| {
            if let Some(lanes) = open.borrow_mut().as_mut() {
                lanes.clear();
            }
        });
    }
}

impl Drop for Collect {
    fn drop(&mut self) {
        OPEN.with(|open| *open.borrow_mut() = None);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use diesel::connection::SimpleConnection;

    use super::*;
    use crate::core::config::{DatabaseUrl, SqliteSync};
    use crate::core::error::ApiError;
    use crate::storage::group::tests::ids_in;
    use crate::storage::group::{GroupCommit, MAX_QUEUED};

    /// A row appended to table `a`.
    struct A(i64);

    /// The size of every write of `A` rows, in order.
    static WRITES: Mutex<Vec<usize>> = Mutex::new(Vec::new());

    fn write_a(c: &mut DbConn, rows: &[A]) -> QueryResult<()> {
        WRITES.lock().unwrap().push(rows.len());
        let values: Vec<String> = rows.iter().map(|r| format!("({})", r.0)).collect();
        c.batch_execute(&format!("INSERT INTO a (id) VALUES {}", values.join(",")))
    }

    #[actix_web::test]
    async fn a_batch_writes_its_appends_as_one_set_and_a_failed_job_or_nested_rollback_writes_none()
    {
        let dir = std::env::temp_dir().join(format!(
            "tandem-appends-{}-{}",
            std::process::id(),
            crate::core::ids::now_ms()
        ));
        let url = DatabaseUrl::Sqlite(dir.join("t.db").to_string_lossy().into_owned());
        let pool = crate::storage::open_pool(&url, 2, SqliteSync::Full).unwrap();
        pool.get()
            .unwrap()
            .batch_execute("CREATE TABLE a (id INTEGER PRIMARY KEY)")
            .unwrap();
        let commit = GroupCommit::start(
            pool.clone(),
            1,
            crate::core::metrics::QueueGauge::new(MAX_QUEUED),
        );
        let blocker = |ms: u64| {
            commit.run(move |_c| {
                std::thread::sleep(Duration::from_millis(ms));
                Ok(0_i64)
            })
        };
        // Outside a batch: written at once.
        append(&mut pool.get().unwrap(), A(9), write_a).unwrap();
        assert_eq!(*WRITES.lock().unwrap(), vec![1]);
        WRITES.lock().unwrap().clear();

        // One batch (queued behind a blocker), no failure: one write of 3 rows.
        let (_, x, y) = futures_util::join!(
            blocker(300),
            commit.run(|c| append(c, A(1), write_a)
                .map(|()| 1_i64)
                .map_err(ApiError::from)),
            commit.run(|c| {
                append(c, A(2), write_a)?;
                append(c, A(3), write_a)?;
                Ok(2_i64)
            }),
        );
        assert_eq!((x.unwrap(), y.unwrap()), (1, 2));
        assert_eq!(*WRITES.lock().unwrap(), vec![3], "one set for the batch");

        // A failing job, and a job whose nested transaction fails: neither's
        // rows are written; the others' are.
        let (_, ok, failed, nested) = futures_util::join!(
            blocker(300),
            commit.run(|c| append(c, A(4), write_a)
                .map(|()| 4_i64)
                .map_err(ApiError::from)),
            commit.run(|c| -> Result<i64, ApiError> {
                append(c, A(5), write_a)?;
                Err(ApiError::invalid_input("this job fails"))
            }),
            commit.run(|c| -> Result<i64, ApiError> {
                let inner = crate::storage::transaction(c, |c| -> Result<(), ApiError> {
                    append(c, A(6), write_a)?;
                    Err(ApiError::invalid_input("the nested part fails"))
                });
                assert!(inner.is_err());
                append(c, A(7), write_a)?;
                Ok(7)
            }),
        );
        assert_eq!(ok.unwrap(), 4);
        assert!(failed.is_err());
        assert_eq!(nested.unwrap(), 7);
        assert_eq!(ids_in(&pool, "a"), vec![1, 2, 3, 4, 7, 9]);
        drop(commit);
        drop(pool);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A guarded change of table `g`: `id` from status `old` to `new`.
    struct Move(i64, &'static str, &'static str);

    fn write_moves(c: &mut DbConn, rows: &[Move]) -> QueryResult<()> {
        use crate::storage::direct::{execute_values, Val};
        let values: Vec<Vec<Val<'_>>> = rows
            .iter()
            .map(|m| vec![Val::Int(m.0), Val::Text(m.1), Val::Text(m.2)])
            .collect();
        let n = execute_values(
            c,
            "WITH v (id, old, new) AS (VALUES ",
            ") UPDATE g SET status = v.new FROM v WHERE g.id = v.id AND g.status = v.old",
            &values,
        )?;
        if n != rows.len() {
            return Err(guard_missed("g changed meanwhile"));
        }
        Ok(())
    }

    #[derive(diesel::QueryableByName)]
    struct Status {
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
    }

    /// Issue 15: a guarded set whose guard misses for one job in the middle
    /// of a batch fails that job alone (409), and the others' moves commit.
    async fn a_missed_guard_fails_only_its_own_job(pool: crate::storage::Pool) {
        pool.get()
            .unwrap()
            .batch_execute(
                "CREATE TABLE g (id BIGINT PRIMARY KEY, status TEXT NOT NULL);
                 INSERT INTO g (id, status) VALUES (1, 'a'), (2, 'a'), (3, 'a');",
            )
            .unwrap();
        let commit = GroupCommit::start(
            pool.clone(),
            1,
            crate::core::metrics::QueueGauge::new(MAX_QUEUED),
        );
        let mv = |id: i64, old: &'static str| {
            commit.run(move |c| {
                append(c, Move(id, old, "b"), write_moves)?;
                Ok(id)
            })
        };
        let (_, first, missed, last) = futures_util::join!(
            commit.run(|_c| {
                std::thread::sleep(Duration::from_millis(300));
                Ok(0_i64)
            }),
            mv(1, "a"),
            mv(2, "x"),
            mv(3, "a"),
        );
        assert_eq!(first.unwrap(), 1);
        let e = missed.unwrap_err();
        assert_eq!(e.status(), actix_web::http::StatusCode::CONFLICT);
        assert_eq!(e.detail(), "g changed meanwhile");
        assert_eq!(last.unwrap(), 3);
        let rows: Vec<Status> = match &mut *pool.get().unwrap() {
            DbConn::Sqlite(c) => {
                diesel::RunQueryDsl::load(diesel::sql_query("SELECT status FROM g ORDER BY id"), c)
            }
            DbConn::Pg(c) => {
                diesel::RunQueryDsl::load(diesel::sql_query("SELECT status FROM g ORDER BY id"), c)
            }
        }
        .unwrap();
        let got: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
        assert_eq!(got, ["b", "a", "b"]);
    }

    #[actix_web::test]
    async fn a_missed_guard_fails_only_its_own_job_on_sqlite() {
        let dir = std::env::temp_dir().join(format!(
            "tandem-guards-{}-{}",
            std::process::id(),
            crate::core::ids::now_ms()
        ));
        let url = DatabaseUrl::Sqlite(dir.join("t.db").to_string_lossy().into_owned());
        let pool = crate::storage::open_pool(&url, 2, SqliteSync::Full).unwrap();
        a_missed_guard_fails_only_its_own_job(pool).await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[actix_web::test]
    async fn a_missed_guard_fails_only_its_own_job_on_postgres() {
        let Some(db) = crate::storage::test_pg::scratch("guards") else {
            return;
        };
        let url = DatabaseUrl::Postgres(db.url.clone());
        let pool = crate::storage::open_pool(&url, 2, SqliteSync::Full).unwrap();
        a_missed_guard_fails_only_its_own_job(pool).await;
    }
}
