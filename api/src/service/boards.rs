//! Boards (DESIGN §1.2, §2): a unit's workflow as columns with counts and
//! WIP limits, its cards in rank order, and the feedback from below on every
//! card. Counts follow the aggregate rule, cards the item rule: a viewer who
//! may read a board's totals but not its items gets columns without cards.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{board, board_wip_limit, transition, work_item};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};

use super::{Ctx, units};
use crate::domain::{StateCategory, UnitKind, WipPolicy, WorkItemType};
use crate::error::{ApiError, ApiResult};
use crate::events::{ChangeKind, DomainEvent, EventBus};
use crate::policy::UnitPath;

/// Largest WIP limit a column may have.
pub const MAX_WIP_LIMIT: i32 = 100_000;

/// One column of a board (or of a swimlane).
#[derive(Clone, Debug)]
pub struct Column {
    /// The unit whose items the column holds.
    pub unit_id: i64,
    pub name: String,
    pub category: String,
    pub wip_limit: Option<i32>,
    /// Items in the column (of `item_type` only, in a swimlane).
    pub count: i64,
    pub item_type: Option<WorkItemType>,
    /// Whether the viewer may read the column's cards.
    cards_visible: bool,
}

impl Column {
    pub fn over_limit(&self) -> bool {
        self.wip_limit.is_some_and(|l| self.count > i64::from(l))
    }

    pub fn cards_visible(&self) -> bool {
        self.cards_visible
    }

    /// The same column for a viewer who may (or may not) read its cards.
    pub fn with_cards_visible(mut self, visible: bool) -> Self {
        self.cards_visible = visible;
        self
    }
}

/// A unit's board as one viewer sees it.
#[derive(Clone, Debug)]
pub struct Board {
    pub unit: UnitPath,
    pub wip_policy: WipPolicy,
    pub columns: Vec<Column>,
    pub cards_visible: bool,
}

/// The items of one type owned by one unit below a board's unit.
#[derive(Clone, Debug)]
pub struct Lane {
    pub unit_id: i64,
    pub columns: Vec<Column>,
}

/// How an item's children are doing: the feedback from below on a card.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChildProgress {
    pub total: i64,
    pub done: i64,
    /// Children in an `ACTIVE` or `WAITING` state.
    pub in_progress: i64,
    pub blocked: i64,
    /// Creation of the oldest child not yet done or canceled.
    pub oldest_open_since: Option<DateTime<Utc>>,
}

/// One card: an item with what the board shows about it.
#[derive(Clone, Debug)]
pub struct Card {
    pub item: work_item::Model,
    /// When the item entered its current state.
    pub in_state_since: DateTime<Utc>,
    pub children: ChildProgress,
}

/// Whether an item shows as blocked: flagged, or in a state named "Blocked".
pub fn is_blocked(item: &work_item::Model) -> bool {
    item.blocked || item.state.eq_ignore_ascii_case("blocked")
}

/// The board of `unit_id`.
///
/// # Errors
/// `NOT_FOUND` for an unknown unit; `FORBIDDEN` outside the viewer's
/// aggregate scope.
pub async fn board(ctx: Ctx<'_>, unit_id: i64) -> ApiResult<Board> {
    ctx.policy.viewer()?;
    let unit = units::path(ctx.db, unit_id).await?;
    ctx.policy.require_aggregates_of(&unit)?;
    let cards_visible = ctx.policy.can_read_items_of(&unit);
    let columns = columns(ctx.db, unit.id, None, cards_visible).await?;
    Ok(Board {
        wip_policy: wip_policy(ctx.db, unit.id).await?,
        columns,
        cards_visible,
        unit,
    })
}

/// The board's WIP policy; `WARN` until someone sets one.
///
/// # Errors
/// Database errors only.
pub async fn wip_policy(db: &impl ConnectionTrait, unit_id: i64) -> ApiResult<WipPolicy> {
    match board::Entity::find_by_id(unit_id).one(db).await? {
        Some(b) => WipPolicy::parse(&b.wip_policy),
        None => Ok(WipPolicy::Warn),
    }
}

