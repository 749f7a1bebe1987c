//! The realtime half: one connection actor per WebSocket, one session actor
//! per online user, found through the session registry.

pub mod connection;
pub mod frames;
pub mod registry;
pub mod session;
pub mod sync_hold;
