//! Notification preferences over HTTP.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};

use crate::accounts::auth::AuthUser;
use crate::core::error::{ApiError, ApiResult, Problem};
use crate::social::store::prefs::{
    GetPreferences, NotificationKind, PreferencesView, SetPreferences,
};
use crate::social::Social;

/// Every notification kind with whether the caller gets it.
#[utoipa::path(get, path = "/api/v1/me/notification-preferences", tag = "social", security(("bearer" = [])),
    responses((status = 200, body = PreferencesView)))]
pub async fn get_preferences(state: web::Data<Social>, user: AuthUser) -> ApiResult<HttpResponse> {
    let view = state
        .db
        .call(GetPreferences {
            user: user.user_id.get(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Kinds to turn on (`true`) or off (`false`), e.g. `{"order.shipped": false}`.
/// A kind turned off is neither pushed nor listed in `GET /api/v1/notifications`
/// (turned on again, its notifications show again); kinds not named stay as they are.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"order.shipped": false, "user.followed": true}))]
pub struct PreferencesRequest(BTreeMap<String, bool>);

/// Turns notification kinds on or off.
#[utoipa::path(put, path = "/api/v1/me/notification-preferences", tag = "social", security(("bearer" = [])),
    request_body = PreferencesRequest,
    responses((status = 200, body = PreferencesView), (status = 400, body = Problem)))]
pub async fn set_preferences(
    state: web::Data<Social>,
    user: AuthUser,
    body: crate::core::extract::Json<PreferencesRequest>,
) -> ApiResult<HttpResponse> {
    let mut changes = Vec::new();
    for (kind, enabled) in &body.0 .0 {
        let k = NotificationKind::parse(kind).ok_or_else(|| {
            ApiError::invalid_input(format!("unknown notification kind {kind:?}"))
        })?;
        changes.push((k, *enabled));
    }
    if changes.is_empty() {
        return Err(ApiError::invalid_input(
            "name at least one kind, e.g. {\"order.shipped\": false}",
        ));
    }
    let me = user.user_id.get();
    let social = state.get_ref().clone();
    // In a task of its own: a request dropped after the commit still tells
    // the sockets' registry (here and on every node).
    let done = tokio::spawn(async move {
        let (view, off) = social.db.call(SetPreferences { user: me, changes }).await?;
        social.mutes_changed(me, off);
        Ok::<_, ApiError>(view)
    });
    let view = done
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("preferences task: {e}")))??;
    Ok(HttpResponse::Ok().json(view))
}
