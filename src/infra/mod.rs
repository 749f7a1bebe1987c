//! Infrastructure adapters, each behind one trait with an embedded default
//! and a real service: the key-value cache (DashMap | Redis) and the event
//! bus (in-process | RabbitMQ).

pub mod bus;
pub mod dead_letter;
pub mod idempotency;
pub mod kv;
pub mod outbox;
pub mod ratelimit;
