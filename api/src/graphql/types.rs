//! GraphQL object types. Each wraps an entity model but exposes only chosen
//! fields, so a new column never leaks by accident.

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, InputObject, Interface, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{
    api_key, external_ref, membership, transition, unit, user, work_item, workflow_state,
};

use super::delivery::{
    Change, ChangeConnection, Deployment, DeploymentConnection, Incident, IncidentConnection,
    Release, ReleaseConnection, reach,
};
use super::ids::{self, kind};
use super::outcomes::{KeyResult, Objective};
use super::value_streams::ValueStream;
use super::{page_args, rc};
use crate::domain::{DefectOrigin, FlowType, Role, StateCategory, UnitKind, WorkItemType};
use crate::error::{ApiError, GqlResult};
use crate::service::units::EffectiveWorkflow;
use crate::service::{delivery, outcomes, units, users, value_streams, work_items};

/// An object with a global id (Relay).
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Opaque global id."))]
pub enum Node {
    Unit(Unit),
    WorkItem(WorkItem),
    User(User),
    Membership(Membership),
    Transition(Transition),
    Workflow(Workflow),
    ApiKey(ApiKey),
    Change(Change),
    Deployment(Deployment),
    Release(Release),
    Incident(Incident),
    Objective(Objective),
    KeyResult(KeyResult),
    ValueStream(ValueStream),
}

connection!(WorkItemConnection, WorkItemEdge, WorkItem);

/// Whether a unit's list covers the units beneath it.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum UnitScope {
    /// The unit and every unit beneath it.
    #[default]
    Subtree,
    /// Only what the unit itself owns, not what units beneath it own.
    UnitOnly,
}

/// Filters of `workItems`: an item is listed only when it matches every
/// filter given. Omitted or null filters do not restrict the list.
#[derive(InputObject, Default, Debug)]
pub struct WorkItemFilter {
    /// Only items of these types; null for any type.
    pub types: Option<Vec<WorkItemType>>,
    /// Only items of these Flow Framework types; null for any flow type.
    pub flow_types: Option<Vec<FlowType>>,
    /// Only items whose current state is in one of these categories; null for
    /// any category.
    pub state_categories: Option<Vec<StateCategory>>,
    /// Case-insensitive text contained in the title (at most 200
    /// characters). Blank text is ignored.
    pub search: Option<String>,
    /// Created at or after this instant (UTC, RFC 3339).
    pub created_from: Option<DateTime<Utc>>,
    /// Created before this instant (UTC, RFC 3339); it must be later than
    /// `createdFrom` when both are given.
    pub created_to: Option<DateTime<Utc>>,
    /// `SUBTREE` (the default) includes items of every unit beneath the
    /// listed unit; `UNIT_ONLY` only the unit's own items.
    pub scope: Option<UnitScope>,
}

impl From<WorkItemFilter> for work_items::Filter {
    fn from(f: WorkItemFilter) -> Self {
        Self {
            types: f.types,
            flow_types: f.flow_types,
            state_categories: f.state_categories,
            search: f.search,
            created_from: f.created_from,
            created_to: f.created_to,
            reach: match f.scope.unwrap_or_default() {
                UnitScope::Subtree => work_items::Reach::Subtree,
                UnitScope::UnitOnly => work_items::Reach::UnitOnly,
            },
        }
    }
}

fn page_complexity(first: Option<i32>, last: Option<i32>, child: usize) -> usize {
    let n = first
        .or(last)
        .unwrap_or(crate::service::DEFAULT_PAGE_SIZE)
        .clamp(1, 100);
    usize::try_from(n).unwrap_or(100) * child + 2
}

/// Whether the selection asks for `totalCount` (it costs a COUNT query).
pub(super) fn wants_total(ctx: &Context<'_>) -> bool {
    ctx.look_ahead().field("totalCount").exists()
}

/// A node of the organisation tree.
#[derive(Clone)]
pub struct Unit(pub unit::Model);

