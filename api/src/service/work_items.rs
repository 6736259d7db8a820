// Over 800 lines: every read and write of one entity (lists, create,
// update, move, reorder) with the checks they share; splitting reads from
// writes is the next step if it grows.
//! Work items: scoped reads, and writes that keep the transition history.

use chrono::{DateTime, Utc};
use entity::{external_ref, transition, unit, work_item};
use sea_orm::sea_query::{
    Alias, Asterisk, CommonTableExpression, Expr, ExprTrait, Func, Query, UnionType,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select, Set, TransactionTrait,
};

pub use super::Reach;
use super::facts::flow as facts;
use super::rows::{self, ItemRow, PARENT_FLAG};
use super::tx::write_transaction;
use super::{
    Ctx, Page, PageArgs, boards, page_of, page_select, page_total, paginate_as, rank, units, users,
};
use crate::domain::{DefectOrigin, FlowType, StateCategory, WorkItemType, validate_item_key};
use crate::error::{ApiError, ApiResult};
use crate::events::{ChangeKind, DomainEvent, EventBus};
use crate::policy::UnitPath;

/// Filters of a work item list.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub types: Option<Vec<WorkItemType>>,
    pub flow_types: Option<Vec<FlowType>>,
    pub state_categories: Option<Vec<StateCategory>>,
    /// Case-insensitive substring of the title.
    pub search: Option<String>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    pub reach: Reach,
}

/// Items the caller may read.
fn readable(ctx: Ctx<'_>) -> ApiResult<Select<work_item::Entity>> {
    Ok(work_item::Entity::find().filter(ctx.policy.item_condition()?))
}

fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

fn apply_filter(
    mut q: Select<work_item::Entity>,
    f: &Filter,
) -> ApiResult<Select<work_item::Entity>> {
    if let Some(types) = &f.types {
        q = q.filter(work_item::Column::ItemType.is_in(types.iter().map(|t| t.as_str())));
    }
    if let Some(types) = &f.flow_types {
        q = q.filter(work_item::Column::FlowType.is_in(types.iter().map(|t| t.as_str())));
    }
    if let Some(cats) = &f.state_categories {
        q = q.filter(work_item::Column::StateCategory.is_in(cats.iter().map(|c| c.as_str())));
    }
    if let Some(text) = f.search.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        if text.chars().count() > 200 {
            return Err(ApiError::bad_input(
                "search text must have at most 200 characters",
            ));
        }
        q = q.filter(
            Expr::expr(Func::lower(Expr::col((
                work_item::Entity,
                work_item::Column::Title,
            ))))
            .like(sea_orm::sea_query::LikeExpr::new(escape_like(text)).escape('\\')),
        );
    }
    if let (Some(from), Some(to)) = (f.created_from, f.created_to)
        && to <= from
    {
        return Err(ApiError::bad_input(
            "`createdTo` must be after `createdFrom`",
        ));
    }
    if let Some(from) = f.created_from {
        q = q.filter(work_item::Column::CreatedAt.gte(from));
    }
    if let Some(to) = f.created_to {
        q = q.filter(work_item::Column::CreatedAt.lt(to));
    }
    Ok(q)
}

/// Items of a unit (and, by default, its subtree) the caller may read.
///
/// # Errors
/// `NOT_FOUND` for an unknown unit, `BAD_USER_INPUT` for bad filters or pages.
pub async fn list(
    ctx: Ctx<'_>,
    unit_id: i64,
    filter: &Filter,
    page: PageArgs,
    want_total: bool,
) -> ApiResult<Page<work_item::Model>> {
    let q = list_select(ctx, unit_id, filter).await?;
    items_page(ctx, q, page, want_total).await
}

/// The readable items of a unit's list, unpaged.
async fn list_select(
    ctx: Ctx<'_>,
    unit_id: i64,
    filter: &Filter,
) -> ApiResult<Select<work_item::Entity>> {
    let q = readable(ctx)?;
    if units::find(ctx, unit_id).await?.is_none() {
        return Err(ApiError::not_found("unit"));
    }
    let q = super::in_unit_listed(ctx, q, work_item::Column::UnitId, unit_id, filter.reach).await?;
    apply_filter(q, filter)
}

