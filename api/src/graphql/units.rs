//! Units, the nodes of the organisation tree: the `Unit` type, the
//! `organization` and `unit` lookups and `createUnit`.

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::unit;

use super::args::{page_args, page_complexity, wants_total};
use super::delivery::{
    Change, ChangeConnection, Deployment, DeploymentConnection, Incident, IncidentConnection,
    Release, ReleaseConnection, reach,
};
use super::ids::{self, kind};
use super::outcomes::Objective;
use super::value_streams::ValueStream;
use super::work_items::{Batching, WorkItemConnection, WorkItemFilter, list_work_items};
use super::workflows::Workflow;
use super::{on_heap, rc};
use crate::domain::UnitKind;
use crate::error::{ApiError, GqlResult};
use crate::events::{ChangeKind, DomainEvent};
use crate::service::units::{self, NewUnit};
use crate::service::{delivery, outcomes, value_streams};

/// Whether a unit's list covers the units beneath it.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum UnitScope {
    /// The unit and every unit beneath it.
    #[default]
    Subtree,
    /// Only what the unit itself owns, not what units beneath it own.
    UnitOnly,
}

/// A node of the organisation tree.
#[derive(Clone)]
pub struct Unit(pub Arc<unit::Model>);

impl From<unit::Model> for Unit {
    fn from(m: unit::Model) -> Self {
        Self(Arc::new(m))
    }
}

/// A node of the organisation tree: the organisation, a portfolio, a program
/// or a team. Every signed-in user may read the tree itself; what a unit
/// holds (items, records, metrics) follows the viewer's roles.
// GraphQL arguments map one to one onto parameters. Fields resolve one
// after another, as `WorkItem`'s do: units of a list still resolve
// concurrently, so their metrics still load in one batch.
#[allow(clippy::too_many_arguments)]
#[Object(serial)]
impl Unit {
    /// Opaque global id, for `node(id:)` and for arguments that take a unit.
    pub async fn id(&self) -> ID {
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
        on_heap(async move {
            let r = rc(ctx)?;
            Ok(units::children(r.svc(), self.0.id)
                .await?
                .into_iter()
                .map(Unit::from)
                .collect())
        })
        .await
    }

    /// Every ancestor, the organisation first.
    async fn ancestors(&self, ctx: &Context<'_>) -> GqlResult<Vec<Unit>> {
        on_heap(async move {
            let r = rc(ctx)?;
            Ok(units::ancestors(r.svc(), self.0.id)
                .await?
                .into_iter()
                .map(Unit::from)
                .collect())
        })
        .await
    }

    /// Every unit beneath this one, by depth then key.
    async fn descendants(&self, ctx: &Context<'_>) -> GqlResult<Vec<Unit>> {
        on_heap(async move {
            let r = rc(ctx)?;
            Ok(units::descendants(r.svc(), self.0.id)
                .await?
                .into_iter()
                .map(Unit::from)
                .collect())
        })
        .await
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
        on_heap(async move {
            let r = rc(ctx)?;
            let args = page_args(first, after, last, before)?;
            let page =
                delivery::changes(r.svc(), self.0.id, reach(scope), args, wants_total(ctx)).await?;
            Ok(ChangeConnection::from_page(page, |m| m.id, Change))
        })
        .await
    }

