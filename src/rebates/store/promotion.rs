//! The promotion center's reads: who one invited and what one earned from them.

use actix::{Handler, Message};
use diesel::prelude::*;
use serde::Serialize;

use crate::core::error::ApiError;
use crate::core::paging::Page;
use crate::rebates::model::RebateStatus;
use crate::storage::schema::rebates;
use crate::storage::DbExecutor;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InviteeView {
    pub user_id: i64,
    pub username: String,
    pub joined_at: String,
    pub order_count: i64,
}

pub struct Invitees {
    pub user: i64,
    pub limit: i64,
    pub after_id: Option<i64>,
}

impl Message for Invitees {
    type Result = Result<Page<InviteeView>, ApiError>;
}

impl Handler<Invitees> for DbExecutor {
    type Result = Result<Page<InviteeView>, ApiError>;
    fn handle(&mut self, msg: Invitees, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let mut rows =
            crate::accounts::tx::invitees_page(&mut conn, msg.user, msg.after_id, msg.limit)?;
        let mut items = Vec::with_capacity(rows.len());
        let next_cursor = crate::core::paging::trim_page(&mut rows, msg.limit, |r| vec![r.0]);
        for (id, username, joined) in &rows {
            let order_count = crate::commerce::tx::count_paid_orders(&mut conn, *id)?;
            items.push(InviteeView {
                user_id: *id,
                username: username.clone(),
                joined_at: crate::core::ids::rfc3339(*joined),
                order_count,
            });
        }

        Ok(Page { items, next_cursor })
    }
}

/// Earnings by kind (`purchase`, `referral_1`..`referral_3`) and status, in cents.
#[derive(Debug, Serialize, Default, utoipa::ToSchema)]
pub struct RewardsView {
    #[schema(value_type = Object)]
    pub by_kind: std::collections::BTreeMap<String, std::collections::BTreeMap<String, i64>>,
    pub referral_total_cents: i64,
    pub invitee_count: i64,
}

pub struct Rewards {
    pub user: i64,
}

impl Message for Rewards {
    type Result = Result<RewardsView, ApiError>;
}

impl Handler<Rewards> for DbExecutor {
    type Result = Result<RewardsView, ApiError>;
    fn handle(&mut self, msg: Rewards, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let rows: Vec<(String, String, i64)> = rebates::table
            .filter(rebates::user_id.eq(msg.user))
            .select((rebates::kind, rebates::status, rebates::amount_cents))
            .load(&mut conn)?;
        let mut v = RewardsView::default();
        for (kind, status, amount) in rows {
            *v.by_kind
                .entry(kind.clone())
                .or_default()
                .entry(status.clone())
                .or_default() += amount;
            let counts = matches!(
                RebateStatus::parse(&status),
                Some(RebateStatus::Pending | RebateStatus::Available)
            );
            if kind.starts_with("referral") && counts {
                v.referral_total_cents += amount;
            }
        }
        v.invitee_count = crate::accounts::tx::count_invitees(&mut conn, msg.user)?;
        Ok(v)
    }
}
