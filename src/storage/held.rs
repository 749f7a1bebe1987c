//! A writer thread's own connection, kept between its batches.
//!
//! The pool tests every connection it hands out (`SELECT 1`, r2d2's
//! `test_on_check_out`): on PostgreSQL a round trip and a statement parsed
//! and planned, before every batch of every committer and chat writer (a
//! third of a statement per order in `orders`). A writer that keeps the
//! connection of its last batch needs no test while batches follow each
//! other: the last batch just used it. It gives the connection back after a
//! batch that failed (the connection may be what failed; the pool drops it
//! if diesel marked it broken), and at its next batch after an idle spell
//! ([`IDLE_MAX`]), taking a tested one from the pool instead.
//!
//! A kept connection that died since its last batch (the database
//! restarted) fails that batch's `BEGIN`, before any of its statements:
//! the writers then run the batch once more on a connection from the pool
//! ([`Fresh::Kept`] tells them which kind they hold).
//!
//! Each writer thread thus holds one of the pool's connections from its
//! first batch on (an idle writer gives it back only at its next batch):
//! the pool must be larger than the writers (`server::app` checks it), and
//! the pool's in-use gauge never falls below the writers that have run.

use std::time::{Duration, Instant};

use super::{Pool, PooledConn};

/// Longest a kept connection may sit unused and still be used untested.
pub const IDLE_MAX: Duration = Duration::from_secs(1);

pub struct HeldConnection {
    pool: Pool,
    /// The last batch's connection and when that batch ended.
    held: Option<(PooledConn, Instant)>,
}

impl HeldConnection {
    pub fn new(pool: Pool) -> HeldConnection {
        HeldConnection { pool, held: None }
    }

    /// The kept connection if the last batch ended within [`IDLE_MAX`],
    /// else one from the pool (tested on check-out).
    pub fn get(&mut self) -> Result<(PooledConn, Fresh), r2d2::Error> {
        if let Some((conn, ended)) = self.held.take() {
            if ended.elapsed() <= IDLE_MAX {
                return Ok((conn, Fresh::Kept));
            }
            // Back to the pool before taking one: a writer never holds two.
            drop(conn);
        }
        Ok((self.pool.get()?, Fresh::Tested))
    }

    /// Keeps `conn` for the next batch: call it only after a batch that
    /// committed. A connection still in a transaction, or one diesel marked
    /// broken, goes back to the pool instead (which drops a broken one).
    pub fn keep(&mut self, mut conn: PooledConn) {
        let broken = match &mut *conn {
            super::DbConn::Pg(c) => diesel::r2d2::R2D2Connection::is_broken(c),
            super::DbConn::Sqlite(_) => false,
        };
        if broken || super::in_transaction(&mut conn) {
            return;
        }
        self.held = Some((conn, Instant::now()));
    }
}

/// Whether a writer's connection was tested by the pool just now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fresh {
    /// Kept from the writer's last batch, untested since.
    Kept,
    /// Just checked out of the pool, which tested it.
    Tested,
}