/// A node of the organisation tree: the organisation, a portfolio, a program
/// or a team. Every signed-in user may read the tree itself; what a unit
/// holds (items, records, metrics) follows the viewer's roles.
// GraphQL arguments map one to one onto parameters.
#[allow(clippy::too_many_arguments)]
#[Object]
impl Unit {
    /// Opaque global id, for `node(id:)` and for arguments that take a unit.
    async fn id(&self) -> ID {
        ids::encode(kind::UNIT, self.0.id)
    }

    /// Stable human key, e.g. `team-atlas`.
    async fn key(&self) -> &str {
        &self.0.key
    }

    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Level of the unit in the tree.
    async fn kind(&self) -> GqlResult<UnitKind> {
        Ok(UnitKind::parse(&self.0.kind)?)
    }

    /// 0 for the organisation, 1 for portfolios, 2 for programs, 3 for teams.
    async fn depth(&self) -> i32 {
        self.0.depth
    }

    /// When the unit was created (UTC, RFC 3339).
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// The unit directly above this one; null for the organisation.
    async fn parent(&self, ctx: &Context<'_>) -> GqlResult<Option<Unit>> {
        let Some(pid) = self.0.parent_id else {
            return Ok(None);
        };
        Ok(rc(ctx)?.units.load_one(pid).await?.map(Unit))
    }

    /// Direct children, by key.
    async fn children(&self, ctx: &Context<'_>) -> GqlResult<Vec<Unit>> {
        let r = rc(ctx)?;
        Ok(units::children(r.svc(), self.0.id)
            .await?
            .into_iter()
            .map(Unit)
            .collect())
    }

    /// Every ancestor, the organisation first.
    async fn ancestors(&self, ctx: &Context<'_>) -> GqlResult<Vec<Unit>> {
        let r = rc(ctx)?;
        Ok(units::ancestors(r.svc(), self.0.id)
            .await?
            .into_iter()
            .map(Unit)
            .collect())
    }

    /// Every unit beneath this one, by depth then key.
    async fn descendants(&self, ctx: &Context<'_>) -> GqlResult<Vec<Unit>> {
        let r = rc(ctx)?;
        Ok(units::descendants(r.svc(), self.0.id)
            .await?
            .into_iter()
            .map(Unit)
            .collect())
    }

