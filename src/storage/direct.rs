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
use diesel::query_builder::{AstPass, BoxedSqlQuery, QueryFragment, QueryId, SqlQuery};
use diesel::query_dsl::methods::{ExecuteDsl, LimitDsl, LoadQuery};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Bool, HasSqlType, Nullable, SqlType, Text};
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

/// One value bound by a [`RowUpdate`].
#[derive(Debug, Clone, Copy)]
pub enum Val<'a> {
    Int(i64),
    NullInt(Option<i64>),
    Text(&'a str),
    NullText(Option<&'a str>),
    Bool(bool),
}

/// One `SET` of a [`RowUpdate`].
#[derive(Debug, Clone, Copy)]
pub enum Assign<'a> {
    /// `column = ?`
    To(Val<'a>),
    /// `column = column + ?`
    AddInt(i64),
}

/// `UPDATE table SET column = ?, ... WHERE column = ? AND ...`, for the hot
/// single-row updates. Diesel prepares every `diesel::update` anew on every
/// run (its changesets could take unboundedly many shapes, so it never caches
/// them): on the `orders` benchmark three such prepares per order were 12 %
/// of the group-commit thread (BENCHMARKS.md). This statement says it is safe
/// to cache and has no static query id, so diesel keeps it prepared on the
/// connection keyed by its SQL text: a statement of another shape gets its own
/// entry, never a wrong one. Callers build it from constant column lists only.
#[derive(Debug, Clone)]
pub struct RowUpdate<'a> {
    pub table: &'static str,
    pub set: Vec<(&'static str, Assign<'a>)>,
    pub filter: Vec<(&'static str, Val<'a>)>,
}

impl QueryId for RowUpdate<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB> QueryFragment<DB> for RowUpdate<'_>
where
    DB: Backend + HasSqlType<BigInt> + HasSqlType<Text> + HasSqlType<Bool>,
    i64: ToSql<BigInt, DB>,
    Option<i64>: ToSql<Nullable<BigInt>, DB>,
    str: ToSql<Text, DB>,
    for<'x> Option<&'x str>: ToSql<Nullable<Text>, DB>,
    bool: ToSql<Bool, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        if self.set.is_empty() || self.filter.is_empty() {
            return Err(diesel::result::Error::QueryBuilderError(
                "a row update needs a SET and a WHERE".into(),
            ));
        }
        out.push_sql("UPDATE ");
        out.push_identifier(self.table)?;
        out.push_sql(" SET ");
        for (i, (column, assign)) in self.set.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_identifier(column)?;
            out.push_sql(" = ");
            match assign {
                Assign::To(v) => push_val(&mut out, v)?,
                Assign::AddInt(d) => {
                    out.push_identifier(column)?;
                    out.push_sql(" + ");
                    out.push_bind_param::<BigInt, i64>(d)?;
                }
            }
        }
        out.push_sql(" WHERE ");
        for (i, (column, v)) in self.filter.iter().enumerate() {
            if i > 0 {
                out.push_sql(" AND ");
            }
            out.push_identifier(column)?;
            out.push_sql(" = ");
            push_val(&mut out, v)?;
        }
        Ok(())
    }
}

fn push_val<'b, DB>(out: &mut AstPass<'_, 'b, DB>, v: &'b Val<'_>) -> QueryResult<()>
where
    DB: Backend + HasSqlType<BigInt> + HasSqlType<Text> + HasSqlType<Bool>,
    i64: ToSql<BigInt, DB>,
    Option<i64>: ToSql<Nullable<BigInt>, DB>,
    str: ToSql<Text, DB>,
    for<'x> Option<&'x str>: ToSql<Nullable<Text>, DB>,
    bool: ToSql<Bool, DB>,
{
    match v {
        Val::Int(x) => out.push_bind_param::<BigInt, i64>(x),
        Val::NullInt(x) => out.push_bind_param::<Nullable<BigInt>, Option<i64>>(x),
        Val::Text(s) => out.push_bind_param::<Text, str>(s),
        Val::NullText(s) => out.push_bind_param::<Nullable<Text>, Option<&str>>(s),
        Val::Bool(b) => out.push_bind_param::<Bool, bool>(b),
    }
}

