//! Group commit for small write transactions from many actors.
//!
//! ```text
//! order / rebate actors, notifier, relay ──job──► Collector (async) ──batch──► Committer (one thread)
//!        ▲                                            collects while a        BEGIN
//!        └──────────── result, after COMMIT ◄──────── flush is running        SAVEPOINT job 1 .. RELEASE
//!                                                                            SAVEPOINT job 2 .. ROLLBACK TO (its error only)
//!                                                                            ...
//!                                                                            COMMIT (one fsync for the batch)
//! ```
//!
//! A batch first runs with no savepoints at all: each savepoint costs two
//! statements parsed by `sqlite3_exec` and, on SQLite, a sub-journal copy of
//! every page its job touches. Should any job fail (or a nested transaction
//! inside one, see `db::write_transaction`), that attempt is rolled back whole
//! and the batch runs again with a savepoint per job, so a failed job is
//! rolled back alone and the others still commit. Jobs are therefore `FnMut`
//! and must be re-runnable: all their effects are in the transaction.
//! Nobody hears back before the commit: durable before the reply. On SQLite
//! the committer takes the process's writer lock (see `db::write_lock`) for
//! the batch.

use std::any::Any;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, SyncArbiter, SyncContext,
    WrapFuture,
};
use diesel::Connection;
use tokio::sync::oneshot;

use super::{DbConn, Pool};
use crate::core::error::ApiError;

/// Most jobs in one transaction.
pub const MAX_BATCH: usize = 512;
/// Jobs waiting before new ones are refused with 503.
pub const MAX_QUEUED: usize = 16_384;
/// Longest a job may wait for its batch to start. A job that has not started
/// by then is answered 503 and never runs; one that started is always
/// awaited to its outcome (a commit or a rollback), never guessed.
pub const MAX_QUEUE_WAIT: Duration = Duration::from_secs(30);

type Output = Result<Box<dyn Any + Send>, ApiError>;
type JobFn = Box<dyn FnMut(&mut DbConn) -> Output + Send>;

struct Job {
    run: JobFn,
    reply: oneshot::Sender<Output>,
    /// Not started by then: refused, see [`MAX_QUEUE_WAIT`].
    start_by: Instant,
}

impl Message for Job {
    type Result = ();
}

/// Handle to the group-commit writer.
#[derive(Clone)]
pub struct GroupCommit {
    addr: Addr<Collector>,
    /// [`MAX_QUEUE_WAIT`], shorter in tests.
    max_queue_wait: Duration,
}

impl GroupCommit {
    /// `writers` committer threads, each with at most one batch in flight:
    /// 1 for SQLite (one writer anyway), more for PostgreSQL, where every
    /// statement is a network round trip and concurrent writers are fine
    /// (jobs of one order are serialized by its actor before they get here).
    pub fn start(
        pool: Pool,
        writers: usize,
        gauge: crate::core::metrics::QueueGauge,
    ) -> GroupCommit {
        let writers = writers.max(1);
        let committer = SyncArbiter::start(writers, move || Committer { pool: pool.clone() });
        GroupCommit {
            addr: Collector {
                committer,
                pending: Vec::new(),
                in_flight: 0,
                writers,
                jobs_in_flight: 0,
                gauge,
            }
            .start(),
            max_queue_wait: MAX_QUEUE_WAIT,
        }
    }

    /// Runs `f` in the next batch's transaction and resolves after that
    /// transaction committed. `f` may run twice (see the module docs): once
    /// in an attempt that is rolled back because another job failed, then
    /// again; only the committed run's result is returned.
    ///
    /// There is no timeout on the outcome: an error means the job's writes
    /// are not in the database, `Ok` that they are. A job that could not
    /// start within [`MAX_QUEUE_WAIT`] fails without running. Dropping the
    /// returned future does not cancel a job already queued: it runs and
    /// commits anyway, so a caller that must react to the outcome (release
    /// a reservation, push a frame) hands that work to the job's owner
    /// rather than to a future that may be dropped.
    pub async fn run<T, F>(&self, mut f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnMut(&mut DbConn) -> Result<T, ApiError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let run: JobFn = Box::new(move |c| f(c).map(|v| Box::new(v) as Box<dyn Any + Send>));
        let start_by = Instant::now() + self.max_queue_wait;
        self.addr
            .try_send(Job {
                run,
                reply: tx,
                start_by,
            })
            .map_err(|_| ApiError::unavailable("the database writer is busy; retry shortly"))?;
        // The committer answers every job it was given (its outcome, or 503
        // when it could not start in time); a dropped sender means the
        // committer thread died with the batch, whose transaction then never
        // committed.
        let out = rx
            .await
            .map_err(|_| ApiError::unavailable("the database writer stopped"))??;
        out.downcast::<T>()
            .map(|b| *b)
            .map_err(|_| ApiError::internal(anyhow::anyhow!("group commit returned another type")))
    }
}

