//! `Social`: what routes use of follows, blocks, posts, the feed and
//! notifications.

use std::sync::Arc;

use actix::Addr;

use crate::realtime::registry::Registry;
use crate::runtime::context::Ctx;
use crate::runtime::relay::Relay;
use crate::storage::Db;

#[derive(Clone)]
pub struct Social {
    pub ctx: Arc<Ctx>,
    pub db: Db,
    pub relay: Addr<Relay>,
    /// Sockets, for live feed pushes and presence.
    pub registry: Arc<Registry>,
    /// What later domains add to a member's profile.
    pub profile_hook: Arc<dyn super::hooks::ProfileHook>,
}
