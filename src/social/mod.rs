//! Social: follows, blocks, posts and the feed, notifications and the notifier.

pub mod handle;
pub mod http;
pub mod messages;
pub mod notifier;

pub use handle::Social;