    /// The workflow this unit's board uses: its own or the nearest ancestor's.
    async fn workflow(&self, ctx: &Context<'_>) -> GqlResult<Workflow> {
        let wf = rc(ctx)?
            .workflows
            .load_one(self.0.id)
            .await?
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("unit without workflow")))?;
        Ok(Workflow(wf))
    }

    /// Merged changes of this unit (and by default its subtree) you may read.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn changes(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "`SUBTREE` (the default) also lists the records of every unit beneath this one; `UNIT_ONLY` lists only the unit's own."
        )]
        scope: Option<UnitScope>,
        #[graphql(
            desc = "Returns the first n items (0 to 100; 20 when neither `first` nor `last` is given). Cannot be combined with `last`."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Returns only items after this cursor (an `endCursor` or edge `cursor` from an earlier page)."
        )]
        after: Option<String>,
        #[graphql(desc = "Returns the last n items (0 to 100). Cannot be combined with `first`.")]
        last: Option<i32>,
        #[graphql(
            desc = "Returns only items before this cursor (a `startCursor` or edge `cursor` from an earlier page)."
        )]
        before: Option<String>,
    ) -> GqlResult<ChangeConnection> {
        let r = rc(ctx)?;
        let args = page_args(first, after, last, before)?;
        let page =
            delivery::changes(r.svc(), self.0.id, reach(scope), args, wants_total(ctx)).await?;
        Ok(ChangeConnection::from_page(page, |m| m.id, Change))
    }

    /// Objectives owned by this unit, where you may read them (where you
    /// may read its aggregates); empty otherwise.
    async fn objectives(&self, ctx: &Context<'_>) -> GqlResult<Vec<Objective>> {
        Ok(outcomes::objectives_of(rc(ctx)?.svc(), self.0.id)
            .await?
            .into_iter()
            .map(Objective)
            .collect())
    }

    /// Value streams owned by this unit, by key, where you may read them
    /// (where you may read its aggregates); empty otherwise.
    async fn value_streams(&self, ctx: &Context<'_>) -> GqlResult<Vec<ValueStream>> {
        Ok(value_streams::of_unit(rc(ctx)?.svc(), self.0.id)
            .await?
            .into_iter()
            .map(ValueStream)
            .collect())
    }

    /// Deployments of this unit (and by default its subtree) you may read.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn deployments(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "`SUBTREE` (the default) also lists the records of every unit beneath this one; `UNIT_ONLY` lists only the unit's own."
        )]
        scope: Option<UnitScope>,
        #[graphql(
            desc = "Returns the first n items (0 to 100; 20 when neither `first` nor `last` is given). Cannot be combined with `last`."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Returns only items after this cursor (an `endCursor` or edge `cursor` from an earlier page)."
        )]
        after: Option<String>,
        #[graphql(desc = "Returns the last n items (0 to 100). Cannot be combined with `first`.")]
        last: Option<i32>,
        #[graphql(
            desc = "Returns only items before this cursor (a `startCursor` or edge `cursor` from an earlier page)."
        )]
        before: Option<String>,
    ) -> GqlResult<DeploymentConnection> {
        let r = rc(ctx)?;
        let args = page_args(first, after, last, before)?;
        let page =
            delivery::deployments(r.svc(), self.0.id, reach(scope), args, wants_total(ctx)).await?;
        Ok(DeploymentConnection::from_page(page, |m| m.id, Deployment))
    }

    /// Releases of this unit (and by default its subtree) you may read.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn releases(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "`SUBTREE` (the default) also lists the records of every unit beneath this one; `UNIT_ONLY` lists only the unit's own."
        )]
        scope: Option<UnitScope>,
        #[graphql(
            desc = "Returns the first n items (0 to 100; 20 when neither `first` nor `last` is given). Cannot be combined with `last`."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Returns only items after this cursor (an `endCursor` or edge `cursor` from an earlier page)."
        )]
        after: Option<String>,
        #[graphql(desc = "Returns the last n items (0 to 100). Cannot be combined with `first`.")]
        last: Option<i32>,
        #[graphql(
            desc = "Returns only items before this cursor (a `startCursor` or edge `cursor` from an earlier page)."
        )]
        before: Option<String>,
    ) -> GqlResult<ReleaseConnection> {
        let r = rc(ctx)?;
        let args = page_args(first, after, last, before)?;
        let page =
            delivery::releases(r.svc(), self.0.id, reach(scope), args, wants_total(ctx)).await?;
        Ok(ReleaseConnection::from_page(page, |m| m.id, Release))
    }

    /// Incidents of this unit (and by default its subtree) you may read.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn incidents(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "`SUBTREE` (the default) also lists the records of every unit beneath this one; `UNIT_ONLY` lists only the unit's own."
        )]
        scope: Option<UnitScope>,
        #[graphql(
            desc = "Returns the first n items (0 to 100; 20 when neither `first` nor `last` is given). Cannot be combined with `last`."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Returns only items after this cursor (an `endCursor` or edge `cursor` from an earlier page)."
        )]
        after: Option<String>,
        #[graphql(desc = "Returns the last n items (0 to 100). Cannot be combined with `first`.")]
        last: Option<i32>,
        #[graphql(
            desc = "Returns only items before this cursor (a `startCursor` or edge `cursor` from an earlier page)."
        )]
        before: Option<String>,
    ) -> GqlResult<IncidentConnection> {
        let r = rc(ctx)?;
        let args = page_args(first, after, last, before)?;
        let page =
            delivery::incidents(r.svc(), self.0.id, reach(scope), args, wants_total(ctx)).await?;
        Ok(IncidentConnection::from_page(page, |m| m.id, Incident))
    }

    /// Work items of this unit (and by default its subtree) that you may read.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn work_items(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Narrows the list by type, flow type, state category, title text, creation time or scope; null lists every item you may read."
        )]
        filter: Option<WorkItemFilter>,
        #[graphql(
            desc = "Returns the first n items (0 to 100; 20 when neither `first` nor `last` is given). Cannot be combined with `last`."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Returns only items after this cursor (an `endCursor` or edge `cursor` from an earlier page)."
        )]
        after: Option<String>,
        #[graphql(desc = "Returns the last n items (0 to 100). Cannot be combined with `first`.")]
        last: Option<i32>,
        #[graphql(
            desc = "Returns only items before this cursor (a `startCursor` or edge `cursor` from an earlier page)."
        )]
        before: Option<String>,
    ) -> GqlResult<WorkItemConnection> {
        list_work_items(ctx, self.0.id, filter, first, after, last, before).await
    }
}

