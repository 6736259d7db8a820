//! Per-visit state facts, so that time in state (DESIGN §3.2) and the
//! cumulative flow (§3.3) aggregate rows instead of replaying histories.
//!
//! `flow_state`: one row per visit of a work item to a state,
//! `[from_ms, to_ms)`, derived from its transitions (a visit ends at the
//! next transition; the current one is open, `to_ms` in the year 9999).
//! Like the other flow facts it carries the owning unit's line and the
//! item's type and flow type for subtree and filter predicates, has no
//! foreign keys, and is rewritten with the item's facts.

use sea_orm_migration::{prelude::*, schema::*};

use crate::helpers::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum FlowState {
    Table,
    Id,
    WorkItemId,
    UnitId,
    PortfolioId,
    ProgramId,
    TeamId,
    Level,
    ItemType,
    FlowType,
    State,
    Category,
    FromMs,
    ToMs,
}

/// No index on `to_ms` alone: the organisation's queries cover most rows
/// and scan, and every index costs each insert.
const INDEXES: &[(&str, &[&str])] = &[
    ("idx_flow_state_item", &["work_item_id", "from_ms"]),
    ("idx_flow_state_unit", &["unit_id", "to_ms"]),
    ("idx_flow_state_portfolio", &["portfolio_id", "to_ms"]),
    ("idx_flow_state_program", &["program_id", "to_ms"]),
    ("idx_flow_state_team", &["team_id", "to_ms"]),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(FlowState::Table)
                    .col(big_pk_auto(FlowState::Id))
                    .col(big_integer(FlowState::WorkItemId))
                    .col(big_integer(FlowState::UnitId))
                    .col(big_integer_null(FlowState::PortfolioId))
                    .col(big_integer_null(FlowState::ProgramId))
                    .col(big_integer_null(FlowState::TeamId))
                    .col(string_len(FlowState::Level, 16))
                    .col(string_len(FlowState::ItemType, 16))
                    .col(string_len(FlowState::FlowType, 16))
                    .col(string_len(FlowState::State, 64))
                    .col(string_len(FlowState::Category, 16))
                    .col(big_integer(FlowState::FromMs))
                    .col(big_integer(FlowState::ToMs))
                    .to_owned(),
            )
            .await?;
        for (name, cols) in INDEXES {
            manager
                .create_index(index(name, FlowState::Table, cols))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(FlowState::Table).to_owned())
            .await
    }
}
