//! Moderation and the admin console: user reports and the report queue
//! (dismiss, remove the content, ban), platform figures, order search.

pub mod handle;
pub mod http;
pub mod model;
pub mod store;

pub use handle::Moderation;
