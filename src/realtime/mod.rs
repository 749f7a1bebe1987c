//! The realtime layer: one session actor per online user, found through the
//! session registry, fanning frames out to the user's sockets. It knows no
//! domain: sockets are reached through `socket`'s messages (chat's socket
//! actor implements them) and presence peers through a trait chat supplies.

pub mod frames;
pub mod registry;
pub mod remote;
pub mod reorder;
pub mod session;
pub mod socket;
pub mod sync_hold;
