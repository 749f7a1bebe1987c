//! `Accounts`: what routes, the authentication extractor and other domains
//! use of accounts. Owns the token keys.

use std::sync::Arc;

use super::auth::TokenKeys;
use crate::realtime::registry::Registry;
use crate::runtime::context::Ctx;
use crate::storage::Db;

#[derive(Clone)]
pub struct Accounts {
    pub ctx: Arc<Ctx>,
    pub db: Db,
    pub tokens: Arc<TokenKeys>,
    /// Sockets, closed on logout and ban.
    pub registry: Arc<Registry>,
    /// Pictures' owner, which comes later in the layering (avatars).
    pub pictures: Arc<dyn super::hooks::Pictures>,
}
