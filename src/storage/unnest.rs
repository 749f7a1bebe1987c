//! A set of rows as one array per column, for PostgreSQL.
//!
//! Why: a multi-row `VALUES` list is a new statement for every row count.
//! diesel never caches its own multi-row inserts, and [`super::direct::ValuesSql`]
//! caches one prepared statement per row count, which PostgreSQL still plans
//! anew on most runs: under `orders`, parsing and planning the batches'
//! sets was about a quarter of PostgreSQL's CPU (BENCHMARKS.md, seventeenth
//! session). `... SELECT * FROM UNNEST($1, $2, ...)` with one array per
//! column is one statement text for any row count: an INSERT is parsed
//! once per connection and planned for the arrays, not for each value; an
//! UPDATE is still planned per run (see [`UnnestSql::new`]), but its text no
//! longer grows with the rows.
//!
//! The statement is the caller's `VALUES` statement with its list replaced:
//! `head` ends with `VALUES ` and `tail` follows the list, as for
//! [`super::direct::ValuesSql`], so one caller's SQL serves both backends.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text};
use diesel::QueryResult;

use super::direct::Val;

/// What a `VALUES` list's head must end with.
const VALUES: &str = "VALUES ";

/// One column of the set. Integers and texts are bound as arrays of
/// nullable elements, so `Val::Int` and `Val::NullInt` (or the two texts)
/// may meet in one column.
#[derive(Debug)]
enum Column<'a> {
    Int(Vec<Option<i64>>),
    Text(Vec<Option<&'a str>>),
    Bool(Vec<bool>),
}

impl<'a> Column<'a> {
    fn for_val(v: &Val<'_>, rows: usize) -> Column<'a> {
        match v {
            Val::Int(_) | Val::NullInt(_) => Column::Int(Vec::with_capacity(rows)),
            Val::Text(_) | Val::NullText(_) => Column::Text(Vec::with_capacity(rows)),
            Val::Bool(_) => Column::Bool(Vec::with_capacity(rows)),
        }
    }

    /// Adds a row's value; `false` if it is not of this column's type.
    fn push(&mut self, v: &Val<'a>) -> bool {
        match (self, *v) {
            (Column::Int(c), Val::Int(x)) => c.push(Some(x)),
            (Column::Int(c), Val::NullInt(x)) => c.push(x),
            (Column::Text(c), Val::Text(s)) => c.push(Some(s)),
            (Column::Text(c), Val::NullText(s)) => c.push(s),
            (Column::Bool(c), Val::Bool(b)) => c.push(b),
            _ => return false,
        }
        true
    }
}

/// `{head minus VALUES}SELECT * FROM UNNEST($1, ..., $n){tail}`.
#[derive(Debug)]
pub struct UnnestSql<'a> {
    head: &'static str,
    columns: Vec<Column<'a>>,
    tail: &'static str,
    /// Whether the connection may keep the statement prepared (see [`UnnestSql::new`]).
    cacheable: bool,
}

impl<'a> UnnestSql<'a> {
    /// The rows as columns; an error if the rows are not all of one width
    /// and one type per column, or `head` does not end with `VALUES `.
    pub fn new(
        head: &'static str,
        rows: &'a [Vec<Val<'a>>],
        tail: &'static str,
    ) -> QueryResult<Self> {
        let bad = |why: &str| diesel::result::Error::QueryBuilderError(why.to_owned().into());
        if !head.ends_with(VALUES) {
            return Err(bad("a set's head must end with VALUES"));
        }
        let first = rows.first().ok_or_else(|| bad("a set needs rows"))?;
        let mut columns: Vec<Column<'a>> = first
            .iter()
            .map(|v| Column::for_val(v, rows.len()))
            .collect();
        if columns.is_empty() {
            return Err(bad("a set needs columns"));
        }
        for row in rows {
            if row.len() != columns.len() {
                return Err(bad("a set needs rows of one width"));
            }
            for (column, v) in columns.iter_mut().zip(row) {
                if !column.push(v) {
                    return Err(bad("a set's column holds values of two types"));
                }
            }
        }
        // Only an INSERT stays prepared. PostgreSQL plans a prepared
        // statement generically after its fifth run and keeps that plan
        // until the table's statistics change: an UPDATE joined to a table
        // that was nearly empty then (a fresh database) kept a hash join
        // over a sequential scan of the whole table, 3-6 ms a run where the
        // index takes 0.3 (seen under `orders`). An INSERT reads no table
        // rows (a conflict goes through the unique index whatever the plan),
        // so its generic plan is as good as any.
        let cacheable = head.trim_start().starts_with("INSERT");
        Ok(UnnestSql {
            head,
            columns,
            tail,
            cacheable,
        })
    }
}

impl QueryId for UnnestSql<'_> {
    type QueryId = ();
    // Cached by its SQL text, which depends on the column types only.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryFragment<Pg> for UnnestSql<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        if !self.cacheable {
            out.unsafe_to_cache_prepared();
        }
        out.push_sql(&self.head[..self.head.len() - VALUES.len()]);
        out.push_sql("SELECT * FROM UNNEST(");
        for (i, column) in self.columns.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            match column {
                Column::Int(c) => out.push_bind_param::<Array<Nullable<BigInt>>, _>(c)?,
                Column::Text(c) => out.push_bind_param::<Array<Nullable<Text>>, _>(c)?,
                Column::Bool(c) => out.push_bind_param::<Array<Bool>, _>(c)?,
            }
        }
        out.push_sql(")");
        out.push_sql(self.tail);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use diesel::debug_query;

    #[test]
    fn one_text_for_any_row_count() {
        let rows = |n: i64| -> Vec<Vec<Val<'static>>> {
            (0..n)
                .map(|i| vec![Val::Int(i), Val::NullText(None), Val::Bool(true)])
                .collect()
        };
        let (two, many) = (rows(2), rows(300));
        let sql = |rows| {
            let q = UnnestSql::new(
                "INSERT INTO t (a, b, c) VALUES ",
                rows,
                " ON CONFLICT DO NOTHING",
            )
            .unwrap();
            debug_query::<Pg, _>(&q).to_string()
        };
        let text = |s: String| s.split(" -- binds").next().unwrap().to_owned();
        assert_eq!(
            text(sql(&two)),
            "INSERT INTO t (a, b, c) SELECT * FROM UNNEST($1, $2, $3) ON CONFLICT DO NOTHING"
        );
        assert_eq!(text(sql(&two)), text(sql(&many)));
    }

    #[test]
    fn refuses_what_it_cannot_bind() {
        let mixed = vec![vec![Val::Int(1)], vec![Val::Text("x")]];
        assert!(UnnestSql::new("WITH v (a) AS (VALUES ", &mixed, ")").is_err());
        let ragged = vec![vec![Val::Int(1)], vec![Val::Int(1), Val::Int(2)]];
        assert!(UnnestSql::new("WITH v (a) AS (VALUES ", &ragged, ")").is_err());
        let fine = vec![vec![Val::Int(1)], vec![Val::NullInt(None)]];
        assert!(UnnestSql::new("INSERT INTO t (a) ", &fine, "").is_err());
        assert!(UnnestSql::new("WITH v (a) AS (VALUES ", &fine, ")").is_ok());
        assert!(UnnestSql::new("WITH v (a) AS (VALUES ", &[], ")").is_err());
    }
}
