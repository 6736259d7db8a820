//! Database migrations for Gemba. One migration set runs on SQLite and
//! PostgreSQL. This crate never imports `entity`: migrations describe the
//! schema as it was at each step, not as the code is today.

pub use sea_orm_migration::prelude::*;

mod helpers;
mod m20261125_000001_core;
mod m20261126_000002_delivery;
mod m20261126_000003_integrations;
mod m20261127_000004_outcomes;
mod m20261128_000005_change_sha;
mod m20261129_000006_value_streams;
mod m20261130_000007_flow_facts;
mod m20261201_000008_flow_states;
mod m20261201_000009_delivery_facts;
mod m20261202_000010_boards;
mod m20261203_000011_objective_links;
mod m20261204_000012_flow_changes;
mod m20261205_000013_delivery_changes;
mod m20261206_000014_ingest_log_index;
mod m20261206_000015_fact_lines;
mod m20261207_000016_transition_item_check;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_core::Migration),
            Box::new(m20261126_000002_delivery::Migration),
            Box::new(m20261126_000003_integrations::Migration),
            Box::new(m20261127_000004_outcomes::Migration),
            Box::new(m20261128_000005_change_sha::Migration),
            Box::new(m20261129_000006_value_streams::Migration),
            Box::new(m20261130_000007_flow_facts::Migration),
            Box::new(m20261201_000008_flow_states::Migration),
            Box::new(m20261201_000009_delivery_facts::Migration),
            Box::new(m20261202_000010_boards::Migration),
            Box::new(m20261203_000011_objective_links::Migration),
            Box::new(m20261204_000012_flow_changes::Migration),
            Box::new(m20261205_000013_delivery_changes::Migration),
            Box::new(m20261206_000014_ingest_log_index::Migration),
            Box::new(m20261206_000015_fact_lines::Migration),
            Box::new(m20261207_000016_transition_item_check::Migration),
        ]
    }
}
