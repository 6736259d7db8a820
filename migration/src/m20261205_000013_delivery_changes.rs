//! `delivery_change`: one row per deployment, change, incident or release
//! (`kind` 1 to 4, `entity_id` its row id), naming the transaction that
//! last wrote it or its delivery facts (its PostgreSQL transaction id,
//! `xid8` as a bigint). As `flow_change` does for work items, it lets a
//! replica holding the delivery facts in memory find what changed in
//! transactions it has not seen when `LISTEN/NOTIFY` notifications were
//! lost.
//!
//! Written on PostgreSQL only; the table exists on SQLite so both engines
//! share one schema. No foreign key: derived rows.

use sea_orm_migration::{prelude::*, schema::*};

use crate::helpers::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DeliveryChange {
    Table,
    Kind,
    EntityId,
    Xid,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DeliveryChange::Table)
                    .col(integer(DeliveryChange::Kind))
                    .col(big_integer(DeliveryChange::EntityId))
                    .col(big_integer(DeliveryChange::Xid))
                    .primary_key(
                        Index::create()
                            .col(DeliveryChange::Kind)
                            .col(DeliveryChange::EntityId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_delivery_change_xid",
                DeliveryChange::Table,
                &["xid"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DeliveryChange::Table).to_owned())
            .await
    }
}