/// The WIP limit of one column of `unit_id`'s board: the board's own, else
/// the workflow's.
async fn wip_limit_of(
    db: &impl ConnectionTrait,
    unit_id: i64,
    state: &entity::workflow_state::Model,
) -> ApiResult<Option<i32>> {
    let own = board_wip_limit::Entity::find()
        .filter(board_wip_limit::Column::UnitId.eq(unit_id))
        .filter(board_wip_limit::Column::State.eq(state.name.clone()))
        .one(db)
        .await?;
    Ok(match own {
        Some(l) => l.wip_limit,
        None => state.wip_limit,
    })
}

async fn count_in(
    db: &impl ConnectionTrait,
    unit_id: i64,
    state: &str,
    exclude: Option<i64>,
) -> ApiResult<i64> {
    let mut q = work_item::Entity::find()
        .select_only()
        .column_as(Expr::col(work_item::Column::Id).count(), "n")
        .filter(work_item::Column::UnitId.eq(unit_id))
        .filter(work_item::Column::State.eq(state));
    if let Some(id) = exclude {
        q = q.filter(work_item::Column::Id.ne(id));
    }
    Ok(q.into_tuple::<i64>().one(db).await?.unwrap_or(0))
}

/// The columns of `unit_id`'s board with their counts (of `item_type` only,
/// when given).
///
/// # Errors
/// Database errors only.
pub async fn columns(
    db: &impl ConnectionTrait,
    unit_id: i64,
    item_type: Option<WorkItemType>,
    cards_visible: bool,
) -> ApiResult<Vec<Column>> {
    let mut all = columns_of(db, &[unit_id], item_type).await?;
    Ok(all
        .remove(&unit_id)
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.with_cards_visible(cards_visible))
        .collect())
}

/// The columns of several units' boards, in three statements whatever their
/// number (workflows, the boards' own limits, the counts); without cards.
async fn columns_of(
    db: &impl ConnectionTrait,
    unit_ids: &[i64],
    item_type: Option<WorkItemType>,
) -> ApiResult<HashMap<i64, Vec<Column>>> {
    if unit_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let workflows = units::effective_workflows(db, unit_ids).await?;
    let overrides: HashMap<(i64, String), Option<i32>> = board_wip_limit::Entity::find()
        .filter(board_wip_limit::Column::UnitId.is_in(unit_ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|l| ((l.unit_id, l.state), l.wip_limit))
        .collect();
    let mut q = work_item::Entity::find()
        .select_only()
        .column(work_item::Column::UnitId)
        .column(work_item::Column::State)
        .column_as(Expr::col(work_item::Column::Id).count(), "n")
        .filter(work_item::Column::UnitId.is_in(unit_ids.iter().copied()))
        .group_by(work_item::Column::UnitId)
        .group_by(work_item::Column::State);
    if let Some(t) = item_type {
        q = q.filter(work_item::Column::ItemType.eq(t.as_str()));
    }
    let counts: HashMap<(i64, String), i64> = q
        .into_tuple::<(i64, String, i64)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(u, state, n)| ((u, state), n))
        .collect();
    Ok(workflows
        .into_iter()
        .map(|(unit_id, workflow)| {
            let columns = workflow
                .states
                .iter()
                .map(|s| {
                    let key = (unit_id, s.name.clone());
                    Column {
                        unit_id,
                        name: s.name.clone(),
                        category: s.category.clone(),
                        wip_limit: overrides.get(&key).copied().unwrap_or(s.wip_limit),
                        count: counts.get(&key).copied().unwrap_or(0),
                        item_type,
                        cards_visible: false,
                    }
                })
                .collect();
            (unit_id, columns)
        })
        .collect())
}

