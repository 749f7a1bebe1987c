//! Commerce: merchants and products, per-SKU inventory actors, per-order
//! actors, group-commit order creation, payments, and order timers.

pub mod handle;
pub mod hooks;
pub mod http;
pub mod inventory;
pub mod model;
pub mod order_actor;
pub mod order_request;
pub mod order_writer;
pub mod payments;
pub mod seeds;
pub mod store;
pub mod timers;
pub mod tx;

pub use handle::{Commerce, Placed};