pub(super) async fn list_work_items(
    ctx: &Context<'_>,
    unit_id: i64,
    filter: Option<WorkItemFilter>,
    first: Option<i32>,
    after: Option<String>,
    last: Option<i32>,
    before: Option<String>,
) -> GqlResult<WorkItemConnection> {
    let r = rc(ctx)?;
    let args = page_args(first, after, last, before)?;
    let filter: work_items::Filter = filter.unwrap_or_default().into();
    let page = work_items::list(r.svc(), unit_id, &filter, args, wants_total(ctx)).await?;
    prime(ctx, &page.items).await?;
    Ok(WorkItemConnection::from_page(page, |m| m.id, WorkItem))
}

/// Loads, in one batch each, what the selection asks of a page of items
/// (parent, unit, transitions, assignee, external references), so the
/// statements a page costs do not depend on its size or on task timing.
async fn prime(ctx: &Context<'_>, items: &[work_item::Model]) -> GqlResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    let la = ctx.look_ahead();
    let wants = |field: &str| {
        la.field("nodes").field(field).exists()
            || la.field("edges").field("node").field(field).exists()
    };
    let r = rc(ctx)?;
    let ids: Vec<i64> = items.iter().map(|i| i.id).collect();
    let collect = |f: fn(&work_item::Model) -> Option<i64>| -> Vec<i64> {
        let mut v: Vec<i64> = items.iter().filter_map(f).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let parents = collect(|i| i.parent_id);
    let units = collect(|i| Some(i.unit_id));
    let assignees = collect(|i| i.assignee_id);
    let (a, b, c, d, e) = futures::join!(
        async {
            if wants("parent") {
                r.items.load_many(parents).await.map(|_| ())
            } else {
                Ok(())
            }
        },
        async {
            if wants("unit") {
                r.units.load_many(units).await.map(|_| ())
            } else {
                Ok(())
            }
        },
        async {
            if wants("transitions") {
                r.transitions.load_many(ids.clone()).await.map(|_| ())
            } else {
                Ok(())
            }
        },
        async {
            if wants("assignee") {
                r.users.load_many(assignees).await.map(|_| ())
            } else {
                Ok(())
            }
        },
        async {
            if wants("externalRefs") {
                r.external_refs.load_many(ids.clone()).await.map(|_| ())
            } else {
                Ok(())
            }
        },
    );
    a?;
    b?;
    c?;
    d?;
    e?;
    Ok(())
}

/// An epic, feature, story, task, defect, risk or debt item.
#[derive(Clone)]
pub struct WorkItem(pub work_item::Model);

/// An epic, feature, story, task, defect, risk or debt item, owned by one
/// unit. Items you may not read never appear: lists omit them and lookups
/// return null.
#[Object]
impl WorkItem {
    /// Opaque global id, for `node(id:)` and for arguments that take an item.
    async fn id(&self) -> ID {
        ids::encode(kind::WORK_ITEM, self.0.id)
    }

    /// Unique human key, e.g. `PAY-12`.
    async fn key(&self) -> &str {
        &self.0.key
    }

    /// Short title of the item.
    async fn title(&self) -> &str {
        &self.0.title
    }

    /// Longer free-text description; null when none was given.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    /// What kind of item this is.
    #[graphql(name = "type")]
    async fn item_type(&self) -> GqlResult<WorkItemType> {
        Ok(WorkItemType::parse(&self.0.item_type)?)
    }

    /// Flow Framework type that splits the flow metrics; derived from `type`
    /// unless it was set explicitly.
    async fn flow_type(&self) -> GqlResult<FlowType> {
        Ok(FlowType::parse(&self.0.flow_type)?)
    }

    /// Current workflow state: the latest transition's.
    async fn state(&self) -> &str {
        &self.0.state
    }

    /// Flow-state category of the current state.
    async fn state_category(&self) -> GqlResult<StateCategory> {
        Ok(StateCategory::parse(&self.0.state_category)?)
    }

    /// Position in its board column; compare as text.
    async fn rank(&self) -> &str {
        &self.0.rank
    }

    /// Flagged as blocked (see `BoardCard.blocked` for what a board shows).
    async fn blocked(&self) -> bool {
        self.0.blocked
    }

    /// Estimate in story points; null when the item is not estimated.
    async fn estimate(&self) -> Option<f64> {
        self.0.estimate
    }

    /// Business value as a non-negative number (no fixed unit); null when
    /// not set.
    async fn business_value(&self) -> Option<f64> {
        self.0.business_value
    }

    /// Defects only: where it was found; null for other items or when not
    /// recorded.
    async fn found_in(&self) -> GqlResult<Option<DefectOrigin>> {
        Ok(self
            .0
            .found_in
            .as_deref()
            .map(DefectOrigin::parse)
            .transpose()?)
    }

    /// Severity label as recorded (free text, e.g. from the source tracker);
    /// null when not set.
    async fn severity(&self) -> Option<&str> {
        self.0.severity.as_deref()
    }

    /// When the item was created (UTC, RFC 3339); lead time counts from here.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When the item was last changed, moves included (UTC, RFC 3339).
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    /// The unit that owns the item.
    async fn unit(&self, ctx: &Context<'_>) -> GqlResult<Unit> {
        rc(ctx)?
            .units
            .load_one(self.0.unit_id)
            .await?
            .map(Unit)
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("item without unit")).into())
    }

    /// The parent item, when there is one you may read.
    async fn parent(&self, ctx: &Context<'_>) -> GqlResult<Option<WorkItem>> {
        let Some(pid) = self.0.parent_id else {
            return Ok(None);
        };
        Ok(rc(ctx)?.items.load_one(pid).await?.map(WorkItem))
    }

    /// Child items you may read.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn children(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Returns the first n items (0 to 100; 20 when neither `first` nor `last` is given). Cannot be combined with `last`."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Returns only items after this cursor (an `endCursor` or edge `cursor` from an earlier page)."
        )]
        after: Option<String>,
        #[graphql(desc = "Returns the last n items (0 to 100). Cannot be combined with `first`.")]
        last: Option<i32>,
        #[graphql(
            desc = "Returns only items before this cursor (a `startCursor` or edge `cursor` from an earlier page)."
        )]
        before: Option<String>,
    ) -> GqlResult<WorkItemConnection> {
        let r = rc(ctx)?;
        let args = page_args(first, after, last, before)?;
        let page = work_items::children(r.svc(), self.0.id, args, wants_total(ctx)).await?;
        prime(ctx, &page.items).await?;
        Ok(WorkItemConnection::from_page(page, |m| m.id, WorkItem))
    }

    /// Every state change, oldest first (by `at`).
    async fn transitions(&self, ctx: &Context<'_>) -> GqlResult<Vec<Transition>> {
        Ok(rc(ctx)?
            .transitions
            .load_one(self.0.id)
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(Transition)
            .collect())
    }

    /// The user the item is assigned to; null when unassigned.
    async fn assignee(&self, ctx: &Context<'_>) -> GqlResult<Option<User>> {
        let Some(uid) = self.0.assignee_id else {
            return Ok(None);
        };
        Ok(rc(ctx)?.users.load_one(uid).await?.map(User))
    }

    /// Merged changes that reference the item (those you may read).
    async fn changes(&self, ctx: &Context<'_>) -> GqlResult<Vec<Change>> {
        let r = rc(ctx)?;
        Ok(delivery::changes_of_item(r.svc(), self.0.id)
            .await?
            .into_iter()
            .map(Change)
            .collect())
    }

    /// Releases that delivered the item (those you may read).
    async fn releases(&self, ctx: &Context<'_>) -> GqlResult<Vec<Release>> {
        let r = rc(ctx)?;
        Ok(delivery::releases_of_item(r.svc(), self.0.id)
            .await?
            .into_iter()
            .map(Release)
            .collect())
    }

    /// The item's identities in other systems.
    async fn external_refs(&self, ctx: &Context<'_>) -> GqlResult<Vec<ExternalRef>> {
        Ok(rc(ctx)?
            .external_refs
            .load_one(self.0.id)
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(ExternalRef)
            .collect())
    }
}

