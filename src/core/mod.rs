//! The bottom layer: what every other layer uses and which uses nothing of
//! them. Ids and time, the error type, configuration, paging, text checks,
//! metrics.

pub mod body_deadline;
pub mod client_addr;
pub mod config;
pub mod error;
pub mod extract;
pub mod ids;
pub mod metrics;
pub mod paging;
pub mod text;
pub mod text_enum;
pub mod urls;