/// Swimlanes of a board: the items of `item_type` owned by each unit below
/// the board's unit (one lane per unit of a kind that owns such items and
/// whose aggregates the viewer may read), by unit key, at most `first`.
///
/// # Errors
/// Database errors only.
pub async fn lanes(
    ctx: Ctx<'_>,
    board: &Board,
    item_type: WorkItemType,
    first: usize,
) -> ApiResult<Vec<Lane>> {
    let kinds = item_type.owner_kinds();
    let mut below = units::descendants(ctx, board.unit.id).await?;
    below.retain(|u| UnitKind::parse(&u.kind).is_ok_and(|k| kinds.contains(&k)));
    below.sort_by(|a, b| a.key.cmp(&b.key));
    let paths = units::paths_of(ctx.db, &below).await?;
    // A lane is the unit's own aggregate: only where those are readable (a
    // team member on the program board sees their own team's lane).
    let chosen: Vec<&UnitPath> = paths
        .iter()
        .filter(|p| ctx.policy.can_read_aggregates_of(p))
        .take(first)
        .collect();
    let ids: Vec<i64> = chosen.iter().map(|p| p.id).collect();
    let mut columns = columns_of(ctx.db, &ids, Some(item_type)).await?;
    Ok(chosen
        .into_iter()
        .map(|p| {
            let visible = ctx.policy.can_read_items_of(p);
            Lane {
                unit_id: p.id,
                columns: columns
                    .remove(&p.id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| c.with_cards_visible(visible))
                    .collect(),
            }
        })
        .collect())
}

/// A page of cards.
#[derive(Clone, Debug, Default)]
pub struct CardPage {
    pub cards: Vec<Card>,
    pub has_next: bool,
}

/// Cards of a column in rank order (ties by id), after the card at
/// `after` = (rank, id). Empty when the viewer may not read the column's
/// items.
///
/// # Errors
/// Database errors only.
pub async fn cards(
    ctx: Ctx<'_>,
    column: &Column,
    first: u64,
    after: Option<(String, i64)>,
) -> ApiResult<CardPage> {
    ctx.policy.viewer()?;
    if !column.cards_visible || first == 0 {
        return Ok(CardPage::default());
    }
    let mut q = work_item::Entity::find()
        .filter(ctx.policy.item_condition()?)
        .filter(work_item::Column::UnitId.eq(column.unit_id))
        .filter(work_item::Column::State.eq(column.name.clone()));
    if let Some(t) = column.item_type {
        q = q.filter(work_item::Column::ItemType.eq(t.as_str()));
    }
    if let Some((rank, id)) = after {
        q = q.filter(
            Condition::any()
                .add(work_item::Column::Rank.gt(rank.clone()))
                .add(
                    Condition::all()
                        .add(work_item::Column::Rank.eq(rank))
                        .add(work_item::Column::Id.gt(id)),
                ),
        );
    }
    let mut items = q
        .order_by_asc(work_item::Column::Rank)
        .order_by_asc(work_item::Column::Id)
        .limit(first + 1)
        .all(ctx.db)
        .await?;
    let has_next = items.len() as u64 > first;
    items.truncate(usize::try_from(first).unwrap_or(usize::MAX));
    Ok(CardPage {
        cards: cards_of(ctx.db, items).await?,
        has_next,
    })
}

/// Cards for items already known readable.
///
/// # Errors
/// Database errors only.
pub async fn cards_of(
    db: &impl ConnectionTrait,
    items: Vec<work_item::Model>,
) -> ApiResult<Vec<Card>> {
    let ids: Vec<i64> = items.iter().map(|i| i.id).collect();
    let since = entered_states(db, &ids).await?;
    let children = child_progress(db, &ids).await?;
    Ok(items
        .into_iter()
        .map(|item| Card {
            in_state_since: since.get(&item.id).copied().unwrap_or(item.updated_at),
            children: children.get(&item.id).copied().unwrap_or_default(),
            item,
        })
        .collect())
}

