//! Chat: conversations, gapless per-conversation sequence numbers, durable
//! before ack (group commit), sync and history.

pub mod handle;
pub mod http;
pub mod model;
pub mod recent;
pub mod socket;
pub mod store;
pub mod tx;
pub mod writer;

pub use handle::{Chat, ChatCaches};
