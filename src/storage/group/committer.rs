//! The committer thread: runs one batch as one transaction, first without
//! savepoints, then (if a job failed) carefully, a savepoint per job.

use actix::{Actor, Handler, Message, SyncContext};
use diesel::Connection;

use super::{JobFn, Output};
use crate::core::error::ApiError;
use crate::storage::held::{Fresh, HeldConnection};
use crate::storage::DbConn;

pub(super) struct Batch(pub(super) Vec<JobFn>);

impl Message for Batch {
    type Result = Vec<Output>;
}

pub(super) struct Committer {
    pub(super) conn: HeldConnection,
}

impl Actor for Committer {
    type Context = SyncContext<Self>;
}

impl Handler<Batch> for Committer {
    type Result = Vec<Output>;

    fn handle(&mut self, batch: Batch, _: &mut Self::Context) -> Self::Result {
        let n = batch.0.len();
        let mut jobs = batch.0;
        loop {
            let (mut conn, fresh) = match self.conn.get() {
                Ok(c) => c,
                Err(e) => return fail_all(n, &ApiError::from(e)),
            };
            match run_batch(&mut conn, &mut jobs) {
                Ok(outputs) => {
                    self.conn.keep(conn);
                    return outputs;
                }
                // A kept connection that died while idle (the database
                // restarted) fails at BEGIN, before any job ran: once more
                // on a connection the pool tests. It goes back to the pool,
                // which drops it if diesel marked it broken.
                Err(Failed::NotBegun(e)) if fresh == Fresh::Kept => {
                    tracing::warn!(error = %e, "a committer's kept connection failed BEGIN; running the batch on a pooled one");
                }
                // The transaction itself failed: its connection goes back to
                // the pool (dropped there if broken) instead of being kept.
                Err(Failed::NotBegun(e) | Failed::Transaction(e)) => {
                    tracing::error!(error = %e, jobs = n, "group commit failed; every job in the batch is answered with 503");
                    return fail_all(n, &ApiError::unavailable_because(e));
                }
            }
        }
    }
}

/// Why a batch did not commit.
enum Failed {
    /// Its `BEGIN` failed: none of its statements ran.
    NotBegun(diesel::result::Error),
    /// Its transaction failed after it began, and was rolled back.
    Transaction(diesel::result::Error),
}

fn fail_all(n: usize, e: &ApiError) -> Vec<Output> {
    (0..n)
        .map(|_| {
            Err(ApiError::unavailable(format!(
                "the batch did not commit: {}",
                e.detail()
            )))
        })
        .collect()
}

/// One batch as one transaction: first without savepoints, then (if a job
/// failed) a savepoint per job. `Err`: the transaction failed as a whole.
fn run_batch(conn: &mut DbConn, jobs: &mut [JobFn]) -> Result<Vec<Output>, Failed> {
    let _writer = crate::storage::write_lock(conn);
    if let Some(outputs) = run_without_savepoints(conn, jobs)? {
        return Ok(outputs);
    }
    // A job failed: that attempt was rolled back; run them carefully.
    let mut outputs: Vec<Output> = Vec::with_capacity(jobs.len());
    let appends = crate::storage::appends::Collect::open();
    crate::storage::write_transaction(conn, |c| -> Result<(), diesel::result::Error> {
        for run in jobs.iter_mut() {
            outputs.push(run_in_savepoint(c, run, &appends)?);
        }
        Ok(())
    })
    .map_err(Failed::Transaction)?;
    Ok(outputs)
}

/// One job in its own savepoint: its failure rolls back only its own
/// writes. `Err`: the savepoint itself failed and the transaction is
/// unusable.
fn run_in_savepoint(
    c: &mut DbConn,
    run: &mut JobFn,
    appends: &crate::storage::appends::Collect,
) -> Result<Output, diesel::result::Error> {
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
        // The job returned Ok but one of its statements had failed
        // (PostgreSQL refuses to release the savepoint of an aborted
        // transaction). diesel rolled back to the savepoint, so only this
        // job's writes are gone and the transaction goes on: the job failed.
        Err(e) if crate::storage::is_aborted_transaction(&e) => {
            tracing::error!(error = %e, "a group-commit job swallowed a failed statement");
            out = Some(Err(ApiError::internal(e)));
        }
        // The savepoint itself failed: the transaction is unusable.
        Err(e) => return Err(e),
    }
    Ok(out.unwrap_or_else(|| Err(ApiError::internal(anyhow::anyhow!("job did not run")))))
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
) -> Result<Option<Vec<Output>>, Failed> {
    let _elided = crate::storage::ElideSavepoints::enter();
    // The jobs' events and notifications go out as sets before the commit.
    let appends = crate::storage::appends::Collect::open();
    let mut outputs: Vec<Output> = Vec::with_capacity(jobs.len());
    let mut began = false;
    let attempt = crate::storage::write_transaction(conn, |c| -> Result<(), Attempt> {
        began = true;
        for run in jobs.iter_mut() {
            let out = run(c);
            if out.is_err() || crate::storage::ElideSavepoints::nested_failed() {
                return Err(Attempt::JobFailed);
            }
            outputs.push(out);
        }
        // A refused set (a unique key, say) belongs to some job, unknown
        // which: the careful run, which writes each job's rows in its own
        // savepoint, finds it.
        appends.flush(c).map_err(|e| {
            // Counted if it was a conflict (a deadlock would show here).
            let _ = crate::storage::is_transient(&e);
            Attempt::JobFailed
        })
    });
    match attempt {
        Ok(()) => Ok(Some(outputs)),
        Err(Attempt::JobFailed) => Ok(None),
        // PostgreSQL refused the commit because a statement failed and some
        // job went on as if it had not (see `db::commit_pg_checked`): which
        // job is unknown, so rerun the batch with a savepoint per job.
        Err(Attempt::Db(e)) if crate::storage::is_aborted_transaction(&e) => {
            tracing::warn!(error = %e, "a job swallowed a failed statement; rerunning the batch with savepoints");
            Ok(None)
        }
        Err(Attempt::Db(e)) if !began => Err(Failed::NotBegun(e)),
        Err(Attempt::Db(e)) => Err(Failed::Transaction(e)),
    }
}
