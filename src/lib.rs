//! Tandem: a realtime social-and-commerce engine on actix actors.
//!
//! Layers, each importing only from the ones above it in this list
//! (ARCHITECTURE.md has the map; `tests/api/layers.rs` enforces it):
//!
//! - `core`: ids, errors, configuration, paging, text checks, metrics;
//! - `storage`: connections, pool, executor, group commit, schema, outbox,
//!   idempotency records;
//! - `runtime`: the cache, the event bus, its consumers and logs;
//! - `realtime`: sockets, sessions and their registry;
//! - the domains: `accounts`, `chat`, `social`, `commerce`, `rebates`,
//!   `trips`, `animals`, `moderation`;
//! - `server`: the composition root (wiring, middleware, routes, operations).

pub mod core;
pub mod storage;

pub mod runtime;

pub mod realtime;

pub mod accounts;
pub mod animals;
pub mod chat;
pub mod commerce;
pub mod media;
pub mod moderation;
pub mod rebates;
pub mod social;
pub mod trips;

pub mod server;