/// `{head}(?, ...), (?, ...){tail}`: one statement for many rows of
/// [`Val`]s, for the sets a group-commit batch writes at its end (an upsert
/// of balances, a guarded update of many orders). Diesel writes the
/// placeholders for the backend. Like [`RowUpdate`] it is cached by its SQL
/// text, so each row count the batches bring gets one prepared statement
/// (at most [`MAX_VALUES_ROWS`] of them per shape and connection). Used on
/// SQLite only: [`execute_values`] sends PostgreSQL one array per column.
/// `head` and `tail` are constant SQL written by the callers.
#[derive(Debug)]
pub struct ValuesSql<'a> {
    pub head: &'static str,
    pub rows: &'a [Vec<Val<'a>>],
    pub tail: &'static str,
}

impl QueryId for ValuesSql<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB> QueryFragment<DB> for ValuesSql<'_>
where
    DB: Backend + HasSqlType<BigInt> + HasSqlType<Text> + HasSqlType<Bool>,
    i64: ToSql<BigInt, DB>,
    Option<i64>: ToSql<Nullable<BigInt>, DB>,
    str: ToSql<Text, DB>,
    for<'x> Option<&'x str>: ToSql<Nullable<Text>, DB>,
    bool: ToSql<Bool, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let width = self.rows.first().map_or(0, Vec::len);
        if width == 0 || self.rows.iter().any(|r| r.len() != width) {
            return Err(diesel::result::Error::QueryBuilderError(
                "a VALUES list needs rows of one non-zero width".into(),
            ));
        }
        out.push_sql(self.head);
        for (i, row) in self.rows.iter().enumerate() {
            out.push_sql(if i == 0 { "(" } else { ", (" });
            for (k, v) in row.iter().enumerate() {
                if k > 0 {
                    out.push_sql(", ");
                }
                push_val(&mut out, v)?;
            }
            out.push_sql(")");
        }
        out.push_sql(self.tail);
        Ok(())
    }
}