/// An item's identity in another system.
pub struct ExternalRef(pub external_ref::Model);

/// An item's identity in another system. An integration that sends the same
/// source and external id again updates the item instead of duplicating it.
#[Object]
impl ExternalRef {
    /// The system the item comes from, e.g. `jira` or `github`.
    async fn source(&self) -> &str {
        &self.0.source
    }

    /// The item's id in that system, e.g. `PAY-12`.
    async fn external_id(&self) -> &str {
        &self.0.external_id
    }

    /// Link to the item in that system; null when none was given.
    async fn url(&self) -> Option<&str> {
        self.0.url.as_deref()
    }
}

/// One state change of a work item.
#[derive(Clone)]
pub struct Transition(pub transition::Model);

/// One state change of a work item. Flow metrics are computed from this
/// history; the item's current state is its latest transition's.
#[Object]
impl Transition {
    /// Opaque global id, for `node(id:)`.
    async fn id(&self) -> ID {
        ids::encode(kind::TRANSITION, self.0.id)
    }

    /// The state the item left; null for the item's first transition (its
    /// creation).
    async fn from_state(&self) -> Option<&str> {
        self.0.from_state.as_deref()
    }

    /// The state the item entered.
    async fn to_state(&self) -> &str {
        &self.0.to_state
    }

