//! Group commit for small write transactions from many actors.
//!
//! ```text
//! order / rebate actors, notifier, relay ──job──► Collector (async) ──batch──► Committer (one thread per partition)
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

//!
//! **Partitions.** On PostgreSQL several committers run at once, one thread
//! per partition, each with at most one batch in flight. A job names the key
//! it writes for ([`GroupCommit::run_for`]: an order id for an order's and its
//! rebates' jobs, an event id for a consumer's), and every job of one key goes
//! to one partition, so one key's writes never run in two transactions at
//! once. Rows that jobs of any partition change (stock, merchants' counters,
//! wallets) are written only as sets at a batch's end, in the one global lock
//! order of `appends::LockRank`: committers may wait for each other but never
//! in a cycle. SQLite has one writer anyway: one partition.

use std::any::Any;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, SyncArbiter, WrapFuture,
};
use tokio::sync::oneshot;

use super::{DbConn, Pool};
use crate::core::error::ApiError;

/// Most jobs in one transaction.
pub const MAX_BATCH: usize = 512;
/// Jobs waiting (in all partitions) before new ones are refused with 503.
pub const MAX_QUEUED: usize = 16_384;
/// Most committer threads (partitions).
pub const MAX_PARTITIONS: usize = 32;
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
    /// The key the job writes for; `None`: any partition will do.
    key: Option<i64>,
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
    /// `partitions` committer threads (at most [`MAX_PARTITIONS`]), each with
    /// at most one batch in flight: 1 for SQLite (one writer anyway), more
    /// for PostgreSQL, where every statement is a network round trip.
    pub fn start(
        pool: Pool,
        partitions: usize,
        gauge: crate::core::metrics::QueueGauge,
    ) -> GroupCommit {
        let partitions = (0..partitions.clamp(1, MAX_PARTITIONS))
            .map(|_| {
                let pool = pool.clone();
                Partition {
                    committer: SyncArbiter::start(1, move || Committer {
                        conn: crate::storage::held::HeldConnection::new(pool.clone()),
                    }),
                    pending: Vec::new(),
                    in_flight: 0,
                }
            })
            .collect();
        // The capacity is set before the address exists: set in `started`, a
        // burst sent right after the start met actix's default of 16 and was
        // refused as "busy".
        let addr = Collector::create(|ctx| {
            ctx.set_mailbox_capacity(MAX_QUEUED);
            Collector {
                partitions,
                queued: 0,
                gauge,
            }
        });
        GroupCommit {
            addr,
            max_queue_wait: MAX_QUEUE_WAIT,
        }
    }

    /// Runs `f` in a batch of any partition: for jobs whose rows no other
    /// job writes concurrently (the relay's marks, say). See [`Self::run_for`].
    pub async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnMut(&mut DbConn) -> Result<T, ApiError> + Send + 'static,
    {
        self.submit(None, f).await
    }

    /// Runs `f` in the next batch of `key`'s partition and resolves after
    /// that transaction committed. Jobs of one key run one batch after
    /// another, never in two transactions at once. `f` may run twice (see
    /// the module docs): once in an attempt that is rolled back because
    /// another job failed, then again; only the committed run's result is
    /// returned.
    ///
    /// There is no timeout on the outcome: an error means the job's writes
    /// are not in the database, `Ok` that they are. A job that could not
    /// start within [`MAX_QUEUE_WAIT`] fails without running. Dropping the
    /// returned future does not cancel a job already queued: it runs and
    /// commits anyway, so a caller that must react to the outcome (release
    /// a reservation, push a frame) hands that work to the job's owner
    /// rather than to a future that may be dropped.
    pub async fn run_for<T, F>(&self, key: i64, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnMut(&mut DbConn) -> Result<T, ApiError> + Send + 'static,
    {
        self.submit(Some(key), f).await
    }

    async fn submit<T, F>(&self, key: Option<i64>, mut f: F) -> Result<T, ApiError>
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
                key,
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

/// One committer thread and the jobs waiting for it.
struct Partition {
    committer: Addr<Committer>,
    pending: Vec<Job>,
    /// Jobs in the batch being committed now (0: none; at most one batch).
    in_flight: usize,
}

struct Collector {
    partitions: Vec<Partition>,
    /// Jobs pending or in flight, in all partitions.
    queued: usize,
    gauge: crate::core::metrics::QueueGauge,
}

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<Job> for Collector {
    type Result = ();
    fn handle(&mut self, job: Job, ctx: &mut Self::Context) {
        if self.queued >= MAX_QUEUED {
            let _ = job.reply.send(Err(ApiError::unavailable(
                "the database writer is busy; retry shortly",
            )));
            return;
        }
        let at = self.partition_of(job.key);
        self.partitions[at].pending.push(job);
        self.queued += 1;
        self.gauge.set(self.queued);
        if self.partitions[at].in_flight == 0 {
            self.flush(at, ctx);
        }
    }
}

impl Collector {
    /// A key's partition (`ids::shard_of`); a keyless job goes where the
    /// least waits.
    fn partition_of(&self, key: Option<i64>) -> usize {
        let n = self.partitions.len();
        match key {
            Some(k) => crate::core::ids::shard_of(k, n),
            None => (0..n)
                .min_by_key(|&i| {
                    let p = &self.partitions[i];
                    p.pending.len() + p.in_flight
                })
                .unwrap_or(0),
        }
    }

    /// Answers the jobs of partition `at` that waited past their start
    /// deadline; they never run.
    fn refuse_expired(&mut self, at: usize) {
        let now = Instant::now();
        let p = &mut self.partitions[at];
        if p.pending.first().is_none_or(|j| j.start_by > now) {
            return; // Oldest first: nothing has expired.
        }
        let (expired, waiting): (Vec<Job>, Vec<Job>) = std::mem::take(&mut p.pending)
            .into_iter()
            .partition(|j| j.start_by <= now);
        p.pending = waiting;
        self.queued -= expired.len();
        for job in expired {
            let _ = job.reply.send(Err(ApiError::unavailable(
                "the database writer could not start this write in time; nothing was written",
            )));
        }
    }

    /// Starts partition `at`'s next batch unless one is in flight.
    fn flush(&mut self, at: usize, ctx: &mut Context<Self>) {
        if self.partitions[at].in_flight > 0 {
            return;
        }
        self.refuse_expired(at);
        let p = &mut self.partitions[at];
        if p.pending.is_empty() {
            self.gauge.set(self.queued);
            return;
        }
        let take = p.pending.len().min(MAX_BATCH);
        p.in_flight = take;
        let (runs, replies): (Vec<JobFn>, Vec<_>) =
            p.pending.drain(..take).map(|j| (j.run, j.reply)).unzip();
        ctx.spawn(
            p.committer
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
                    this.queued -= take;
                    this.partitions[at].in_flight = 0;
                    this.gauge.set(this.queued);
                    this.flush(at, ctx);
                }),
        );
    }
}

mod committer;
#[cfg(test)]
pub(crate) mod tests;

use committer::{Batch, Committer};