struct Collector {
    committer: Addr<Committer>,
    pending: Vec<Job>,
    /// Batches being committed now (at most `writers`).
    in_flight: usize,
    writers: usize,
    /// Jobs in the batches being committed.
    jobs_in_flight: usize,
    gauge: crate::core::metrics::QueueGauge,
}

impl Actor for Collector {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAX_QUEUED);
    }
}

impl Handler<Job> for Collector {
    type Result = ();
    fn handle(&mut self, job: Job, ctx: &mut Self::Context) {
        if self.pending.len() >= MAX_QUEUED {
            let _ = job.reply.send(Err(ApiError::unavailable(
                "the database writer is busy; retry shortly",
            )));
            return;
        }
        self.pending.push(job);
        self.gauge.set(self.pending.len() + self.jobs_in_flight);
        if self.in_flight < self.writers {
            self.flush(ctx);
        }
    }
}

impl Collector {
    /// Answers the jobs that waited past their start deadline; they never run.
    fn refuse_expired(&mut self) {
        let now = Instant::now();
        if self.pending.first().is_none_or(|j| j.start_by > now) {
            return; // Oldest first: nothing has expired.
        }
        let (expired, waiting): (Vec<Job>, Vec<Job>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|j| j.start_by <= now);
        self.pending = waiting;
        for job in expired {
            let _ = job.reply.send(Err(ApiError::unavailable(
                "the database writer could not start this write in time; nothing was written",
            )));
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.pending.is_empty() || self.in_flight >= self.writers {
            return;
        }
        self.refuse_expired();
        if self.pending.is_empty() {
            return;
        }
        self.in_flight += 1;
        let take = self.pending.len().min(MAX_BATCH);
        self.jobs_in_flight += take;
        let n_jobs = take;
        let (runs, replies): (Vec<JobFn>, Vec<_>) =
            self.pending.drain(..take).map(|j| (j.run, j.reply)).unzip();
        ctx.spawn(
            self.committer
                .send(Batch(runs))
                .into_actor(self)
                .map(move |res, this, ctx| {
                    match res {
                        Ok(outputs) => {
                            for (reply, out) in replies.into_iter().zip(outputs) {
                                let _ = reply.send(out);
                            }
                        }
                        Err(e) => {
                            for reply in replies {
                                let _ = reply.send(Err(ApiError::unavailable_because(
                                    anyhow::anyhow!("committer: {e}"),
                                )));
                            }
                        }
                    }
                    this.in_flight -= 1;
                    this.jobs_in_flight -= n_jobs;
                    this.gauge.set(this.pending.len() + this.jobs_in_flight);
                    this.flush(ctx);
                }),
        );
    }
}

struct Batch(Vec<JobFn>);

impl Message for Batch {
    type Result = Vec<Output>;
}

struct Committer {
    pool: Pool,
}

impl Actor for Committer {
    type Context = SyncContext<Self>;
}

impl Handler<Batch> for Committer {
    type Result = Vec<Output>;

