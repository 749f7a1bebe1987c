//! The promotion center: who one invited and what one earned from them.

use actix_web::{web, HttpResponse};

use crate::accounts::auth::AuthUser;
use crate::core::error::ApiResult;
use crate::core::paging::PageQuery;
use crate::rebates::store::promotion::{Invitees, Rewards, RewardsView};
use crate::rebates::Rebates;

/// People the caller invited, with how many paid orders each has made.
#[utoipa::path(get, path = "/api/v1/me/invitees", tag = "rebates", security(("bearer" = [])),
    params(("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = crate::core::paging::Page<crate::rebates::store::promotion::InviteeView>, description = "A page of the list; `next_cursor` (null on the last page) fetches the next")))]
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
