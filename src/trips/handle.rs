//! `Trips`: what routes use of companion trips.

use std::sync::Arc;

use super::actor::TripRegistry;
use crate::chat::Chat;
use crate::runtime::context::Ctx;
use crate::storage::Db;

#[derive(Clone)]
pub struct Trips {
    pub ctx: Arc<Ctx>,
    pub db: Db,
    pub trips: Arc<TripRegistry>,
    /// A trip's group conversation is chat's.
    pub chat: Chat,
}
