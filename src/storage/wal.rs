//! A new SQLite file is switched to WAL once, on one connection, before a
//! pool opens several. Switching takes an exclusive lock that SQLite does not
//! wait for in its busy handler, so two new connections switching a new file
//! at once raced: the loser failed with "database is locked" and r2d2 logged
//! an ERROR before retrying it, on about one first start in four. WAL is kept
//! in the file, so later connections find it already set.

use diesel::connection::SimpleConnection;
use diesel::Connection;

pub fn switch_to_wal(path: &str) -> anyhow::Result<()> {
    let mut c = diesel::SqliteConnection::establish(path)
        .map_err(|e| anyhow::anyhow!("opening {path}: {e}"))?;
    c.batch_execute("PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL;")
        .map_err(|e| anyhow::anyhow!("switching {path} to WAL: {e}"))?;
    Ok(())
}