/// When each item entered its current state: its latest transition.
async fn entered_states(
    db: &impl ConnectionTrait,
    ids: &[i64],
) -> ApiResult<HashMap<i64, DateTime<Utc>>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(transition::Entity::find()
        .select_only()
        .column(transition::Column::WorkItemId)
        .column_as(Expr::col(transition::Column::At).max(), "since")
        .filter(transition::Column::WorkItemId.is_in(ids.iter().copied()))
        .group_by(transition::Column::WorkItemId)
        .into_tuple::<(i64, DateTime<Utc>)>()
        .all(db)
        .await?
        .into_iter()
        .collect())
}

/// The children roll-up of each item among `ids`, in one statement.
///
/// # Errors
/// Database errors only.
pub async fn child_progress(
    db: &impl ConnectionTrait,
    ids: &[i64],
) -> ApiResult<HashMap<i64, ChildProgress>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let done = StateCategory::Done.as_str();
    let canceled = StateCategory::Canceled.as_str();
    let q = Query::select()
        .column(work_item::Column::ParentId)
        .expr_as(Expr::cust("COUNT(*)"), "total")
        .expr_as(
            Expr::cust(format!(
                "SUM(CASE WHEN state_category = '{done}' THEN 1 ELSE 0 END)"
            )),
            "done",
        )
        .expr_as(
            Expr::cust(format!(
                "SUM(CASE WHEN state_category IN ('{}', '{}') THEN 1 ELSE 0 END)",
                StateCategory::Active.as_str(),
                StateCategory::Waiting.as_str()
            )),
            "in_progress",
        )
        .expr_as(
            Expr::cust("SUM(CASE WHEN blocked OR LOWER(state) = 'blocked' THEN 1 ELSE 0 END)"),
            "blocked",
        )
        .expr_as(
            Expr::cust(format!(
                "MIN(CASE WHEN state_category NOT IN ('{done}', '{canceled}') THEN created_at END)"
            )),
            "oldest",
        )
        .from(work_item::Entity)
        .and_where(work_item::Column::ParentId.is_in(ids.iter().copied()))
        .group_by_col(work_item::Column::ParentId)
        .to_owned();
    let backend = db.get_database_backend();
    let rows = db.query_all_raw(backend.build(&q)).await?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        let parent: i64 = row.try_get("", "parent_id")?;
        out.insert(
            parent,
            ChildProgress {
                total: row.try_get("", "total")?,
                done: sum(&row, "done")?,
                in_progress: sum(&row, "in_progress")?,
                blocked: sum(&row, "blocked")?,
                oldest_open_since: row.try_get("", "oldest")?,
            },
        );
    }
    Ok(out)
}

/// A `SUM` of integers: `bigint` on SQLite, `numeric` on PostgreSQL.
fn sum(row: &sea_orm::QueryResult, col: &str) -> ApiResult<i64> {
    if let Ok(v) = row.try_get::<Option<i64>>("", col) {
        return Ok(v.unwrap_or(0));
    }
    let v: Option<sea_orm::prelude::Decimal> = row.try_get("", col)?;
    Ok(v.and_then(|d| i64::try_from(d).ok()).unwrap_or(0))
}

/// What placing one more item in a column does to its WIP limit.
#[derive(Clone, Debug)]
pub struct WipCheck {
    pub column: String,
    pub limit: i32,
    /// Items in the column once the item is in it.
    pub count: i64,
}

impl WipCheck {
    pub fn exceeded(&self) -> bool {
        self.count > i64::from(self.limit)
    }
}

/// Checks a column's WIP limit before `item` (not in it yet) enters it,
/// inside the writing transaction. Under a `BLOCK` policy, a move over the
/// limit is a `CONFLICT`; under `WARN`, the check says it was exceeded.
///
/// # Errors
/// `CONFLICT` under a `BLOCK` policy; database errors.
pub(crate) async fn check_wip(
    db: &impl ConnectionTrait,
    unit_id: i64,
    state: &entity::workflow_state::Model,
    item: Option<i64>,
) -> ApiResult<Option<WipCheck>> {
    let Some(limit) = wip_limit_of(db, unit_id, state).await? else {
        return Ok(None);
    };
    let policy = wip_policy(db, unit_id).await?;
    if policy == WipPolicy::Block && db.get_database_backend() == DbBackend::Postgres {
        // Serialise blocking checks per board, so two moves cannot both
        // take the last free place.
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(7211, $1::int)",
            [sea_orm::Value::from(
                i32::try_from(unit_id % i64::from(i32::MAX)).unwrap_or(0),
            )],
        ))
        .await?;
    }
    let count = count_in(db, unit_id, &state.name, item).await? + 1;
    let check = WipCheck {
        column: state.name.clone(),
        limit,
        count,
    };
    if check.exceeded() && policy == WipPolicy::Block {
        return Err(ApiError::Conflict(format!(
            "the column {:?} holds {} of its WIP limit of {}; this board blocks moves over the limit",
            state.name,
            count - 1,
            limit
        )));
    }
    Ok(Some(check))
}

