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
    /// This node's part in keeping revocations mirrored in the cache.
    pub mirror: Arc<super::revocations::Mirror>,
    /// Pictures' owner, which comes later in the layering (avatars).
    pub pictures: Arc<dyn super::hooks::Pictures>,
}

impl Accounts {
    /// A revocation that is in the database but not in the cache: this node
    /// checks tokens against the database until the cache is rebuilt.
    pub fn mirror_failed(&self, error: &anyhow::Error) {
        self.mirror.failed(
            error,
            self.ctx.kv.clone(),
            self.db.clone(),
            self.tokens.ttl_secs,
        );
    }
}
