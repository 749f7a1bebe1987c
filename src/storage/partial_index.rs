//! Reading partial indexes. A query uses a partial index only when its WHERE
//! repeats the index's condition as written; `status = ?` with the value
//! bound does not (SQLite then scans the table, PostgreSQL's generic plans
//! likewise), so a reader states the condition as a literal.

use diesel::expression::SqlLiteral;
use diesel::sql_types::Bool;

/// A partial index's condition, verbatim, as a WHERE term.
pub fn condition(sql: &'static str) -> SqlLiteral<Bool> {
    diesel::dsl::sql::<Bool>(sql)
}

/// A migrated in-memory SQLite database.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn migrated_sqlite() -> super::DbConn {
    use diesel::Connection;
    let mut c = super::DbConn::Sqlite(diesel::SqliteConnection::establish(":memory:").unwrap());
    super::run_migrations(&mut c).unwrap();
    c
}

/// SQLite's plan for `sql`, its steps joined by "; ".
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn sqlite_plan(c: &mut super::DbConn, sql: &str) -> String {
    use diesel::{QueryableByName, RunQueryDsl};
    #[derive(QueryableByName)]
    struct Step {
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }
    let steps: Vec<Step> = diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
        .load(c)
        .unwrap();
    steps
        .into_iter()
        .map(|s| s.detail)
        .collect::<Vec<_>>()
        .join("; ")
}
