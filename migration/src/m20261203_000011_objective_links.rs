//! Links between objectives and the epics and features that serve them
//! (DESIGN §3.7), many to many.

use sea_orm_migration::{prelude::*, schema::*};

use crate::helpers::{fk, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Objective {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum WorkItem {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ObjectiveWorkItem {
    Table,
    ObjectiveId,
    WorkItemId,
    LinkedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ObjectiveWorkItem::Table)
                    .col(big_integer(ObjectiveWorkItem::ObjectiveId))
                    .col(big_integer(ObjectiveWorkItem::WorkItemId))
                    .col(timestamp_with_time_zone(ObjectiveWorkItem::LinkedAt))
                    .primary_key(
                        Index::create()
                            .col(ObjectiveWorkItem::ObjectiveId)
                            .col(ObjectiveWorkItem::WorkItemId),
                    )
                    .foreign_key(&mut fk(
                        "fk_objective_work_item_objective",
                        (ObjectiveWorkItem::Table, ObjectiveWorkItem::ObjectiveId),
                        (Objective::Table, Objective::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_objective_work_item_item",
                        (ObjectiveWorkItem::Table, ObjectiveWorkItem::WorkItemId),
                        (WorkItem::Table, WorkItem::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_objective_work_item_item",
                ObjectiveWorkItem::Table,
                &["work_item_id"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ObjectiveWorkItem::Table).to_owned())
            .await
    }
}
