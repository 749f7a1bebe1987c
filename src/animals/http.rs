//! Animals over HTTP.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::store::{
    AnimalUpdateView, AnimalView, CreateAnimal, GetAnimal, ListAnimals, ListUpdates, PostUpdate,
};
use super::Animals;
use crate::accounts::auth::AuthUser;
use crate::commerce::http::MAX_PRICE_CENTS;
use crate::commerce::model::OrderView;
use crate::commerce::order_request::CreateOrderRequest;
use crate::commerce::Placed;
use crate::core::error::{ApiError, ApiResult, ErrorKind, Problem};
use crate::core::paging::{cursor_id, parse_limit};
use crate::core::text::{check_free_text, check_line, Id};
use crate::storage::idempotency::MaybeIdempotencyKey;

/// Longest claim period, in days.
pub const MAX_CLAIM_DAYS: i64 = 3_650;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnimalRequest {
    #[schema(value_type = i64)]
    merchant_id: Id,
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    #[schema(min_length = 1, max_length = 50)]
    species: String,
    #[schema(max_length = 2000)]
    description: String,
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    claim_price_cents: i64,
    #[schema(minimum = 1, maximum = 3650)]
    claim_days: i64,
    /// A picture the caller uploaded (`POST /api/v1/media`).
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 9007199254740991_i64)]
    image_media_id: Option<crate::core::ids::MediaId>,
}

/// List an animal for claiming (owner of an approved merchant).
#[utoipa::path(post, path = "/api/v1/animals", tag = "animals", security(("bearer" = [])), request_body = AnimalRequest,
    responses((status = 201, body = AnimalView), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn create(
    state: web::Data<Animals>,
    user: AuthUser,
    body: crate::core::extract::Json<AnimalRequest>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    check_line(&b.name, "name", 100)?;
    check_line(&b.species, "species", 50)?;
    check_free_text(&b.description, "description", 2_000)?;
    if !(0..=MAX_PRICE_CENTS).contains(&b.claim_price_cents) {
        return Err(ApiError::invalid_input(
            "claim_price_cents must be 0 to 10^12",
        ));
    }
    if !(1..=MAX_CLAIM_DAYS).contains(&b.claim_days) {
        return Err(ApiError::invalid_input(format!(
            "claim_days must be 1 to {MAX_CLAIM_DAYS}"
        )));
    }
    let view = state
        .db
        .call(CreateAnimal {
            owner: user.user_id,
            merchant_id: b.merchant_id.get(),
            name: b.name,
            species: b.species,
            description: b.description,
            claim_price_cents: b.claim_price_cents,
            claim_days: b.claim_days,
            image_media_id: b.image_media_id.map(|m| m.get()),
        })
        .await?;
    Ok(HttpResponse::Created().json(view))
}

#[derive(Deserialize)]
pub struct ListQuery {
    merchant_id: Option<String>,
    species: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Animals, oldest listing first, with who holds each one now.
#[utoipa::path(get, path = "/api/v1/animals", tag = "animals",
    params(("merchant_id" = Option<i64>, Query), ("species" = Option<String>, Query), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = crate::core::paging::Page<crate::animals::store::AnimalView>, description = "A page of the list; `next_cursor` (null on the last page) fetches the next"), (status = 400, body = Problem)))]
pub async fn list(
    state: web::Data<Animals>,
    user: Option<AuthUser>,
    q: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    let merchant_id = crate::core::text::id_param::<crate::core::ids::kind::Merchant>(
        q.merchant_id.as_deref(),
        "merchant_id",
    )?
    .map(Id::get);
    if q.species.as_deref().is_some_and(|s| s.chars().count() > 50) {
        return Err(ApiError::invalid_input(
            "species must be at most 50 characters",
        ));
    }
    let page = state
        .db
        .call(ListAnimals {
            merchant_id,
            species: q.species.clone().filter(|s| !s.is_empty()),
            limit: parse_limit(q.limit.as_deref())?,
            after_id: cursor_id(q.cursor.as_deref())?,
        })
        .await?;
    let viewer = user.map(|u| u.user_id.get());
    let page = crate::core::paging::Page {
        items: page.items.into_iter().map(|a| seen_by(a, viewer)).collect(),
        next_cursor: page.next_cursor,
    };
    Ok(HttpResponse::Ok().json(page))
}

/// Who claimed an animal is the claimer's business only.
fn seen_by(mut a: AnimalView, viewer: Option<i64>) -> AnimalView {
    if a.claimed_by.is_some() && a.claimed_by != viewer {
        a.claimed_by = None;
    }
    a
}

