//! The one route table, the extractor limits, and the middleware stack.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers, Next};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::core::error::{extractors, problem_response, ApiError, PROBLEM_CONTENT_TYPE};
use crate::server::ops;
use crate::server::ops::Ops;

/// Every HTTP route of Tandem.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(ops::health))
        .route("/ready", web::get().to(ops::ready))
        .route("/metrics", web::get().to(ops::metrics))
        .route("/api-docs", web::get().to(ops::api_reference))
        .route("/api-docs/openapi.json", web::get().to(ops::openapi))
        .service(
            web::scope("/api/v1")
                .configure(crate::accounts::http::configure)
                .route("/ws", web::get().to(crate::chat::socket::ws_route))
                .configure(crate::chat::http::configure)
                .configure(crate::social::http::configure)
                .configure(crate::commerce::http::configure)
                .configure(crate::rebates::http::configure)
                .configure(crate::moderation::http::configure)
                .configure(crate::animals::http::configure)
                .configure(crate::trips::http::configure)
                .route(
                    "/admin/dead-letters",
                    web::get().to(crate::server::ops::dead_letters),
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
