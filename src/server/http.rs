//! The one route table, the extractor limits, and the middleware stack.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers, Next};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::accounts::http as accounts;
use crate::animals::http as animals;
use crate::chat::http as chat;
use crate::commerce::http as commerce;
use crate::core::error::{extractors, problem_response, ApiError, PROBLEM_CONTENT_TYPE};
use crate::moderation::http as moderation;
use crate::rebates::http as rebates;
use crate::server::ops;
use crate::server::ops::Ops;
use crate::social::http as social;
use crate::trips::http as trips;

/// Every HTTP route of Tandem.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(ops::health))
        .route("/ready", web::get().to(ops::ready))
        .route("/metrics", web::get().to(ops::metrics))
        .route("/api-docs/openapi.json", web::get().to(ops::openapi))
        .service(
            web::scope("/api/v1")
                .route("/auth/register", web::post().to(accounts::register))
                .route("/auth/login", web::post().to(accounts::login))
                .route("/auth/refresh", web::post().to(accounts::refresh))
                .route("/auth/logout", web::post().to(accounts::logout))
                .route("/me", web::get().to(accounts::me))
                .route("/me", web::patch().to(accounts::update_me))
                .route("/admin/users/{id}/ban", web::post().to(accounts::ban))
                .route("/admin/users/{id}/unban", web::post().to(accounts::unban))
                .route("/ws", web::get().to(crate::realtime::connection::ws_route))
                .route("/conversations", web::post().to(chat::create))
                .route("/conversations", web::get().to(chat::list))
                .route("/conversations/{id}/messages", web::get().to(chat::history))
                .route("/users/{id}/follow", web::post().to(social::follow))
                .route("/users/{id}/follow", web::delete().to(social::unfollow))
                .route("/users/{id}/block", web::post().to(social::block))
                .route("/users/{id}/block", web::delete().to(social::unblock))
                .route("/posts", web::post().to(social::create_post))
                .route("/posts/{id}", web::get().to(social::get_post))
                .route("/posts/{id}/like", web::post().to(social::like))
                .route("/posts/{id}/comments", web::post().to(social::comment))
                .route("/feed", web::get().to(social::feed))
                .route("/notifications", web::get().to(social::notifications))
                .route("/notifications/read", web::post().to(social::mark_read))
                .route("/merchants", web::post().to(commerce::apply_merchant))
                .route("/merchants/{id}", web::get().to(commerce::get_merchant))
                .route(
                    "/merchants/{id}/orders",
                    web::get().to(commerce::merchant_orders),
                )
                .route("/admin/merchants", web::get().to(commerce::list_merchants))
                .route(
                    "/admin/merchants/{id}/approve",
                    web::post().to(commerce::approve_merchant),
                )
                .route(
                    "/admin/merchants/{id}/reject",
                    web::post().to(commerce::reject_merchant),
                )
                .route("/products", web::post().to(commerce::create_product))
                .route("/products", web::get().to(commerce::list_products))
                .route("/products/{id}", web::get().to(commerce::get_product))
                .route("/products/{id}", web::patch().to(commerce::update_product))
                .route("/orders", web::post().to(commerce::create_order))
                .route("/orders", web::get().to(commerce::my_orders))
                .route("/orders/{id}", web::get().to(commerce::get_order))
                .route("/orders/{id}/cancel", web::post().to(commerce::cancel))
                .route("/orders/{id}/review", web::post().to(commerce::review))
                .route(
                    "/merchants/{id}/reviews",
                    web::get().to(commerce::merchant_reviews),
                )
                .route(
                    "/merchants/{id}/dashboard",
                    web::get().to(commerce::dashboard),
                )
                .route("/orders/{id}/pay", web::post().to(commerce::pay))
                .route("/orders/{id}/ship", web::post().to(commerce::ship))
                .route("/orders/{id}/confirm", web::post().to(commerce::confirm))
                .route("/orders/{id}/refund", web::post().to(commerce::refund))
                .route(
                    "/orders/{id}/refund/approve",
                    web::post().to(commerce::approve_refund),
                )
                .route(
                    "/orders/{id}/refund/reject",
                    web::post().to(commerce::reject_refund),
                )
                .route(
                    "/payments/mockpay/notify",
                    web::post().to(commerce::mockpay_notify),
                )
                .route("/admin/rebate-rules", web::put().to(rebates::put_rules))
                .route("/admin/rebate-rules", web::get().to(rebates::get_rules))
                .route("/rebates", web::get().to(rebates::list_rebates))
                .route("/wallet", web::get().to(rebates::get_wallet))
                .route("/withdrawals", web::post().to(rebates::request_withdrawal))
                .route(
                    "/admin/withdrawals",
                    web::get().to(rebates::list_withdrawals),
                )
                .route(
                    "/admin/withdrawals/{id}/approve",
                    web::post().to(rebates::approve_withdrawal),
                )
                .route(
                    "/admin/withdrawals/{id}/reject",
                    web::post().to(rebates::reject_withdrawal),
                )
                .route("/me/invitees", web::get().to(rebates::invitees))
                .route("/me/rewards", web::get().to(rebates::rewards))
                .route("/reports", web::post().to(moderation::file))
                .route("/admin/reports", web::get().to(moderation::queue))
                .route(
                    "/admin/reports/{id}/resolve",
                    web::post().to(moderation::resolve),
                )
                .route("/admin/stats", web::get().to(moderation::stats))
                .route("/admin/orders", web::get().to(moderation::orders))
                .route(
                    "/admin/dead-letters",
                    web::get().to(crate::server::ops::dead_letters),
                )
                .route("/animals", web::post().to(animals::create))
                .route("/animals", web::get().to(animals::list))
                .route("/animals/{id}", web::get().to(animals::get))
                .route("/animals/{id}/claim", web::post().to(animals::claim))
                .route(
                    "/animals/{id}/updates",
                    web::post().to(animals::post_update),
                )
                .route("/animals/{id}/updates", web::get().to(animals::updates))
                .route("/trips", web::post().to(trips::create))
                .route("/trips", web::get().to(trips::search))
                .route("/trips/{id}", web::get().to(trips::get))
                .route("/trips/{id}/join", web::post().to(trips::join))
                .route("/trips/{id}/leave", web::post().to(trips::leave))
                .route("/trips/{id}/close", web::post().to(trips::close))
                .route("/trips/{id}/requests", web::get().to(trips::requests))
                .route(
                    "/trips/{id}/requests/{request_id}/accept",
                    web::post().to(trips::accept),
                )
                .route(
                    "/trips/{id}/requests/{request_id}/reject",
                    web::post().to(trips::reject),
                ),
        );
}