/// [`list`], and the readable parents of the page's items, in one
/// statement: the page as a common table expression, then
/// `UNION ALL` the parents, each row flagged with which it is.
///
/// With `only`, the page's rows hold those columns, the item's id, unit
/// and parent, and NULL in the others (a NOT NULL one comes back as its
/// type's default): for a caller that reads nothing else of the page's
/// items. Parents always hold every column: they go to the item loader,
/// which any field may ask.
///
/// # Errors
/// As [`list`].
pub async fn list_with_parents(
    ctx: Ctx<'_>,
    unit_id: i64,
    filter: &Filter,
    page: PageArgs,
    want_total: bool,
    only: Option<&[work_item::Column]>,
) -> ApiResult<(Page<work_item::Model>, Vec<work_item::Model>)> {
    let q = list_select(ctx, unit_id, filter).await?;
    let total = page_total(ctx.db, &q, &page, want_total).await?;
    let (q, n) = page_select(q, work_item::Column::Id, &page);
    let page_table = Alias::new("page");
    let flag = Alias::new(PARENT_FLAG);
    let mut cte = q.into_query();
    if let Some(only) = only {
        use sea_orm::{IdenStatic, Iterable};
        cte.clear_selects();
        for column in work_item::Column::iter() {
            let always = matches!(
                column,
                work_item::Column::Id | work_item::Column::UnitId | work_item::Column::ParentId
            );
            let wanted = only.iter().any(|c| c.as_str() == column.as_str());
            match null_of(column) {
                Some(null) if !always && !wanted => cte.expr_as(Expr::cust(null), column),
                _ => cte.expr_as(Expr::col((work_item::Entity, column)), column),
            };
        }
    }
    cte.expr_as(Expr::cust("0"), flag.clone());
    // Built in place: sea-query's `to_owned()` on a builder is a deep copy.
    let mut parent_ids = Query::select();
    parent_ids
        .column(work_item::Column::ParentId)
        .from(page_table.clone());
    let mut parents = readable(ctx)?
        .filter(work_item::Column::Id.in_subquery(parent_ids))
        .into_query();
    parents.expr_as(Expr::cust("1"), flag);
    let mut page_cte = CommonTableExpression::new();
    page_cte.query(cte).table_name(page_table.clone());
    let mut with = Query::with();
    with.cte(page_cte);
    let mut union = Query::select();
    union
        .column(Asterisk)
        .from(page_table)
        .union(UnionType::All, parents);
    let statement = union.with(with);
    let found = ctx
        .db
        .query_all_raw(ctx.db.get_database_backend().build(&statement))
        .await?;
    let (mut items, parents) = rows::paged(&found)?;
    // UNION ALL keeps no order: the page's rows back in the page's.
    if page.last.is_some() {
        items.sort_unstable_by_key(|i| std::cmp::Reverse(i.id));
    } else {
        items.sort_unstable_by_key(|i| i.id);
    }
    Ok((page_of(items, n, &page, total), parents))
}

/// A typed NULL standing in for `column` (`UNION ALL` with the parents'
/// rows needs the type); `None` for a type not listed here, which is then
/// always read.
fn null_of(column: work_item::Column) -> Option<&'static str> {
    use sea_orm::sea_query::ColumnType;
    Some(match column.def().get_column_type() {
        ColumnType::String(_) | ColumnType::Text => "CAST(NULL AS TEXT)",
        ColumnType::BigInteger => "CAST(NULL AS BIGINT)",
        ColumnType::Double => "CAST(NULL AS DOUBLE PRECISION)",
        ColumnType::Boolean => "CAST(NULL AS BOOLEAN)",
        ColumnType::TimestampWithTimeZone => "CAST(NULL AS TIMESTAMP WITH TIME ZONE)",
        _ => return None,
    })
}

/// A page of `q`, its rows decoded by position.
async fn items_page(
    ctx: Ctx<'_>,
    q: Select<work_item::Entity>,
    page: PageArgs,
    want_total: bool,
) -> ApiResult<Page<work_item::Model>> {
    let page =
        paginate_as::<_, _, ItemRow>(ctx.db, q, work_item::Column::Id, page, want_total).await?;
    Ok(Page {
        items: page.items.into_iter().map(|r| r.0).collect(),
        has_next: page.has_next,
        has_previous: page.has_previous,
        total: page.total,
    })
}

/// Children of an item the caller may read.
///
/// # Errors
/// Database errors, or bad page arguments.
pub async fn children(
    ctx: Ctx<'_>,
    parent_id: i64,
    page: PageArgs,
    want_total: bool,
) -> ApiResult<Page<work_item::Model>> {
    let q = readable(ctx)?.filter(work_item::Column::ParentId.eq(parent_id));
    items_page(ctx, q, page, want_total).await
}

