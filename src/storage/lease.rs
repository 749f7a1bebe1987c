//! PostgreSQL session advisory locks on one dedicated connection: how nodes
//! of a cluster claim their node id and the one leadership of the singular
//! jobs (see `runtime::cluster`).
//!
//! A session lock belongs to the connection that took it: when the node dies
//! (even by `kill -9`) the kernel closes its socket, PostgreSQL ends the
//! backend and every lock it held is free at once. No lease table, no
//! clock: the database is the one judge.

use anyhow::Context as _;
use diesel::sql_types::{Bool, Integer};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};

/// The lock space of one cluster: a hash of its namespace, so clusters that
/// share a database server (tests, staging) never contend.
pub fn namespace_key(namespace: &str) -> i32 {
    // FNV-1a: stable across builds and platforms (std's hasher is not).
    let mut h: u32 = 0x811c_9dc5;
    for b in namespace.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    i32::from_ne_bytes(h.to_ne_bytes())
}

/// One connection that holds advisory locks for as long as it lives.
pub struct LockConn {
    conn: PgConnection,
    space: i32,
}

#[derive(QueryableByName)]
struct Taken {
    #[diesel(sql_type = Bool)]
    taken: bool,
}

impl LockConn {
    pub fn open(url: &str, namespace: &str) -> anyhow::Result<LockConn> {
        let conn = PgConnection::establish(url).context("connecting to PostgreSQL for locks")?;
        Ok(LockConn {
            conn,
            space: namespace_key(namespace),
        })
    }

    /// Takes lock `key` of this cluster if nobody holds it; true if this
    /// connection holds it now (taking a lock it holds already is a no-op
    /// that stacks; callers take each key once).
    pub fn try_take(&mut self, key: i32) -> anyhow::Result<bool> {
        let row: Taken = diesel::sql_query("SELECT pg_try_advisory_lock($1, $2) AS taken")
            .bind::<Integer, _>(self.space)
            .bind::<Integer, _>(key)
            .get_result(&mut self.conn)?;
        Ok(row.taken)
    }

    /// Lets go of lock `key` (held by this connection).
    pub fn release(&mut self, key: i32) -> anyhow::Result<()> {
        diesel::sql_query("SELECT pg_advisory_unlock($1, $2) AS taken")
            .bind::<Integer, _>(self.space)
            .bind::<Integer, _>(key)
            .get_result::<Taken>(&mut self.conn)?;
        Ok(())
    }

    /// Is the connection (and so every lock on it) still alive?
    pub fn alive(&mut self) -> bool {
        diesel::sql_query("SELECT true AS taken")
            .get_result::<Taken>(&mut self.conn)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::namespace_key;

    #[test]
    fn namespace_keys_are_stable_and_distinct() {
        assert_eq!(namespace_key("tandem"), namespace_key("tandem"));
        assert_ne!(namespace_key("tandem"), namespace_key("tandem2"));
        // FNV-1a of the empty string is its offset basis.
        assert_eq!(
            namespace_key(""),
            i32::from_ne_bytes(0x811c_9dc5_u32.to_ne_bytes())
        );
    }
}
