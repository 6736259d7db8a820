//! Boards (DESIGN §1.2): every unit's board has a WIP policy and may set its
//! own WIP limit per column, overriding the limit its (possibly inherited)
//! workflow gives. Work items gain a `blocked` flag, shown on their cards.

use sea_orm_migration::{prelude::*, schema::*};

use crate::helpers::{fk, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Unit {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Board {
    Table,
    UnitId,
    WipPolicy,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum BoardWipLimit {
    Table,
    Id,
    UnitId,
    State,
    WipLimit,
}

#[derive(DeriveIden)]
enum WorkItem {
    Table,
    Blocked,
}

const LIMIT_INDEX: &str = "uq_board_wip_limit_state";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Board::Table)
                    .col(big_integer(Board::UnitId).primary_key())
                    .col(string_len(Board::WipPolicy, 8).default("WARN"))
                    .col(timestamp_with_time_zone(Board::UpdatedAt))
                    .foreign_key(&mut fk(
                        "fk_board_unit",
                        (Board::Table, Board::UnitId),
                        (Unit::Table, Unit::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(BoardWipLimit::Table)
                    .col(big_pk_auto(BoardWipLimit::Id))
                    .col(big_integer(BoardWipLimit::UnitId))
                    .col(string_len(BoardWipLimit::State, 64))
                    .col(integer_null(BoardWipLimit::WipLimit))
                    .foreign_key(&mut fk(
                        "fk_board_wip_limit_unit",
                        (BoardWipLimit::Table, BoardWipLimit::UnitId),
                        (Unit::Table, Unit::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(LIMIT_INDEX, BoardWipLimit::Table, &["unit_id", "state"])
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(WorkItem::Table)
                    .add_column(boolean(WorkItem::Blocked).default(false))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(WorkItem::Table)
                    .drop_column(WorkItem::Blocked)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(BoardWipLimit::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Board::Table).to_owned())
            .await
    }
}
