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
        .configure(crate::server::apps::configure)
        .service(
            web::scope("/api/v1")
                .configure(crate::accounts::http::configure)
                .route("/ws", web::get().to(crate::chat::http::ws_route))
                .configure(crate::chat::http::configure)
                .configure(crate::media::http::configure)
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
    // JSON bodies are read by `core::extract::Json` within this limit.
    cfg.app_data(web::PayloadConfig::default().limit(max_body_bytes))
        .app_data(web::PathConfig::default().error_handler(extractors::path_error))
        .app_data(web::QueryConfig::default().error_handler(extractors::query_error));
}

/// Unmatched routes: a problem, not actix's empty 404; a path that exists
/// with other methods is 405 with `Allow` (RFC 9110).
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    let allowed = crate::server::openapi::methods_of(req.path());
    // A method the path serves that still found no route (no such path
    // after all, for the router) is a 404, not "use what you used".
    if allowed.is_empty() || allowed.iter().any(|m| m == req.method().as_str()) {
        return actix_web::ResponseError::error_response(&ApiError::not_found(format!(
            "no route for {} {}",
            req.method(),
            req.path()
        )));
    }
    let allow = allowed.join(", ");
    let mut resp = actix_web::ResponseError::error_response(&ApiError::method_not_allowed(
        format!("{} {} is not served; use {allow}", req.method(), req.path()),
    ));
    if let Ok(v) = header::HeaderValue::from_str(&allow) {
        resp.headers_mut().insert(header::ALLOW, v);
    }
    resp
}

/// Methods a browser's page may use, and request headers it may send, when
/// its origin is listed in `TANDEM_CORS_ORIGINS`.
const CORS_METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
const CORS_HEADERS: &str = "authorization, content-type, idempotency-key";
/// How long a browser may cache a preflight's answer.
const CORS_MAX_AGE_SECS: &str = "600";

/// CORS for the origins of `TANDEM_CORS_ORIGINS`: a preflight (`OPTIONS` with
/// `Access-Control-Request-Method`) from a listed origin is answered 204 here,
/// before routing; from another origin 403. Responses to a listed origin say
/// so (`Access-Control-Allow-Origin`, `Vary: Origin`). Requests without an
/// `Origin`, or from the server's own pages, need none of it.
pub async fn cors_middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned);
    let listed = match (&origin, req.app_data::<web::Data<Ops>>()) {
        (Some(o), Some(ops)) => ops.ctx.config.cors_origins.lists(o),
        _ => false,
    };
    let preflight = req.method() == actix_web::http::Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight && origin.is_some() {
        let resp = if listed {
            HttpResponse::NoContent()
                .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, CORS_METHODS))
                .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, CORS_HEADERS))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, CORS_MAX_AGE_SECS))
                .finish()
        } else {
            actix_web::ResponseError::error_response(&ApiError::forbidden(
                "this origin may not call the API (TANDEM_CORS_ORIGINS)",
            ))
        };
        let mut res = req.into_response(resp);
        allow_origin(&mut res, origin.as_deref().filter(|_| listed));
        return Ok(res);
    }
    let mut res = next.call(req).await?.map_into_boxed_body();
    allow_origin(&mut res, origin.as_deref().filter(|_| listed));
    Ok(res)
}

fn allow_origin<B>(res: &mut ServiceResponse<B>, origin: Option<&str>) {
    let headers = res.headers_mut();
    headers.insert(header::VARY, header::HeaderValue::from_static("Origin"));
    let Some(value) = origin.and_then(|o| header::HeaderValue::from_str(o).ok()) else {
        return;
    };
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        header::HeaderValue::from_static("retry-after, location"),
    );
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

/// PostgreSQL cannot hold or compare text with a NUL character (a query
/// with one fails as a whole, a 500), so a query string carrying one, raw or
/// as `%00`, is refused before any handler: 400, nothing read or changed.
/// Found by `scripts/fuzz.sh` on PostgreSQL (`GET /products?category=%00`).
pub async fn nul_guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody>>, actix_web::Error> {
    let q = req.query_string().as_bytes();
    let nul = q.contains(&0)
        || q.windows(3)
            .any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0');
    if nul {
        use actix_web::ResponseError as _;
        let resp = ApiError::invalid_input("query parameters may not contain NUL characters")
            .error_response();
        return Ok(req.into_response(resp).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Marks an error response whose body is its documented answer (`/ready`'s
/// 503 says which part is missing), which the problem handler leaves alone.
pub struct DocumentedBody;

/// Turns any error response that is not already a problem document (actix's
/// own 404/405/413 and friends) into one, so nothing falls through as text.
pub fn problem_error_handlers<B: MessageBody + 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(|res: ServiceResponse<B>| {
        let is_problem = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(PROBLEM_CONTENT_TYPE));
        let documented = res.response().extensions().contains::<DocumentedBody>();
        if is_problem || documented {
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
        let resp: HttpResponse = problem_response(status, (code, code), detail, None);
        Ok(ErrorHandlerResponse::Response(
            ServiceResponse::new(req, resp).map_into_right_body(),
        ))
    })
}