/// # Errors
/// `UNAUTHENTICATED`; database errors.
pub async fn find_by_key(ctx: Ctx<'_>, key: &str) -> ApiResult<Option<work_item::Model>> {
    Ok(readable(ctx)?
        .filter(work_item::Column::Key.eq(key))
        .one(ctx.db)
        .await?)
}

/// The readable items among `ids`.
///
/// # Errors
/// `UNAUTHENTICATED`; database errors.
pub async fn find_many(ctx: Ctx<'_>, ids: &[i64]) -> ApiResult<Vec<work_item::Model>> {
    Ok(readable(ctx)?
        .filter(work_item::Column::Id.is_in(ids.iter().copied()))
        .into_model::<ItemRow>()
        .all(ctx.db)
        .await?
        .into_iter()
        .map(|r| r.0)
        .collect())
}

/// Transitions of items (already known readable), oldest first by `at`.
///
/// # Errors
/// Database errors only.
pub async fn transitions_of(ctx: Ctx<'_>, item_ids: &[i64]) -> ApiResult<Vec<transition::Model>> {
    ctx.policy.viewer()?;
    Ok(transition::Entity::find()
        .filter(transition::Column::WorkItemId.is_in(item_ids.iter().copied()))
        .order_by_asc(transition::Column::At)
        .order_by_asc(transition::Column::Id)
        .all(ctx.db)
        .await?)
}

/// A transition, when the caller may read its item.
///
/// # Errors
/// Database errors only.
pub async fn find_transition(ctx: Ctx<'_>, id: i64) -> ApiResult<Option<transition::Model>> {
    let Some(t) = transition::Entity::find_by_id(id).one(ctx.db).await? else {
        return Ok(None);
    };
    Ok(find_many(ctx, &[t.work_item_id])
        .await?
        .into_iter()
        .next()
        .map(|_| t))
}

/// External references of items (already known readable).
///
/// # Errors
/// Database errors only.
pub async fn external_refs_of(
    ctx: Ctx<'_>,
    item_ids: &[i64],
) -> ApiResult<Vec<external_ref::Model>> {
    ctx.policy.viewer()?;
    Ok(external_ref::Entity::find()
        .filter(external_ref::Column::WorkItemId.is_in(item_ids.iter().copied()))
        .order_by_asc(external_ref::Column::Id)
        .all(ctx.db)
        .await?)
}

/// Input of [`create`].
#[derive(Debug, Default)]
pub struct NewItem {
    pub unit: i64,
    pub item_type: Option<WorkItemType>,
    pub title: String,
    pub description: Option<String>,
    pub key: Option<String>,
    pub parent: Option<i64>,
    pub state: Option<String>,
    pub flow_type: Option<FlowType>,
    pub found_in: Option<DefectOrigin>,
    pub severity: Option<String>,
    pub assignee: Option<i64>,
    pub estimate: Option<f64>,
    pub business_value: Option<f64>,
}

fn validate_title(title: &str) -> ApiResult<String> {
    let t = title.trim();
    if t.is_empty() || t.chars().count() > 500 {
        return Err(ApiError::bad_input("title must have 1 to 500 characters"));
    }
    Ok(t.to_owned())
}

fn validate_number(name: &str, v: Option<f64>) -> ApiResult<()> {
    if let Some(v) = v
        && (!v.is_finite() || v < 0.0)
    {
        return Err(ApiError::bad_input(format!(
            "{name} must be a non-negative number"
        )));
    }
    Ok(())
}

fn validate_severity(s: &Option<String>) -> ApiResult<()> {
    if let Some(s) = s
        && (s.trim().is_empty() || s.len() > 32)
    {
        return Err(ApiError::bad_input("severity must have 1 to 32 characters"));
    }
    Ok(())
}

async fn readable_item(ctx: Ctx<'_>, id: i64, what: &str) -> ApiResult<work_item::Model> {
    find_many(ctx, &[id])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found(what))
}

async fn eligible_assignee(db: &impl ConnectionTrait, id: i64, unit: &UnitPath) -> ApiResult<()> {
    if users::is_eligible_assignee(db, id, unit).await? {
        Ok(())
    } else {
        Err(ApiError::not_found("assignee"))
    }
}

