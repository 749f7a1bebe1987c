//! Accounts: registration, login, tokens, profile, invite codes, roles, bans.

pub mod auth;
pub mod domain;
pub mod handle;
pub mod hooks;
pub mod http;
pub mod revocations;
pub mod store;
pub mod tx;

pub use handle::Accounts;
