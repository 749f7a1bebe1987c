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

use diesel::backend::Backend;
use diesel::pg::Pg;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::query_dsl::methods::{ExecuteDsl, LimitDsl, LoadQuery};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, SqlType};
use diesel::sqlite::Sqlite;
use diesel::QueryableByName;
use diesel::{PgConnection, QueryResult, RunQueryDsl, Selectable, SqliteConnection};

use super::DbConn;

/// The columns a derived `Selectable` row selects: a plain tuple of columns,
/// the same for both backends (`as_select()` is tied to one backend). Rows
/// are then built by their `Queryable` derive, by position, in field order.
pub fn columns<T: Selectable<Sqlite>>() -> T::SelectExpression {
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
    let skip = usize::from(param.is_some());
    let mut total = 0;
    for chunk in rows.chunks(MAX_VALUES_ROWS) {
        total += match conn {
            DbConn::Sqlite(c) => {
                let text = values_sql(sql, false, chunk.len(), 3, skip);
                bind_int_rows(diesel::sql_query(text).into_boxed(), param, chunk).execute(c)?
            }
            DbConn::Pg(c) => {
                let text = values_sql(sql, true, chunk.len(), 3, skip);
                bind_int_rows(diesel::sql_query(text).into_boxed(), param, chunk).execute(c)?
            }
        };
    }
    Ok(total)
}

/// `sql` with `{p}` and `{rows}` written out for one backend: `rows` tuples of
/// `width` placeholders, after `skip` leading ones (`{p}`). SQLite numbers
/// `?` by position; PostgreSQL needs `$n`.
fn values_sql(sql: &str, pg: bool, rows: usize, width: usize, skip: usize) -> String {
    let one = |i: usize| -> String {
        let marks: Vec<String> = (1..=width)
            .map(|k| {
                if pg {
                    format!("${}", skip + i * width + k)
                } else {
                    "?".to_owned()
                }
            })
            .collect();
        format!("({})", marks.join(", "))
    };
    let values = (0..rows).map(one).collect::<Vec<_>>().join(", ");
    sql.replace("{p}", if pg { "$1" } else { "?" })
        .replace("{rows}", &values)
}

fn bind_int_rows<'f, DB>(
    mut q: BoxedSqlQuery<'f, DB, SqlQuery>,
    param: Option<i64>,
    rows: &[[i64; 3]],
) -> BoxedSqlQuery<'f, DB, SqlQuery>
where
    DB: Backend + HasSqlType<BigInt>,
    i64: ToSql<BigInt, DB>,
{
    if let Some(p) = param {
        q = q.bind::<BigInt, _>(p);
    }
    for r in rows {
        q = q
            .bind::<BigInt, _>(r[0])
            .bind::<BigInt, _>(r[1])
            .bind::<BigInt, _>(r[2]);
    }
    q
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
    U: QueryableByName<Sqlite> + QueryableByName<Pg> + 'static,
    SA: SqlType + Send + 'static,
    SB: SqlType + Send + 'static,
    Sqlite: HasSqlType<SA> + HasSqlType<SB>,
    Pg: HasSqlType<SA> + HasSqlType<SB>,
    A: ToSql<SA, Sqlite> + ToSql<SA, Pg> + Clone + Send + 'static,
    B: ToSql<SB, Sqlite> + ToSql<SB, Pg> + Clone + Send + 'static,
{
    let mut out = Vec::new();
    for chunk in pairs.chunks(MAX_VALUES_ROWS) {
        match conn {
            DbConn::Sqlite(c) => {
                let text = values_sql(sql, false, chunk.len(), 2, 0);
                let q = bind_pairs::<_, SA, SB, _, _>(diesel::sql_query(text).into_boxed(), chunk);
                out.extend(q.load::<U>(c)?);
            }
            DbConn::Pg(c) => {
                let text = values_sql(sql, true, chunk.len(), 2, 0);
                let q = bind_pairs::<_, SA, SB, _, _>(diesel::sql_query(text).into_boxed(), chunk);
                out.extend(q.load::<U>(c)?);
            }
        }
    }
    Ok(out)
}

fn bind_pairs<'f, DB, SA, SB, A, B>(
    mut q: BoxedSqlQuery<'f, DB, SqlQuery>,
    pairs: &[(A, B)],
) -> BoxedSqlQuery<'f, DB, SqlQuery>
where
    DB: Backend + HasSqlType<SA> + HasSqlType<SB>,
    SA: Send + 'f,
    SB: Send + 'f,
    A: ToSql<SA, DB> + Clone + Send + 'f,
    B: ToSql<SB, DB> + Clone + Send + 'f,
{
    for (a, b) in pairs {
        q = q.bind::<SA, _>(a.clone()).bind::<SB, _>(b.clone());
    }
    q
}
