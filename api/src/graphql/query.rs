//! Root query fields.

use async_graphql::{Context, ID, Object};

use super::delivery::{Change, Deployment, Incident, Release};
use super::ids::{self, kind};
use super::outcomes::{KeyResult, Objective};
use super::rc;
use super::types::{
    ApiKey, Membership, Node, Transition, Unit, User, Viewer, WorkItem, WorkItemConnection,
    WorkItemFilter, Workflow, list_work_items,
};
use super::value_streams::{ValueStream, ValueStreamMap};
use crate::error::{ApiError, GqlResult};
use crate::service::{
    api_keys, delivery, integrations, outcomes, units, users, value_streams, work_items,
};

/// Most ids accepted by `nodes`.
const MAX_NODES: usize = 100;

pub struct Query;

async fn resolve_node(ctx: &Context<'_>, id: &str) -> GqlResult<Option<Node>> {
    let r = rc(ctx)?;
    let svc = r.svc();
    svc.policy.viewer()?;
    let Some((k, n)) = ids::decode(id) else {
        return Ok(None);
    };
    Ok(match k.as_str() {
        kind::UNIT => r.units.load_one(n).await?.map(|u| Node::Unit(Unit(u))),
        kind::WORK_ITEM => r
            .items
            .load_one(n)
            .await?
            .map(|i| Node::WorkItem(WorkItem(i))),
        kind::USER => users::find(svc, n).await?.map(|u| Node::User(User(u))),
        kind::MEMBERSHIP => users::find_membership(svc, n)
            .await?
            .map(|m| Node::Membership(Membership(m))),
        kind::TRANSITION => work_items::find_transition(svc, n)
            .await?
            .map(|t| Node::Transition(Transition(t))),
        kind::API_KEY => api_keys::find(svc, n)
            .await?
            .map(|k| Node::ApiKey(ApiKey(k))),
        kind::CHANGE => delivery::find_change(svc, n)
            .await?
            .map(|c| Node::Change(Change(c))),
        kind::DEPLOYMENT => delivery::find_deployment(svc, n)
            .await?
            .map(|d| Node::Deployment(Deployment(d))),
        kind::RELEASE => delivery::find_release(svc, n)
            .await?
            .map(|d| Node::Release(Release(d))),
        kind::INCIDENT => delivery::find_incident(svc, n)
            .await?
            .map(|d| Node::Incident(Incident(d))),
        kind::OBJECTIVE => outcomes::find_objective(svc, n)
            .await?
            .map(|o| Node::Objective(Objective(o))),
        kind::KEY_RESULT => outcomes::find_key_result(svc, n)
            .await?
            .map(|k| Node::KeyResult(KeyResult(k))),
        kind::VALUE_STREAM => value_streams::find(svc, n)
            .await?
            .map(|v| Node::ValueStream(ValueStream(v))),
        kind::WORKFLOW => {
            let owner = entity::workflow::Entity::find_by_id(n);
            use sea_orm::EntityTrait;
            match owner.one(&r.db).await.map_err(ApiError::from)? {
                Some(wf) => {
                    let eff = units::effective_workflow(&r.db, wf.unit_id).await?;
                    Some(Node::Workflow(Workflow(std::sync::Arc::new(eff))))
                }
                None => None,
            }
        }
        _ => None,
    })
}

// GraphQL arguments map one to one onto parameters.
/// The read entry points of the API. Every field needs a signed-in caller
/// (`UNAUTHENTICATED` otherwise) and shows only what your memberships let you read.
#[allow(clippy::too_many_arguments)]
#[Object]
impl Query {
    /// The caller: who they are and the roles they hold, and where.
    async fn me(&self, ctx: &Context<'_>) -> GqlResult<Viewer> {
        let r = rc(ctx)?;
        let viewer = r.policy.viewer()?;
        let memberships = users::memberships_of(r.svc(), viewer.user.id).await?;
        Ok(Viewer {
            user: User(viewer.user.clone()),
            memberships: memberships.into_iter().map(Membership).collect(),
        })
    }

