//! What the SQLite migrations leave: the shape the write path relies on.
#![allow(clippy::unwrap_used)]

use diesel::prelude::*;

#[derive(QueryableByName)]
struct Named {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

/// A table keyed by one integer column is a rowid table (declared
/// `INTEGER PRIMARY KEY`): with any other spelling SQLite keeps a second
/// B-tree beside the table, written by every insert (migration 000016).
#[test]
fn tables_keyed_by_one_id_are_rowid_tables() {
    let mut c = crate::storage::partial_index::migrated_sqlite();
    let spelled_otherwise: Vec<Named> = diesel::sql_query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%BIGINT PRIMARY KEY%'",
    )
    .load(&mut c)
    .unwrap();
    let names: Vec<String> = spelled_otherwise.into_iter().map(|n| n.name).collect();
    assert!(names.is_empty(), "not rowid tables: {names:?}");
    let orders_indexes: Vec<Named> = diesel::sql_query(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'orders' \
         AND name LIKE 'sqlite_autoindex%'",
    )
    .load(&mut c)
    .unwrap();
    assert!(orders_indexes.is_empty());
}
