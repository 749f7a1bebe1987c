//! References the write path keeps without foreign keys, and the check that
//! they hold.
//!
//! On PostgreSQL the tables every order and chat message write carry no
//! foreign keys (migration 000017): a foreign key there is a trigger per
//! inserted row that queries and share-locks the parent row, a WAL record on
//! the parent's page for every child row. The references hold by
//! construction instead (nothing deletes a user, merchant, product, order or
//! conversation, and each row is written by the job that read its parent),
//! and `tandem audit` checks them with [`orphans`]. SQLite keeps its foreign keys (its checks are index lookups
//! inside the one writer); the check runs there too.

use diesel::sql_types::{BigInt, Nullable};
use diesel::QueryableByName;

use super::DbConn;

/// One reference: `child.column` names a row of `parent.parent_column`.
pub struct Reference {
    pub child: &'static str,
    pub column: &'static str,
    pub parent: &'static str,
    pub parent_column: &'static str,
}

const fn reference(
    child: &'static str,
    column: &'static str,
    parent: &'static str,
    parent_column: &'static str,
) -> Reference {
    Reference {
        child,
        column,
        parent,
        parent_column,
    }
}

/// Every foreign key migration 000017 dropped on PostgreSQL.
pub const UNENFORCED: [Reference; 11] = [
    reference("orders", "buyer_id", "users", "id"),
    reference("orders", "merchant_id", "merchants", "id"),
    reference("order_items", "order_id", "orders", "id"),
    reference("order_items", "product_id", "products", "id"),
    reference("payments", "order_id", "orders", "id"),
    reference("rebates", "order_id", "orders", "id"),
    reference("rebates", "user_id", "users", "id"),
    reference("ledger_entries", "user_id", "users", "id"),
    reference("notifications", "user_id", "users", "id"),
    reference("messages", "conversation_id", "conversations", "id"),
    reference("messages", "sender_id", "users", "id"),
];

#[derive(QueryableByName)]
struct Dangling {
    #[diesel(sql_type = BigInt)]
    rows: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    first: Option<i64>,
}

impl Reference {
    /// Counts the rows whose reference names no parent row, and the smallest
    /// value they name. The names are this module's constants, never input.
    fn dangling_sql(&self) -> String {
        let Reference {
            child,
            column,
            parent,
            parent_column,
        } = self;
        format!(
            "SELECT CAST(COUNT(*) AS BIGINT) AS rows, CAST(MIN(c.{column}) AS BIGINT) AS first \
             FROM {child} c WHERE c.{column} IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM {parent} p WHERE p.{parent_column} = c.{column})"
        )
    }
}

/// One line per reference that names a missing row (empty: all hold).
pub fn orphans(conn: &mut DbConn) -> diesel::QueryResult<Vec<String>> {
    let mut problems = Vec::new();
    for r in &UNENFORCED {
        let sql = r.dangling_sql();
        let found: Vec<Dangling> = crate::per_backend!(conn, |c| diesel::RunQueryDsl::load(
            diesel::sql_query(&sql),
            c
        ))?;
        if let Some(d) = found.into_iter().next().filter(|d| d.rows > 0) {
            problems.push(format!(
                "{}.{}: {} row(s) name no {} row (the smallest: {})",
                r.child,
                r.column,
                d.rows,
                r.parent,
                d.first.map_or_else(|| "?".to_owned(), |v| v.to_string())
            ));
        }
    }
    Ok(problems)
}