    fn handle(&mut self, batch: Batch, _: &mut Self::Context) -> Self::Result {
        let n = batch.0.len();
        let fail_all = |e: &ApiError| -> Vec<Output> {
            (0..n)
                .map(|_| {
                    Err(ApiError::unavailable(format!(
                        "the batch did not commit: {}",
                        e.detail()
                    )))
                })
                .collect()
        };
        let mut conn = match self.pool.get() {
            Ok(c) => c,
            Err(e) => {
                let e = ApiError::from(e);
                return fail_all(&e);
            }
        };
        let _writer = super::write_lock(&conn);
        let mut jobs = batch.0;
        match run_without_savepoints(&mut conn, &mut jobs) {
            Ok(Some(outputs)) => return outputs,
            // A job failed: that attempt was rolled back; run them carefully.
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, jobs = n, "group commit failed; every job in the batch is answered with 503");
                return fail_all(&ApiError::unavailable_because(e));
            }
        }
        let mut outputs: Vec<Output> = Vec::with_capacity(n);
        let appends = super::appends::Collect::open();
        let committed = super::write_transaction(
            &mut conn,
            |c| -> Result<(), diesel::result::Error> {
                for run in &mut jobs {
                    // A savepoint per job: its failure rolls back only its own writes.
                    let mut out: Option<Output> = None;
                    let sp = c.transaction(|sp| -> Result<(), diesel::result::Error> {
                        let mut r = run(sp);
                        // The job's own appended rows, inside its savepoint.
                        match &r {
                            Ok(_) => {
                                if let Err(e) = appends.flush(sp) {
                                    r = Err(ApiError::from(e));
                                }
                            }
                            Err(_) => appends.discard(),
                        }
                        let failed = r.is_err();
                        out = Some(r);
                        if failed {
                            Err(diesel::result::Error::RollbackTransaction)
                        } else {
                            Ok(())
                        }
                    });
                    match sp {
                        Ok(()) | Err(diesel::result::Error::RollbackTransaction) => {}
                        // The job returned Ok but one of its statements had
                        // failed (PostgreSQL refuses to release the savepoint
                        // of an aborted transaction). diesel rolled back to
                        // the savepoint, so only this job's writes are gone
                        // and the transaction goes on: the job failed.
                        Err(e) if super::is_aborted_transaction(&e) => {
                            tracing::error!(error = %e, "a group-commit job swallowed a failed statement");
                            out = Some(Err(ApiError::internal(e)));
                        }
                        // The savepoint itself failed: the transaction is unusable.
                        Err(e) => return Err(e),
                    }
                    outputs.push(out.unwrap_or_else(|| {
                        Err(ApiError::internal(anyhow::anyhow!("job did not run")))
                    }));
                }
                Ok(())
            },
        );
        match committed {
            Ok(()) => outputs,
            Err(e) => {
                tracing::error!(error = %e, jobs = n, "group commit failed; every job in the batch is answered with 503");
                let e = ApiError::unavailable_because(e);
                fail_all(&e)
            }
        }
    }
}

/// Why the savepoint-free attempt of a batch ended without committing.
enum Attempt {
    /// A job (or a transaction nested in one) failed: rolled back, retry.
    JobFailed,
    Db(diesel::result::Error),
}

impl From<diesel::result::Error> for Attempt {
    fn from(e: diesel::result::Error) -> Self {
        Attempt::Db(e)
    }
}

