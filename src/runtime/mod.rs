//! What runs beside the database: the key-value cache (DashMap | Redis), the
//! event bus (in-process | RabbitMQ) and its consumers, and logging.

pub mod bus;
pub mod cluster;
pub mod context;
pub mod dead_letter;
pub mod keyed;
pub mod kv;
pub mod nodelink;
pub mod relay;
pub mod telemetry;
