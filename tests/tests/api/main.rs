//! One test binary: every module spawns real servers and talks HTTP.

mod access;
mod analytics;
mod auth;
mod boards;
mod demo;
mod forecasts;
mod fuzz;
mod harness;
mod hostile;
mod http;
mod ingest;
mod live;
mod loaders;
mod metrics;
mod outage;
mod outcomes;
mod schema;
mod value_streams;
mod webhooks;
mod writes;
mod ws;