/// Creates an item in its unit's initial (or given) state, recording the
/// first transition, then publishes `WorkItemCreated` on `bus`.
///
/// # Errors
/// `NOT_FOUND` for an unknown unit or an unreadable parent; `FORBIDDEN`
/// without write rights; `BAD_USER_INPUT` for invalid fields, levels or states;
/// `CONFLICT` for a key in use.
pub async fn create(ctx: Ctx<'_>, bus: &EventBus, input: NewItem) -> ApiResult<work_item::Model> {
    let viewer = ctx.policy.viewer()?;
    let actor = viewer.user.id;
    let unit = units::path(ctx.db, input.unit).await?;
    if !ctx.policy.can_write_items_of(&unit) {
        return Err(ApiError::forbidden("you may not create items in this unit"));
    }
    let item_type = input
        .item_type
        .ok_or_else(|| ApiError::bad_input("type is required"))?;
    if !item_type.owner_kinds().contains(&unit.kind) {
        let kinds: Vec<&str> = item_type.owner_kinds().iter().map(|k| k.as_str()).collect();
        return Err(ApiError::bad_input(format!(
            "a {} belongs to a {} unit, not a {}",
            item_type.as_str(),
            kinds.join(" or "),
            unit.kind.as_str()
        )));
    }
    let title = validate_title(&input.title)?;
    if let Some(key) = &input.key {
        validate_item_key(key)?;
    }
    if input.found_in.is_some() && item_type != WorkItemType::Defect {
        return Err(ApiError::bad_input("foundIn applies to defects only"));
    }
    validate_number("estimate", input.estimate)?;
    validate_number("businessValue", input.business_value)?;
    validate_severity(&input.severity)?;
    if let Some(parent_id) = input.parent {
        let parent = readable_item(ctx, parent_id, "parent work item").await?;
        item_type.check_parent(&parent.item_type, parent.unit_id, unit.id, &unit.ancestors)?;
    }
    if let Some(a) = input.assignee {
        eligible_assignee(ctx.db, a, &unit).await?;
    }
    let workflow = units::effective_workflow(ctx.db, unit.id).await?;
    let state = match &input.state {
        Some(name) => workflow
            .state(name)
            .ok_or_else(|| workflow.unknown_state(name))?,
        None => workflow
            .initial_state()
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("empty workflow")))?,
    }
    .clone();

    // SQLite: take the write lock at BEGIN, so concurrent moves queue
    // instead of failing on a stale snapshot.
    let txn = ctx.db.begin_with_options(write_transaction()).await?;
    let key = match input.key {
        Some(k) => k,
        None => {
            let unit_row = unit::Entity::find_by_id(unit.id)
                .one(&txn)
                .await?
                .ok_or_else(|| ApiError::not_found("unit"))?;
            let n = units::next_item_number(&txn, unit.id).await?;
            format!("{}-{n}", unit_row.key.to_uppercase())
        }
    };
    if work_item::Entity::find()
        .filter(work_item::Column::Key.eq(&key))
        .one(&txn)
        .await?
        .is_some()
    {
        return Err(ApiError::Conflict(format!(
            "work item key {key:?} is already in use"
        )));
    }
    boards::check_wip(&txn, unit.id, &state, None).await?;
    let now = Utc::now();
    let rank = rank::after(
        rank::last_rank(&txn, unit.id, &state.name)
            .await?
            .as_deref(),
    );
    let item = work_item::ActiveModel {
        key: Set(key),
        title: Set(title),
        description: Set(input.description),
        item_type: Set(item_type.as_str().to_owned()),
        flow_type: Set(input
            .flow_type
            .unwrap_or_else(|| item_type.default_flow_type())
            .as_str()
            .to_owned()),
        state: Set(state.name.clone()),
        state_category: Set(state.category.clone()),
        unit_id: Set(unit.id),
        parent_id: Set(input.parent),
        assignee_id: Set(input.assignee),
        estimate: Set(input.estimate),
        business_value: Set(input.business_value),
        rank: Set(rank),
        found_in: Set(input.found_in.map(|f| f.as_str().to_owned())),
        severity: Set(input.severity),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    transition::ActiveModel {
        work_item_id: Set(item.id),
        from_state: Set(None),
        to_state: Set(state.name),
        to_category: Set(state.category),
        at: Set(now),
        actor_id: Set(Some(actor)),
        source: Set(None),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    facts::refresh(&txn, &[item.id]).await?;
    txn.commit().await?;
    publish(bus, ChangeKind::WorkItemCreated, &item);
    Ok(item)
}

/// Publishes a change of `item` (after its transaction committed).
fn publish(bus: &EventBus, kind: ChangeKind, item: &work_item::Model) {
    bus.publish(DomainEvent::new(kind, item.unit_id, item.id));
}

/// A field that may be left alone, cleared, or set.
#[derive(Debug, Default)]
pub enum Patch<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

/// Input of [`update`].
#[derive(Debug, Default)]
pub struct ItemChanges {
    pub title: Option<String>,
    pub description: Patch<String>,
    pub parent: Patch<i64>,
    pub assignee: Patch<i64>,
    pub estimate: Patch<f64>,
    pub business_value: Patch<f64>,
    pub flow_type: Option<FlowType>,
    pub found_in: Patch<DefectOrigin>,
    pub severity: Patch<String>,
    pub blocked: Option<bool>,
}

async fn writable_item(ctx: Ctx<'_>, id: i64) -> ApiResult<(work_item::Model, UnitPath)> {
    let item = readable_item(ctx, id, "work item").await?;
    let unit = units::path(ctx.db, item.unit_id).await?;
    if !ctx.policy.can_write_items_of(&unit) {
        return Err(ApiError::forbidden("you may not change items of this unit"));
    }
    Ok((item, unit))
}

/// Whether making `new_parent` the parent of `item_id` would close a loop.
async fn creates_cycle(
    db: &impl ConnectionTrait,
    item_id: i64,
    new_parent: i64,
) -> ApiResult<bool> {
    let mut current = Some(new_parent);
    let mut steps = 0;
    while let Some(id) = current {
        if id == item_id {
            return Ok(true);
        }
        steps += 1;
        if steps > 64 {
            return Ok(true);
        }
        current = work_item::Entity::find_by_id(id)
            .select_only()
            .column(work_item::Column::ParentId)
            .into_tuple::<Option<i64>>()
            .one(db)
            .await?
            .flatten();
    }
    Ok(false)
}

/// Changes an item's fields (not its state: see [`move_to`]), then
/// publishes `WorkItemUpdated` on `bus`.
///
/// # Errors
/// `NOT_FOUND` for an item the caller cannot read; `FORBIDDEN` without write
/// rights; `BAD_USER_INPUT` for invalid values, a parent at the wrong level or
/// in another subtree, or a cycle.
pub async fn update(
    ctx: Ctx<'_>,
    bus: &EventBus,
    id: i64,
    changes: ItemChanges,
) -> ApiResult<work_item::Model> {
    let (item, unit) = writable_item(ctx, id).await?;
    let item_type = WorkItemType::parse(&item.item_type)?;
    // The flow facts carry the flow type, and the replicas' trees the
    // parent: either change rewrites them.
    let rewrites_facts = changes
        .flow_type
        .is_some_and(|f| f.as_str() != item.flow_type)
        || !matches!(changes.parent, Patch::Keep);
    let mut model = item.clone().into_active_model();
    if let Some(title) = &changes.title {
        model.title = Set(validate_title(title)?);
    }
    match changes.description {
        Patch::Keep => {}
        Patch::Clear => model.description = Set(None),
        Patch::Set(d) => model.description = Set(Some(d)),
    }
    match changes.parent {
        Patch::Keep => {}
        Patch::Clear => model.parent_id = Set(None),
        Patch::Set(p) => {
            let parent = readable_item(ctx, p, "parent work item").await?;
            item_type.check_parent(&parent.item_type, parent.unit_id, unit.id, &unit.ancestors)?;
            if creates_cycle(ctx.db, item.id, p).await? {
                return Err(ApiError::bad_input("an item cannot be its own ancestor"));
            }
            model.parent_id = Set(Some(p));
        }
    }
    match changes.assignee {
        Patch::Keep => {}
        Patch::Clear => model.assignee_id = Set(None),
        Patch::Set(a) => {
            eligible_assignee(ctx.db, a, &unit).await?;
            model.assignee_id = Set(Some(a));
        }
    }
    for (name, patch, slot) in [
        ("estimate", changes.estimate, &mut model.estimate),
        (
            "businessValue",
            changes.business_value,
            &mut model.business_value,
        ),
    ] {
        match patch {
            Patch::Keep => {}
            Patch::Clear => *slot = Set(None),
            Patch::Set(v) => {
                validate_number(name, Some(v))?;
                *slot = Set(Some(v));
            }
        }
    }
    if let Some(f) = changes.flow_type {
        model.flow_type = Set(f.as_str().to_owned());
    }
    match changes.found_in {
        Patch::Keep => {}
        Patch::Clear => model.found_in = Set(None),
        Patch::Set(f) => {
            if item_type != WorkItemType::Defect {
                return Err(ApiError::bad_input("foundIn applies to defects only"));
            }
            model.found_in = Set(Some(f.as_str().to_owned()));
        }
    }
    match changes.severity {
        Patch::Keep => {}
        Patch::Clear => model.severity = Set(None),
        Patch::Set(s) => {
            validate_severity(&Some(s.clone()))?;
            model.severity = Set(Some(s));
        }
    }
    if let Some(b) = changes.blocked {
        model.blocked = Set(b);
    }
    model.updated_at = Set(Utc::now());
    let updated = if rewrites_facts {
        let txn = ctx.db.begin().await?;
        let updated = model.update(&txn).await?;
        facts::refresh(&txn, &[updated.id]).await?;
        txn.commit().await?;
        updated
    } else {
        model.update(ctx.db).await?
    };
    publish(bus, ChangeKind::WorkItemUpdated, &updated);
    Ok(updated)
}

/// Where a moved card goes in its column, relative to another card.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    Before(i64),
    After(i64),
}

