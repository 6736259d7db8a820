//! Work items: the `WorkItem` type with its history and external
//! references, the `workItem` and `workItems` lookups, and the mutations
//! that create, change and move items.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{external_ref, transition, work_item};

use super::args::{page_args, page_complexity, patch, patch_id, wants_total};
use super::boards::{BoardColumn, CardPosition};
use super::delivery::{Change, Release};
use super::flat::WorkItemNodes;
use super::ids::{self, kind};
use super::units::{Unit, UnitScope};
use super::users::User;
use super::{on_heap, rc};
use crate::domain::{DefectOrigin, FlowType, StateCategory, WorkItemType};
use crate::error::{ApiError, GqlResult};
use crate::service::work_items::{self, ItemChanges, NewItem};
use crate::service::{boards, delivery, units};

connection!(WorkItemConnection, WorkItemEdge, WorkItem, WorkItemNodes);

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

#[allow(clippy::too_many_arguments)]
pub(super) async fn list_work_items(
    ctx: &Context<'_>,
    batching: Batching,
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
    // The parents come with the page: one statement instead of a second
    // round trip (sibling pages each bring their own).
    let with_parents = selects(ctx, "parent");
    let page = if with_parents {
        let only = item_columns(ctx);
        let (page, parents) = work_items::list_with_parents(
            r.svc(),
            unit_id,
            &filter,
            args,
            wants_total(ctx),
            only.as_deref(),
        )
        .await?;
        // Every parent asked: the unreadable ones as known absent.
        let mut known: HashMap<i64, Option<Arc<work_item::Model>>> = page
            .items
            .iter()
            .filter_map(|i| i.parent_id)
            .map(|p| (p, None))
            .collect();
        known.extend(parents.into_iter().map(|p| (p.id, Some(Arc::new(p)))));
        r.items.feed_many(known).await;
        page
    } else {
        work_items::list(r.svc(), unit_id, &filter, args, wants_total(ctx)).await?
    };
    prime(ctx, &page.items, batching).await?;
    Ok(WorkItemConnection::from_page(page, |m| m.id, WorkItem::new))
}

/// The columns the connection's selection reads of its items, when it asks
/// only fields that read their own column (or the id, unit or parent,
/// which are always read); `None` when it asks anything else, so that
/// every column is read. A field added to `WorkItem` is thus read in full
/// until it is listed here.
fn item_columns(ctx: &Context<'_>) -> Option<Vec<work_item::Column>> {
    use work_item::Column as C;
    let mut columns = Vec::new();
    let connection = ctx.field();
    let items = connection.selection_set().flat_map(|f| match f.name() {
        "nodes" => vec![f],
        "edges" => f.selection_set().filter(|e| e.name() == "node").collect(),
        _ => Vec::new(),
    });
    for item in items {
        for field in item.selection_set() {
            columns.push(match field.name() {
                "id" | "parent" | "unit" | "__typename" => continue,
                "key" => C::Key,
                "title" => C::Title,
                "description" => C::Description,
                "type" => C::ItemType,
                "flowType" => C::FlowType,
                "state" => C::State,
                "stateCategory" => C::StateCategory,
                "rank" => C::Rank,
                "blocked" => C::Blocked,
                "estimate" => C::Estimate,
                "businessValue" => C::BusinessValue,
                "foundIn" => C::FoundIn,
                "severity" => C::Severity,
                "createdAt" => C::CreatedAt,
                "updatedAt" => C::UpdatedAt,
                _ => return None,
            });
        }
    }
    Some(columns)
}

/// Whether the connection's selection asks `field` of its items.
fn selects(ctx: &Context<'_>, field: &str) -> bool {
    let la = ctx.look_ahead();
    la.field("nodes").field(field).exists() || la.field("edges").field("node").field(field).exists()
}

/// How [`prime`] reaches the units of a page.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Batching {
    /// Read at once and fed to the loaders: a root field's list has no
    /// sibling pages whose keys it could wait for.
    Now,
    /// Through the loaders, so that sibling pages (each item's `children`,
    /// each unit's `workItems`) share one statement.
    Shared,
}

