//! Gemba: a Value Stream Management server.
//!
//! The library behind the `gemba` binary: [`app::Application`] wires a
//! serving replica for the binary and the tests alike, [`http::app`] builds
//! its axum router, [`graphql::build_schema`] the
//! GraphQL schema, [`cli`] the commands of the binary.

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod events;
pub mod graphql;
pub mod http;
pub mod policy;
pub mod service;
pub mod webhooks;