    /// Flow-state category of `toState`.
    async fn to_category(&self) -> GqlResult<StateCategory> {
        Ok(StateCategory::parse(&self.0.to_category)?)
    }

    /// When the change happened (UTC, RFC 3339); for ingested history, the
    /// time the source reported.
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }

    /// The system the change came from (e.g. `jira`), for ingested history;
    /// null for changes made through this API.
    async fn source(&self) -> Option<&str> {
        self.0.source.as_deref()
    }

    /// Who made the change through the API; null for ingested history.
    async fn actor(&self, ctx: &Context<'_>) -> GqlResult<Option<User>> {
        let Some(uid) = self.0.actor_id else {
            return Ok(None);
        };
        Ok(rc(ctx)?.users.load_one(uid).await?.map(User))
    }

    /// The item that changed state; null if you may not read it.
    async fn work_item(&self, ctx: &Context<'_>) -> GqlResult<Option<WorkItem>> {
        Ok(rc(ctx)?
            .items
            .load_one(self.0.work_item_id)
            .await?
            .map(WorkItem))
    }
}

/// A person.
#[derive(Clone)]
pub struct User(pub user::Model);

/// A person who can sign in. Users appear where data you may read names them
/// (assignees, actors, members); `node(id:)` finds only yourself unless you
/// are an admin.
#[Object]
impl User {
    /// Opaque global id, for `node(id:)` and for arguments that take a user.
    async fn id(&self) -> ID {
        ids::encode(kind::USER, self.0.id)
    }

    /// Email address, stored lower-cased; unique regardless of case.
    async fn email(&self) -> &str {
        &self.0.email
    }

    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// False once an admin has deactivated the account; the user then loses
    /// access at their next request.
    async fn active(&self) -> bool {
        self.0.active
    }

    /// Roles held. Visible to admins and to the user; empty for anyone else.
    async fn memberships(&self, ctx: &Context<'_>) -> GqlResult<Vec<Membership>> {
        let r = rc(ctx)?;
        Ok(users::memberships_of(r.svc(), self.0.id)
            .await?
            .into_iter()
            .map(Membership)
            .collect())
    }
}

/// A role held by a user on a unit.
#[derive(Clone)]
pub struct Membership(pub membership::Model);

/// A role held by a user on a unit. Visible to admins and to the user who
/// holds it.
#[Object]
impl Membership {
    /// Opaque global id, for `node(id:)` and for revoking the membership.
    async fn id(&self) -> ID {
        ids::encode(kind::MEMBERSHIP, self.0.id)
    }

