//! `Moderation`: what routes use of reports, the admin queue, stats and
//! order search.

use std::sync::Arc;

use actix::Addr;

use crate::chat::Chat;
use crate::realtime::registry::Registry;
use crate::runtime::context::Ctx;
use crate::runtime::relay::Relay;
use crate::storage::Db;

#[derive(Clone)]
pub struct Moderation {
    pub ctx: Arc<Ctx>,
    pub db: Db,
    pub relay: Addr<Relay>,
    /// Sockets, closed on a ban.
    pub registry: Arc<Registry>,
    /// A removed message leaves chat's caches.
    pub chat: Chat,
    /// Bans go through accounts.
    pub accounts: crate::accounts::Accounts,
}
