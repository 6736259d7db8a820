//! Integrations: per-source webhook secrets and the mappings that translate
//! native payloads into the common data model (DESIGN §4).

use sea_orm_migration::{prelude::*, schema::*};

use crate::helpers::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Integration {
    Table,
    Source,
    Secret,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum IntegrationMapping {
    Table,
    Id,
    Source,
    Kind,
    External,
    Target,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Integration::Table)
                    .col(string_len(Integration::Source, 32).primary_key())
                    .col(string(Integration::Secret))
                    .col(timestamp_with_time_zone(Integration::CreatedAt))
                    .col(timestamp_with_time_zone(Integration::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(IntegrationMapping::Table)
                    .col(big_pk_auto(IntegrationMapping::Id))
                    .col(string_len(IntegrationMapping::Source, 32))
                    .col(string_len(IntegrationMapping::Kind, 32))
                    .col(string_len(IntegrationMapping::External, 255))
                    .col(string_len(IntegrationMapping::Target, 255))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "uq_integration_mapping",
                    IntegrationMapping::Table,
                    &["source", "kind", "external"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(IntegrationMapping::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Integration::Table).to_owned())
            .await
    }
}
