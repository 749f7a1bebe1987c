//! Unit tests of the rebate engine (clawbacks under concurrent settles).
#![allow(clippy::unwrap_used)]

use crate::rebates::model::RebateStatus;
use diesel::connection::SimpleConnection;

use super::*;
use crate::storage::schema::ledger_entries;

/// A migrated in-memory SQLite database. Foreign keys stay off: the
/// records below need no users or orders.
fn db() -> DbConn {
    let mut c = crate::storage::partial_index::migrated_sqlite();
    c.batch_execute("PRAGMA foreign_keys = OFF").unwrap();
    c
}

/// A pending record of `amount` for `user`, with its wallet and entry.
fn pending_record(c: &mut DbConn, ids: &IdGenerator, user: i64, amount: i64) -> RebateRow {
    ensure_wallet(c, user, 0).unwrap();
    let r = RebateRow {
        id: ids.next_id(),
        order_id: 1,
        user_id: user,
        kind: "purchase".into(),
        amount_cents: amount,
        status: "pending".into(),
        rule_version: 1,
        rule_name: Some("all".into()),
        rate_bps: 100,
        fixed_cents: 0,
        hold_seconds: 0,
        available_at_ms: Some(0),
        created_at_ms: 0,
        updated_at_ms: 0,
    };
    direct::execute(c, diesel::insert_into(rebates::table).values(&r)).unwrap();
    let d = [amount, 0, 0, 0];
    post(c, ids, user, "rebate_pending", Some(r.id), None, d, 0).unwrap();
    r
}

fn entry_kinds(c: &mut DbConn, rebate: i64) -> Vec<String> {
    ledger_entries::table
        .filter(ledger_entries::rebate_id.eq(Some(rebate)))
        .order(ledger_entries::id.asc())
        .select(ledger_entries::kind)
        .load(c)
        .unwrap()
}

/// Issue 21, item 8, on PostgreSQL with two connections, as two nodes
/// have: the refund's transaction reads the record as pending; another
/// connection settles it (pending -> available) and commits; the refund's
/// guarded update then matches nothing (READ COMMITTED sees the commit)
/// and the clawback must still happen, as a reversal.
#[test]
fn on_postgres_a_clawback_sees_a_settle_another_node_committed() {
    let Some(scratch) = crate::storage::test_pg::scratch("clawback") else {
        return;
    };
    let open = || {
        let mut c = DbConn::Pg(diesel::PgConnection::establish(&scratch.url).unwrap());
        // Foreign-key triggers off: the records need no users or orders.
        c.batch_execute("SET session_replication_role = replica")
            .unwrap();
        c
    };
    let (mut refund, mut settle) = (open(), open());
    crate::storage::run_migrations(&mut refund).unwrap();
    let ids = IdGenerator::new(1);
    let r = pending_record(&mut refund, &ids, 7, 250);
    let mut out = Reconciled::default();
    crate::storage::write_transaction(&mut refund, |t| -> Result<(), ApiError> {
        let stale: RebateRow = direct::first(
            t,
            rebates::table
                .find(r.id)
                .select(direct::columns::<RebateRow>()),
        )?
        .unwrap();
        assert_eq!(stale.status, "pending");
        // The other node's settle commits in between.
        crate::storage::write_transaction(&mut settle, |s| -> Result<(), ApiError> {
            assert!(set_status(
                s,
                &stale,
                RebateStatus::Pending,
                RebateStatus::Available,
                1
            )?);
            post(
                s,
                &ids,
                7,
                "rebate_available",
                Some(stale.id),
                None,
                [-250, 250, 0, 0],
                1,
            )
        })?;
        claw_back(t, &ids, &stale, 2, &mut out)
    })
    .unwrap();
    assert_eq!(out.changed, 1);
    assert_eq!(
        status_of(&mut refund, r.id).unwrap(),
        RebateStatus::Reversed
    );
    assert_eq!(
        entry_kinds(&mut refund, r.id),
        ["rebate_pending", "rebate_available", "rebate_reversed"]
    );
    let w = wallet(&mut refund, 7).unwrap();
    assert_eq!((w.pending_cents, w.available_cents), (0, 0));
    drop((refund, settle));
}

