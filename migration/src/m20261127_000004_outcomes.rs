//! Outcomes (DESIGN §1.6): objectives owned by a unit, their key results and
//! each key result's measured values over time.

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
enum Objective {
    Table,
    Id,
    UnitId,
    Key,
    Title,
    PeriodStart,
    PeriodEnd,
    CreatedAt,
}

#[derive(DeriveIden)]
enum KeyResult {
    Table,
    Id,
    ObjectiveId,
    Key,
    Title,
    StartValue,
    TargetValue,
}

#[derive(DeriveIden)]
enum KeyResultMeasurement {
    Table,
    Id,
    KeyResultId,
    Value,
    At,
    Source,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Objective::Table)
                    .col(big_pk_auto(Objective::Id))
                    .col(big_integer(Objective::UnitId))
                    .col(string_len_uniq(Objective::Key, 64))
                    .col(string_len(Objective::Title, 500))
                    .col(timestamp_with_time_zone(Objective::PeriodStart))
                    .col(timestamp_with_time_zone(Objective::PeriodEnd))
                    .col(timestamp_with_time_zone(Objective::CreatedAt))
                    .foreign_key(&mut fk(
                        "fk_objective_unit",
                        (Objective::Table, Objective::UnitId),
                        (Unit::Table, Unit::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("idx_objective_unit", Objective::Table, &["unit_id"]))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(KeyResult::Table)
                    .col(big_pk_auto(KeyResult::Id))
                    .col(big_integer(KeyResult::ObjectiveId))
                    .col(string_len_uniq(KeyResult::Key, 64))
                    .col(string_len(KeyResult::Title, 500))
                    .col(double(KeyResult::StartValue))
                    .col(double(KeyResult::TargetValue))
                    .foreign_key(&mut fk(
                        "fk_key_result_objective",
                        (KeyResult::Table, KeyResult::ObjectiveId),
                        (Objective::Table, Objective::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_key_result_objective",
                KeyResult::Table,
                &["objective_id"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(KeyResultMeasurement::Table)
                    .col(big_pk_auto(KeyResultMeasurement::Id))
                    .col(big_integer(KeyResultMeasurement::KeyResultId))
                    .col(double(KeyResultMeasurement::Value))
                    .col(timestamp_with_time_zone(KeyResultMeasurement::At))
                    .col(string_len_null(KeyResultMeasurement::Source, 32))
                    .foreign_key(&mut fk(
                        "fk_measurement_key_result",
                        (
                            KeyResultMeasurement::Table,
                            KeyResultMeasurement::KeyResultId,
                        ),
                        (KeyResult::Table, KeyResult::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_measurement_key_result_at",
                KeyResultMeasurement::Table,
                &["key_result_id", "at"],
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            KeyResultMeasurement::Table.into_iden(),
            KeyResult::Table.into_iden(),
            Objective::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        Ok(())
    }
}
