//! Token-bucket rate limits in front of every route: per client address on
//! the auth routes and for anonymous callers, per user elsewhere. Buckets live
//! in the key-value cache, so with Redis every node shares them. Behind a
//! load balancer listed in `TANDEM_TRUSTED_PROXIES` the client address comes
//! from `X-Forwarded-For` (`core::client_addr`).
//!
//! Defaults (requests; bucket size / refill per second):
//! - `/api/v1/auth/*`, per client address: 20 / 1
//! - authenticated routes, per user: 300 / 100
//! - anything else, per client address: 300 / 100

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};

use crate::accounts::Accounts;
use crate::core::error::ApiError;
use crate::runtime::kv::Take;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub capacity: u32,
    pub refill_per_s: u32,
}

pub const AUTH_PER_ADDRESS: Limit = Limit {
    capacity: 20,
    refill_per_s: 1,
};
pub const PER_USER: Limit = Limit {
    capacity: 300,
    refill_per_s: 100,
};
pub const ANONYMOUS_PER_ADDRESS: Limit = Limit {
    capacity: 300,
    refill_per_s: 100,
};

/// Which bucket a request draws from.
pub fn classify(state: &Accounts, req: &ServiceRequest) -> (String, Limit) {
    let addr = req.peer_addr().map_or_else(
        || "unknown".to_owned(),
        |peer| {
            // Every line, even one with bytes that are not ASCII (skipping
            // it would let a client fall back to the proxy's shared bucket):
            // an unreadable entry only ends the walk leftwards.
            let forwarded = req
                .headers()
                .get_all("x-forwarded-for")
                .map(|v| String::from_utf8_lossy(v.as_bytes()));
            state
                .ctx
                .config
                .trusted_proxies
                .client(peer.ip(), forwarded)
                .to_string()
        },
    );
    // Password checks (argon2) get the sign-in bucket: a stolen token must
    // not buy many guesses at the password.
    if req.path().starts_with("/api/v1/auth/") || req.path() == "/api/v1/me/password" {
        return (format!("rl:auth:{addr}"), AUTH_PER_ADDRESS);
    }
    // Only a correctly signed token names a user; anything else counts against the address.
    if let Some(token) = crate::accounts::auth::bearer_token(req.request()) {
        if let Ok((uid, _)) = state.tokens.verify(&token) {
            return (format!("rl:user:{uid}"), PER_USER);
        }
    }
    (format!("rl:addr:{addr}"), ANONYMOUS_PER_ADDRESS)
}

/// The longest a rate-limit lookup waits for the cache.
const RATE_LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(300);

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let state = req.app_data::<web::Data<Accounts>>().cloned();
    if let Some(state) = state.filter(|s| s.ctx.config.rate_limits_enabled()) {
        let (key, limit) = classify(&state, &req);
        // Bounded like the revocation lookup: a hanging cache lets requests
        // through (below) instead of holding them.
        let take = state
            .ctx
            .kv
            .take_token(&key, limit.capacity, limit.refill_per_s);
        match tokio::time::timeout(RATE_LOOKUP_TIMEOUT, take)
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the rate limiter did not answer in time")))
        {
            Ok(Take::Allowed) => {}
            Ok(Take::RetryAfterMs(ms)) => {
                let resp = ApiError::rate_limited(ms.div_ceil(1000)).error_response();
                return Ok(req.into_response(resp).map_into_right_body());
            }
            // The cache being down must not take the whole API down with it.
            Err(e) => {
                tracing::warn!(error = %e, "rate limiter unavailable; letting the request through")
            }
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}
