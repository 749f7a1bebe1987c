//! Social: follows, blocks, posts and the feed, notifications and the notifier.

pub mod handle;
pub mod messages;
pub mod notifier;
pub mod routes;

pub use handle::Social;
