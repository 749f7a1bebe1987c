#![allow(clippy::unwrap_used)]
//! Integration tests: one binary (linked once), modules by domain. Every test
//! starts the real `tandem` binary on port 0 with a fresh database and talks
//! HTTP to it: on SQLite always, and on PostgreSQL with Redis and RabbitMQ when
//! `TANDEM_TEST_DATABASE_URL`, `TANDEM_TEST_REDIS_URL` and `TANDEM_TEST_AMQP_URL`
//! are set (as `.ci/run` does).

mod accounts;
mod adapters;
mod apps;
mod browser;
mod chat;
mod chat_changes;
mod cluster;
mod committers;
mod community;
mod degradation;
mod deploy;
mod errors;
mod gifts;
mod helpers;
mod hostile;
mod intruders;
mod layers;
mod media;
mod operations;
mod orders;
mod parsers;
mod preferences;
mod privacy;
mod rebate_model;
mod rebates;
mod social;
mod socket_storm;
mod trips;
mod upgrade;
mod write_path;
mod ws;
