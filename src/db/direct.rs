//! Hot statements run on the concrete connection instead of through
//! `MultiConnection`.
//!
//! Why: diesel's `MultiConnection` wraps every query in a `SerializedQuery`
//! whose `walk_ast` renders the whole SQL text again on every execution, even
//! when the prepared statement is cached, and the statement cache is then
//! keyed by that text. A profile of the `orders` benchmark on SQLite put 30%
//! of the group-commit thread in building SQL strings and 15% in preparing
//! statements (BENCHMARKS.md). Run on the concrete `SqliteConnection` or
//! `PgConnection`, a query with a static query id is cached by type: no SQL
//! is built after the first run.
//!
//! Each function is generic over the query and requires it to work on both
//! backends, so one query text still serves both; it is compiled once per
//! backend. The connection's transaction state is the inner connection's, so
//! these run inside whatever transaction or savepoint the caller opened.

use diesel::query_dsl::methods::{ExecuteDsl, LimitDsl, LoadQuery};
use diesel::{PgConnection, QueryResult, RunQueryDsl, Selectable, SqliteConnection};

use super::DbConn;

/// The columns a derived `Selectable` row selects: a plain tuple of columns,
/// the same for both backends (`as_select()` is tied to one backend). Rows
/// are then built by their `Queryable` derive, by position, in field order.
pub fn columns<T: Selectable<diesel::sqlite::Sqlite>>() -> T::SelectExpression {
    T::construct_selection()
}

/// `query.execute(conn)`: rows affected.
pub fn execute<Q>(conn: &mut DbConn, query: Q) -> QueryResult<usize>
where
    Q: ExecuteDsl<SqliteConnection> + ExecuteDsl<PgConnection>,
{
    match conn {
        DbConn::Sqlite(c) => ExecuteDsl::<SqliteConnection>::execute(query, c),
        DbConn::Pg(c) => ExecuteDsl::<PgConnection>::execute(query, c),
    }
}

/// `query.load::<U>(conn)`.
pub fn load<'q, Q, U>(conn: &mut DbConn, query: Q) -> QueryResult<Vec<U>>
where
    Q: LoadQuery<'q, SqliteConnection, U> + LoadQuery<'q, PgConnection, U>,
{
    match conn {
        DbConn::Sqlite(c) => RunQueryDsl::<SqliteConnection>::load(query, c),
        DbConn::Pg(c) => RunQueryDsl::<PgConnection>::load(query, c),
    }
}

/// `query.first::<U>(conn).optional()`.
pub fn first<'q, Q, U>(conn: &mut DbConn, query: Q) -> QueryResult<Option<U>>
where
    Q: LimitDsl,
    diesel::dsl::Limit<Q>: LoadQuery<'q, SqliteConnection, U> + LoadQuery<'q, PgConnection, U>,
{
    let mut rows = load(conn, query.limit(1))?;
    Ok(rows.pop())
}
