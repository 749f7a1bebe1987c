//! `Animals`: what routes use of animals and their claims. A claim is an
//! order, placed through commerce's handle.

use std::sync::Arc;

use actix::Addr;

use crate::commerce::Commerce;
use crate::runtime::context::Ctx;
use crate::runtime::relay::Relay;
use crate::storage::Db;

#[derive(Clone)]
pub struct Animals {
    pub ctx: Arc<Ctx>,
    pub db: Db,
    pub relay: Addr<Relay>,
    pub commerce: Commerce,
}