/// What [`move_to`] did.
#[derive(Debug)]
pub struct Moved {
    pub item: work_item::Model,
    /// The state it left (its current one when it did not change state).
    pub from_state: String,
    /// The state changed (a transition was recorded).
    pub moved: bool,
    /// The card took a new place in its column.
    pub reranked: bool,
    /// The target column's WIP limit, when it has one.
    pub wip: Option<boards::WipCheck>,
}

/// The ranks just below and just above the place `position` names in the
/// column (`unit_id`, `state`), ignoring the cards in `moving`.
///
/// # Errors
/// `NOT_FOUND` for an anchor the caller cannot read; `BAD_USER_INPUT` for an
/// anchor in another column or unit, or one of the moving cards.
async fn neighbours(
    ctx: Ctx<'_>,
    db: &impl ConnectionTrait,
    unit_id: i64,
    state: &str,
    position: Position,
    moving: &[i64],
) -> ApiResult<(Option<String>, Option<String>)> {
    let (anchor_id, before) = match position {
        Position::Before(a) => (a, true),
        Position::After(a) => (a, false),
    };
    // Read on the writer's connection: a second one from the pool while the
    // transaction holds one could wait for ever under load.
    let anchor = work_item::Entity::find()
        .filter(ctx.policy.item_condition()?)
        .filter(work_item::Column::Id.eq(anchor_id))
        .one(db)
        .await?
        .ok_or_else(|| ApiError::not_found("position card"))?;
    if moving.contains(&anchor.id) {
        return Err(ApiError::bad_input(
            "a card cannot be placed relative to itself",
        ));
    }
    if anchor.unit_id != unit_id || anchor.state != state {
        return Err(ApiError::bad_input(format!(
            "the position card {} is not in the column {state:?} of the same board",
            anchor.key
        )));
    }
    let rank_col = Expr::col((work_item::Entity, work_item::Column::Rank));
    let id_col = Expr::col((work_item::Entity, work_item::Column::Id));
    let beyond = if before {
        Condition::any()
            .add(rank_col.clone().lt(anchor.rank.clone()))
            .add(
                Condition::all()
                    .add(rank_col.eq(anchor.rank.clone()))
                    .add(id_col.lt(anchor.id)),
            )
    } else {
        Condition::any()
            .add(rank_col.clone().gt(anchor.rank.clone()))
            .add(
                Condition::all()
                    .add(rank_col.eq(anchor.rank.clone()))
                    .add(id_col.gt(anchor.id)),
            )
    };
    let mut q = work_item::Entity::find()
        .select_only()
        .column(work_item::Column::Rank)
        .filter(work_item::Column::UnitId.eq(unit_id))
        .filter(work_item::Column::State.eq(state))
        .filter(work_item::Column::Id.is_not_in(moving.iter().copied()))
        .filter(beyond);
    q = if before {
        q.order_by_desc(work_item::Column::Rank)
            .order_by_desc(work_item::Column::Id)
    } else {
        q.order_by_asc(work_item::Column::Rank)
            .order_by_asc(work_item::Column::Id)
    };
    let next = q.into_tuple::<String>().one(db).await?;
    Ok(if before {
        (next, Some(anchor.rank))
    } else {
        (Some(anchor.rank), next)
    })
}