    /// Any object by its global id; `null` when it does not exist or you may not read it.
    async fn node(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The object's global id, as found in its `id` field; a malformed id gives `null`."
        )]
        id: ID,
    ) -> GqlResult<Option<Node>> {
        resolve_node(ctx, &id).await
    }

    /// Several objects by global id, in the order asked; `null` for each one
    /// that does not exist or you may not read.
    #[graphql(complexity = "ids.len() * child_complexity + 1")]
    async fn nodes(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global ids of the objects, at most 100 (`BAD_USER_INPUT` beyond).")]
        ids: Vec<ID>,
    ) -> GqlResult<Vec<Option<Node>>> {
        if ids.len() > MAX_NODES {
            return Err(ApiError::bad_input(format!("at most {MAX_NODES} ids per call")).into());
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in &ids {
            out.push(resolve_node(ctx, id).await?);
        }
        Ok(out)
    }

    /// A unit's Kanban board: columns with counts and WIP limits for
    /// viewers who may read the unit's aggregates (`FORBIDDEN` for others),
    /// cards for those who may read its items.
    async fn board(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Global id of the unit whose board to show; an unknown unit is `NOT_FOUND`."
        )]
        unit: ID,
    ) -> GqlResult<super::boards::Board> {
        let r = rc(ctx)?;
        r.policy.viewer()?;
        let id = ids::expect(&unit, kind::UNIT, "unit")?;
        Ok(super::boards::Board(
            crate::service::boards::board(r.svc(), id).await?,
        ))
    }

    /// Flow metrics (DESIGN §3.1) of a unit (and by default its subtree)
    /// over `[from, to)`: for viewers who may read the unit's aggregates,
    /// `FORBIDDEN` for others.
    #[graphql(complexity = "super::metrics::window_cost(&window) + child_complexity")]
    async fn flow_metrics(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Global id of the unit to measure (with its subtree unless told otherwise); an unknown unit is `NOT_FOUND`."
        )]
        unit: ID,
        #[graphql(
            desc = "The window `[from, to)` in UTC. `to` must be after `from` and the window at most 1,827 days long (the default limit), else `BAD_USER_INPUT`."
        )]
        window: super::metrics::TimeWindowInput,
        #[graphql(
            desc = "Which items to count (types, flow types, owning unit levels, scope); every item of the unit's subtree when omitted."
        )]
        filter: Option<super::metrics::MetricFilterInput>,
    ) -> GqlResult<super::metrics::FlowMetrics> {
        super::metrics::flow_metrics(ctx, unit, window, filter).await
    }

    /// Delivery metrics (DESIGN §3.5, DORA) of a unit (and by default its
    /// subtree) over `[from, to)`: for viewers who may read the unit's
    /// aggregates, `FORBIDDEN` for others.
    #[graphql(complexity = "super::metrics::window_cost(&window) + child_complexity")]
    async fn delivery_metrics(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Global id of the unit to measure (with its subtree unless told otherwise); an unknown unit is `NOT_FOUND`."
        )]
        unit: ID,
        #[graphql(
            desc = "The window `[from, to)` in UTC. `to` must be after `from` and the window at most 1,827 days long (the default limit), else `BAD_USER_INPUT`."
        )]
        window: super::metrics::TimeWindowInput,
        #[graphql(
            desc = "`SUBTREE` (the default) covers the unit and every unit beneath it; `UNIT_ONLY` only what the unit itself owns."
        )]
        scope: Option<super::types::UnitScope>,
    ) -> GqlResult<super::metrics::DeliveryMetrics> {
        super::metrics::delivery_metrics(ctx, unit, window, scope).await
    }

    /// A value stream by key; `null` when it does not exist or you may not
    /// read it (you may where you may read its unit's aggregates).
    async fn value_stream(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The value stream's unique key.")] key: String,
    ) -> GqlResult<Option<ValueStream>> {
        Ok(value_streams::find_by_key(rc(ctx)?.svc(), &key)
            .await?
            .map(ValueStream))
    }

    /// The value stream map (DESIGN §3.6) of a stream over `[from, to)`:
    /// per stage, items, process and wait time and %C&A, and the totals,
    /// over the items of the owning unit's subtree completed in the window.
    /// `NOT_FOUND` for a stream you may not read.
    #[graphql(complexity = "super::metrics::window_cost(&window) + child_complexity")]
    async fn value_stream_map(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the value stream (its `id` field).")] value_stream: ID,
        #[graphql(
            desc = "The window `[from, to)` in UTC. `to` must be after `from` and the window at most 1,827 days long (the default limit), else `BAD_USER_INPUT`."
        )]
        window: super::metrics::TimeWindowInput,
    ) -> GqlResult<ValueStreamMap> {
        super::value_streams::value_stream_map(ctx, value_stream, window).await
    }

    /// Every API key, revoked ones included, oldest first. Admins only
    /// (`FORBIDDEN` for others); secrets are never returned.
    async fn api_keys(&self, ctx: &Context<'_>) -> GqlResult<Vec<ApiKey>> {
        Ok(api_keys::list(rc(ctx)?.svc())
            .await?
            .into_iter()
            .map(ApiKey)
            .collect())
    }

    /// The configured integrations, one per source, by source name. Admins
    /// only (`FORBIDDEN` for others); webhook secrets are never returned.
    async fn integrations(
        &self,
        ctx: &Context<'_>,
    ) -> GqlResult<Vec<super::mutation::Integration>> {
        Ok(integrations::list(rc(ctx)?.svc())
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// The rules translating integrations' native values into Gemba's, of one
    /// source or all, oldest first. Admins only (`FORBIDDEN` for others).
    async fn integration_mappings(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Only this source's mappings (`github`, `gitlab` or `jira`); every source's when omitted."
        )]
        source: Option<String>,
    ) -> GqlResult<Vec<super::mutation::IntegrationMapping>> {
        integrations::mappings(rc(ctx)?.svc(), source.as_deref())
            .await?
            .into_iter()
            .map(super::mutation::IntegrationMapping::from_model)
            .collect()
    }

    /// The organisation: the root of the unit tree, readable by every
    /// signed-in user.
    async fn organization(&self, ctx: &Context<'_>) -> GqlResult<Unit> {
        let r = rc(ctx)?;
        r.policy.viewer()?;
        Ok(Unit(units::organisation(&r.db).await?))
    }

    /// A unit by key; `null` when no unit has that key. The tree is visible
    /// to every signed-in user.
    async fn unit(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The unit's key, e.g. `payments-checkout`.")] key: String,
    ) -> GqlResult<Option<Unit>> {
        Ok(units::find_by_key(rc(ctx)?.svc(), &key).await?.map(Unit))
    }

    /// A work item by key; `null` when it does not exist or you may not read it.
    async fn work_item(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The item's key, e.g. `TEAM-ATLAS-7`.")] key: String,
    ) -> GqlResult<Option<WorkItem>> {
        Ok(work_items::find_by_key(rc(ctx)?.svc(), &key)
            .await?
            .map(WorkItem))
    }

    /// Work items of a unit (and by default its subtree), in the order they
    /// were added, leaving out silently those you may not read. An unknown
    /// unit is `NOT_FOUND`.
    #[graphql(
        complexity = "first.or(last).unwrap_or(20).clamp(1, 100) as usize * child_complexity + 2"
    )]
    async fn work_items(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the unit whose items to list.")] unit: ID,
        #[graphql(
            desc = "Narrows the list (types, flow types, state categories, title text, creation time, scope); the whole subtree when omitted."
        )]
        filter: Option<WorkItemFilter>,
        #[graphql(
            desc = "Returns the first n items after `after`: 0 to 100, 20 when neither `first` nor `last` is given. Not together with `last`."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Starts after the item with this cursor (an edge's `cursor` or `pageInfo.endCursor`)."
        )]
        after: Option<String>,
        #[graphql(
            desc = "Returns the last n items before `before`: 0 to 100. Not together with `first`."
        )]
        last: Option<i32>,
        #[graphql(
            desc = "Ends before the item with this cursor (an edge's `cursor` or `pageInfo.startCursor`)."
        )]
        before: Option<String>,
    ) -> GqlResult<WorkItemConnection> {
        rc(ctx)?.policy.viewer()?;
        let unit_id = ids::expect(&unit, kind::UNIT, "unit")?;
        list_work_items(ctx, unit_id, filter, first, after, last, before).await
    }
}
