//! Delivery facts kept at write time, so that the delivery metrics (DESIGN
//! §3.5) join instead of searching:
//! - `change.first_deployment_id`: the change's first successful production
//!   deployment (by finish time, then id), where its lead time counts;
//! - `incident.cause_deployment_id`: the deployment the incident names, or
//!   else the latest successful production deployment of its unit finished
//!   before it opened.
//!
//! Both are derived (no foreign keys) and rewritten whenever a deployment,
//! change or incident they depend on is written.

use sea_orm_migration::{prelude::*, schema::*};

use crate::helpers::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Change {
    Table,
    FirstDeploymentId,
}

#[derive(DeriveIden)]
enum Incident {
    Table,
    CauseDeploymentId,
}

const CHANGE_INDEX: &str = "idx_change_first_deployment";
const INCIDENT_INDEX: &str = "idx_incident_cause";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Change::Table)
                    .add_column(big_integer_null(Change::FirstDeploymentId))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Incident::Table)
                    .add_column(big_integer_null(Incident::CauseDeploymentId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(CHANGE_INDEX, Change::Table, &["first_deployment_id"]))
            .await?;
        manager
            .create_index(index(
                INCIDENT_INDEX,
                Incident::Table,
                &["cause_deployment_id"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in [CHANGE_INDEX, INCIDENT_INDEX] {
            manager
                .drop_index(Index::drop().name(name).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Incident::Table)
                    .drop_column(Incident::CauseDeploymentId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Change::Table)
                    .drop_column(Change::FirstDeploymentId)
                    .to_owned(),
            )
            .await
    }
}