/// Gives every card of the column (`unit_id`, `state`) a fresh, evenly
/// spaced rank in its current order: only when a placement found no room
/// (see [`rank::fits`]).
async fn respace(db: &impl ConnectionTrait, unit_id: i64, state: &str) -> ApiResult<()> {
    let ids: Vec<i64> = work_item::Entity::find()
        .select_only()
        .column(work_item::Column::Id)
        .filter(work_item::Column::UnitId.eq(unit_id))
        .filter(work_item::Column::State.eq(state))
        .order_by_asc(work_item::Column::Rank)
        .order_by_asc(work_item::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    tracing::info!(
        unit_id,
        state,
        cards = ids.len(),
        "re-spacing a board column"
    );
    for (id, r) in ids.iter().zip(rank::evenly(ids.len())) {
        work_item::Entity::update_many()
            .col_expr(work_item::Column::Rank, Expr::value(r))
            .filter(work_item::Column::Id.eq(*id))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// `n` ranks for cards placed together at `position` in the column,
/// re-spacing the column once when the gap there is used up.
async fn ranks_at(
    ctx: Ctx<'_>,
    db: &impl ConnectionTrait,
    unit_id: i64,
    state: &str,
    position: Position,
    moving: &[i64],
) -> ApiResult<Vec<String>> {
    let (lo, hi) = neighbours(ctx, db, unit_id, state, position, moving).await?;
    let ranks = rank::spread(lo.as_deref(), hi.as_deref(), moving.len());
    if rank::fits(lo.as_deref(), hi.as_deref(), &ranks) {
        return Ok(ranks);
    }
    respace(db, unit_id, state).await?;
    let (lo, hi) = neighbours(ctx, db, unit_id, state, position, moving).await?;
    Ok(rank::spread(lo.as_deref(), hi.as_deref(), moving.len()))
}

/// Moves an item to another state of its unit's workflow, appending a
/// transition, and places its card at the end of the target column or at
/// `position`. Moving to the current state without a position changes
/// nothing; with one, it only reorders the card. Publishes on `bus` what it
/// did: `WorkItemMoved` (with the state left) or `WorkItemRanked`.
///
/// # Errors
/// `NOT_FOUND` for an item the caller cannot read; `FORBIDDEN` without write
/// rights; `BAD_USER_INPUT` for a state outside the item's workflow or a
/// position in another column; `CONFLICT` over a WIP limit the board blocks
/// at, or when someone else moved the item meanwhile.
pub async fn move_to(
    ctx: Ctx<'_>,
    bus: &EventBus,
    id: i64,
    to_state: &str,
    position: Option<Position>,
) -> ApiResult<Moved> {
    let actor = ctx.policy.viewer()?.user.id;
    let (item, unit) = writable_item(ctx, id).await?;
    let workflow = units::effective_workflow(ctx.db, unit.id).await?;
    let state = workflow
        .state(to_state)
        .ok_or_else(|| workflow.unknown_state(to_state))?
        .clone();
    let changes_state = state.name != item.state;
    if !changes_state && position.is_none() {
        return Ok(Moved {
            from_state: item.state.clone(),
            item,
            moved: false,
            reranked: false,
            wip: None,
        });
    }
    // SQLite: take the write lock at BEGIN, so concurrent moves queue
    // instead of failing on a stale snapshot.
    let txn = ctx.db.begin_with_options(write_transaction()).await?;
    let now = Utc::now();
    let wip = if changes_state {
        boards::check_wip(&txn, unit.id, &state, Some(item.id)).await?
    } else {
        None
    };
    let rank = match position {
        Some(p) => ranks_at(ctx, &txn, unit.id, &state.name, p, &[item.id])
            .await?
            .pop()
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no rank")))?,
        None => rank::after(
            rank::last_rank(&txn, unit.id, &state.name)
                .await?
                .as_deref(),
        ),
    };
    // Move only from the state read above: a concurrent move in between
    // makes this one a CONFLICT instead of a history with a fork.
    let moved = work_item::Entity::update_many()
        .col_expr(work_item::Column::State, Expr::value(state.name.clone()))
        .col_expr(
            work_item::Column::StateCategory,
            Expr::value(state.category.clone()),
        )
        .col_expr(work_item::Column::Rank, Expr::value(rank))
        .col_expr(work_item::Column::UpdatedAt, Expr::value(now))
        .filter(work_item::Column::Id.eq(item.id))
        .filter(work_item::Column::State.eq(item.state.clone()))
        .exec(&txn)
        .await?;
    if moved.rows_affected != 1 {
        return Err(ApiError::Conflict(
            "the item was moved by someone else meanwhile; reload it and try again".into(),
        ));
    }
    if changes_state {
        transition::ActiveModel {
            work_item_id: Set(item.id),
            from_state: Set(Some(item.state.clone())),
            to_state: Set(state.name.clone()),
            to_category: Set(state.category.clone()),
            at: Set(now),
            actor_id: Set(Some(actor)),
            source: Set(None),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
    }
    let updated = work_item::Entity::find_by_id(item.id)
        .one(&txn)
        .await?
        .ok_or_else(|| ApiError::not_found("work item"))?;
    if changes_state {
        facts::refresh(&txn, &[item.id]).await?;
    }
    txn.commit().await?;
    if changes_state {
        bus.publish(DomainEvent {
            from_state: Some(item.state.clone()),
            ..DomainEvent::new(ChangeKind::WorkItemMoved, updated.unit_id, updated.id)
        });
    } else {
        publish(bus, ChangeKind::WorkItemRanked, &updated);
    }
    Ok(Moved {
        item: updated,
        from_state: item.state,
        moved: changes_state,
        reranked: true,
        wip,
    })
}

/// Most cards one reorder may place.
pub const MAX_REORDER: usize = 100;

/// Places `ids`, in this order, together at `position` in their column:
/// only their ranks change, the rest of the column keeps its own. Publishes
/// `WorkItemRanked` on `bus` for each card, in their new order.
///
/// # Errors
/// `BAD_USER_INPUT` for an empty, oversize or repeating list, cards of
/// several columns, or an anchor outside the column; `NOT_FOUND` and
/// `FORBIDDEN` as for [`move_to`].
pub async fn reorder(
    ctx: Ctx<'_>,
    bus: &EventBus,
    ids: &[i64],
    position: Position,
) -> ApiResult<Vec<work_item::Model>> {
    ctx.policy.viewer()?;
    if ids.is_empty() || ids.len() > MAX_REORDER {
        return Err(ApiError::bad_input(format!(
            "reorder 1 to {MAX_REORDER} cards at a time"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    if !ids.iter().all(|i| seen.insert(*i)) {
        return Err(ApiError::bad_input("a card appears twice in the list"));
    }
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        items.push(writable_item(ctx, *id).await?.0);
    }
    let (unit_id, state) = (items[0].unit_id, items[0].state.clone());
    if items
        .iter()
        .any(|i| i.unit_id != unit_id || i.state != state)
    {
        return Err(ApiError::bad_input(
            "the cards to reorder must all be in one column of one board",
        ));
    }
    // SQLite: take the write lock at BEGIN, so concurrent moves queue
    // instead of failing on a stale snapshot.
    let txn = ctx.db.begin_with_options(write_transaction()).await?;
    let ranks = ranks_at(ctx, &txn, unit_id, &state, position, ids).await?;
    let now = Utc::now();
    for (item, r) in items.iter().zip(ranks) {
        let done = work_item::Entity::update_many()
            .col_expr(work_item::Column::Rank, Expr::value(r))
            .col_expr(work_item::Column::UpdatedAt, Expr::value(now))
            .filter(work_item::Column::Id.eq(item.id))
            .filter(work_item::Column::State.eq(state.clone()))
            .exec(&txn)
            .await?;
        if done.rows_affected != 1 {
            return Err(ApiError::Conflict(
                "a card was moved by someone else meanwhile; reload the board and try again".into(),
            ));
        }
    }
    let mut out = work_item::Entity::find()
        .filter(work_item::Column::Id.is_in(ids.iter().copied()))
        .all(&txn)
        .await?;
    txn.commit().await?;
    out.sort_by(|a, b| a.rank.cmp(&b.rank));
    for item in &out {
        publish(bus, ChangeKind::WorkItemRanked, item);
    }
    Ok(out)
}
