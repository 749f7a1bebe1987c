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

/// Most rows one [`update_from_values`] statement carries (3 binds each).
pub const MAX_VALUES_ROWS: usize = 256;

/// One `UPDATE ... FROM (VALUES ...)` for many rows of three integers,
/// instead of one UPDATE per row. Diesel never caches an UPDATE's prepared
/// statement, so per-row updates cost a prepare each; this costs one per
/// [`MAX_VALUES_ROWS`] rows. Both backends name the VALUES columns `column1`,
/// `column2`, `column3` (`v.column1` ...); only the placeholders differ, and
/// this writes them. `sql` has the form `"UPDATE t SET ... FROM (VALUES {rows}) AS v WHERE ..."`
/// where `{rows}` is replaced and `{p}`, if given, stands for `param`,
/// bound before the rows. Returns the rows updated.
pub fn update_from_values(
    conn: &mut DbConn,
    sql: &str,
    param: Option<i64>,
    rows: &[[i64; 3]],
) -> QueryResult<usize> {
    use diesel::sql_types::BigInt;
    let mut total = 0;
    for chunk in rows.chunks(MAX_VALUES_ROWS) {
        match conn {
            DbConn::Sqlite(c) => {
                let values = vec!["(?, ?, ?)"; chunk.len()].join(", ");
                let text = sql.replace("{p}", "?").replace("{rows}", &values);
                let mut q = diesel::sql_query(text).into_boxed::<diesel::sqlite::Sqlite>();
                if let Some(p) = param {
                    q = q.bind::<BigInt, _>(p);
                }
                for r in chunk {
                    q = q
                        .bind::<BigInt, _>(r[0])
                        .bind::<BigInt, _>(r[1])
                        .bind::<BigInt, _>(r[2]);
                }
                total += q.execute(c)?;
            }
            DbConn::Pg(c) => {
                let skip = usize::from(param.is_some());
                let values = (0..chunk.len())
                    .map(|i| {
                        let b = 3 * i + skip;
                        format!("(${}, ${}, ${})", b + 1, b + 2, b + 3)
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let text = sql.replace("{p}", "$1").replace("{rows}", &values);
                let mut q = diesel::sql_query(text).into_boxed::<diesel::pg::Pg>();
                if let Some(p) = param {
                    q = q.bind::<BigInt, _>(p);
                }
                for r in chunk {
                    q = q
                        .bind::<BigInt, _>(r[0])
                        .bind::<BigInt, _>(r[1])
                        .bind::<BigInt, _>(r[2]);
                }
                total += q.execute(c)?;
            }
        }
    }
    Ok(total)
}

/// Rows of a query joined with a VALUES list of pairs, instead of
/// `a IN (...) AND b IN (...)`: through a two-column index that form probes
/// every combination (n² seeks for n pairs), this probes each pair once.
/// `sql` contains `{rows}` where the list goes; the pairs' columns are
/// `v.column1` and `v.column2` on both backends. At most
/// [`MAX_VALUES_ROWS`] pairs per statement.
pub fn load_by_pairs<U, SA, SB, A, B>(
    conn: &mut DbConn,
    sql: &str,
    pairs: &[(A, B)],
) -> QueryResult<Vec<U>>
where
    U: diesel::QueryableByName<diesel::sqlite::Sqlite>
        + diesel::QueryableByName<diesel::pg::Pg>
        + 'static,
    SA: diesel::sql_types::SqlType + Send + 'static,
    SB: diesel::sql_types::SqlType + Send + 'static,
    diesel::sqlite::Sqlite: diesel::sql_types::HasSqlType<SA> + diesel::sql_types::HasSqlType<SB>,
    diesel::pg::Pg: diesel::sql_types::HasSqlType<SA> + diesel::sql_types::HasSqlType<SB>,
    A: diesel::serialize::ToSql<SA, diesel::sqlite::Sqlite>
        + diesel::serialize::ToSql<SA, diesel::pg::Pg>
        + Clone
        + Send
        + 'static,
    B: diesel::serialize::ToSql<SB, diesel::sqlite::Sqlite>
        + diesel::serialize::ToSql<SB, diesel::pg::Pg>
        + Clone
        + Send
        + 'static,
{
    let mut out = Vec::new();
    for chunk in pairs.chunks(MAX_VALUES_ROWS) {
        match conn {
            DbConn::Sqlite(c) => {
                let values = vec!["(?, ?)"; chunk.len()].join(", ");
                let mut q = diesel::sql_query(sql.replace("{rows}", &values))
                    .into_boxed::<diesel::sqlite::Sqlite>();
                for (a, b) in chunk {
                    q = q.bind::<SA, _>(a.clone()).bind::<SB, _>(b.clone());
                }
                out.extend(q.load::<U>(c)?);
            }
            DbConn::Pg(c) => {
                let values = (0..chunk.len())
                    .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut q = diesel::sql_query(sql.replace("{rows}", &values))
                    .into_boxed::<diesel::pg::Pg>();
                for (a, b) in chunk {
                    q = q.bind::<SA, _>(a.clone()).bind::<SB, _>(b.clone());
                }
                out.extend(q.load::<U>(c)?);
            }
        }
    }
    Ok(out)
}
