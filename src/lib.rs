//! Tandem: a realtime social-and-commerce engine on actix actors.
//!
//! Domains (`accounts`, ...) each hold their actors' messages, HTTP routes and
//! store; infrastructure (`db`, `infra`, `ops`) sits beside them.

pub mod accounts;
pub mod animals;
pub mod app;
pub mod chat;
pub mod commerce;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod ids;
pub mod infra;
pub mod moderation;
pub mod ops;
pub mod pagination;
pub mod realtime;
pub mod rebates;
pub mod social;
pub mod telemetry;
pub mod trips;
