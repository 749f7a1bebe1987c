//! The HTTP operations of `chaos`, each retried through faults as a real
//! client would, and the ledger of what the server acknowledged.

use serde_json::{json, Value};

use super::retry::{retried, retried_raw};
use crate::api::{sign, Api};

/// What an order should look like at the end, by its last acknowledged step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Expect {
    Pending,
    Cancelled,
    Paid,
    Completed,
    Refunded,
}

impl Expect {
    pub(super) fn status(self) -> &'static str {
        match self {
            Expect::Pending => "pending_payment",
            Expect::Cancelled => "cancelled",
            Expect::Paid => "paid",
            Expect::Completed => "completed",
            Expect::Refunded => "refunded",
        }
    }

    /// Whether the payment was acknowledged (so a purchase rebate is due).
    pub(super) fn paid(self) -> bool {
        matches!(self, Expect::Paid | Expect::Completed | Expect::Refunded)
    }
}

/// One acknowledged order.
#[derive(Clone, Debug)]
pub(super) struct AckedOrder {
    pub(super) buyer: usize,
    pub(super) order_id: i64,
    pub(super) expect: Expect,
}

/// Everything the server acknowledged, and what was tried.
#[derive(Default)]
pub(super) struct Ledger {
    pub(super) orders: Vec<AckedOrder>,
    /// Idempotency keys sent per buyer (an upper bound of orders per buyer).
    pub(super) order_keys: Vec<u64>,
    /// (buyer, withdrawal_id) acknowledged.
    pub(super) withdrawals: Vec<(usize, i64)>,
    pub(super) withdrawal_keys: Vec<u64>,
    /// (author, post_id) acknowledged.
    pub(super) posts: Vec<(usize, i64)>,
    /// (follower, followee) acknowledged.
    pub(super) follows: Vec<(usize, usize)>,
    pub(super) steps_acked: u64,
}

/// The shop and the people of a run.
pub(super) struct World {
    pub(super) api: Api,
    pub(super) run: String,
    pub(super) secret: String,
    pub(super) product_id: i64,
    pub(super) owner: String,
    pub(super) buyers: Vec<(i64, String)>,
    pub(super) authors: Vec<(i64, String)>,
    pub(super) followers: Vec<(i64, String)>,
    pub(super) followees: Vec<(i64, String)>,
    pub(super) ledger: parking_lot::Mutex<Ledger>,
}

fn bearer_ok(s: u16) -> bool {
    (200..300).contains(&s)
}

impl World {
    /// One order, and by `variant` what follows: 0 paid, 1 paid and
    /// refunded, 2 paid, shipped, confirmed and a withdrawal, 3 cancelled.
    pub(super) async fn order(&self, i: u64, variant: u64) -> Result<(), String> {
        let buyer = usize::try_from(i).unwrap_or(0) % self.buyers.len();
        let token = self.buyers[buyer].1.clone();
        let key = format!("{}-o{i}", self.run);
        self.ledger.lock().order_keys[buyer] += 1;
        let body = json!({"items": [{"product_id": self.product_id, "quantity": 1}]});
        let (s, o) = retried(
            &self.api,
            "POST",
            "/api/v1/orders",
            Some(&token),
            Some(&body),
            &[("Idempotency-Key", &key)],
        )
        .await?;
        if s != 201 && s != 200 {
            return Err(format!("order {s} {o}"));
        }
        let id = o["order_id"].as_i64().ok_or("order without an id")?;
        let mut expect = Expect::Pending;
        let ack = |expect| self.ack_order(buyer, id, expect);
        ack(expect);
        if variant == 3 {
            self.step(
                &token,
                &format!("/api/v1/orders/{id}/cancel"),
                &json!({}),
                id,
                "cancelled",
            )
            .await?;
            ack(Expect::Cancelled);
            return Ok(());
        }
        self.pay(&token, id).await?;
        expect = Expect::Paid;
        ack(expect);
        match variant {
            1 => {
                self.step(
                    &token,
                    &format!("/api/v1/orders/{id}/refund"),
                    &json!({"reason": "chaos"}),
                    id,
                    "refund_requested",
                )
                .await?;
                self.step(
                    &self.owner,
                    &format!("/api/v1/orders/{id}/refund/approve"),
                    &json!({}),
                    id,
                    "refunded",
                )
                .await?;
                ack(Expect::Refunded);
            }
            2 => {
                self.step(
                    &self.owner,
                    &format!("/api/v1/orders/{id}/ship"),
                    &json!({"carrier": "chaos", "tracking_no": "1"}),
                    id,
                    "shipped",
                )
                .await?;
                self.step(
                    &token,
                    &format!("/api/v1/orders/{id}/confirm"),
                    &json!({}),
                    id,
                    "completed",
                )
                .await?;
                ack(Expect::Completed);
                self.withdraw(buyer, &token, i).await?;
            }
            _ => {}
        }
        Ok(())
    }

