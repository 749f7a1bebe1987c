//! Animal claims (认领): a merchant lists farm animals; a user claims one for
//! a period by buying an ordinary order through the order engine. The
//! animal's one-unit product and its inventory actor make the claim exclusive.

pub mod handle;
pub mod hooks;
pub mod http;
pub mod store;
pub mod timers;

pub use handle::Animals;
