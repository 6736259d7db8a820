//! The merge commit of a change, so a deployment reported by its commit
//! (GitHub `deployment.sha`, GitLab `short_sha`) finds the change it ships.

use sea_orm_migration::{prelude::*, schema::*};

use crate::helpers::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Change {
    Table,
    MergeSha,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Change::Table)
                    .add_column(string_len_null(Change::MergeSha, 64))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_change_merge_sha",
                Change::Table,
                &["repository", "merge_sha"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name("idx_change_merge_sha").to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Change::Table)
                    .drop_column(Change::MergeSha)
                    .to_owned(),
            )
            .await
    }
}
