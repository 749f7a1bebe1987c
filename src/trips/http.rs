//! Trips over HTTP. Writes go to the trip's actor ([`super::actor`]), which also
//! refreshes the chat caches and nudges the outbox relay after each commit.

use actix_web::{web, HttpResponse};
use chrono::{Datelike, NaiveDate};
use serde::Deserialize;

use super::store::{
    CreateTrip, GetTrip, ListRequests, RequestView, SearchTrips, TripCommand, TripReply, TripView,
};
use super::Trips;
use crate::accounts::auth::AuthUser;
use crate::core::error::{ApiError, ApiResult, Problem};
use crate::core::paging::{cursor_id, decode_cursor, encode_cursor, parse_limit};
use crate::core::text::{check_free_text, check_line};

/// Longest destination, in characters.
pub const MAX_DESTINATION_CHARS: usize = 100;
/// Longest description and join message, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;
pub const MAX_MESSAGE_CHARS: usize = 500;

fn parse_date(raw: &str, what: &str) -> ApiResult<NaiveDate> {
    // Exactly YYYY-MM-DD: chrono alone would also take "2030-1-5".
    let well_formed = raw.len() == 10
        && raw.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    well_formed
        .then(|| NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| ApiError::invalid_input(format!("{what} must be a date YYYY-MM-DD")))
}

/// The search cursor: (start date as a day number, id).
pub fn encode_trip_cursor(start_date: &str, id: i64) -> String {
    let day = NaiveDate::parse_from_str(start_date, "%Y-%m-%d")
        .map_or(0, |d| i64::from(d.num_days_from_ce()));
    encode_cursor(&[day, id])
}

fn decode_trip_cursor(token: &str) -> ApiResult<(String, i64)> {
    let v = decode_cursor(token, 2)?;
    let day = i32::try_from(v[0])
        .ok()
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .ok_or_else(|| ApiError::invalid_input("invalid cursor"))?;
    Ok((day.format("%Y-%m-%d").to_string(), v[1]))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TripRequest {
    #[schema(min_length = 1, max_length = 100)]
    destination: String,
    /// YYYY-MM-DD
    #[schema(format = Date)]
    start_date: String,
    /// YYYY-MM-DD, not before start_date
    #[schema(format = Date)]
    end_date: String,
    /// 2-50, the organizer counts
    #[schema(minimum = 2, maximum = 50)]
    capacity: i64,
    #[schema(max_length = 2000)]
    description: Option<String>,
}

/// Publish a trip; the organizer is its first member and is in its group conversation.
#[utoipa::path(post, path = "/api/v1/trips", tag = "trips", security(("bearer" = [])), request_body = TripRequest,
    responses((status = 201, body = TripView), (status = 400, body = Problem)))]
pub async fn create(
    state: web::Data<Trips>,
    user: AuthUser,
    body: crate::core::extract::Json<TripRequest>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    check_line(&b.destination, "destination", MAX_DESTINATION_CHARS)?;
    let description = b.description.unwrap_or_default();
    check_free_text(&description, "description", MAX_DESCRIPTION_CHARS)?;
    let start = parse_date(&b.start_date, "start_date")?;
    let end = parse_date(&b.end_date, "end_date")?;
    if end < start {
        return Err(ApiError::invalid_input("end_date is before start_date"));
    }
    // "Today" somewhere on Earth: the date at UTC-12, the last zone to reach
    // it, so a trip starting today in any time zone is still accepted.
    let earliest = (chrono::Utc::now() - chrono::Duration::hours(12)).date_naive();
    if start < earliest {
        return Err(ApiError::invalid_input(format!(
            "start_date {start} is in the past"
        )));
    }
    if !(super::MIN_CAPACITY..=super::MAX_CAPACITY).contains(&b.capacity) {
        return Err(ApiError::invalid_input(format!(
            "capacity must be {} to {} (the organizer counts)",
            super::MIN_CAPACITY,
            super::MAX_CAPACITY
        )));
    }
    let view = state
        .db
        .call(CreateTrip {
            organizer_id: user.user_id.get(),
            destination: b.destination.trim().to_owned(),
            start_date: b.start_date,
            end_date: b.end_date,
            capacity: b.capacity,
            description,
        })
        .await?;
    state
        .chat
        .conversation_created(view.conversation_id, &view.member_ids);
    Ok(HttpResponse::Created().json(view))
}

