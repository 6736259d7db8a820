//! One test binary: every module spawns real servers and talks HTTP.

mod access;
mod analytics;
mod auth;
mod auth_cache;
mod boards;
mod console;
mod delivery_facts;
mod demo;
mod forecasts;
mod fuzz;
mod harness;
mod hostile;
mod http;
mod ingest;
mod live;
mod live_metrics;
mod loaders;
mod metrics;
mod outage;
mod outcomes;
mod schema;
mod value_streams;
mod webhooks;
mod writes;
mod ws;
