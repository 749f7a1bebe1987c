//! Upgrading an existing SQLite database: migration 000016 rebuilds every
//! table keyed by one id (foreign keys off, one transaction). A database
//! written by the migrations before it keeps every row, value for value, and
//! every foreign key after it.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_migrations::MigrationHarness;

use tandem::storage::SQLITE_MIGRATIONS;

/// Rows in the tables the migration rebuilds, linked by foreign keys
/// (ids of the size the id generator makes).
const ROWS: &str = "
INSERT INTO users (id, username, username_lower, display_name, password_hash, invite_code, created_at_ms)
    VALUES (249708920905728, 'Ann', 'ann', 'Ann', 'x', 'INV1', 1), (249708920905729, 'Bo', 'bo', 'Bo', 'y', 'INV2', 2);
UPDATE users SET inviter_id = 249708920905728 WHERE id = 249708920905729;
INSERT INTO conversations (id, kind, direct_key, last_seq, last_activity_ms, created_at_ms)
    VALUES (249708920905800, 'direct', '249708920905728:249708920905729', 2, 3, 3);
INSERT INTO messages (id, conversation_id, seq, sender_id, body, client_id, sent_at_ms) VALUES
    (249708920905801, 249708920905800, 1, 249708920905728, 'hi 你好', 'c1', 4),
    (249708920905802, 249708920905800, 2, 249708920905729, 'hey', 'c2', 5);
INSERT INTO merchants (id, owner_id, name, status, created_at_ms)
    VALUES (249708920905900, 249708920905728, 'Farm', 'approved', 6);
INSERT INTO products (id, merchant_id, name, category, price_cents, stock, created_at_ms)
    VALUES (249708920905901, 249708920905900, 'Tea', 'food', 1234, 9, 7);
INSERT INTO orders (id, buyer_id, merchant_id, status, total_cents, created_at_ms, pay_deadline_ms, paid_at_ms, updated_at_ms)
    VALUES (249708920906000, 249708920905729, 249708920905900, 'paid', 1234, 8, 9, 10, 10),
           (249708920906001, 249708920905729, 249708920905900, 'pending_payment', 1234, 11, 12, NULL, 11);
INSERT INTO order_items (order_id, product_id, quantity, price_cents) VALUES (249708920906000, 249708920905901, 1, 1234);
INSERT INTO payments (id, order_id, provider, amount_cents, status, created_at_ms)
    VALUES (249708920906002, 249708920906000, 'mockpay', 1234, 'succeeded', 10);
INSERT INTO notifications (id, user_id, kind, data, event_id, created_at_ms) VALUES
    (249708920906003, 249708920905729, 'order.paid', '{}', 249708920906004, 10),
    (249708920906005, 249708920905728, 'order.paid', '{}', 249708920906004, 10);
INSERT INTO outbox (id, kind, payload, created_at_ms, published_at_ms) VALUES
    (249708920906004, 'order.paid', '{}', 10, 11), (249708920906006, 'order.created', '{}', 11, NULL);
";

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

fn lines(c: &mut SqliteConnection, sql: &str) -> Vec<String> {
    diesel::sql_query(sql)
        .load::<Line>(c)
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect()
}

/// Every row of every table, each value quoted, in a stable order.
fn every_row(c: &mut SqliteConnection) -> Vec<String> {
    let tables = lines(
        c,
        "SELECT name AS line FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '__diesel%' ORDER BY name",
    );
    let mut rows = Vec::new();
    for table in tables {
        let columns = lines(
            c,
            &format!("SELECT name AS line FROM pragma_table_info('{table}') ORDER BY cid"),
        );
        let quoted: Vec<String> = columns.iter().map(|col| format!("quote({col})")).collect();
        let select = format!(
            "SELECT '{table}: ' || {} AS line FROM {table} ORDER BY 1",
            quoted.join(" || ',' || ")
        );
        rows.extend(lines(c, &select));
    }
    rows
}

#[test]
fn a_database_of_the_earlier_schema_keeps_every_row_and_key() {
    let mut c = SqliteConnection::establish(":memory:").unwrap();
    c.batch_execute("PRAGMA foreign_keys = ON").unwrap();
    let before_000016 =
        MigrationHarness::<diesel::sqlite::Sqlite>::pending_migrations(&mut c, SQLITE_MIGRATIONS)
            .unwrap()
            .len()
            - 1;
    for _ in 0..before_000016 {
        c.run_next_migration(SQLITE_MIGRATIONS).unwrap();
    }
    c.batch_execute(ROWS).unwrap();
    let before = every_row(&mut c);
    assert!(before.len() >= 15, "{before:?}");

    let applied = c.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
    assert_eq!(applied.len(), 1, "this test covers migration 000016 alone");
    assert_eq!(every_row(&mut c), before);
    assert!(lines(
        &mut c,
        "SELECT 'violation' AS line FROM pragma_foreign_key_check"
    )
    .is_empty());
    // The rebuilt tables enforce their keys, with foreign keys on again.
    let orphan = c.batch_execute(
        "INSERT INTO messages (id, conversation_id, seq, sender_id, body, client_id, sent_at_ms) \
         VALUES (1, 42, 1, 249708920905728, 'lost', 'c9', 1)",
    );
    assert!(orphan.is_err(), "a message of no conversation was stored");
    let duplicate = c.batch_execute(
        "INSERT INTO notifications (id, user_id, kind, data, event_id, created_at_ms) \
         VALUES (2, 249708920905729, 'order.paid', '{}', 249708920906004, 10)",
    );
    assert!(
        duplicate.is_err(),
        "a notification was stored twice for one event"
    );
    // Run again (as after a stop between its COMMIT and diesel's record of
    // it): the rebuilt tables stay as they are, every row with them.
    let schema = |c: &mut SqliteConnection| {
        lines(
            c,
            "SELECT name || ': ' || coalesce(sql, '') AS line FROM sqlite_master \
             WHERE name NOT LIKE '__diesel%' ORDER BY name",
        )
    };
    let schema_once = schema(&mut c);
    c.batch_execute(include_str!(
        "../../migrations/sqlite/2026-12-07-000016_lean_write_indexes/up.sql"
    ))
    .unwrap();
    assert_eq!(schema(&mut c), schema_once);
    assert_eq!(every_row(&mut c), before);
    // Keyed by their rows' own ids now: no index of primary-key origin.
    for table in [
        "users",
        "messages",
        "orders",
        "payments",
        "notifications",
        "outbox",
    ] {
        let pk_indexes = lines(
            &mut c,
            &format!("SELECT name AS line FROM pragma_index_list('{table}') WHERE origin = 'pk'"),
        );
        assert!(pk_indexes.is_empty(), "{table}: {pk_indexes:?}");
    }
}