/// Body and extractor limits, with every extractor failure turned into a problem.
pub fn extractor_config(cfg: &mut web::ServiceConfig, max_body_bytes: usize) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(max_body_bytes)
            .error_handler(extractors::json_error),
    )
    .app_data(web::PayloadConfig::default().limit(max_body_bytes))
    .app_data(web::PathConfig::default().error_handler(extractors::path_error))
    .app_data(web::QueryConfig::default().error_handler(extractors::query_error));
}

/// Unmatched routes: a problem, not actix's empty 404.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

/// Records count and latency per matched route pattern (never the raw path,
/// so ids do not explode the series).
pub async fn metrics_middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let state = req.app_data::<web::Data<Ops>>().cloned();
    let method = req.method().to_string();
    let res = next.call(req).await?;
    if let Some(state) = state {
        let route = res.request().match_pattern();
        state.ctx.metrics.observe_request(
            &method,
            route.as_deref(),
            res.status().as_u16(),
            started.elapsed(),
        );
    }
    Ok(res)
}

/// Turns any error response that is not already a problem document (actix's
/// own 404/405/413 and friends) into one, so nothing falls through as text.
pub fn problem_error_handlers<B: MessageBody + 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(|res: ServiceResponse<B>| {
        let is_problem = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(PROBLEM_CONTENT_TYPE));
        if is_problem {
            return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
        }
        let status = res.status();
        let (code, detail) = match status.as_u16() {
            400 => ("invalid_input", "the request is malformed"),
            401 => ("unauthorized", "authentication required"),
            403 => ("forbidden", "not allowed"),
            404 => ("not_found", "not found"),
            405 => ("method_not_allowed", "method not allowed on this route"),
            413 => ("payload_too_large", "the request body is too large"),
            415 => ("invalid_input", "unsupported content type"),
            429 => ("rate_limited", "too many requests"),
            503 => ("unavailable", "temporarily unavailable"),
            s if s >= 500 => ("internal", "internal server error"),
            _ => ("invalid_input", "the request could not be served"),
        };
        let (req, _old) = res.into_parts();
        let resp: HttpResponse = problem_response(status, code, detail, None);
        Ok(ErrorHandlerResponse::Response(
            ServiceResponse::new(req, resp).map_into_right_body(),
        ))
    })
}
