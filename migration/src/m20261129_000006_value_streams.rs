//! Value streams (DESIGN §1.4): streams owned by a unit, their ordered
//! stages, the workflow states each stage covers, and the operational
//! streams a development stream supports.
//!
//! A stage's states live in a child table rather than a list column, so both
//! engines can enforce "a state belongs to at most one stage of a stream"
//! with a unique index.

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
enum ValueStream {
    Table,
    Id,
    UnitId,
    Key,
    Name,
    Kind,
    Budget,
    BudgetPeriod,
    CostPerPeriod,
    CostPeriod,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ValueStreamStage {
    Table,
    Id,
    ValueStreamId,
    Position,
    Name,
    ValueAdding,
}

#[derive(DeriveIden)]
enum ValueStreamStageState {
    Table,
    Id,
    StageId,
    ValueStreamId,
    Position,
    State,
}

#[derive(DeriveIden)]
enum ValueStreamSupport {
    Table,
    Id,
    DevelopmentId,
    OperationalId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ValueStream::Table)
                    .col(big_pk_auto(ValueStream::Id))
                    .col(big_integer(ValueStream::UnitId))
                    .col(string_len_uniq(ValueStream::Key, 64))
                    .col(string_len(ValueStream::Name, 200))
                    .col(string_len(ValueStream::Kind, 16))
                    .col(double_null(ValueStream::Budget))
                    .col(string_len_null(ValueStream::BudgetPeriod, 32))
                    .col(double_null(ValueStream::CostPerPeriod))
                    .col(string_len_null(ValueStream::CostPeriod, 16))
                    .col(timestamp_with_time_zone(ValueStream::CreatedAt))
                    .col(timestamp_with_time_zone(ValueStream::UpdatedAt))
                    .foreign_key(&mut fk(
                        "fk_value_stream_unit",
                        (ValueStream::Table, ValueStream::UnitId),
                        (Unit::Table, Unit::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_value_stream_unit",
                ValueStream::Table,
                &["unit_id"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ValueStreamStage::Table)
                    .col(big_pk_auto(ValueStreamStage::Id))
                    .col(big_integer(ValueStreamStage::ValueStreamId))
                    .col(integer(ValueStreamStage::Position))
                    .col(string_len(ValueStreamStage::Name, 200))
                    .col(boolean(ValueStreamStage::ValueAdding))
                    .foreign_key(&mut fk(
                        "fk_value_stream_stage_stream",
                        (ValueStreamStage::Table, ValueStreamStage::ValueStreamId),
                        (ValueStream::Table, ValueStream::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "uq_value_stream_stage_position",
                    ValueStreamStage::Table,
                    &["value_stream_id", "position"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ValueStreamStageState::Table)
                    .col(big_pk_auto(ValueStreamStageState::Id))
                    .col(big_integer(ValueStreamStageState::StageId))
                    .col(big_integer(ValueStreamStageState::ValueStreamId))
                    .col(integer(ValueStreamStageState::Position))
                    .col(string_len(ValueStreamStageState::State, 64))
                    .foreign_key(&mut fk(
                        "fk_value_stream_stage_state_stage",
                        (ValueStreamStageState::Table, ValueStreamStageState::StageId),
                        (ValueStreamStage::Table, ValueStreamStage::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_value_stream_stage_state_stream",
                        (
                            ValueStreamStageState::Table,
                            ValueStreamStageState::ValueStreamId,
                        ),
                        (ValueStream::Table, ValueStream::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "uq_value_stream_stage_state",
                    ValueStreamStageState::Table,
                    &["value_stream_id", "state"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_value_stream_stage_state_stage",
                ValueStreamStageState::Table,
                &["stage_id"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ValueStreamSupport::Table)
                    .col(big_pk_auto(ValueStreamSupport::Id))
                    .col(big_integer(ValueStreamSupport::DevelopmentId))
                    .col(big_integer(ValueStreamSupport::OperationalId))
                    .foreign_key(&mut fk(
                        "fk_value_stream_support_development",
                        (ValueStreamSupport::Table, ValueStreamSupport::DevelopmentId),
                        (ValueStream::Table, ValueStream::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_value_stream_support_operational",
                        (ValueStreamSupport::Table, ValueStreamSupport::OperationalId),
                        (ValueStream::Table, ValueStream::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "uq_value_stream_support",
                    ValueStreamSupport::Table,
                    &["development_id", "operational_id"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_value_stream_support_operational",
                ValueStreamSupport::Table,
                &["operational_id"],
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            ValueStreamSupport::Table.into_iden(),
            ValueStreamStageState::Table.into_iden(),
            ValueStreamStage::Table.into_iden(),
            ValueStream::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        Ok(())
    }
}
