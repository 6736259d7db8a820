//! `flow_change`: one row per work item, naming the transaction that last
//! rewrote its flow facts (its PostgreSQL transaction id, `xid8` as a
//! bigint). Replicas holding the facts in memory poll it for the items
//! changed by transactions they have not seen, so they catch up by
//! themselves when `LISTEN/NOTIFY` notifications were lost (a dropped
//! listener, a restart) instead of waiting for the next full reload.
//!
//! A transaction id, unlike a timestamp, orders against a snapshot: with
//! the `xmax` and in-progress list of the last poll's snapshot, the next
//! poll finds exactly the transactions that committed since, whatever the
//! replicas' clocks say and however long a transaction ran.
//!
//! Written on PostgreSQL only: on SQLite one process serves the database
//! and every change reaches its facts through the in-process event bus;
//! the table exists there only so both engines share one schema. No
//! foreign key, as for the facts: derived rows, never the source of truth.

use sea_orm_migration::{prelude::*, schema::*};

use crate::helpers::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum FlowChange {
    Table,
    WorkItemId,
    Xid,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(FlowChange::Table)
                    .col(big_integer(FlowChange::WorkItemId).primary_key())
                    .col(big_integer(FlowChange::Xid))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("idx_flow_change_xid", FlowChange::Table, &["xid"]))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(FlowChange::Table).to_owned())
            .await
    }
}
