//! The scenarios, one module each; `run` in main.rs dispatches on `--scenario`.

mod chaos;
mod chat_direct;
mod chat_group;
mod chat_group_open;
mod connections;
mod flash_sale;
mod health;
mod mixed;
mod order_create;
mod orders;

pub(crate) use chaos::scenario_chaos;
pub(crate) use chat_direct::scenario_chat_direct;
pub(crate) use chat_group::scenario_chat_group;
pub(crate) use connections::scenario_connections;
pub(crate) use flash_sale::scenario_flash_sale;
pub(crate) use health::scenario_health;
pub(crate) use mixed::scenario_mixed;
pub(crate) use order_create::scenario_order_create;
pub(crate) use orders::scenario_orders;