/// An animal: `claimed` and `claimed_until` while a paid claim runs;
/// `claimed_by` then only for the claimer.
#[utoipa::path(get, path = "/api/v1/animals/{id}", tag = "animals", params(("id" = i64, Path)),
    responses((status = 200, body = AnimalView), (status = 404, body = Problem)))]
pub async fn get(
    state: web::Data<Animals>,
    user: Option<AuthUser>,
    path: web::Path<(crate::core::ids::AnimalId,)>,
) -> ApiResult<HttpResponse> {
    let row = state
        .db
        .call(GetAnimal {
            animal_id: path.into_inner().0.get(),
        })
        .await?;
    let view = row.view(crate::core::ids::now_ms());
    Ok(HttpResponse::Ok().json(seen_by(view, user.map(|u| u.user_id.get()))))
}

/// Claim an animal: 201 with an ordinary order for `claim_price_cents`, paid
/// like any order. While a pending or paid claim holds it: 409 `already_claimed`.
#[utoipa::path(post, path = "/api/v1/animals/{id}/claim", tag = "animals", security(("bearer" = [])), params(("id" = i64, Path),
        ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = OrderView), (status = 404, body = Problem), (status = 409, description = "already_claimed", body = Problem)))]
pub async fn claim(
    state: web::Data<Animals>,
    user: AuthUser,
    _body: crate::core::extract::ActionBody<crate::core::extract::NoFields>,
    key: MaybeIdempotencyKey,
    path: web::Path<(crate::core::ids::AnimalId,)>,
) -> ApiResult<HttpResponse> {
    let animal = state
        .db
        .call(GetAnimal {
            animal_id: path.into_inner().0.get(),
        })
        .await?;
    let product =
        Id::new(animal.product_id).ok_or_else(|| ApiError::not_found("no such animal"))?;
    let placed = state
        .commerce
        .place_order(user.user_id, CreateOrderRequest::single(product), key)
        .await
        .map_err(|e| match e.kind() {
            ErrorKind::OutOfStock | ErrorKind::ProductInactive => ApiError::conflict(
                ErrorKind::AlreadyClaimed,
                "another claim holds this animal; try again when it is free",
            ),
            _ => e,
        })?;
    Ok(match placed {
        Placed::Created(view) => HttpResponse::Created().json(view),
        Placed::Replay { status_code, body } => crate::commerce::http::replay(status_code, body),
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    #[schema(max_length = 2000)]
    body: String,
}

/// Post news of an animal (its merchant's owner); the current claimer gets an
/// `animal.update` notification.
#[utoipa::path(post, path = "/api/v1/animals/{id}/updates", tag = "animals", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = UpdateRequest, responses((status = 201, body = AnimalUpdateView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn post_update(
    state: web::Data<Animals>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::AnimalId,)>,
    body: crate::core::extract::Json<UpdateRequest>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    if b.body.trim().is_empty() {
        return Err(ApiError::invalid_input("body must not be blank"));
    }
    check_free_text(&b.body, "body", 2_000)?;
    let view = state
        .db
        .call(PostUpdate {
            owner: user.user_id.get(),
            animal_id: path.into_inner().0.get(),
            body: b.body,
        })
        .await?;
    state.relay.do_send(crate::runtime::relay::Nudge);
    Ok(HttpResponse::Created().json(view))
}

/// An animal's updates, newest first.
#[utoipa::path(get, path = "/api/v1/animals/{id}/updates", tag = "animals",
    params(("id" = i64, Path), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = crate::core::paging::Page<crate::animals::store::AnimalUpdateView>, description = "A page of the list; `next_cursor` (null on the last page) fetches the next"), (status = 404, body = Problem)))]
pub async fn updates(
    state: web::Data<Animals>,
    path: web::Path<(crate::core::ids::AnimalId,)>,
    q: web::Query<crate::core::paging::PageQuery>,
) -> ApiResult<HttpResponse> {
    let page = state
        .db
        .call(ListUpdates {
            animal_id: path.into_inner().0.get(),
            limit: q.limit()?,
            before_id: q.cursor_id()?,
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// This domain's routes (mounted under `/api/v1` by the server).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/animals", web::post().to(create))
        .route("/animals", web::get().to(list))
        .route("/animals/{id}", web::get().to(get))
        .route("/animals/{id}/claim", web::post().to(claim))
        .route("/animals/{id}/updates", web::post().to(post_update))
        .route("/animals/{id}/updates", web::get().to(updates));
}

/// This domain's part of the OpenAPI document (merged by the server).
#[derive(utoipa::OpenApi)]
#[openapi(paths(create, list, get, claim, post_update, updates,))]
pub struct Api;