    /// Flow metrics of this unit (and by default its subtree): the same
    /// numbers as the root `flowMetrics`, so one query drills down a tree.
    /// Sibling units (the children of one parent) are computed together.
    /// Null, with `FORBIDDEN` on this field alone, where you may not read
    /// the unit's aggregates: the rest of the answer stands.
    #[graphql(complexity = "super::metrics::window_cost(&window) + child_complexity")]
    async fn flow_metrics(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The window `[from, to)` in UTC. `to` must be after `from` and the window at most 1,827 days long (the default limit), else `BAD_USER_INPUT`."
        )]
        window: super::metrics::TimeWindowInput,
        #[graphql(
            desc = "Which items to count (types, flow types, owning unit levels, scope); every item of the unit's subtree when omitted."
        )]
        filter: Option<super::metrics::MetricFilterInput>,
    ) -> GqlResult<Option<super::metrics::FlowMetrics>> {
        on_heap(async move {
            super::metrics::unit_flow_metrics(ctx, self.0.id, window, filter)
                .await
                .map(Some)
        })
        .await
    }

    /// Delivery metrics (DORA) of this unit (and by default its subtree):
    /// the same numbers as the root `deliveryMetrics`, so one query drills
    /// down a tree. Sibling units (the children of one parent) are computed
    /// together. Null, with `FORBIDDEN` on this field alone, where you may
    /// not read the unit's aggregates: the rest of the answer stands.
    #[graphql(complexity = "super::metrics::window_cost(&window) + child_complexity")]
    async fn delivery_metrics(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The window `[from, to)` in UTC. `to` must be after `from` and the window at most 1,827 days long (the default limit), else `BAD_USER_INPUT`."
        )]
        window: super::metrics::TimeWindowInput,
        #[graphql(
            desc = "`SUBTREE` (the default) covers the unit and every unit beneath it; `UNIT_ONLY` only what the unit itself owns."
        )]
        scope: Option<UnitScope>,
    ) -> GqlResult<Option<super::metrics::DeliveryMetrics>> {
        super::metrics::unit_delivery_metrics(ctx, self.0.id, window, scope)
            .await
            .map(Some)
    }

    /// "How many leaf items will this unit's subtree finish in `days`
    /// days?" (DESIGN §3.8): a Monte Carlo forecast over its recent daily
    /// throughput. `FORBIDDEN` where you may not read the unit's aggregates.
    #[graphql(
        complexity = "super::forecasts::how_many_cost(days, input.as_ref()) + child_complexity"
    )]
    async fn throughput_forecast(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Days ahead of `asOf`, 1 to 3,650 (`BAD_USER_INPUT` otherwise).")]
        days: i32,
        #[graphql(desc = "Sample, trials and seed; defaults for all when omitted.")] input: Option<
            super::forecasts::ForecastInput,
        >,
    ) -> GqlResult<super::forecasts::HowManyForecast> {
        on_heap(async move {
            super::forecasts::unit_throughput_forecast(ctx, self.0.id, days, input).await
        })
        .await
    }

    /// Objectives owned by this unit, where you may read them (where you
    /// may read its aggregates); empty otherwise.
    async fn objectives(&self, ctx: &Context<'_>) -> GqlResult<Vec<Objective>> {
        on_heap(async move {
            Ok(outcomes::objectives_of(rc(ctx)?.svc(), self.0.id)
                .await?
                .into_iter()
                .map(Objective)
                .collect())
        })
        .await
    }

    /// Value streams owned by this unit, by key, where you may read them
    /// (where you may read its aggregates); empty otherwise.
    async fn value_streams(&self, ctx: &Context<'_>) -> GqlResult<Vec<ValueStream>> {
        on_heap(async move {
            Ok(value_streams::of_unit(rc(ctx)?.svc(), self.0.id)
                .await?
                .into_iter()
                .map(ValueStream)
                .collect())
        })
        .await
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
        on_heap(async move {
            let r = rc(ctx)?;
            let args = page_args(first, after, last, before)?;
            let page =
                delivery::deployments(r.svc(), self.0.id, reach(scope), args, wants_total(ctx))
                    .await?;
            Ok(DeploymentConnection::from_page(page, |m| m.id, Deployment))
        })
        .await
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
        on_heap(async move {
            let r = rc(ctx)?;
            let args = page_args(first, after, last, before)?;
            let page = delivery::releases(r.svc(), self.0.id, reach(scope), args, wants_total(ctx))
                .await?;
            Ok(ReleaseConnection::from_page(page, |m| m.id, Release))
        })
        .await
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
        on_heap(async move {
            let r = rc(ctx)?;
            let args = page_args(first, after, last, before)?;
            let page =
                delivery::incidents(r.svc(), self.0.id, reach(scope), args, wants_total(ctx))
                    .await?;
            Ok(IncidentConnection::from_page(page, |m| m.id, Incident))
        })
        .await
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
        on_heap(async move {
            list_work_items(
                ctx,
                Batching::Shared,
                self.0.id,
                filter,
                first,
                after,
                last,
                before,
            )
            .await
        })
        .await
    }
}

/// Input of `createUnit`: a new portfolio, program or team.
#[derive(InputObject)]
pub struct CreateUnitInput {
    /// Global id of the parent unit; the organisation when omitted.
    pub parent: Option<ID>,
    /// The new unit's level: the one just below the parent's (a portfolio
    /// under the organisation, a program under a portfolio, a team under a
    /// program), else `BAD_USER_INPUT`.
    pub kind: UnitKind,
    /// Lowercase `[a-z0-9-]{2,64}`, unique.
    pub key: String,
    /// The display name, 1 to 200 characters.
    pub name: String,
}

/// The result of `createUnit`.
#[derive(SimpleObject)]
pub struct CreateUnitPayload {
    /// The new unit.
    pub unit: Unit,
}

#[derive(Default)]
pub struct UnitsQuery;

#[Object]
impl UnitsQuery {
    /// The organisation: the root of the unit tree, readable by every
    /// signed-in user.
    async fn organization(&self, ctx: &Context<'_>) -> GqlResult<Unit> {
        let r = rc(ctx)?;
        r.policy.viewer()?;
        if let Some(tree) = r.services.units.tree(&r.db).await?
            && let Some(org) = tree.organisation()
        {
            return Ok(Unit::from(org.clone()));
        }
        Ok(Unit::from(units::organisation(&r.db).await?))
    }

    /// A unit by key; `null` when no unit has that key. The tree is visible
    /// to every signed-in user.
    async fn unit(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The unit's key, e.g. `payments-checkout`.")] key: String,
    ) -> GqlResult<Option<Unit>> {
        Ok(units::find_by_key(rc(ctx)?.svc(), &key)
            .await?
            .map(Unit::from))
    }
}

#[derive(Default)]
pub struct UnitsMutation;

#[Object]
impl UnitsMutation {
    /// Creates a portfolio, program or team; `BAD_USER_INPUT` for a bad key or
    /// level, `CONFLICT` for a key in use. Admins may create any, portfolio
    /// managers programs and teams inside their portfolio, and program
    /// managers teams under their program (`FORBIDDEN` otherwise).
    async fn create_unit(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new unit's parent, kind, key and name.")] input: CreateUnitInput,
    ) -> GqlResult<CreateUnitPayload> {
        let r = rc(ctx)?;
        r.policy.viewer()?;
        let parent = input
            .parent
            .map(|p| ids::expect(&p, kind::UNIT, "parent"))
            .transpose()?;
        let unit = units::create(
            r.svc(),
            NewUnit {
                parent,
                kind: input.kind,
                key: input.key,
                name: input.name,
            },
        )
        .await?;
        r.services
            .bus
            .publish(DomainEvent::new(ChangeKind::UnitUpserted, unit.id, unit.id));
        Ok(CreateUnitPayload {
            unit: Unit::from(unit),
        })
    }
}
