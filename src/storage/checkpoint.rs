//! SQLite WAL checkpoints off the writers' threads.
//!
//! By default SQLite checkpoints inside whichever commit pushes the WAL past
//! 1,000 pages, so every so often one group commit or chat batch also copies
//! the WAL into the database file and fsyncs it: 10-16 % of the committing
//! threads' time in the `orders` and `chat-direct` profiles, and a latency
//! spike for every caller in that batch. Here a sync actor of its own runs a
//! PASSIVE checkpoint (which never blocks writers or readers) every
//! [`INTERVAL`]; the connections keep an automatic checkpoint only as a
//! backstop at [`AUTOCHECKPOINT_PAGES`], should this actor fall behind.

use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, SyncArbiter, SyncContext,
    WrapFuture,
};
use diesel::sql_types::BigInt;
use diesel::RunQueryDsl;

use super::{DbConn, Pool};

/// How often the WAL is checkpointed.
pub const INTERVAL: Duration = Duration::from_millis(100);
/// The connections' own automatic checkpoint (pages), a backstop only.
pub const AUTOCHECKPOINT_PAGES: u32 = 20_000;

/// Starts the checkpointer (SQLite only; PostgreSQL checkpoints itself).
pub fn start(pool: Pool) {
    let worker = SyncArbiter::start(1, move || Checkpointer { pool: pool.clone() });
    Ticker {
        worker,
        busy: false,
    }
    .start();
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Frames in the WAL.
    pub wal_frames: i64,
    /// Frames of those already copied into the database file.
    pub checkpointed_frames: i64,
}

/// Runs one PASSIVE checkpoint on `conn` (a no-op answer on PostgreSQL).
pub fn checkpoint(conn: &mut DbConn) -> diesel::QueryResult<Progress> {
    // The pragma's first column (`busy`) is not needed: a PASSIVE checkpoint
    // that could not finish shows as `checkpointed < log`.
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        log: i64,
        #[diesel(sql_type = BigInt)]
        checkpointed: i64,
    }
    let DbConn::Sqlite(c) = conn else {
        return Ok(Progress {
            wal_frames: 0,
            checkpointed_frames: 0,
        });
    };
    let row: Row = diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result(c)?;
    Ok(Progress {
        wal_frames: row.log,
        checkpointed_frames: row.checkpointed,
    })
}

struct Ticker {
    worker: Addr<Checkpointer>,
    /// A checkpoint is running: the next tick is skipped, never queued.
    busy: bool,
}

impl Actor for Ticker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(INTERVAL, |this, ctx| {
            if this.busy {
                return;
            }
            this.busy = true;
            ctx.spawn(
                this.worker
                    .send(Checkpoint)
                    .into_actor(this)
                    .map(|res, this, _| {
                        this.busy = false;
                        if let Ok(Err(e)) = res {
                            tracing::warn!(error = %e, "WAL checkpoint failed");
                        }
                    }),
            );
        });
    }
}

struct Checkpoint;

impl Message for Checkpoint {
    type Result = Result<Progress, anyhow::Error>;
}

struct Checkpointer {
    pool: Pool,
}

impl Actor for Checkpointer {
    type Context = SyncContext<Self>;
}

impl Handler<Checkpoint> for Checkpointer {
    type Result = Result<Progress, anyhow::Error>;

    fn handle(&mut self, _: Checkpoint, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.pool.get()?;
        Ok(checkpoint(&mut conn)?)
    }
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;

    use super::*;
    use crate::core::config::{DatabaseUrl, SqliteSync};

    #[test]
    fn a_passive_checkpoint_copies_the_whole_wal_when_nobody_reads() {
        let dir = std::env::temp_dir().join(format!("tandem-ckpt-{}", crate::core::ids::now_ms()));
        let path = dir.join("t.db");
        let url = DatabaseUrl::Sqlite(path.to_string_lossy().into_owned());
        let pool = crate::storage::open_pool(&url, 2, SqliteSync::Full).expect("pool");
        let mut conn = pool.get().expect("conn");
        conn.batch_execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL); \
             INSERT INTO t (v) VALUES ('a'), ('b'), ('c');",
        )
        .expect("write");
        let first = checkpoint(&mut conn).expect("checkpoint");
        assert!(first.wal_frames > 0, "{first:?}");
        assert_eq!(first.checkpointed_frames, first.wal_frames);
        // Nothing new since: the next checkpoint has nothing left to copy.
        let again = checkpoint(&mut conn).expect("checkpoint");
        assert_eq!(again.checkpointed_frames, again.wal_frames);
        drop(conn);
        let _ = std::fs::remove_dir_all(dir);
    }
}
