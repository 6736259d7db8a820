//! GraphQL types of delivery and production records (DESIGN §1.5): changes,
//! deployments, releases and incidents, readable exactly where the owning
//! unit's work items are.

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use entity::{change, deployment, incident, release};

use super::ids::{self, kind};
use super::rc;
use super::units::{Unit, UnitScope};
use super::work_items::WorkItem;
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

/// A merged pull or merge request, owned by a unit. You may read it exactly
/// where you may read that unit's work items.
#[Object]
impl Change {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode(kind::CHANGE, self.0.id)
    }

    /// The system that reported the change, e.g. `github`.
    async fn source(&self) -> &str {
        &self.0.source
    }

    /// The change's id in its source system, unique per source.
    async fn external_id(&self) -> &str {
        &self.0.external_id
    }

    /// The repository the change was merged in, as its source names it.
    async fn repository(&self) -> &str {
        &self.0.repository
    }

    /// The pull or merge request's title; null when the source did not report
    /// one.
    async fn title(&self) -> Option<&str> {
        self.0.title.as_deref()
    }

    /// A link to the change in its source system; null when not reported.
    async fn url(&self) -> Option<&str> {
        self.0.url.as_deref()
    }

    /// When its first commit was made (UTC); null when unknown, in which case
    /// its lead time for changes starts at the merge.
    async fn first_commit_at(&self) -> Option<DateTime<Utc>> {
        self.0.first_commit_at
    }

    /// When the pull or merge request was opened (UTC); null when unknown.
    async fn opened_at(&self) -> Option<DateTime<Utc>> {
        self.0.opened_at
    }

    /// When it was merged (UTC).
    async fn merged_at(&self) -> DateTime<Utc> {
        self.0.merged_at
    }

    /// The unit that owns the change.
    async fn unit(&self, ctx: &Context<'_>) -> GqlResult<Unit> {
        owner(ctx, self.0.unit_id).await
    }

    /// Work items the change references that you may read.
    async fn work_items(&self, ctx: &Context<'_>) -> GqlResult<Vec<WorkItem>> {
        let r = rc(ctx)?;
        Ok(delivery::items_of_change(r.svc(), self.0.id)
            .await?
            .into_iter()
            .map(WorkItem::new)
            .collect())
    }
}

/// A deployment to an environment.
#[derive(Clone)]
pub struct Deployment(pub deployment::Model);

/// A deployment of changes to an environment, owned by a unit. You may read
/// it exactly where you may read that unit's work items.
#[Object]
impl Deployment {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode(kind::DEPLOYMENT, self.0.id)
    }

    /// The system that reported the deployment, e.g. `github`.
    async fn source(&self) -> &str {
        &self.0.source
    }

    /// The deployment's id in its source system, unique per source.
    async fn external_id(&self) -> &str {
        &self.0.external_id
    }

    /// The target environment, an upper-case name such as `PRODUCTION` or
    /// `STAGING`.
    async fn environment(&self) -> &str {
        &self.0.environment
    }

    /// `SUCCESS` or `FAILURE`; delivery metrics count only successful
    /// `PRODUCTION` deployments.
    async fn status(&self) -> &str {
        &self.0.status
    }

    /// When the deployment finished (UTC).
    async fn finished_at(&self) -> DateTime<Utc> {
        self.0.finished_at
    }

    /// The unit that owns the deployment.
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

/// A named release that delivers work items, owned by a unit. You may read
/// it exactly where you may read that unit's work items.
#[Object]
impl Release {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode(kind::RELEASE, self.0.id)
    }

    /// The system that reported the release, e.g. `github`.
    async fn source(&self) -> &str {
        &self.0.source
    }

    /// The release's id in its source system, unique per source.
    async fn external_id(&self) -> &str {
        &self.0.external_id
    }

    /// The release's name or version.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// When it was released (UTC).
    async fn released_at(&self) -> DateTime<Utc> {
        self.0.released_at
    }

    /// The unit that owns the release.
    async fn unit(&self, ctx: &Context<'_>) -> GqlResult<Unit> {
        owner(ctx, self.0.unit_id).await
    }

    /// Work items it delivered that you may read.
    async fn work_items(&self, ctx: &Context<'_>) -> GqlResult<Vec<WorkItem>> {
        let r = rc(ctx)?;
        Ok(delivery::items_of_release(r.svc(), self.0.id)
            .await?
            .into_iter()
            .map(WorkItem::new)
            .collect())
    }
}

/// A production incident.
#[derive(Clone)]
pub struct Incident(pub incident::Model);

/// A production incident, owned by a unit. You may read it exactly where
/// you may read that unit's work items.
#[Object]
impl Incident {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode(kind::INCIDENT, self.0.id)
    }

    /// The system that reported the incident, e.g. `github`.
    async fn source(&self) -> &str {
        &self.0.source
    }

    /// The incident's id in its source system, unique per source.
    async fn external_id(&self) -> &str {
        &self.0.external_id
    }

    /// The severity as the source system reported it.
    async fn severity(&self) -> &str {
        &self.0.severity
    }

    /// When the incident opened (UTC).
    async fn opened_at(&self) -> DateTime<Utc> {
        self.0.opened_at
    }

    /// When it was resolved (UTC); null while it is still open.
    async fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.0.resolved_at
    }

    /// The unit that owns the incident.
    async fn unit(&self, ctx: &Context<'_>) -> GqlResult<Unit> {
        owner(ctx, self.0.unit_id).await
    }

    /// The deployment the incident names as its cause; null when it names
    /// none or you may not read it.
    async fn deployment(&self, ctx: &Context<'_>) -> GqlResult<Option<Deployment>> {
        let Some(d) = self.0.deployment_id else {
            return Ok(None);
        };
        let r = rc(ctx)?;
        Ok(delivery::find_deployment(r.svc(), d).await?.map(Deployment))
    }
}