#[derive(Deserialize)]
pub struct SearchQuery {
    destination: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Open trips whose dates overlap `[from, to]` and whose destination contains
/// the text (case-insensitive), soonest first. Without `from` or `to` that
/// side is open.
#[utoipa::path(get, path = "/api/v1/trips", tag = "trips",
    params(("destination" = Option<String>, Query), ("from" = Option<String>, Query, description = "YYYY-MM-DD"),
        ("to" = Option<String>, Query, description = "YYYY-MM-DD"), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = crate::core::paging::Page<crate::trips::store::TripView>, description = "A page of the list; `next_cursor` (null on the last page) fetches the next"), (status = 400, body = Problem)))]
pub async fn search(
    state: web::Data<Trips>,
    q: web::Query<SearchQuery>,
) -> ApiResult<HttpResponse> {
    let from = q
        .from
        .as_deref()
        .map(|f| parse_date(f, "from"))
        .transpose()?;
    let to = q.to.as_deref().map(|t| parse_date(t, "to")).transpose()?;
    if let (Some(f), Some(t)) = (from, to) {
        if t < f {
            return Err(ApiError::invalid_input("to is before from"));
        }
    }
    let text = q
        .destination
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase);
    if text
        .as_deref()
        .is_some_and(|t| t.chars().count() > MAX_DESTINATION_CHARS)
    {
        return Err(ApiError::invalid_input(
            "destination must be at most 100 characters",
        ));
    }
    let page = state
        .db
        .call(SearchTrips {
            text,
            from: from.map(|f| f.format("%Y-%m-%d").to_string()),
            to: to.map(|t| t.format("%Y-%m-%d").to_string()),
            limit: parse_limit(q.limit.as_deref())?,
            after: q.cursor.as_deref().map(decode_trip_cursor).transpose()?,
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// A trip with its members.
#[utoipa::path(get, path = "/api/v1/trips/{id}", tag = "trips", params(("id" = i64, Path)),
    responses((status = 200, body = TripView), (status = 404, body = Problem)))]
pub async fn get(
    state: web::Data<Trips>,
    path: web::Path<(crate::core::ids::TripId,)>,
) -> ApiResult<HttpResponse> {
    let view = state
        .db
        .call(GetTrip {
            trip_id: path.into_inner().0.get(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    #[schema(max_length = 500)]
    message: Option<String>,
}

fn respond(reply: TripReply, created: bool) -> HttpResponse {
    let mut b = if created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    match reply {
        TripReply::Request(r) => b.json(r),
        TripReply::Trip { view, .. } => b.json(view),
    }
}

/// Ask to join; the organizer gets a `trip.join_requested` notification.
#[utoipa::path(post, path = "/api/v1/trips/{id}/join", tag = "trips", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = JoinRequest, responses((status = 201, body = RequestView), (status = 404, body = Problem),
        (status = 409, description = "trip_full, already_member, request_pending, invalid_state (closed)", body = Problem)))]
pub async fn join(
    state: web::Data<Trips>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::TripId,)>,
    body: crate::core::extract::ActionBody<JoinRequest>,
) -> ApiResult<HttpResponse> {
    let message = body.0.message.unwrap_or_default();
    check_free_text(&message, "message", MAX_MESSAGE_CHARS)?;
    let reply = state
        .trips
        .call(
            path.into_inner().0.get(),
            TripCommand::Join {
                user_id: user.user_id.get(),
                message,
            },
        )
        .await?;
    Ok(respond(reply, true))
}

