//! One line index per flow-facts table instead of one per unit column.
//!
//! The facts carry their owner's line (`portfolio_id`, `program_id`,
//! `team_id`; a strict hierarchy, so a unit's line is its ancestors) and
//! were indexed by `unit_id`, `portfolio_id`, `program_id` and `team_id`,
//! each with the table's time column: four B-trees written by every fact
//! row, the largest share of ingest work. One index on
//! `(portfolio_id, program_id, team_id, time)` serves every unit: a unit's
//! subtree is the prefix of its line, its own rows that prefix with the
//! levels below it `NULL`. A team's and a unit's own windows stay ranges; a
//! program's or a portfolio's window reads its subtree's entries and
//! filters the time inside the index.

use sea_orm_migration::prelude::*;

use crate::helpers::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Each table, its time column, and the indexes the line index replaces.
const TABLES: &[(&str, &str, &[&str])] = &[
    (
        "flow_completion",
        "completed_ms",
        &[
            "idx_flow_completion_unit",
            "idx_flow_completion_portfolio",
            "idx_flow_completion_program",
            "idx_flow_completion_team",
        ],
    ),
    (
        "flow_wip",
        "to_ms",
        &[
            "idx_flow_wip_unit",
            "idx_flow_wip_portfolio",
            "idx_flow_wip_program",
            "idx_flow_wip_team",
        ],
    ),
    (
        "flow_state",
        "to_ms",
        &[
            "idx_flow_state_unit",
            "idx_flow_state_portfolio",
            "idx_flow_state_program",
            "idx_flow_state_team",
        ],
    ),
];

/// `idx_flow_state_program` → `program_id`.
fn column_of(name: &str) -> String {
    let level = name.rsplit('_').next().unwrap_or_default();
    format!("{level}_id")
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, time, old) in TABLES {
            for name in *old {
                manager
                    .drop_index(
                        Index::drop()
                            .name(*name)
                            .table(Alias::new(*table))
                            .to_owned(),
                    )
                    .await?;
            }
            let mut line = Index::create();
            line.name(format!("idx_{table}_line"))
                .table(Alias::new(*table))
                .col(Alias::new("portfolio_id"))
                .col(Alias::new("program_id"))
                .col(Alias::new("team_id"))
                .col(Alias::new(*time));
            manager.create_index(line).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, time, old) in TABLES {
            manager
                .drop_index(
                    Index::drop()
                        .name(format!("idx_{table}_line"))
                        .table(Alias::new(*table))
                        .to_owned(),
                )
                .await?;
            for name in *old {
                let column = column_of(name);
                let mut restore = index(name, Alias::new(*table), &[]);
                restore.col(Alias::new(column)).col(Alias::new(*time));
                manager.create_index(restore).await?;
            }
        }
        Ok(())
    }
}