/// Runs every job in one transaction with no savepoints. `Ok(Some)`: all
/// succeeded and committed. `Ok(None)`: one failed, so the attempt stopped
/// there and was rolled back (on PostgreSQL the failed statement aborted the
/// transaction anyway). `Err`: the transaction itself failed.
fn run_without_savepoints(
    conn: &mut DbConn,
    jobs: &mut [JobFn],
) -> Result<Option<Vec<Output>>, diesel::result::Error> {
    let _elided = super::ElideSavepoints::enter();
    // The jobs' events and notifications go out as sets before the commit.
    let appends = super::appends::Collect::open();
    let mut outputs: Vec<Output> = Vec::with_capacity(jobs.len());
    let attempt = super::write_transaction(conn, |c| -> Result<(), Attempt> {
        for run in jobs.iter_mut() {
            let out = run(c);
            if out.is_err() || super::ElideSavepoints::nested_failed() {
                return Err(Attempt::JobFailed);
            }
            outputs.push(out);
        }
        // A refused set (a unique key, say) belongs to some job, unknown
        // which: the careful run, which writes each job's rows in its own
        // savepoint, finds it.
        appends.flush(c).map_err(|_| Attempt::JobFailed)
    });
    match attempt {
        Ok(()) => Ok(Some(outputs)),
        Err(Attempt::JobFailed) => Ok(None),
        // PostgreSQL refused the commit because a statement failed and some
        // job went on as if it had not (see `db::commit_pg_checked`): which
        // job is unknown, so rerun the batch with a savepoint per job.
        Err(Attempt::Db(e)) if super::is_aborted_transaction(&e) => {
            tracing::warn!(error = %e, "a job swallowed a failed statement; rerunning the batch with savepoints");
            Ok(None)
        }
        Err(Attempt::Db(e)) => Err(e),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use diesel::connection::SimpleConnection;
    use diesel::RunQueryDsl;

    use super::*;
    use crate::core::config::{DatabaseUrl, SqliteSync};

    fn insert(c: &mut DbConn, id: i64) -> Result<(), ApiError> {
        c.batch_execute(&format!("INSERT INTO t (id) VALUES ({id})"))?;
        Ok(())
    }

    /// A job that counts its runs and inserts `id`; `fail` makes it fail
    /// after the insert, `nested` adds a nested transaction that fails and
    /// whose failure the job survives.
    fn job(
        runs: &Arc<AtomicUsize>,
        id: i64,
        fail: bool,
        nested: Option<i64>,
    ) -> impl FnMut(&mut DbConn) -> Result<i64, ApiError> + Send + 'static {
        let runs = runs.clone();
        move |c| {
            runs.fetch_add(1, Ordering::SeqCst);
            insert(c, id)?;
            if let Some(inner) = nested {
                let r = crate::storage::transaction(c, |c| -> Result<(), ApiError> {
                    insert(c, inner)?;
                    Err(ApiError::invalid_input("nested failure"))
                });
                assert!(r.is_err());
            }
            if fail {
                return Err(ApiError::invalid_input("job failure"));
            }
            Ok(id)
        }
    }

    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }

    pub(crate) fn ids_in(pool: &Pool, table: &str) -> Vec<i64> {
        let q = format!("SELECT id FROM {table} ORDER BY id");
        let rows: Vec<Id> = match &mut *pool.get().unwrap() {
            DbConn::Sqlite(c) => diesel::sql_query(q).load(c),
            DbConn::Pg(c) => diesel::sql_query(q).load(c),
        }
        .unwrap();
        rows.into_iter().map(|r| r.id).collect()
    }

    fn sqlite_pool(name: &str) -> (Pool, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "tandem-group-{name}-{}-{}",
            std::process::id(),
            crate::core::ids::now_ms()
        ));
        let url = DatabaseUrl::Sqlite(dir.join("t.db").to_string_lossy().into_owned());
        let pool = crate::storage::open_pool(&url, 2, SqliteSync::Full).unwrap();
        pool.get()
            .unwrap()
            .batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .unwrap();
        (pool, dir)
    }

    /// Occupies the committer so that jobs started right after queue up and
    /// form one batch behind it.
    fn blocker(
        commit: &GroupCommit,
        ms: u64,
    ) -> impl std::future::Future<Output = Result<i64, ApiError>> + '_ {
        commit.run(move |_c| {
            std::thread::sleep(Duration::from_millis(ms));
            Ok(0_i64)
        })
    }

    /// Issue 21, item 2. On PostgreSQL a failed statement aborts the whole
    /// transaction, and `COMMIT` then quietly rolls back. A job that swallows
    /// such a failure must not make the batch look committed: the job that
    /// swallowed fails, the others are stored.
    #[actix_web::test]
    async fn a_swallowed_failure_on_postgres_never_passes_for_a_commit() {
        let Some(db) = crate::storage::test_pg::scratch("group") else {
            return;
        };
        let url = DatabaseUrl::Postgres(db.url.clone());
        let pool = crate::storage::open_pool(&url, 2, SqliteSync::Full).unwrap();
        pool.get()
            .unwrap()
            .batch_execute("CREATE TABLE t (id BIGINT PRIMARY KEY)")
            .unwrap();
        let commit = GroupCommit::start(
            pool.clone(),
            1,
            crate::core::metrics::QueueGauge::new(MAX_QUEUED),
        );
        let swallow = |c: &mut DbConn| -> Result<i64, ApiError> {
            insert(c, 2)?;
            // Fails (job 1 inserted id 1); the error is dropped on the floor.
            let _ = insert(c, 1);
            Ok(2)
        };
        let (_, first, second) = futures_util::join!(
            blocker(&commit, 300),
            commit.run(|c| insert(c, 1).map(|()| 1_i64)),
            commit.run(swallow),
        );
        let stored = ids_in(&pool, "t");
        drop(pool);
        drop(db);
        assert_eq!(first.unwrap(), 1);
        assert!(second.is_err(), "the job that swallowed a failure failed");
        assert_eq!(stored, vec![1]);
    }

    /// Issue 21, item 5. A job that could not start in time is refused and
    /// never runs; a job that started is awaited to its outcome however long
    /// it takes, never answered as failed while it goes on to commit.
    #[actix_web::test]
    async fn jobs_are_refused_only_before_they_start() {
        let (pool, dir) = sqlite_pool("deadline");
        let mut commit = GroupCommit::start(
            pool.clone(),
            1,
            crate::core::metrics::QueueGauge::new(MAX_QUEUED),
        );
        commit.max_queue_wait = Duration::from_millis(200);
        let late = Arc::new(AtomicUsize::new(0));
        let late_runs = late.clone();
        let (_, refused, slow) = futures_util::join!(
            blocker(&commit, 500),
            commit.run(move |c| {
                late_runs.fetch_add(1, Ordering::SeqCst);
                insert(c, 1).map(|()| 1_i64)
            }),
            async {
                // Starts once the blocker is done, then takes longer than the
                // queue wait: still answered with its outcome.
                tokio::time::sleep(Duration::from_millis(600)).await;
                commit
                    .run(|c| {
                        std::thread::sleep(Duration::from_millis(400));
                        insert(c, 2).map(|()| 2_i64)
                    })
                    .await
            },
        );
        assert!(refused.is_err());
        assert_eq!(late.load(Ordering::SeqCst), 0, "a refused job never runs");
        assert_eq!(slow.unwrap(), 2);
        assert_eq!(ids_in(&pool, "t"), vec![2]);
        drop(pool);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[actix_web::test]
    async fn a_failed_job_rolls_back_alone_after_the_batch_runs_again_with_savepoints() {
        let dir = std::env::temp_dir().join(format!("tandem-group-{}", crate::core::ids::now_ms()));
        let url = DatabaseUrl::Sqlite(dir.join("t.db").to_string_lossy().into_owned());
        let pool = crate::storage::open_pool(&url, 2, SqliteSync::Full).unwrap();
        pool.get()
            .unwrap()
            .batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .unwrap();
        let commit = GroupCommit::start(
            pool.clone(),
            1,
            crate::core::metrics::QueueGauge::new(MAX_QUEUED),
        );
        // Occupies the committer so that the jobs below queue up and form
        // one batch behind it.
        let blocker = commit.run(|_c| {
            std::thread::sleep(Duration::from_millis(300));
            Ok(0_i64)
        });
        let counters: Vec<Arc<AtomicUsize>> = (0..5).map(|_| Arc::default()).collect();
        let (a, b, c, d, e) = futures_util::join!(
            blocker,
            commit.run(job(&counters[0], 1, false, None)),
            commit.run(job(&counters[1], 2, true, None)),
            commit.run(job(&counters[2], 3, false, Some(4))),
            commit.run(job(&counters[3], 5, false, None)),
        );
        assert_eq!(a.unwrap(), 0);
        assert_eq!(b.unwrap(), 1);
        assert!(c.is_err());
        assert_eq!(d.unwrap(), 3);
        assert_eq!(e.unwrap(), 5);
        // The first job ran in the savepoint-free attempt, which stopped at
        // the failing job, and again in the careful run.
        assert_eq!(counters[0].load(Ordering::SeqCst), 2);
        assert_eq!(counters[1].load(Ordering::SeqCst), 2);
        assert_eq!(counters[3].load(Ordering::SeqCst), 1);

        // A batch where only a nested transaction fails also runs again.
        let f = commit.run(job(&counters[4], 6, false, Some(7))).await;
        assert_eq!(f.unwrap(), 6);
        assert_eq!(counters[4].load(Ordering::SeqCst), 2);

        assert_eq!(ids_in(&pool, "t"), vec![1, 3, 5, 6]);
        drop(pool);
        let _ = std::fs::remove_dir_all(dir);
    }
}
