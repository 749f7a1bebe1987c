//! Commerce over HTTP: a handler extracts, calls the handle (or its
//! executor), and answers.

pub mod catalog;
pub mod orders;

pub use catalog::*;
pub use orders::*;
