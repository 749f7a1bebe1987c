//! A writer thread's own connection, kept between its batches.
//!
//! The pool tests every connection it hands out (`SELECT 1`, r2d2's
//! `test_on_check_out`): on PostgreSQL a round trip and a statement parsed
//! and planned, before every batch of every committer and chat writer (a
//! third of a statement per order in `orders`). A writer that keeps the
//! connection of its last batch needs no test while batches follow each
//! other: the last batch just used it. It gives the connection back after a
//! batch that failed as a whole (the connection may be what failed; the pool
//! then drops it if diesel marked it broken), and after an idle spell
//! ([`IDLE_MAX`]), so a connection the server closed while idle is tested by
//! the pool before it is used again.
//!
//! Each writer thread thus keeps one of the pool's connections while busy:
//! the pool must be larger than the writers (`server::app` checks it).

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
    pub fn get(&mut self) -> Result<PooledConn, r2d2::Error> {
        match self.held.take() {
            Some((conn, ended)) if ended.elapsed() <= IDLE_MAX => Ok(conn),
            // An idle one goes back first: the pool may hand it out again,
            // tested.
            _ => self.pool.get(),
        }
    }

    /// Keeps `conn` for the next batch: only after a batch that committed
    /// or rolled back as planned (some of its jobs failed, not the
    /// transaction). Otherwise drop it instead, back to the pool.
    pub fn keep(&mut self, conn: PooledConn) {
        self.held = Some((conn, Instant::now()));
    }
}