/// Accept a join request (organizer only): the requester becomes a member and
/// joins the trip's conversation. At capacity: 409 `trip_full`.
#[utoipa::path(post, path = "/api/v1/trips/{id}/requests/{request_id}/accept", tag = "trips", security(("bearer" = [])),
    params(("id" = i64, Path), ("request_id" = i64, Path)),
    responses((status = 200, body = TripView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn accept(
    state: web::Data<Trips>,
    user: AuthUser,
    _body: crate::core::extract::ActionBody<crate::core::extract::NoFields>,
    path: web::Path<(crate::core::ids::TripId, crate::core::ids::JoinRequestId)>,
) -> ApiResult<HttpResponse> {
    let (trip, request) = path.into_inner();
    let reply = state
        .trips
        .call(
            trip.get(),
            TripCommand::Accept {
                caller: user.user_id.get(),
                request_id: request.get(),
            },
        )
        .await?;
    Ok(respond(reply, false))
}

/// Decline a join request (organizer only); the requester is notified.
#[utoipa::path(post, path = "/api/v1/trips/{id}/requests/{request_id}/reject", tag = "trips", security(("bearer" = [])),
    params(("id" = i64, Path), ("request_id" = i64, Path)),
    responses((status = 200, body = RequestView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn reject(
    state: web::Data<Trips>,
    user: AuthUser,
    _body: crate::core::extract::ActionBody<crate::core::extract::NoFields>,
    path: web::Path<(crate::core::ids::TripId, crate::core::ids::JoinRequestId)>,
) -> ApiResult<HttpResponse> {
    let (trip, request) = path.into_inner();
    let reply = state
        .trips
        .call(
            trip.get(),
            TripCommand::Reject {
                caller: user.user_id.get(),
                request_id: request.get(),
            },
        )
        .await?;
    Ok(respond(reply, false))
}

/// Leave a trip (members other than the organizer): the seat frees up and
/// the member leaves the trip's conversation.
#[utoipa::path(post, path = "/api/v1/trips/{id}/leave", tag = "trips", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = TripView), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn leave(
    state: web::Data<Trips>,
    user: AuthUser,
    _body: crate::core::extract::ActionBody<crate::core::extract::NoFields>,
    path: web::Path<(crate::core::ids::TripId,)>,
) -> ApiResult<HttpResponse> {
    let reply = state
        .trips
        .call(
            path.into_inner().0.get(),
            TripCommand::Leave {
                user_id: user.user_id.get(),
            },
        )
        .await?;
    Ok(respond(reply, false))
}

/// Close a trip (organizer only): no more joins; pending requests are declined.
#[utoipa::path(post, path = "/api/v1/trips/{id}/close", tag = "trips", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = TripView), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn close(
    state: web::Data<Trips>,
    user: AuthUser,
    _body: crate::core::extract::ActionBody<crate::core::extract::NoFields>,
    path: web::Path<(crate::core::ids::TripId,)>,
) -> ApiResult<HttpResponse> {
    let reply = state
        .trips
        .call(
            path.into_inner().0.get(),
            TripCommand::Close {
                caller: user.user_id.get(),
            },
        )
        .await?;
    Ok(respond(reply, false))
}

#[derive(Deserialize)]
pub struct RequestsQuery {
    status: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// A trip's join requests, oldest first (organizer only).
#[utoipa::path(get, path = "/api/v1/trips/{id}/requests", tag = "trips", security(("bearer" = [])),
    params(("id" = i64, Path), ("status" = Option<String>, Query), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = crate::core::paging::Page<crate::trips::store::RequestView>, description = "A page of the list; `next_cursor` (null on the last page) fetches the next"), (status = 403, body = Problem)))]
pub async fn requests(
    state: web::Data<Trips>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::TripId,)>,
    q: web::Query<RequestsQuery>,
) -> ApiResult<HttpResponse> {
    if let Some(s) = &q.status {
        if crate::trips::model::RequestStatus::parse(s).is_none() {
            return Err(ApiError::invalid_input(
                "status must be pending, accepted or rejected",
            ));
        }
    }
    let page = state
        .db
        .call(ListRequests {
            trip_id: path.into_inner().0.get(),
            caller: user.user_id.get(),
            status: q.status.clone(),
            limit: parse_limit(q.limit.as_deref())?,
            after_id: cursor_id(q.cursor.as_deref())?,
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// This domain's routes (mounted under `/api/v1` by the server).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/trips", web::post().to(create))
        .route("/trips", web::get().to(search))
        .route("/trips/{id}", web::get().to(get))
        .route("/trips/{id}/join", web::post().to(join))
        .route("/trips/{id}/leave", web::post().to(leave))
        .route("/trips/{id}/close", web::post().to(close))
        .route("/trips/{id}/requests", web::get().to(requests))
        .route(
            "/trips/{id}/requests/{request_id}/accept",
            web::post().to(accept),
        )
        .route(
            "/trips/{id}/requests/{request_id}/reject",
            web::post().to(reject),
        );
}

/// This domain's part of the OpenAPI document (merged by the server).
#[derive(utoipa::OpenApi)]
#[openapi(paths(create, search, get, join, accept, reject, leave, close, requests,))]
pub struct Api;
