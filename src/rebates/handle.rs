//! `Rebates`: what routes use of rules, rebates, the wallet and withdrawals.

use std::sync::Arc;

use actix::Addr;

use crate::runtime::context::Ctx;
use crate::runtime::relay::Relay;
use crate::storage::Db;

#[derive(Clone)]
pub struct Rebates {
    pub ctx: Arc<Ctx>,
    pub db: Db,
    pub relay: Addr<Relay>,
}