/// Issue 21, item 8: a refund's reconcile read the record as pending;
/// before its guarded pending -> cancelled update, another node's settle
/// committed pending -> available. The update matches 0 rows; the
/// clawback must still happen, as a reversal of the available amount.
#[test]
fn a_clawback_reverses_a_record_settled_after_it_was_read() {
    let mut c = db();
    let ids = IdGenerator::new(1);
    let user = 7;
    let stale = pending_record(&mut c, &ids, user, 250);
    // The other node's settle, committed between the read and the update.
    assert!(set_status(
        &mut c,
        &stale,
        RebateStatus::Pending,
        RebateStatus::Available,
        1
    )
    .unwrap());
    let d = [-250, 250, 0, 0];
    post(
        &mut c,
        &ids,
        user,
        "rebate_available",
        Some(stale.id),
        None,
        d,
        1,
    )
    .unwrap();

    let mut out = Reconciled::default();
    claw_back(&mut c, &ids, &stale, 2, &mut out).unwrap();
    assert_eq!(out.changed, 1);
    assert_eq!(status_of(&mut c, stale.id).unwrap(), RebateStatus::Reversed);
    assert_eq!(wallet(&mut c, user).unwrap(), WalletView::default());
    assert_eq!(
        entry_kinds(&mut c, stale.id),
        ["rebate_pending", "rebate_available", "rebate_reversed"]
    );

    // A redelivered refund event finds it reversed: nothing more moves.
    let mut again = Reconciled::default();
    claw_back(&mut c, &ids, &stale, 3, &mut again).unwrap();
    assert_eq!(again.changed, 0);
    assert_eq!(wallet(&mut c, user).unwrap(), WalletView::default());
    assert_eq!(entry_kinds(&mut c, stale.id).len(), 3);
}

/// The ordinary case still cancels a pending record once, and a stale
/// copy read before that cancellation does nothing.
#[test]
fn a_clawback_cancels_a_pending_record_once() {
    let mut c = db();
    let ids = IdGenerator::new(1);
    let user = 8;
    let r = pending_record(&mut c, &ids, user, 90);
    let mut out = Reconciled::default();
    claw_back(&mut c, &ids, &r, 1, &mut out).unwrap();
    claw_back(&mut c, &ids, &r, 2, &mut out).unwrap();
    assert_eq!(out.changed, 1);
    assert_eq!(status_of(&mut c, r.id).unwrap(), RebateStatus::Cancelled);
    assert_eq!(wallet(&mut c, user).unwrap(), WalletView::default());
    assert_eq!(
        entry_kinds(&mut c, r.id),
        ["rebate_pending", "rebate_cancelled"]
    );
}

/// Issue 15: a batch reads the newest rule set once and reuses it for every
/// order paid after its start; an order paid before it gets the set in force
/// then; a set stored during the batch is seen by the next batch.
#[test]
fn a_batch_reads_the_rule_set_in_force_once_and_exactly() {
    use crate::rebates::rules::RuleSetSpec;
    use crate::rebates::store::rule_sets::rule_set_in_force;
    let mut c = db();
    let ids = IdGenerator::new(1);
    let spec = |bps: i64| RuleSetSpec {
        rules: Vec::new(),
        referral_levels_bps: vec![bps],
        hold_seconds: 0,
    };
    let first = put_rule_set(&mut c, &ids, 1, &spec(100), 1_000).unwrap();
    let second = put_rule_set(&mut c, &ids, 1, &spec(200), 2_000).unwrap();
    let version = |c: &mut DbConn, at: i64| rule_set_in_force(c, at).unwrap().map(|n| n.version);
    let batch = crate::storage::appends::Collect::open();
    assert_eq!(version(&mut c, 2_500), Some(second));
    assert_eq!(
        version(&mut c, 1_500),
        Some(first),
        "paid before the newest"
    );
    assert_eq!(version(&mut c, 500), None, "paid before any");
    let third = put_rule_set(&mut c, &ids, 1, &spec(300), 2_200).unwrap();
    assert_eq!(
        version(&mut c, 2_500),
        Some(second),
        "one read per batch: as if stored after it"
    );
    drop(batch);
    assert_eq!(version(&mut c, 2_500), Some(third), "outside a batch: read");
    let _next = crate::storage::appends::Collect::open();
    assert_eq!(
        version(&mut c, 2_500),
        Some(third),
        "the next batch reads again"
    );
}

#[test]
fn the_settlement_scans_read_their_partial_indexes() {
    use crate::storage::partial_index::sqlite_plan;
    assert_eq!(
        PENDING,
        format!("status = '{}'", RebateStatus::Pending.as_str())
    );
    let mut c = db();
    let due = sqlite_plan(
        &mut c,
        &format!(
            "SELECT order_id FROM rebates WHERE {PENDING} AND available_at_ms <= 1 \
             ORDER BY available_at_ms LIMIT 10"
        ),
    );
    assert!(due.contains("rebates_due_idx"), "{due}");
    let undated = sqlite_plan(
        &mut c,
        &format!(
            "SELECT DISTINCT order_id FROM rebates WHERE {PENDING} AND available_at_ms IS NULL \
             AND order_id > 0 ORDER BY order_id LIMIT 10"
        ),
    );
    assert!(undated.contains("rebates_undated_pending_idx"), "{undated}");
}