/// Runs [`ValuesSql`] over `rows`, [`MAX_VALUES_ROWS`] at a time; returns
/// the rows affected in all. On PostgreSQL the list goes as one array per
/// column instead ([`super::unnest::UnnestSql`]); `head` must end with `VALUES `.
pub fn execute_values(
    conn: &mut DbConn,
    head: &'static str,
    tail: &'static str,
    rows: &[Vec<Val<'_>>],
) -> QueryResult<usize> {
    let mut total = 0;
    for chunk in rows.chunks(MAX_VALUES_ROWS) {
        total += match conn {
            // One statement text for any row count (see `storage::unnest`).
            DbConn::Pg(c) => {
                let query = super::unnest::UnnestSql::new(head, chunk, tail)?;
                ExecuteDsl::<PgConnection>::execute(query, c)?
            }
            DbConn::Sqlite(c) => {
                let query = ValuesSql {
                    head,
                    rows: chunk,
                    tail,
                };
                ExecuteDsl::<SqliteConnection>::execute(query, c)?
            }
        };
    }
    Ok(total)
}

/// Inserts `rows` as one set per [`MAX_VALUES_ROWS`]: on PostgreSQL as one
/// array per column (`head` is `INSERT INTO t (columns) VALUES `, `vals`
/// gives a row's values in that order; see `storage::unnest`), on SQLite
/// with `sqlite` (diesel's own multi-row insert, which SQLite parses in the
/// process). Returns the rows inserted.
pub fn insert_set<T>(
    conn: &mut DbConn,
    head: &'static str,
    tail: &'static str,
    rows: &[T],
    vals: fn(&T) -> Vec<Val<'_>>,
    sqlite: fn(&mut SqliteConnection, &[T]) -> QueryResult<usize>,
) -> QueryResult<usize> {
    let mut total = 0;
    for chunk in rows.chunks(MAX_VALUES_ROWS) {
        total += match conn {
            DbConn::Pg(_) => {
                let values: Vec<Vec<Val<'_>>> = chunk.iter().map(vals).collect();
                execute_values(conn, head, tail, &values)?
            }
            DbConn::Sqlite(c) => sqlite(c, chunk)?,
        };
    }
    Ok(total)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use diesel::connection::SimpleConnection;
    use diesel::Connection;

    fn update<'a>(id: i64, expect: &'a str, to: &'a str, add: i64) -> RowUpdate<'a> {
        RowUpdate {
            table: "t",
            set: vec![
                ("status", Assign::To(Val::Text(to))),
                ("n", Assign::AddInt(add)),
                ("note", Assign::To(Val::NullText(None))),
                ("at", Assign::To(Val::NullInt(Some(7)))),
                ("flag", Assign::To(Val::Bool(true))),
            ],
            filter: vec![("id", Val::Int(id)), ("status", Val::Text(expect))],
        }
    }

    #[test]
    fn row_update_renders_the_same_text_on_both_backends_shapes() {
        let sqlite = diesel::debug_query::<Sqlite, _>(&update(1, "a", "b", 2)).to_string();
        assert!(sqlite.starts_with(
            "UPDATE `t` SET `status` = ?, `n` = `n` + ?, `note` = ?, `at` = ?, `flag` = ? \
             WHERE `id` = ? AND `status` = ?"
        ));
        let pg = diesel::debug_query::<Pg, _>(&update(1, "a", "b", 2)).to_string();
        assert!(pg.starts_with(
            "UPDATE \"t\" SET \"status\" = $1, \"n\" = \"n\" + $2, \"note\" = $3, \"at\" = $4, \
             \"flag\" = $5 WHERE \"id\" = $6 AND \"status\" = $7"
        ));
    }

    #[test]
    fn row_update_changes_only_the_matching_row_and_can_run_again() {
        let mut c = SqliteConnection::establish(":memory:").unwrap();
        c.batch_execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, status TEXT NOT NULL, n INTEGER NOT NULL, \
             note TEXT, at INTEGER, flag BOOLEAN NOT NULL);
             INSERT INTO t VALUES (1, 'a', 10, 'x', NULL, 0), (2, 'a', 20, 'y', NULL, 0);",
        )
        .unwrap();
        let mut conn = DbConn::Sqlite(c);
        // The second run reuses the cached statement with new binds.
        assert_eq!(execute(&mut conn, update(1, "a", "b", 5)).unwrap(), 1);
        assert_eq!(execute(&mut conn, update(1, "b", "c", -2)).unwrap(), 1);
        // The filter no longer matches: nothing changes.
        assert_eq!(execute(&mut conn, update(1, "a", "z", 100)).unwrap(), 0);
        let DbConn::Sqlite(c) = &mut conn else {
            unreachable!()
        };
        #[derive(QueryableByName, Debug, PartialEq)]
        struct Row {
            #[diesel(sql_type = Text)]
            status: String,
            #[diesel(sql_type = BigInt)]
            n: i64,
            #[diesel(sql_type = Nullable<Text>)]
            note: Option<String>,
            #[diesel(sql_type = Nullable<BigInt>)]
            at: Option<i64>,
            #[diesel(sql_type = Bool)]
            flag: bool,
        }
        let rows: Vec<Row> = RunQueryDsl::load(
            diesel::sql_query("SELECT status, n, note, at, flag FROM t ORDER BY id"),
            c,
        )
        .unwrap();
        assert_eq!(
            rows,
            vec![
                Row {
                    status: "c".into(),
                    n: 13,
                    note: None,
                    at: Some(7),
                    flag: true
                },
                Row {
                    status: "a".into(),
                    n: 20,
                    note: Some("y".into()),
                    at: None,
                    flag: false
                },
            ]
        );
    }

    #[test]
    fn row_update_without_a_where_is_refused() {
        let mut q = update(1, "a", "b", 1);
        q.filter.clear();
        let mut conn = DbConn::Sqlite(SqliteConnection::establish(":memory:").unwrap());
        assert!(execute(&mut conn, q).is_err());
    }
}
