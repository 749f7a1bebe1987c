//! The promotion center: who one invited and what one earned from them.

use actix::{Handler, Message};
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use serde::Serialize;

use crate::accounts::auth::AuthUser;
use crate::core::error::{ApiError, ApiResult};
use crate::core::paging::{Page, PageQuery};
use crate::rebates::Rebates;
use crate::storage::schema::{orders, rebates, users};
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
        let mut q = users::table
            .filter(users::inviter_id.eq(msg.user))
            .into_boxed();
        if let Some(a) = msg.after_id {
            q = q.filter(users::id.gt(a));
        }
        let mut rows: Vec<(i64, String, i64)> = q
            .order(users::id.asc())
            .limit(msg.limit + 1)
            .select((users::id, users::username, users::created_at_ms))
            .load(&mut conn)?;
        let mut items = Vec::with_capacity(rows.len());
        let next_cursor = crate::core::paging::trim_page(&mut rows, msg.limit, |r| vec![r.0]);
        for (id, username, joined) in &rows {
            let order_count: i64 = orders::table
                .filter(orders::buyer_id.eq(id))
                .filter(orders::paid_at_ms.is_not_null())
                .count()
                .get_result(&mut conn)?;
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

/// People the caller invited, with how many paid orders each has made.
#[utoipa::path(get, path = "/api/v1/me/invitees", tag = "rebates", security(("bearer" = [])),
    params(("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "{items: [Invitee], next_cursor}")))]
pub async fn invitees(
    state: web::Data<Rebates>,
    user: AuthUser,
    q: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let after_id = crate::core::paging::cursor_id(q.cursor.as_deref())?;
    Ok(HttpResponse::Ok().json(
        state
            .db
            .call(Invitees {
                user: user.user_id.get(),
                limit: q.limit()?,
                after_id,
            })
            .await?,
    ))
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
            if kind.starts_with("referral") && (status == "pending" || status == "available") {
                v.referral_total_cents += amount;
            }
        }
        v.invitee_count = users::table
            .filter(users::inviter_id.eq(msg.user))
            .count()
            .get_result(&mut conn)?;
        Ok(v)
    }
}

/// The promotion center's summary: referral earnings by level and status.
#[utoipa::path(get, path = "/api/v1/me/rewards", tag = "rebates", security(("bearer" = [])), responses((status = 200, body = RewardsView)))]
pub async fn rewards(state: web::Data<Rebates>, user: AuthUser) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(
        state
            .db
            .call(Rewards {
                user: user.user_id.get(),
            })
            .await?,
    ))
}
