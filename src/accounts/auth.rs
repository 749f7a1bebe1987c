//! Passwords, access tokens, revocation, and the `AuthUser` extractor.
//!
//! Tokens are HS256 JWTs carrying the user id and a session id, checked for
//! signature, expiry, issuer and audience. Revocation (logout, ban) is a
//! database fact mirrored into the key-value cache, so checking it on every
//! request costs no database query while the cache can vouch for it
//! (`revocations` says when it cannot).

use std::future::Future;
use std::pin::Pin;

use actix_web::{web, FromRequest, HttpRequest};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use jsonwebtoken::{Algorithm as JwtAlg, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::revocations::{SessionStanding, MIRROR_MARKER_KEY};
use super::Accounts;
use crate::core::error::ApiError;
use crate::core::ids::UserId;
use crate::core::text::Id;

const ISSUER: &str = "tandem";
const AUDIENCE: &str = "tandem-api";

/// argon2id with OWASP's minimum: m = 19 MiB, t = 2, p = 1.
fn argon2() -> Argon2<'static> {
    // These constants are valid parameters; `Params::new` cannot fail on them.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password (CPU- and memory-heavy: call only on executor threads).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
}

/// Verifies in constant time (argon2's own comparison).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of a random password, verified against when the username is
/// unknown so that a login takes as long whether or not the user exists.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&crate::core::ids::random_token(24)).unwrap_or_default())
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub sid: i64,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
}

pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub ttl_secs: u64,
}

impl TokenKeys {
    pub fn new(secret: &[u8], ttl_secs: u64) -> Self {
        let mut validation = Validation::new(JwtAlg::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl_secs,
        }
    }

    pub fn issue(
        &self,
        user_id: i64,
        session_id: i64,
        issued_at_ms: i64,
    ) -> anyhow::Result<String> {
        let iat = issued_at_ms / 1000;
        let claims = Claims {
            sub: user_id.to_string(),
            sid: session_id,
            iat,
            exp: iat + i64::try_from(self.ttl_secs).unwrap_or(i64::MAX / 4),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(JwtAlg::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// Signature, expiry, issuer and audience; not revocation.
    pub fn verify(&self, token: &str) -> Result<(UserId, i64), ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::ExpiredSignature => ApiError::unauthorized("token expired"),
                    _ => ApiError::unauthorized("invalid token"),
                }
            })?;
        let uid = data
            .claims
            .sub
            .parse::<i64>()
            .ok()
            .and_then(Id::new)
            .ok_or_else(|| ApiError::unauthorized("invalid token"))?;
        Ok((uid, data.claims.sid))
    }

    pub fn expires_at_ms(&self, issued_at_ms: i64) -> i64 {
        (issued_at_ms / 1000) * 1000 + i64::try_from(self.ttl_secs).unwrap_or(i64::MAX / 4) * 1000
    }
}

pub fn revoked_session_key(sid: i64) -> String {
    format!("rev:sid:{sid}")
}

pub fn banned_user_key(uid: i64) -> String {
    format!("ban:{uid}")
}

/// The bearer token of a request: the `Authorization` header, or for the
/// WebSocket endpoint (browsers cannot set headers there) `?token=`.
pub fn bearer_token(req: &HttpRequest) -> Option<String> {
    if let Some(h) = req.headers().get(actix_web::http::header::AUTHORIZATION) {
        let v = h.to_str().ok()?;
        let (scheme, token) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned());
    }
    if req.path() == "/api/v1/ws" {
        return web::Query::<TokenQuery>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.into_inner().token);
    }
    None
}

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

/// An authenticated caller: valid token, session not revoked, user not banned.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    pub user_id: UserId,
    pub session_id: i64,
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<Accounts>>().cloned();
        let token = bearer_token(req);
        Box::pin(async move {
            let state =
                state.ok_or_else(|| ApiError::internal(anyhow::anyhow!("app state missing")))?;
            let token = token.ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
            let (user_id, session_id) = state.tokens.verify(&token)?;
            let revoked = !in_good_standing(&state, user_id, session_id).await?;
            if revoked {
                return Err(ApiError::unauthorized("token revoked"));
            }
            Ok(AuthUser {
                user_id,
                session_id,
            })
        })
    }
}

/// The longest a revocation lookup waits for the cache.
const CACHE_LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(300);

/// Whether the token's session may act. The cache answers when it holds a
/// whole mirror; when it is down, lost the mirror, or this node failed to
/// mirror a revocation, the database answers (and the mirror is rebuilt).
async fn in_good_standing(
    state: &Accounts,
    user_id: UserId,
    session_id: i64,
) -> Result<bool, ApiError> {
    let keys = [
        MIRROR_MARKER_KEY.to_owned(),
        revoked_session_key(session_id),
        banned_user_key(user_id.get()),
    ];
    // Bounded: a cache that hangs (a half-open connection, a reconnect in
    // progress) must not hold every request; past this the database answers.
    let cached = tokio::time::timeout(CACHE_LOOKUP_TIMEOUT, state.ctx.kv.exists_each(&keys))
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the cache did not answer in time")));
    match cached {
        Ok(found) if found.first() == Some(&true) && !state.mirror.is_stale() => {
            return Ok(!found.iter().skip(1).any(|x| *x));
        }
        // The cache answers but cannot vouch: rebuild it while the database decides.
        Ok(_) => state.mirror.rebuild(
            state.ctx.kv.clone(),
            state.db.clone(),
            state.tokens.ttl_secs,
        ),
        Err(e) => {
            tracing::debug!(error = %e, "cache unavailable; revocation checked in the database")
        }
    }
    state
        .db
        .call(SessionStanding {
            user_id,
            session_id,
        })
        .await
}
