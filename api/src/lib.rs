//! Gemba: a Value Stream Management server.
//!
//! The library behind the `gemba` binary: [`http::app`] builds the axum
//! router that tests and the binary serve, [`graphql::build_schema`] the
//! GraphQL schema.

pub mod auth;
pub mod bench;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod events;
pub mod graphql;
pub mod http;
pub mod import;
pub mod live_bench;
pub mod policy;
pub mod seed;
pub mod service;
pub mod synthetic;
pub mod webhooks;
