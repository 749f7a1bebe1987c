//! Social: follows, blocks, posts and the feed, notifications and the notifier.

pub mod handle;
pub mod hooks;
pub mod http;
pub mod notifier;
pub mod store;
pub mod tx;

pub use handle::Social;