/// Loads, in one batch each, what the selection asks of a page of items
/// (parent, unit, transitions, assignee, external references), so the
/// statements a page costs do not depend on its size or on task timing.
/// Parents a root or unit list's statement brought are already in the
/// item loader, so asking for them here costs nothing.
async fn prime(ctx: &Context<'_>, items: &[work_item::Model], batching: Batching) -> GqlResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    let wants = |field: &str| selects(ctx, field);
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
            if !wants("parent") || parents.is_empty() {
                Ok(())
            } else {
                r.items.load_many(parents).await.map(|_| ())
            }
        },
        async {
            if !wants("unit") {
                Ok(())
            } else if batching == Batching::Now {
                let found = r.units.loader().load(&units).await?;
                r.units.feed_many(found).await;
                Ok(())
            } else {
                r.units.load_many(units).await.map(|_| ())
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
pub struct WorkItem(pub Arc<work_item::Model>);

impl WorkItem {
    pub fn new(item: work_item::Model) -> Self {
        Self(Arc::new(item))
    }
}

/// An epic, feature, story, task, defect, risk or debt item, owned by one
/// unit. Items you may not read never appear: lists omit them and lookups
/// return null.
// Fields one after another: most come from the row or a loader already
// filled for the page, and a set of concurrent futures per item cost more
// than they overlapped. Items of a list still resolve concurrently, so the
// loaders still batch across them.
#[Object(serial)]
impl WorkItem {
    /// Opaque global id, for `node(id:)` and for arguments that take an item.
    pub async fn id(&self) -> ID {
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
        let rc = rc(ctx)?;
        // From the tree every request shares, without the loader's
        // bookkeeping per item; the loader (which reads the tree again)
        // when it is stale or off. Not awaited: an await here would
        // enlarge the future of every field of the type.
        let tree = rc.services.units.fresh();
        if let Some(unit) = tree.and_then(|t| t.shared_unit(self.0.unit_id)) {
            return Ok(Unit(unit));
        }
        rc.units
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
        Ok(rc(ctx)?.items.load_one(pid).await?.flatten().map(WorkItem))
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
        on_heap(async move {
            let r = rc(ctx)?;
            let args = page_args(first, after, last, before)?;
            let page = work_items::children(r.svc(), self.0.id, args, wants_total(ctx)).await?;
            prime(ctx, &page.items, Batching::Shared).await?;
            Ok(WorkItemConnection::from_page(page, |m| m.id, WorkItem::new))
        })
        .await
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
        on_heap(async move {
            let r = rc(ctx)?;
            Ok(delivery::changes_of_item(r.svc(), self.0.id)
                .await?
                .into_iter()
                .map(Change)
                .collect())
        })
        .await
    }

    /// Releases that delivered the item (those you may read).
    async fn releases(&self, ctx: &Context<'_>) -> GqlResult<Vec<Release>> {
        on_heap(async move {
            let r = rc(ctx)?;
            Ok(delivery::releases_of_item(r.svc(), self.0.id)
                .await?
                .into_iter()
                .map(Release)
                .collect())
        })
        .await
    }

    /// The objectives this epic or feature serves, those you may read, by
    /// key.
    async fn objectives(&self, ctx: &Context<'_>) -> GqlResult<Vec<super::outcomes::Objective>> {
        on_heap(async move {
            Ok(
                crate::service::outcomes::objectives_of_item(rc(ctx)?.svc(), self.0.id)
                    .await?
                    .into_iter()
                    .map(super::outcomes::Objective)
                    .collect(),
            )
        })
        .await
    }

    /// Delivery progress (DESIGN §3.7): the item's leaf descendants (the
    /// item itself when it has no children) done ÷ not canceled, at `asOf`
    /// (default now). An aggregate: `FORBIDDEN` where you may not read the
    /// owning unit's aggregates.
    async fn delivery(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The instant to count at; default now.")] as_of: Option<
            chrono::DateTime<chrono::Utc>,
        >,
    ) -> GqlResult<super::forecasts::DeliveryProgress> {
        on_heap(async move { super::forecasts::item_delivery(ctx, &self.0, as_of).await }).await
    }

    /// "When will it be done?" (DESIGN §3.8): a Monte Carlo forecast of the
    /// item's remaining leaves over the recent daily throughput of the
    /// units that own them. An aggregate: `FORBIDDEN` where you may not read
    /// the owning unit's aggregates.
    #[graphql(complexity = "super::forecasts::forecast_cost(input.as_ref()) + child_complexity")]
    async fn forecast(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Sample, trials, seed and target date; defaults for all when omitted.")]
        input: Option<super::forecasts::ForecastInput>,
    ) -> GqlResult<super::forecasts::WhenForecast> {
        on_heap(async move { super::forecasts::item_forecast(ctx, &self.0, input).await }).await
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
    pub async fn id(&self) -> ID {
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
            .flatten()
            .map(WorkItem))
    }
}

/// Input of `createWorkItem`: a new work item on a unit's board.
#[derive(InputObject)]
pub struct CreateWorkItemInput {
    /// Global id of the owning unit, which must suit the type: epics on
    /// portfolios, features on programs, stories and tasks on teams, and
    /// defects, risks and debt on teams, programs or portfolios.
    pub unit: ID,
    /// The item's type; it decides which units may own the item and which
    /// items may be its parent.
    #[graphql(name = "type")]
    pub item_type: WorkItemType,
    /// The title, 1 to 500 characters.
    pub title: String,
    /// A free-text description.
    pub description: Option<String>,
    /// Unique key; generated from the unit's key when omitted (`TEAM-ATLAS-7`).
    pub key: Option<String>,
    /// Global id of the parent item: a type that may parent this one (e.g. a
    /// feature for a story), owned by the same unit or one above it.
    pub parent: Option<ID>,
    /// A state of the unit's workflow; its first `NEW` state when omitted.
    pub state: Option<String>,
    /// Derived from the type when omitted.
    pub flow_type: Option<FlowType>,
    /// Where a defect was found; for `DEFECT` items only, else `BAD_USER_INPUT`.
    pub found_in: Option<DefectOrigin>,
    /// A free-text severity label, 1 to 32 characters.
    pub severity: Option<String>,
    /// Global id of the user to assign: an active user with a membership on
    /// the unit, above it or below it (`NOT_FOUND` otherwise).
    pub assignee: Option<ID>,
    /// The size estimate in points, zero or more.
    pub estimate: Option<f64>,
    /// The business value, a number of zero or more.
    pub business_value: Option<f64>,
}

/// The result of `createWorkItem`.
#[derive(SimpleObject)]
pub struct CreateWorkItemPayload {
    /// The new item.
    pub work_item: WorkItem,
}

/// Input of `updateWorkItem`: fields left out stay as they are, and `null`
/// clears a nullable field.
#[derive(InputObject)]
pub struct UpdateWorkItemInput {
    /// Global id of the item to change.
    pub work_item: ID,
    /// The new title, 1 to 500 characters.
    pub title: Option<String>,
    /// The new description; `null` clears it.
    pub description: MaybeUndefined<String>,
    /// Global id of the new parent item, under the same rules as on creation
    /// and never one of the item's own descendants; `null` detaches the item.
    pub parent: MaybeUndefined<ID>,
    /// Global id of the user to assign, under the same rules as on creation;
    /// `null` unassigns the item.
    pub assignee: MaybeUndefined<ID>,
    /// The size estimate in points, zero or more; `null` clears it.
    pub estimate: MaybeUndefined<f64>,
    /// The business value, zero or more; `null` clears it.
    pub business_value: MaybeUndefined<f64>,
    /// The Flow Framework type the item counts as in flow metrics.
    pub flow_type: Option<FlowType>,
    /// Where a defect was found (`DEFECT` items only); `null` clears it.
    pub found_in: MaybeUndefined<DefectOrigin>,
    /// A free-text severity label, 1 to 32 characters; `null` clears it.
    pub severity: MaybeUndefined<String>,
    /// Flag (or unflag) the item as blocked.
    pub blocked: Option<bool>,
}

/// The result of `updateWorkItem`.
#[derive(SimpleObject)]
pub struct UpdateWorkItemPayload {
    /// The item after the change.
    pub work_item: WorkItem,
}

/// Input of `moveWorkItem`: the item and where its card goes.
#[derive(InputObject)]
pub struct MoveWorkItemInput {
    /// Global id of the item to move.
    pub work_item: ID,
    /// A state of the item's workflow (its current one to only reorder).
    pub to_state: String,
    /// Where the card goes in the target column; its end when omitted.
    pub position: Option<CardPosition>,
}

/// The result of `moveWorkItem`.
#[derive(SimpleObject)]
pub struct MoveWorkItemPayload {
    /// The item after the move.
    pub work_item: WorkItem,
    /// The move took the column over its WIP limit (a `WARN` board).
    pub wip_limit_exceeded: bool,
    /// The column the item is in, after the move.
    pub column: Option<BoardColumn>,
}

#[derive(Default)]
pub struct WorkItemsQuery;

// GraphQL arguments map one to one onto parameters.
#[allow(clippy::too_many_arguments)]
#[Object]
impl WorkItemsQuery {
    /// A work item by key; `null` when it does not exist or you may not read it.
    async fn work_item(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The item's key, e.g. `TEAM-ATLAS-7`.")] key: String,
    ) -> GqlResult<Option<WorkItem>> {
        Ok(work_items::find_by_key(rc(ctx)?.svc(), &key)
            .await?
            .map(WorkItem::new))
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
        list_work_items(
            ctx,
            Batching::Now,
            unit_id,
            filter,
            first,
            after,
            last,
            before,
        )
        .await
    }
}

#[derive(Default)]
pub struct WorkItemsMutation;

#[Object]
impl WorkItemsMutation {
    /// Creates a work item in its initial (or given) state, recording its
    /// first transition. `FORBIDDEN` unless you may write the unit's items,
    /// `BAD_USER_INPUT` for invalid fields, levels or states, `CONFLICT` for a
    /// key in use or a full column on a `BLOCK` board.
    async fn create_work_item(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new item's unit, type, title and optional fields.")]
        input: CreateWorkItemInput,
    ) -> GqlResult<CreateWorkItemPayload> {
        let r = rc(ctx)?;
        r.policy.viewer()?;
        let item = work_items::create(
            r.svc(),
            &r.services.bus,
            NewItem {
                unit: ids::expect(&input.unit, kind::UNIT, "unit")?,
                item_type: Some(input.item_type),
                title: input.title,
                description: input.description,
                key: input.key,
                parent: input
                    .parent
                    .map(|p| ids::expect(&p, kind::WORK_ITEM, "parent"))
                    .transpose()?,
                state: input.state,
                flow_type: input.flow_type,
                found_in: input.found_in,
                severity: input.severity,
                assignee: input
                    .assignee
                    .map(|a| ids::expect(&a, kind::USER, "assignee"))
                    .transpose()?,
                estimate: input.estimate,
                business_value: input.business_value,
            },
        )
        .await?;
        Ok(CreateWorkItemPayload {
            work_item: WorkItem::new(item),
        })
    }

    /// Changes a work item's fields, not its state (see `moveWorkItem`).
    /// `NOT_FOUND` for an item you may not read, `FORBIDDEN` for one you may
    /// read but not write, `BAD_USER_INPUT` for invalid values.
    async fn update_work_item(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The item and the fields to change.")] input: UpdateWorkItemInput,
    ) -> GqlResult<UpdateWorkItemPayload> {
        let r = rc(ctx)?;
        r.policy.viewer()?;
        let id = ids::expect(&input.work_item, kind::WORK_ITEM, "workItem")?;
        let changes = ItemChanges {
            title: input.title,
            description: patch(input.description),
            parent: patch_id(input.parent, kind::WORK_ITEM, "parent")?,
            assignee: patch_id(input.assignee, kind::USER, "assignee")?,
            estimate: patch(input.estimate),
            business_value: patch(input.business_value),
            flow_type: input.flow_type,
            found_in: patch(input.found_in),
            severity: patch(input.severity),
            blocked: input.blocked,
        };
        let item = work_items::update(r.svc(), &r.services.bus, id, changes).await?;
        Ok(UpdateWorkItemPayload {
            work_item: WorkItem::new(item),
        })
    }

    /// Moves an item to another state of its workflow, recording a
    /// transition, and places its card at `position` (or the column's end).
    /// Over the column's WIP limit, a `WARN` board moves and says so; a
    /// `BLOCK` board refuses with `CONFLICT`.
    async fn move_work_item(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The item, the state to move it to and its place in the column.")]
        input: MoveWorkItemInput,
    ) -> GqlResult<MoveWorkItemPayload> {
        let r = rc(ctx)?;
        r.policy.viewer()?;
        let id = ids::expect(&input.work_item, kind::WORK_ITEM, "workItem")?;
        let position = input
            .position
            .as_ref()
            .map(CardPosition::parse)
            .transpose()?;
        let done =
            work_items::move_to(r.svc(), &r.services.bus, id, &input.to_state, position).await?;
        let unit = units::path(&r.db, done.item.unit_id).await?;
        let column = boards::columns(&r.db, unit.id, None, r.policy.can_read_items_of(&unit))
            .await?
            .into_iter()
            .find(|c| c.name == done.item.state)
            .map(BoardColumn);
        Ok(MoveWorkItemPayload {
            wip_limit_exceeded: done.wip.as_ref().is_some_and(|w| w.exceeded()),
            column,
            work_item: WorkItem::new(done.item),
        })
    }
}
