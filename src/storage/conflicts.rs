//! Counts of write conflicts the database reported, by kind, for `/metrics`
//! (`tandem_db_conflicts_total`). Process-wide counters: conflicts are
//! observed deep in storage (retry loops, the committers, the chat writer),
//! where no context is at hand, and a relaxed atomic add costs nothing
//! beside the failed round trip it counts.

use std::sync::atomic::{AtomicU64, Ordering};

/// What kind of conflict a transient error was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// PostgreSQL broke a lock cycle by aborting one transaction.
    Deadlock,
    /// PostgreSQL `40001`: a serializable or repeatable-read conflict.
    Serialization,
    /// SQLite's writer lock was held by another connection.
    Locked,
    /// A unique key raced with a concurrent insert of the same row.
    Unique,
}

impl Conflict {
    pub const ALL: [Conflict; 4] = [
        Conflict::Deadlock,
        Conflict::Serialization,
        Conflict::Locked,
        Conflict::Unique,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Conflict::Deadlock => "deadlock",
            Conflict::Serialization => "serialization",
            Conflict::Locked => "locked",
            Conflict::Unique => "unique",
        }
    }

    fn counter(self) -> &'static AtomicU64 {
        static COUNTS: [AtomicU64; 4] = [
            AtomicU64::new(0),
            AtomicU64::new(0),
            AtomicU64::new(0),
            AtomicU64::new(0),
        ];
        &COUNTS[self as usize]
    }
}

pub fn record(kind: Conflict) {
    kind.counter().fetch_add(1, Ordering::Relaxed);
}

pub fn count(kind: Conflict) -> u64 {
    kind.counter().load(Ordering::Relaxed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use diesel::result::{DatabaseErrorInformation, DatabaseErrorKind, Error};

    use super::*;

    struct Info(&'static str);

    impl DatabaseErrorInformation for Info {
        fn message(&self) -> &str {
            self.0
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            None
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            None
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    fn db_error(kind: DatabaseErrorKind, message: &'static str) -> Error {
        Error::DatabaseError(kind, Box::new(Info(message)))
    }

    #[test]
    fn transient_errors_are_counted_by_kind_and_others_are_not() {
        let cases = [
            (
                db_error(DatabaseErrorKind::Unknown, "deadlock detected"),
                Some(Conflict::Deadlock),
            ),
            (
                db_error(
                    DatabaseErrorKind::SerializationFailure,
                    "could not serialize",
                ),
                Some(Conflict::Serialization),
            ),
            (
                db_error(DatabaseErrorKind::Unknown, "database is locked"),
                Some(Conflict::Locked),
            ),
            (
                db_error(DatabaseErrorKind::UniqueViolation, "duplicate key"),
                Some(Conflict::Unique),
            ),
            (
                db_error(DatabaseErrorKind::CheckViolation, "stock_nonnegative"),
                None,
            ),
            (Error::NotFound, None),
        ];
        for (err, want) in cases {
            // Other tests run beside this one and may count too: only the
            // kind this error names must have moved.
            let before = want.map(count);
            assert_eq!(crate::storage::is_transient(&err), want.is_some(), "{err}");
            if let (Some(kind), Some(before)) = (want, before) {
                assert!(count(kind) > before, "{err} counted as {}", kind.as_str());
            }
        }
    }
}
