//! Drops `idx_ingest_log_received`: no query reads the ingest log by the
//! time an event was received (the log is read by event id, its primary
//! key), and the index cost every ingested event an insert into it, half
//! of the log's insert time on SQLite.

use sea_orm_migration::prelude::*;

use crate::helpers::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IngestLog {
    Table,
}

const INDEX: &str = "idx_ingest_log_received";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table(IngestLog::Table).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(index(INDEX, IngestLog::Table, &["received_at"]))
            .await
    }
}