    fn ack_order(&self, buyer: usize, order_id: i64, expect: Expect) {
        let mut l = self.ledger.lock();
        l.steps_acked += 1;
        match l.orders.iter_mut().rev().find(|o| o.order_id == order_id) {
            Some(o) => o.expect = expect,
            None => l.orders.push(AckedOrder {
                buyer,
                order_id,
                expect,
            }),
        }
    }

    /// Pay, then the provider's signed notification (retried as providers do).
    async fn pay(&self, token: &str, id: i64) -> Result<(), String> {
        let (s, pay) = retried(
            &self.api,
            "POST",
            &format!("/api/v1/orders/{id}/pay"),
            Some(token),
            Some(&json!({})),
            &[],
        )
        .await?;
        if s != 200 {
            return Err(format!("pay {s} {pay}"));
        }
        let body = json!({"payment_id": pay["payment_id"], "order_id": id, "amount_cents": pay["amount_cents"], "status": "succeeded"}).to_string();
        let signature = sign(&self.secret, &body);
        let headers = [
            ("Content-Type", "application/json"),
            ("x-mockpay-signature", signature.as_str()),
        ];
        match retried_raw(
            &self.api,
            "/api/v1/payments/mockpay/notify",
            &headers,
            body.as_bytes(),
        )
        .await?
        {
            200 => Ok(()),
            s => Err(format!("notify {s}")),
        }
    }

    /// A state change retried through faults. A 409 after a retry is what a
    /// client sees when its first try took effect but the answer was lost:
    /// it reads the order to learn whether the change is there.
    async fn step(
        &self,
        token: &str,
        path: &str,
        body: &Value,
        id: i64,
        done: &str,
    ) -> Result<(), String> {
        let (s, v) = retried(&self.api, "POST", path, Some(token), Some(body), &[]).await?;
        if bearer_ok(s) {
            return Ok(());
        }
        if s == 409 {
            let (g, o) = retried(
                &self.api,
                "GET",
                &format!("/api/v1/orders/{id}"),
                Some(token),
                None,
                &[],
            )
            .await?;
            let there = if done == "refund_requested" {
                o["refund_requested"] == true || o["status"] == "refunded"
            } else {
                o["status"] == done
            };
            if g == 200 && there {
                return Ok(());
            }
        }
        Err(format!("{path}: {s} {v}"))
    }

    /// Withdraws what is available, if anything (with an Idempotency-Key).
    async fn withdraw(&self, buyer: usize, token: &str, i: u64) -> Result<(), String> {
        let (s, w) = retried(&self.api, "GET", "/api/v1/wallet", Some(token), None, &[]).await?;
        let available = w["available_cents"].as_i64().unwrap_or(0);
        if s != 200 || available <= 0 {
            return Ok(());
        }
        let key = format!("{}-w{i}", self.run);
        self.ledger.lock().withdrawal_keys[buyer] += 1;
        let body = json!({"amount_cents": available});
        let (s, v) = retried(
            &self.api,
            "POST",
            "/api/v1/withdrawals",
            Some(token),
            Some(&body),
            &[("Idempotency-Key", &key)],
        )
        .await?;
        match s {
            200 | 201 => {
                let id = v["withdrawal_id"]
                    .as_i64()
                    .ok_or("withdrawal without an id")?;
                let mut l = self.ledger.lock();
                l.withdrawals.push((buyer, id));
                l.steps_acked += 1;
                Ok(())
            }
            // Another withdrawal of the same buyer took it first.
            409 => Ok(()),
            _ => Err(format!("withdrawal {s} {v}")),
        }
    }

    /// A post. Posts carry no idempotency key, so a post whose answer was
    /// lost is not sent again (a client would show it as failed).
    pub(super) async fn post(&self, i: u64) -> Result<(), String> {
        let author = usize::try_from(i).unwrap_or(0) % self.authors.len();
        let body = json!({"body": format!("chaos {i}")});
        match self
            .api
            .post("/api/v1/posts", Some(&self.authors[author].1), &body)
            .await
        {
            Ok((201, v)) => {
                let id = v["post_id"].as_i64().ok_or("post without an id")?;
                let mut l = self.ledger.lock();
                l.posts.push((author, id));
                l.steps_acked += 1;
                Ok(())
            }
            Ok((s, _)) if super::retry::retryable(s) => Ok(()),
            Ok((s, v)) => Err(format!("post {s} {v}")),
            // The server is down: not acknowledged, nothing to check.
            Err(_) => Ok(()),
        }
    }

    /// The `n`th follow: each (follower, followee) pair once, so every
    /// acknowledged follow must produce exactly one notification.
    pub(super) async fn follow(&self, n: usize) -> Result<(), String> {
        let (f, g) = (n % self.followers.len(), n / self.followers.len());
        if g >= self.followees.len() {
            return Ok(());
        }
        let path = format!("/api/v1/users/{}/follow", self.followees[g].0);
        let (s, v) = retried(
            &self.api,
            "POST",
            &path,
            Some(&self.followers[f].1),
            Some(&json!({})),
            &[],
        )
        .await?;
        if s != 200 {
            return Err(format!("follow {s} {v}"));
        }
        let mut l = self.ledger.lock();
        l.follows.push((f, g));
        l.steps_acked += 1;
        Ok(())
    }
}