    /// What the membership allows.
    async fn role(&self) -> GqlResult<Role> {
        Ok(Role::parse(&self.0.role)?)
    }

    /// When the role was granted (UTC, RFC 3339).
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// The user who holds the role.
    async fn user(&self, ctx: &Context<'_>) -> GqlResult<User> {
        rc(ctx)?
            .users
            .load_one(self.0.user_id)
            .await?
            .map(User)
            .ok_or_else(|| ApiError::not_found("user").into())
    }

    /// The unit the role is held on. The role's scope is this unit and every
    /// unit beneath it.
    async fn unit(&self, ctx: &Context<'_>) -> GqlResult<Unit> {
        rc(ctx)?
            .units
            .load_one(self.0.unit_id)
            .await?
            .map(Unit)
            .ok_or_else(|| ApiError::not_found("unit").into())
    }
}

/// An ordered list of states, each mapped to a flow-state category.
#[derive(Clone)]
pub struct Workflow(pub Arc<EffectiveWorkflow>);

/// An ordered list of states, each mapped to a flow-state category. A unit
/// without a workflow of its own uses its nearest ancestor's.
#[Object]
impl Workflow {
    /// Opaque global id, for `node(id:)`.
    async fn id(&self) -> ID {
        ids::encode(kind::WORKFLOW, self.0.workflow.id)
    }

    /// Display name of the workflow.
    async fn name(&self) -> &str {
        &self.0.workflow.name
    }

    /// The unit that defines this workflow.
    async fn owner(&self, ctx: &Context<'_>) -> GqlResult<Unit> {
        rc(ctx)?
            .units
            .load_one(self.0.workflow.unit_id)
            .await?
            .map(Unit)
            .ok_or_else(|| ApiError::not_found("unit").into())
    }

    /// States in board order.
    async fn states(&self) -> Vec<WorkflowState> {
        self.0.states.iter().cloned().map(WorkflowState).collect()
    }
}

/// One state (board column) of a workflow.
pub struct WorkflowState(pub workflow_state::Model);

/// One state (board column) of a workflow.
#[Object]
impl WorkflowState {
    /// The state's name, as work items and moves refer to it (e.g. `In
    /// Progress`).
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Flow-state category: decides how time in this state counts in flow
    /// metrics.
    async fn category(&self) -> GqlResult<StateCategory> {
        Ok(StateCategory::parse(&self.0.category)?)
    }

    /// Position in board order; lower comes first.
    async fn position(&self) -> i32 {
        self.0.position
    }

    /// The workflow's WIP limit for this column; null means no limit. A
    /// board may override it (see `BoardColumn.wipLimit`).
    async fn wip_limit(&self) -> Option<i32> {
        self.0.wip_limit
    }
}

/// An integration's credential (its secret is shown once, at creation).
#[derive(Clone)]
pub struct ApiKey(pub api_key::Model);

/// An integration's credential (its secret is shown once, at creation). Only
/// admins may see API keys.
#[Object]
impl ApiKey {
    /// Opaque global id, for `node(id:)` and for revoking the key.
    async fn id(&self) -> ID {
        ids::encode(kind::API_KEY, self.0.id)
    }

    /// Name given at creation, to tell keys apart.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// The secret's first characters, to recognise the key.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }

    /// When set, the key may only write inside this unit's subtree; null when
    /// it may write anywhere.
    async fn unit(&self, ctx: &Context<'_>) -> GqlResult<Option<Unit>> {
        let Some(u) = self.0.unit_id else {
            return Ok(None);
        };
        Ok(rc(ctx)?.units.load_one(u).await?.map(Unit))
    }

    /// When the key was created (UTC, RFC 3339).
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When the key was revoked (UTC, RFC 3339); null while it is valid.
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
}

/// The caller: who they are and the roles they hold.
#[derive(SimpleObject)]
pub struct Viewer {
    /// The signed-in user.
    pub user: User,
    /// The caller's roles and where they hold them.
    pub memberships: Vec<Membership>,
}
