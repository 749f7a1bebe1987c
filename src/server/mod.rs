//! The composition root: startup and wiring (`app`), the route table and
//! middleware (`http`), rate limits, operations routes and housekeeping.
//! Nothing imports this layer.

pub mod app;
pub mod apps;
pub mod housekeeping;
pub mod http;
pub mod openapi;
pub mod ops;
pub mod ratelimit;
pub mod seed;
