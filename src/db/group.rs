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
//! Each job runs inside its own savepoint, so a job that fails is rolled back
//! alone and the others still commit. Nobody hears back before the commit:
//! durable before the reply. On SQLite the committer takes the process's
//! writer lock (see `db::write_lock`) for the batch.

use std::any::Any;
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, SyncArbiter, SyncContext,
    WrapFuture,
};
use diesel::Connection;
use tokio::sync::oneshot;

use super::{DbConn, Pool};
use crate::error::ApiError;

/// Most jobs in one transaction.
pub const MAX_BATCH: usize = 512;
/// Jobs waiting before new ones are refused with 503.
pub const MAX_QUEUED: usize = 16_384;

type Output = Result<Box<dyn Any + Send>, ApiError>;
type JobFn = Box<dyn FnOnce(&mut DbConn) -> Output + Send>;

struct Job {
    run: JobFn,
    reply: oneshot::Sender<Output>,
}

impl Message for Job {
    type Result = ();
}

/// Handle to the group-commit writer.
#[derive(Clone)]
pub struct GroupCommit {
    addr: Addr<Collector>,
}

impl GroupCommit {
    /// `writers` committer threads, each with at most one batch in flight:
    /// 1 for SQLite (one writer anyway), more for PostgreSQL, where every
    /// statement is a network round trip and concurrent writers are fine
    /// (jobs of one order are serialized by its actor before they get here).
    pub fn start(
        pool: Pool,
        writers: usize,
        gauge: crate::ops::metrics::QueueGauge,
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
        }
    }

    /// Runs `f` in the next batch's transaction (in its own savepoint) and
    /// resolves after that transaction committed.
    pub async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, ApiError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let run: JobFn = Box::new(move |c| f(c).map(|v| Box::new(v) as Box<dyn Any + Send>));
        self.addr
            .try_send(Job { run, reply: tx })
            .map_err(|_| ApiError::unavailable("the database writer is busy; retry shortly"))?;
        let out = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .map_err(|_| ApiError::unavailable("the database writer did not answer in time"))?
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
    gauge: crate::ops::metrics::QueueGauge,
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
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.pending.is_empty() || self.in_flight >= self.writers {
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
        let mut outputs: Vec<Output> = Vec::with_capacity(n);
        let committed =
            super::write_transaction(&mut conn, |c| -> Result<(), diesel::result::Error> {
                for run in batch.0 {
                    // A savepoint per job: its failure rolls back only its own writes.
                    let mut out: Option<Output> = None;
                    let sp = c.transaction(|sp| -> Result<(), diesel::result::Error> {
                        let r = run(sp);
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
                        // The savepoint itself failed: the transaction is unusable.
                        Err(e) => return Err(e),
                    }
                    outputs.push(out.unwrap_or_else(|| {
                        Err(ApiError::internal(anyhow::anyhow!("job did not run")))
                    }));
                }
                Ok(())
            });
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
