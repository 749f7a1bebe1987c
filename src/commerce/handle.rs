//! `Commerce`: what routes and other domains (animals) use of merchants,
//! products, orders and payments.

use std::sync::Arc;

use actix::Addr;

use super::inventory::InventoryRegistry;
use super::order_actor::OrderRegistry;
use super::order_writer::OrderWriter;
use super::payments::PaymentProvider;
use crate::runtime::context::Ctx;
use crate::runtime::relay::Relay;
use crate::storage::Db;

#[derive(Clone)]
pub struct Commerce {
    pub ctx: Arc<Ctx>,
    pub db: Db,
    pub relay: Addr<Relay>,
    pub inventory: Arc<InventoryRegistry>,
    pub orders: Arc<OrderRegistry>,
    pub order_writer: OrderWriter,
    pub payments: Arc<dyn PaymentProvider>,
}
