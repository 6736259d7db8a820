//! Delivery and production (DESIGN §1.5) and the ingest log (§4): changes,
//! deployments, releases, incidents and their links, plus the record of
//! every ingested event id that makes ingestion idempotent.

use sea_orm_migration::{prelude::*, schema::*};

use crate::helpers::{fk, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Unit {
    Table,
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum WorkItem {
    Table,
}

#[derive(DeriveIden, Clone, Copy)]
enum ApiKey {
    Table,
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum Change {
    Table,
    Id,
    UnitId,
    Source,
    ExternalId,
    Repository,
    Title,
    Url,
    FirstCommitAt,
    OpenedAt,
    MergedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum ChangeWorkItem {
    Table,
    ChangeId,
    WorkItemId,
}

#[derive(DeriveIden, Clone, Copy)]
enum Deployment {
    Table,
    Id,
    UnitId,
    Source,
    ExternalId,
    Environment,
    Status,
    FinishedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum DeploymentChange {
    Table,
    DeploymentId,
    ChangeId,
}

#[derive(DeriveIden, Clone, Copy)]
enum Release {
    Table,
    Id,
    UnitId,
    Source,
    ExternalId,
    Name,
    ReleasedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum ReleaseWorkItem {
    Table,
    ReleaseId,
    WorkItemId,
}

#[derive(DeriveIden, Clone, Copy)]
enum Incident {
    Table,
    Id,
    UnitId,
    Source,
    ExternalId,
    Severity,
    OpenedAt,
    ResolvedAt,
    DeploymentId,
}

#[derive(DeriveIden, Clone, Copy)]
enum IngestLog {
    Table,
    EventId,
    Source,
    EventType,
    ReceivedAt,
    Outcome,
    Reason,
    ApiKeyId,
}

/// A link table between two entities, deleted with either side.
fn link(
    table: impl IntoIden + Clone + 'static,
    (left, left_table): (
        impl IntoIden + Clone + 'static,
        impl IntoIden + Clone + 'static,
    ),
    (right, right_table): (
        impl IntoIden + Clone + 'static,
        impl IntoIden + Clone + 'static,
    ),
    name: &str,
) -> TableCreateStatement {
    Table::create()
        .table(table.clone())
        .col(big_integer(left.clone()))
        .col(big_integer(right.clone()))
        .primary_key(Index::create().col(left.clone()).col(right.clone()))
        .foreign_key(&mut fk(
            &format!("fk_{name}_left"),
            (table.clone(), left),
            (left_table, Alias::new("id")),
            ForeignKeyAction::Cascade,
        ))
        .foreign_key(&mut fk(
            &format!("fk_{name}_right"),
            (table, right),
            (right_table, Alias::new("id")),
            ForeignKeyAction::Cascade,
        ))
        .to_owned()
}

fn unit_fk(
    name: &str,
    table: impl IntoIden + 'static,
    col: impl IntoIden + 'static,
) -> ForeignKeyCreateStatement {
    fk(
        name,
        (table, col),
        (Unit::Table, Unit::Id),
        ForeignKeyAction::Restrict,
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Change::Table)
                    .col(big_pk_auto(Change::Id))
                    .col(big_integer(Change::UnitId))
                    .col(string_len(Change::Source, 32))
                    .col(string_len(Change::ExternalId, 255))
                    .col(string_len(Change::Repository, 255))
                    .col(string_null(Change::Title))
                    .col(string_null(Change::Url))
                    .col(timestamp_with_time_zone_null(Change::FirstCommitAt))
                    .col(timestamp_with_time_zone_null(Change::OpenedAt))
                    .col(timestamp_with_time_zone(Change::MergedAt))
                    .foreign_key(&mut unit_fk(
                        "fk_change_unit",
                        Change::Table,
                        Change::UnitId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index("uq_change_ext", Change::Table, &["source", "external_id"])
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_change_unit",
                Change::Table,
                &["unit_id", "merged_at"],
            ))
            .await?;
        manager
            .create_table(link(
                ChangeWorkItem::Table,
                (ChangeWorkItem::ChangeId, Change::Table),
                (ChangeWorkItem::WorkItemId, WorkItem::Table),
                "change_work_item",
            ))
            .await?;
        manager
            .create_index(index(
                "idx_change_work_item_item",
                ChangeWorkItem::Table,
                &["work_item_id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Deployment::Table)
                    .col(big_pk_auto(Deployment::Id))
                    .col(big_integer(Deployment::UnitId))
                    .col(string_len(Deployment::Source, 32))
                    .col(string_len(Deployment::ExternalId, 255))
                    .col(string_len(Deployment::Environment, 32))
                    .col(string_len(Deployment::Status, 16))
                    .col(timestamp_with_time_zone(Deployment::FinishedAt))
                    .foreign_key(&mut unit_fk(
                        "fk_deployment_unit",
                        Deployment::Table,
                        Deployment::UnitId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "uq_deployment_ext",
                    Deployment::Table,
                    &["source", "external_id"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_deployment_unit",
                Deployment::Table,
                &["unit_id", "finished_at"],
            ))
            .await?;
        manager
            .create_table(link(
                DeploymentChange::Table,
                (DeploymentChange::DeploymentId, Deployment::Table),
                (DeploymentChange::ChangeId, Change::Table),
                "deployment_change",
            ))
            .await?;
        manager
            .create_index(index(
                "idx_deployment_change_change",
                DeploymentChange::Table,
                &["change_id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Release::Table)
                    .col(big_pk_auto(Release::Id))
                    .col(big_integer(Release::UnitId))
                    .col(string_len(Release::Source, 32))
                    .col(string_len(Release::ExternalId, 255))
                    .col(string(Release::Name))
                    .col(timestamp_with_time_zone(Release::ReleasedAt))
                    .foreign_key(&mut unit_fk(
                        "fk_release_unit",
                        Release::Table,
                        Release::UnitId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index("uq_release_ext", Release::Table, &["source", "external_id"])
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_release_unit",
                Release::Table,
                &["unit_id", "released_at"],
            ))
            .await?;
        manager
            .create_table(link(
                ReleaseWorkItem::Table,
                (ReleaseWorkItem::ReleaseId, Release::Table),
                (ReleaseWorkItem::WorkItemId, WorkItem::Table),
                "release_work_item",
            ))
            .await?;
        manager
            .create_index(index(
                "idx_release_work_item_item",
                ReleaseWorkItem::Table,
                &["work_item_id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Incident::Table)
                    .col(big_pk_auto(Incident::Id))
                    .col(big_integer(Incident::UnitId))
                    .col(string_len(Incident::Source, 32))
                    .col(string_len(Incident::ExternalId, 255))
                    .col(string_len(Incident::Severity, 32))
                    .col(timestamp_with_time_zone(Incident::OpenedAt))
                    .col(timestamp_with_time_zone_null(Incident::ResolvedAt))
                    .col(big_integer_null(Incident::DeploymentId))
                    .foreign_key(&mut unit_fk(
                        "fk_incident_unit",
                        Incident::Table,
                        Incident::UnitId,
                    ))
                    .foreign_key(&mut fk(
                        "fk_incident_deployment",
                        (Incident::Table, Incident::DeploymentId),
                        (Deployment::Table, Deployment::Id),
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "uq_incident_ext",
                    Incident::Table,
                    &["source", "external_id"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_incident_unit",
                Incident::Table,
                &["unit_id", "opened_at"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(IngestLog::Table)
                    .col(string_len(IngestLog::EventId, 255).primary_key())
                    .col(string_len(IngestLog::Source, 32))
                    .col(string_len(IngestLog::EventType, 64))
                    .col(timestamp_with_time_zone(IngestLog::ReceivedAt))
                    .col(string_len(IngestLog::Outcome, 16))
                    .col(text_null(IngestLog::Reason))
                    .col(big_integer_null(IngestLog::ApiKeyId))
                    .foreign_key(&mut fk(
                        "fk_ingest_log_api_key",
                        (IngestLog::Table, IngestLog::ApiKeyId),
                        (ApiKey::Table, ApiKey::Id),
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_ingest_log_received",
                IngestLog::Table,
                &["received_at"],
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            IngestLog::Table.into_iden(),
            Incident::Table.into_iden(),
            ReleaseWorkItem::Table.into_iden(),
            Release::Table.into_iden(),
            DeploymentChange::Table.into_iden(),
            Deployment::Table.into_iden(),
            ChangeWorkItem::Table.into_iden(),
            Change::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
