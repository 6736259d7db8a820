//! Per-item flow facts, maintained at write time from each item's transition
//! history so that flow metrics (DESIGN §3.1) aggregate rows instead of
//! replaying histories.
//!
//! - `flow_completion`: one row per entry into a `DONE` state, with what
//!   the item's history says as of that completion (start, active time) and
//!   when the item next left it. An item counts as completed in `[from, to)`
//!   when `from <= completed_ms < to <= left_ms`, so past windows stay exact
//!   for reopened items.
//! - `flow_wip`: one row per stretch of time an item spent in `ACTIVE` or
//!   `WAITING` states, `[from_ms, to_ms)`, with the item's first start.
//!
//! Both carry the owning unit's line (portfolio, program, team) and the
//! item's type and flow type, so a subtree and a filter are equality
//! predicates on indexed columns. Instants are Unix epoch milliseconds; an
//! open end is `OPEN` (year 9999). No foreign keys: the rows are derived and
//! rebuilt, never the source of truth.

use sea_orm_migration::{prelude::*, schema::*};

use crate::helpers::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum FlowCompletion {
    Table,
    Id,
    CreatedMs,
    StartMs,
    CompletedMs,
    LeftMs,
    ActiveMs,
}

#[derive(DeriveIden)]
enum FlowWip {
    Table,
    Id,
    StartMs,
    FromMs,
    ToMs,
}

#[derive(DeriveIden)]
enum Line {
    WorkItemId,
    UnitId,
    PortfolioId,
    ProgramId,
    TeamId,
    Level,
    ItemType,
    FlowType,
}

fn line(t: &mut TableCreateStatement) -> &mut TableCreateStatement {
    t.col(big_integer(Line::WorkItemId))
        .col(big_integer(Line::UnitId))
        .col(big_integer_null(Line::PortfolioId))
        .col(big_integer_null(Line::ProgramId))
        .col(big_integer_null(Line::TeamId))
        .col(string_len(Line::Level, 16))
        .col(string_len(Line::ItemType, 16))
        .col(string_len(Line::FlowType, 16))
}

const COMPLETION_INDEXES: &[(&str, &[&str])] = &[
    ("idx_flow_completion_item", &["work_item_id"]),
    ("idx_flow_completion_at", &["completed_ms"]),
    ("idx_flow_completion_unit", &["unit_id", "completed_ms"]),
    (
        "idx_flow_completion_portfolio",
        &["portfolio_id", "completed_ms"],
    ),
    (
        "idx_flow_completion_program",
        &["program_id", "completed_ms"],
    ),
    ("idx_flow_completion_team", &["team_id", "completed_ms"]),
];

const WIP_INDEXES: &[(&str, &[&str])] = &[
    ("idx_flow_wip_item", &["work_item_id"]),
    ("idx_flow_wip_to", &["to_ms"]),
    ("idx_flow_wip_unit", &["unit_id", "to_ms"]),
    ("idx_flow_wip_portfolio", &["portfolio_id", "to_ms"]),
    ("idx_flow_wip_program", &["program_id", "to_ms"]),
    ("idx_flow_wip_team", &["team_id", "to_ms"]),
];

/// Quality (DESIGN §3.4) counts the defects created in a window.
const WORK_ITEM_INDEX: &str = "idx_work_item_type_created";

#[derive(DeriveIden)]
enum WorkItem {
    Table,
}

/// The change failure rate looks incidents up by the deployment they name.
const INCIDENT_INDEX: &str = "idx_incident_deployment";

#[derive(DeriveIden)]
enum Incident {
    Table,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut completion = Table::create();
        completion
            .table(FlowCompletion::Table)
            .col(big_pk_auto(FlowCompletion::Id));
        line(&mut completion)
            .col(big_integer(FlowCompletion::CreatedMs))
            .col(big_integer_null(FlowCompletion::StartMs))
            .col(big_integer(FlowCompletion::CompletedMs))
            .col(big_integer(FlowCompletion::LeftMs))
            .col(big_integer(FlowCompletion::ActiveMs));
        manager.create_table(completion.to_owned()).await?;
        for (name, cols) in COMPLETION_INDEXES {
            manager
                .create_index(index(name, FlowCompletion::Table, cols))
                .await?;
        }

        let mut wip = Table::create();
        wip.table(FlowWip::Table).col(big_pk_auto(FlowWip::Id));
        line(&mut wip)
            .col(big_integer(FlowWip::StartMs))
            .col(big_integer(FlowWip::FromMs))
            .col(big_integer(FlowWip::ToMs));
        manager.create_table(wip.to_owned()).await?;
        for (name, cols) in WIP_INDEXES {
            manager
                .create_index(index(name, FlowWip::Table, cols))
                .await?;
        }
        manager
            .create_index(index(INCIDENT_INDEX, Incident::Table, &["deployment_id"]))
            .await?;
        manager
            .create_index(index(
                WORK_ITEM_INDEX,
                WorkItem::Table,
                &["item_type", "created_at"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in [WORK_ITEM_INDEX, INCIDENT_INDEX] {
            manager
                .drop_index(Index::drop().name(name).to_owned())
                .await?;
        }
        manager
            .drop_table(Table::drop().table(FlowWip::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(FlowCompletion::Table).to_owned())
            .await
    }
}
