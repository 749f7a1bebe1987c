//! Operations: health, readiness, metrics, the OpenAPI document.

pub mod housekeeping;
pub mod metrics;
pub mod routes;