/// Sets (or, with `None`, lifts) a column's WIP limit on `unit_id`'s board,
/// then publishes `BoardChanged` on `bus`.
///
/// # Errors
/// `NOT_FOUND` for an unknown unit; `FORBIDDEN` for anyone but admins and
/// managers in scope; `BAD_USER_INPUT` for a negative limit or an unknown
/// column.
pub async fn set_wip_limit(
    ctx: Ctx<'_>,
    bus: &EventBus,
    unit_id: i64,
    state: &str,
    limit: Option<i32>,
) -> ApiResult<Column> {
    ctx.policy.viewer()?;
    let unit = units::path(ctx.db, unit_id).await?;
    if !ctx.policy.can_configure_board_of(&unit) {
        return Err(ApiError::forbidden("you may not change this unit's board"));
    }
    if let Some(l) = limit
        && !(0..=MAX_WIP_LIMIT).contains(&l)
    {
        return Err(ApiError::bad_input(format!(
            "a WIP limit must be between 0 and {MAX_WIP_LIMIT}"
        )));
    }
    let workflow = units::effective_workflow(ctx.db, unit.id).await?;
    let column = workflow
        .state(state)
        .ok_or_else(|| workflow.unknown_state(state))?;
    board_wip_limit::Entity::insert(board_wip_limit::ActiveModel {
        unit_id: Set(unit.id),
        state: Set(column.name.clone()),
        wip_limit: Set(limit),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::columns([
            board_wip_limit::Column::UnitId,
            board_wip_limit::Column::State,
        ])
        .update_column(board_wip_limit::Column::WipLimit)
        .to_owned(),
    )
    .exec(ctx.db)
    .await?;
    let visible = ctx.policy.can_read_items_of(&unit);
    let changed = columns(ctx.db, unit.id, None, visible)
        .await?
        .into_iter()
        .find(|c| c.name == column.name)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("column vanished")))?;
    board_changed(bus, unit.id);
    Ok(changed)
}

/// Tells live subscribers that `unit_id`'s board changed.
fn board_changed(bus: &EventBus, unit_id: i64) {
    bus.publish(DomainEvent::new(ChangeKind::BoardChanged, unit_id, unit_id));
}

/// Sets `unit_id`'s board WIP policy, then publishes `BoardChanged` on `bus`.
///
/// # Errors
/// As [`set_wip_limit`].
pub async fn set_wip_policy(
    ctx: Ctx<'_>,
    bus: &EventBus,
    unit_id: i64,
    policy: WipPolicy,
) -> ApiResult<Board> {
    ctx.policy.viewer()?;
    let unit = units::path(ctx.db, unit_id).await?;
    if !ctx.policy.can_configure_board_of(&unit) {
        return Err(ApiError::forbidden("you may not change this unit's board"));
    }
    board::Entity::insert(board::ActiveModel {
        unit_id: Set(unit.id),
        wip_policy: Set(policy.as_str().to_owned()),
        updated_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::column(board::Column::UnitId)
            .update_columns([board::Column::WipPolicy, board::Column::UpdatedAt])
            .to_owned(),
    )
    .exec(ctx.db)
    .await?;
    let changed = board(ctx, unit.id).await?;
    board_changed(bus, unit.id);
    Ok(changed)
}
