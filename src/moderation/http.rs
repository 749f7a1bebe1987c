//! Reports, the admin report queue, admin stats and order search over HTTP.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::store::{
    Action, FileReport, ListReports, ReopenReport, ReportStatus, ReportView, ResolveReport, Stats,
    StatsView, Target,
};
use super::Moderation;
use crate::accounts::auth::AuthUser;
use crate::core::error::{ApiError, ApiResult, Problem};
use crate::core::paging::{cursor_id, parse_limit};
use crate::core::text::{check_line, Id};

/// Longest report reason and resolution note, in characters.
pub const MAX_REASON_CHARS: usize = 500;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    #[schema(value_type = crate::moderation::model::Target, inline)]
    target_type: String,
    #[schema(value_type = i64)]
    target_id: Id,
    #[schema(min_length = 1, max_length = 500)]
    reason: String,
}

/// Report a post, a message (of a conversation you are in) or a user.
#[utoipa::path(post, path = "/api/v1/reports", tag = "moderation", security(("bearer" = [])), request_body = ReportRequest,
    responses((status = 201, body = ReportView), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "already_reported", body = Problem)))]
pub async fn file(
    state: web::Data<Moderation>,
    user: AuthUser,
    body: crate::core::extract::Json<ReportRequest>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let target = Target::parse(&b.target_type)
        .ok_or_else(|| ApiError::invalid_input("target_type must be post, message or user"))?;
    check_line(&b.reason, "reason", MAX_REASON_CHARS)?;
    let view = state
        .db
        .call(FileReport {
            reporter: user.user_id.get(),
            target,
            target_id: b.target_id.get(),
            reason: b.reason,
        })
        .await?;
    Ok(HttpResponse::Created().json(view))
}

#[derive(Deserialize)]
pub struct QueueQuery {
    status: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// The report queue (admin): `open` by default, oldest first.
#[utoipa::path(get, path = "/api/v1/admin/reports", tag = "admin", security(("bearer" = [])),
    params(("status" = Option<String>, Query, description = "open (default), dismissed, removed, banned"),
        ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = crate::core::paging::Page<crate::moderation::store::ReportView>, description = "A page of the list; `next_cursor` (null on the last page) fetches the next"), (status = 403, body = Problem)))]
pub async fn queue(
    state: web::Data<Moderation>,
    user: AuthUser,
    q: web::Query<QueueQuery>,
) -> ApiResult<HttpResponse> {
    let status = q
        .status
        .clone()
        .unwrap_or_else(|| ReportStatus::Open.as_str().into());
    if ReportStatus::parse(&status).is_none() {
        return Err(ApiError::invalid_input(
            "status must be open, dismissed, removed or banned",
        ));
    }
    let page = state
        .db
        .call(ListReports {
            admin: user.user_id,
            status,
            limit: parse_limit(q.limit.as_deref())?,
            after_id: cursor_id(q.cursor.as_deref())?,
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// `remove_content` applies to posts and messages only.
    #[schema(value_type = crate::moderation::model::Action, inline)]
    action: String,
    #[schema(min_length = 1, max_length = 500)]
    note: Option<String>,
}

/// Work a report (admin): dismiss it, remove the content, or ban the user
/// behind it (their tokens stop at once, their sockets close with 1008). Every
/// open report on the same target closes with it.
#[utoipa::path(post, path = "/api/v1/admin/reports/{id}/resolve", tag = "admin", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = ResolveRequest, responses((status = 200, body = ReportView), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn resolve(
    state: web::Data<Moderation>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::ReportId,)>,
    body: crate::core::extract::Json<ResolveRequest>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let action = Action::parse(&b.action).ok_or_else(|| {
        ApiError::invalid_input("action must be dismiss, remove_content or ban_user")
    })?;
    if let Some(n) = &b.note {
        check_line(n, "note", MAX_REASON_CHARS)?;
    }
    let report_id = path.into_inner().0.get();
    // The report is claimed first (only one admin's decision can win); a ban
    // that then cannot be applied puts it back in the queue.
    let (view, _) = state
        .db
        .call(ResolveReport {
            admin: user.user_id,
            report_id,
            action,
            note: b.note,
            message_removed: {
                let chat = state.chat.clone();
                Box::new(move |conversation_id| chat.message_changed(conversation_id))
            },
        })
        .await?;
    if action == Action::BanUser {
        let banned = match Id::new(view.target_user_id) {
            Some(target) => crate::accounts::http::set_banned(&state.accounts, user, target, true)
                .await
                .map(|_| ()),
            None => Err(ApiError::internal(anyhow::anyhow!(
                "bad report target user"
            ))),
        };
        if let Err(e) = banned {
            state
                .db
                .call(ReopenReport {
                    report_id,
                    status: action.status(),
                })
                .await?;
            return Err(e);
        }
    }
    state.relay.do_send(crate::runtime::relay::Nudge);
    Ok(HttpResponse::Ok().json(view))
}

/// Platform figures (admin).
#[utoipa::path(get, path = "/api/v1/admin/stats", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = StatsView), (status = 403, body = Problem)))]
pub async fn stats(state: web::Data<Moderation>, user: AuthUser) -> ApiResult<HttpResponse> {
    let mut view = state
        .db
        .call(Stats {
            admin: user.user_id,
        })
        .await?;
    view.online_users = i64::try_from(state.registry.online_users()).unwrap_or(i64::MAX);
    Ok(HttpResponse::Ok().json(view))
}

/// This domain's routes (mounted under `/api/v1` by the server).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/reports", web::post().to(file))
        .route("/admin/reports", web::get().to(queue))
        .route("/admin/reports/{id}/resolve", web::post().to(resolve))
        .route("/admin/stats", web::get().to(stats));
}

/// This domain's part of the OpenAPI document (merged by the server).
#[derive(utoipa::OpenApi)]
#[openapi(paths(file, queue, resolve, stats,))]
pub struct Api;
