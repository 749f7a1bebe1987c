//! Property test: random sequences of orders, payments, completions, refunds,
//! withdrawals and redelivered or out-of-order rebate events, run against the
//! real engine on a real database and against a simple model. After every
//! step the wallets must match the model and `audit` must find nothing.

use diesel::prelude::*;
use proptest::prelude::*;
use tandem::core::ids::IdGenerator;
use tandem::rebates::rules::{floor_bps, RuleSetSpec, RuleSpec};
use tandem::rebates::store::engine;
use tandem::storage::schema::{merchants, orders, products};
use tandem::storage::DbConn;

#[derive(Debug, Clone)]
enum Op {
    /// A new order for `quantity`, paid at once.
    PaidOrder {
        quantity: i64,
    },
    Complete {
        order: usize,
    },
    Refund {
        order: usize,
    },
    /// The rebate actor runs for an order (an event, maybe duplicated or early).
    Reconcile {
        order: usize,
    },
    Withdraw {
        user: usize,
        amount: i64,
    },
    Decide {
        withdrawal: usize,
        approve: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1_i64..5).prop_map(|quantity| Op::PaidOrder { quantity }),
        (0_usize..8).prop_map(|order| Op::Complete { order }),
        (0_usize..8).prop_map(|order| Op::Refund { order }),
        (0_usize..8).prop_map(|order| Op::Reconcile { order }),
        (0_usize..8).prop_map(|order| Op::Reconcile { order }),
        (0_usize..3, 1_i64..400).prop_map(|(user, amount)| Op::Withdraw { user, amount }),
        (0_usize..6, any::<bool>()).prop_map(|(withdrawal, approve)| Op::Decide {
            withdrawal,
            approve
        }),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum OrderState {
    Paid,
    Completed,
    Refunded,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum RecordState {
    Pending,
    Available,
    Cancelled,
    Reversed,
}

#[derive(Default, Clone, Copy, Debug, PartialEq)]
struct Wallet {
    pending: i64,
    available: i64,
    withdrawing: i64,
    withdrawn: i64,
}

struct ModelOrder {
    id: i64,
    state: OrderState,
    /// (user index, amount, state) once created.
    records: Option<Vec<(usize, i64, RecordState)>>,
}

const PRICE: i64 = 1_999;
const RATE_BPS: i64 = 700;
const FIXED: i64 = 3;
const CAP: i64 = 500;
const LEVELS: [i64; 2] = [1_000, 250];

fn add_user(c: &mut DbConn, id: i64, name: &str, inviter: Option<i64>) {
    tandem::accounts::store::insert_user(
        c,
        &tandem::accounts::store::UserRow {
            id,
            username: name.into(),
            username_lower: name.into(),
            display_name: name.into(),
            bio: String::new(),
            password_hash: "x".into(),
            roles: "user".into(),
            invite_code: format!("C{id}"),
            inviter_id: inviter,
            banned: false,
            created_at_ms: 0,
            display_name_lower: name.to_lowercase(),
            avatar_media_id: None,
        },
    )
    .unwrap();
}

fn wallet_of(conn: &mut DbConn, user: i64) -> Wallet {
    let w = engine::wallet(conn, user).unwrap();
    Wallet {
        pending: w.pending_cents,
        available: w.available_cents,
        withdrawing: w.withdrawing_cents,
        withdrawn: w.withdrawn_cents,
    }
}

fn run(ops: Vec<Op>) {
    let dir =
        std::env::temp_dir().join(format!("tandem-model-{}", crate::helpers::random_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let url: tandem::core::config::DatabaseUrl = format!("sqlite:{}", dir.join("m.db").display())
        .parse()
        .unwrap();
    let (pool, _) = tandem::server::app::migrate(&url).unwrap();
    let mut conn = pool.get().unwrap();
    let c: &mut DbConn = &mut conn;
    let ids = IdGenerator::new(1);
    // Users: 0 = buyer, 1 = inviter, 2 = inviter's inviter; 3 = merchant owner.
    let uid: Vec<i64> = (0..4).map(|_| ids.next_id()).collect();
    add_user(c, uid[2], "top", None);
    add_user(c, uid[1], "mid", Some(uid[2]));
    add_user(c, uid[0], "buyer", Some(uid[1]));
    add_user(c, uid[3], "owner", None);
    let merchant = ids.next_id();
    diesel::insert_into(merchants::table)
        .values((
            merchants::id.eq(merchant),
            merchants::owner_id.eq(uid[3]),
            merchants::name.eq("m"),
            merchants::status.eq("approved"),
            merchants::created_at_ms.eq(0_i64),
        ))
        .execute(c)
        .unwrap();
    let product = ids.next_id();
    diesel::insert_into(products::table)
        .values((
            products::id.eq(product),
            products::merchant_id.eq(merchant),
            products::name.eq("p"),
            products::category.eq("x"),
            products::price_cents.eq(PRICE),
            products::stock.eq(1_000_000_i64),
            products::active.eq(true),
            products::created_at_ms.eq(0_i64),
        ))
        .execute(c)
        .unwrap();
    let spec = RuleSetSpec {
        rules: vec![RuleSpec {
            name: "all".into(),
            merchant_id: None,
            category: None,
            rate_bps: RATE_BPS,
            fixed_cents: Some(FIXED),
            min_order_cents: None,
            cap_cents: Some(CAP),
            starts_at: None,
            ends_at: None,
            priority: None,
        }],
        referral_levels_bps: LEVELS.to_vec(),
        hold_seconds: 0,
    };
    engine::put_rule_set(c, &ids, uid[3], &spec, 0).unwrap();

    let mut model_orders: Vec<ModelOrder> = Vec::new();
    let mut wallets = [Wallet::default(); 3];
    let mut withdrawals: Vec<(i64, usize, i64, bool)> = Vec::new(); // (id, user, amount, decided)
    let now = || tandem::core::ids::now_ms();

    for op in ops {
        match op {
            Op::PaidOrder { quantity } => {
                let id = ids.next_id();
                let total = PRICE * quantity;
                diesel::insert_into(orders::table)
                    .values((
                        orders::id.eq(id),
                        orders::buyer_id.eq(uid[0]),
                        orders::merchant_id.eq(merchant),
                        orders::status.eq("paid"),
                        orders::total_cents.eq(total),
                        orders::created_at_ms.eq(1_i64),
                        orders::pay_deadline_ms.eq(i64::MAX),
                        orders::paid_at_ms.eq(Some(now())),
                        orders::updated_at_ms.eq(1_i64),
                    ))
                    .execute(c)
                    .unwrap();
                diesel::insert_into(tandem::storage::schema::order_items::table)
                    .values((
                        tandem::storage::schema::order_items::order_id.eq(id),
                        tandem::storage::schema::order_items::product_id.eq(product),
                        tandem::storage::schema::order_items::quantity.eq(quantity),
                        tandem::storage::schema::order_items::price_cents.eq(PRICE),
                    ))
                    .execute(c)
                    .unwrap();
                model_orders.push(ModelOrder {
                    id,
                    state: OrderState::Paid,
                    records: None,
                });
            }
            Op::Complete { order } => {
                if let Some(o) = model_orders.get_mut(order) {
                    if o.state == OrderState::Paid {
                        diesel::update(orders::table.find(o.id))
                            .set((
                                orders::status.eq("completed"),
                                orders::completed_at_ms.eq(Some(now())),
                            ))
                            .execute(c)
                            .unwrap();
                        o.state = OrderState::Completed;
                    }
                }
            }
            Op::Refund { order } => {
                if let Some(o) = model_orders.get_mut(order) {
                    if o.state != OrderState::Refunded {
                        diesel::update(orders::table.find(o.id))
                            .set((
                                orders::status.eq("refunded"),
                                orders::updated_at_ms.eq(now()),
                            ))
                            .execute(c)
                            .unwrap();
                        o.state = OrderState::Refunded;
                    }
                }
            }
            Op::Reconcile { order } => {
                let Some(o) = model_orders.get_mut(order) else {
                    continue;
                };
                engine::reconcile(c, &ids, o.id, now()).unwrap();
                // The model of the same rules.
                let total: i64 = orders::table
                    .find(o.id)
                    .select(orders::total_cents)
                    .first(c)
                    .unwrap();
                if o.records.is_none() && o.state != OrderState::Refunded {
                    let purchase = (floor_bps(total, RATE_BPS) + FIXED).min(CAP);
                    let mut recs = vec![(0, purchase, RecordState::Pending)];
                    for (level, bps) in LEVELS.iter().enumerate() {
                        recs.push((level + 1, floor_bps(total, *bps), RecordState::Pending));
                    }
                    recs.retain(|r| r.1 > 0);
                    for r in &recs {
                        wallets[r.0].pending += r.1;
                    }
                    o.records = Some(recs);
                }
                if let Some(recs) = o.records.as_mut() {
                    for r in recs.iter_mut() {
                        match (o.state, r.2) {
                            (OrderState::Refunded, RecordState::Pending) => {
                                r.2 = RecordState::Cancelled;
                                wallets[r.0].pending -= r.1;
                            }
                            (OrderState::Refunded, RecordState::Available) => {
                                r.2 = RecordState::Reversed;
                                wallets[r.0].available -= r.1;
                            }
                            (OrderState::Completed, RecordState::Pending) => {
                                r.2 = RecordState::Available;
                                wallets[r.0].pending -= r.1;
                                wallets[r.0].available += r.1;
                            }
                            _ => {}
                        }
                    }
                }
            }
            Op::Withdraw { user, amount } => {
                engine::ensure_wallet(c, uid[user], now()).unwrap();
                let res = c
                    .transaction(|t| engine::request_withdrawal(t, &ids, uid[user], amount, now()));
                let allowed = wallets[user].available >= amount;
                assert_eq!(
                    res.is_ok(),
                    allowed,
                    "withdraw {amount} with {:?}",
                    wallets[user]
                );
                if let Ok(w) = res {
                    wallets[user].available -= amount;
                    wallets[user].withdrawing += amount;
                    withdrawals.push((w.withdrawal_id, user, amount, false));
                }
            }
            Op::Decide {
                withdrawal,
                approve,
            } => {
                let Some(w) = withdrawals.get_mut(withdrawal) else {
                    continue;
                };
                let res =
                    c.transaction(|t| engine::decide_withdrawal(t, &ids, w.0, approve, now()));
                // Deciding twice fails; so does approving while a clawback
                // has left the user's available balance negative.
                let allowed = !w.3 && (!approve || wallets[w.1].available >= 0);
                assert_eq!(
                    res.is_ok(),
                    allowed,
                    "decide {approve} with {:?}",
                    wallets[w.1]
                );
                if allowed {
                    w.3 = true;
                    wallets[w.1].withdrawing -= w.2;
                    if approve {
                        wallets[w.1].withdrawn += w.2;
                    } else {
                        wallets[w.1].available += w.2;
                    }
                }
            }
        }
        for (i, expected) in wallets.iter().enumerate() {
            assert_eq!(wallet_of(c, uid[i]), *expected, "wallet of user {i}");
        }
        let problems = engine::audit(c).unwrap();
        assert!(problems.is_empty(), "audit: {problems:?}");
    }
    drop(conn);
    drop(pool);
    let _ = std::fs::remove_dir_all(&dir);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn ledger_matches_model_and_audit_is_clean(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops);
    }
}
