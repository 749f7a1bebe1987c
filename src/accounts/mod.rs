//! Accounts: registration, login, tokens, profile, invite codes, roles, bans.

pub mod auth;
pub mod authz;
pub mod domain;
pub mod handle;
pub mod http;
pub mod store;

pub use handle::Accounts;
