//! GraphQL types of delivery and production records (DESIGN §1.5): changes,
//! deployments, releases and incidents, readable exactly where the owning
//! unit's work items are.

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use entity::{change, deployment, incident, release};

use super::ids::{self, kind};
use super::rc;
use super::types::{Unit, UnitScope, WorkItem};
use crate::error::{ApiError, GqlResult};
use crate::service::delivery;
use crate::service::work_items::Reach;

connection!(ChangeConnection, ChangeEdge, Change);
connection!(DeploymentConnection, DeploymentEdge, Deployment);
connection!(ReleaseConnection, ReleaseEdge, Release);
connection!(IncidentConnection, IncidentEdge, Incident);

pub(super) fn reach(scope: Option<UnitScope>) -> Reach {
    match scope.unwrap_or_default() {
        UnitScope::Subtree => Reach::Subtree,
        UnitScope::UnitOnly => Reach::UnitOnly,
    }
}

/// The unit owning a record.
pub(super) async fn owner(ctx: &Context<'_>, unit_id: i64) -> GqlResult<Unit> {
    rc(ctx)?
        .units
        .load_one(unit_id)
        .await?
        .map(Unit)
        .ok_or_else(|| ApiError::not_found("unit").into())
}

/// A merged pull or merge request.
#[derive(Clone)]
pub struct Change(pub change::Model);

#[Object]
impl Change {
    pub async fn id(&self) -> ID {
        ids::encode(kind::CHANGE, self.0.id)
    }

    async fn source(&self) -> &str {
        &self.0.source
    }

    async fn external_id(&self) -> &str {
        &self.0.external_id
    }

    async fn repository(&self) -> &str {
        &self.0.repository
    }

    async fn title(&self) -> Option<&str> {
        self.0.title.as_deref()
    }

    async fn url(&self) -> Option<&str> {
        self.0.url.as_deref()
    }

    async fn first_commit_at(&self) -> Option<DateTime<Utc>> {
        self.0.first_commit_at
    }

    async fn opened_at(&self) -> Option<DateTime<Utc>> {
        self.0.opened_at
    }

    async fn merged_at(&self) -> DateTime<Utc> {
        self.0.merged_at
    }

    async fn unit(&self, ctx: &Context<'_>) -> GqlResult<Unit> {
        owner(ctx, self.0.unit_id).await
    }

    /// Work items the change references that you may read.
    async fn work_items(&self, ctx: &Context<'_>) -> GqlResult<Vec<WorkItem>> {
        let r = rc(ctx)?;
        Ok(delivery::items_of_change(r.svc(), self.0.id)
            .await?
            .into_iter()
            .map(WorkItem)
            .collect())
    }
}

/// A deployment to an environment.
#[derive(Clone)]
pub struct Deployment(pub deployment::Model);

#[Object]
impl Deployment {
    pub async fn id(&self) -> ID {
        ids::encode(kind::DEPLOYMENT, self.0.id)
    }

    async fn source(&self) -> &str {
        &self.0.source
    }

    async fn external_id(&self) -> &str {
        &self.0.external_id
    }

    /// `PRODUCTION`, `STAGING`, ...
    async fn environment(&self) -> &str {
        &self.0.environment
    }

    /// `SUCCESS` or `FAILURE`.
    async fn status(&self) -> &str {
        &self.0.status
    }

    async fn finished_at(&self) -> DateTime<Utc> {
        self.0.finished_at
    }

    async fn unit(&self, ctx: &Context<'_>) -> GqlResult<Unit> {
        owner(ctx, self.0.unit_id).await
    }

    /// Changes it shipped that you may read.
    async fn changes(&self, ctx: &Context<'_>) -> GqlResult<Vec<Change>> {
        let r = rc(ctx)?;
        Ok(delivery::changes_of_deployment(r.svc(), self.0.id)
            .await?
            .into_iter()
            .map(Change)
            .collect())
    }
}

/// A named release.
#[derive(Clone)]
pub struct Release(pub release::Model);

#[Object]
impl Release {
    pub async fn id(&self) -> ID {
        ids::encode(kind::RELEASE, self.0.id)
    }

    async fn source(&self) -> &str {
        &self.0.source
    }

    async fn external_id(&self) -> &str {
        &self.0.external_id
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn released_at(&self) -> DateTime<Utc> {
        self.0.released_at
    }

    async fn unit(&self, ctx: &Context<'_>) -> GqlResult<Unit> {
        owner(ctx, self.0.unit_id).await
    }

    /// Work items it delivered that you may read.
    async fn work_items(&self, ctx: &Context<'_>) -> GqlResult<Vec<WorkItem>> {
        let r = rc(ctx)?;
        Ok(delivery::items_of_release(r.svc(), self.0.id)
            .await?
            .into_iter()
            .map(WorkItem)
            .collect())
    }
}

/// A production incident.
#[derive(Clone)]
pub struct Incident(pub incident::Model);

#[Object]
impl Incident {
    pub async fn id(&self) -> ID {
        ids::encode(kind::INCIDENT, self.0.id)
    }

    async fn source(&self) -> &str {
        &self.0.source
    }

    async fn external_id(&self) -> &str {
        &self.0.external_id
    }

    async fn severity(&self) -> &str {
        &self.0.severity
    }

    async fn opened_at(&self) -> DateTime<Utc> {
        self.0.opened_at
    }

    async fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.0.resolved_at
    }

    async fn unit(&self, ctx: &Context<'_>) -> GqlResult<Unit> {
        owner(ctx, self.0.unit_id).await
    }

    /// The deployment that caused it, when known and readable.
    async fn deployment(&self, ctx: &Context<'_>) -> GqlResult<Option<Deployment>> {
        let Some(d) = self.0.deployment_id else {
            return Ok(None);
        };
        let r = rc(ctx)?;
        Ok(delivery::find_deployment(r.svc(), d).await?.map(Deployment))
    }
}
