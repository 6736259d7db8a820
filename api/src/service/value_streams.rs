//! Value streams (DESIGN §1.4): a unit's operational and development
//! streams, their ordered stages and the workflow states each covers, the
//! operational streams a development stream supports, and the investment in
//! each. The value stream map (§3.6) is computed in
//! [`metrics::value_stream_map`](super::metrics::value_stream_map).
//!
//! Access: a stream is read wherever its owning unit's aggregates are
//! (elsewhere it does not exist); it is written by admins and by portfolio
//! managers for their own portfolio's streams. Investment fields are
//! sensitive (rule 3): the GraphQL layer resolves them through
//! [`Policy::require_sensitive`](crate::policy::Policy::require_sensitive).
//!
//! Investment: `budget` is the funding allocated for `budget_period`, a
//! label such as `FY2027` or `2026-Q4`; `cost_per_period` is the run-rate
//! cost per `cost_period` (a month, quarter or year). Amounts are in the
//! organisation's currency.

use std::collections::HashSet;

use chrono::Utc;
use entity::value_stream_support::Column as Link;
use entity::{value_stream, value_stream_stage, value_stream_stage_state, value_stream_support};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    Select, Set, TransactionTrait,
};

use super::metrics::Window;
use super::metrics::value_stream_map::{self, StageSpec, ValueStreamMap};
use super::work_items::Patch;
use super::{Ctx, units};
use crate::domain::{CostPeriod, ValueStreamKind, validate_item_key};
use crate::error::{ApiError, ApiResult};
use crate::policy::UnitPath;

/// A stage as given by the caller.
#[derive(Clone, Debug)]
pub struct StageInput {
    pub name: String,
    /// Workflow state names, in the order given.
    pub states: Vec<String>,
    pub value_adding: bool,
}

/// A stage as stored, with its states in order.
#[derive(Clone, Debug)]
pub struct Stage {
    pub model: value_stream_stage::Model,
    pub states: Vec<String>,
}

/// Investment in a stream (sensitive).
#[derive(Clone, Debug, Default)]
pub struct Investment {
    pub budget: Option<f64>,
    pub budget_period: Option<String>,
    pub cost_per_period: Option<f64>,
    pub cost_period: Option<CostPeriod>,
}

/// Input of [`create`].
#[derive(Debug)]
pub struct NewValueStream {
    pub unit_id: i64,
    pub key: String,
    pub name: String,
    pub kind: ValueStreamKind,
    /// Operational streams supported (development streams only).
    pub supports: Vec<i64>,
    pub stages: Vec<StageInput>,
    pub investment: Investment,
}

/// Input of [`update`]: `None` / [`Patch::Keep`] leaves a field alone. Key
/// and kind do not change.
#[derive(Debug, Default)]
pub struct ValueStreamChanges {
    pub name: Option<String>,
    /// Replaces the supported streams.
    pub supports: Option<Vec<i64>>,
    /// Replaces the stages, in the order given.
    pub stages: Option<Vec<StageInput>>,
    pub budget: Patch<f64>,
    pub budget_period: Patch<String>,
    pub cost_per_period: Patch<f64>,
    pub cost_period: Patch<CostPeriod>,
}

/// A stream the caller may read, with its owning unit's place in the tree.
///
/// # Errors
/// `NOT_FOUND` for a stream the caller may not read; database errors.
async fn found(ctx: Ctx<'_>, id: i64) -> ApiResult<(value_stream::Model, UnitPath)> {
    let stream = find(ctx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("value stream"))?;
    let path = units::path(ctx.db, stream.unit_id).await?;
    Ok((stream, path))
}

/// Value streams the caller may read, as a query: the aggregate rule,
/// applied inside the database.
fn readable(ctx: Ctx<'_>) -> ApiResult<Select<value_stream::Entity>> {
    let cond = ctx.policy.value_stream_condition(Expr::col((
        value_stream::Entity,
        value_stream::Column::UnitId,
    )))?;
    Ok(value_stream::Entity::find().filter(cond))
}

/// A value stream, if the caller may read it.
///
/// # Errors
/// `UNAUTHENTICATED`; database errors.
pub async fn find(ctx: Ctx<'_>, id: i64) -> ApiResult<Option<value_stream::Model>> {
    Ok(readable(ctx)?
        .filter(value_stream::Column::Id.eq(id))
        .one(ctx.db)
        .await?)
}

/// A value stream by key, if the caller may read it.
///
/// # Errors
/// `UNAUTHENTICATED`; database errors.
pub async fn find_by_key(ctx: Ctx<'_>, key: &str) -> ApiResult<Option<value_stream::Model>> {
    Ok(readable(ctx)?
        .filter(value_stream::Column::Key.eq(key))
        .one(ctx.db)
        .await?)
}

/// The value streams owned by `unit_id` itself, by key; none when the caller
/// may not read them.
///
/// # Errors
/// `UNAUTHENTICATED`; database errors.
pub async fn of_unit(ctx: Ctx<'_>, unit_id: i64) -> ApiResult<Vec<value_stream::Model>> {
    Ok(readable(ctx)?
        .filter(value_stream::Column::UnitId.eq(unit_id))
        .order_by_asc(value_stream::Column::Key)
        .all(ctx.db)
        .await?)
}

/// The operational streams a (readable) development stream supports, those
/// the caller may read, by key.
///
/// # Errors
/// `UNAUTHENTICATED`; database errors.
pub async fn supports_of(ctx: Ctx<'_>, id: i64) -> ApiResult<Vec<value_stream::Model>> {
    linked(ctx, Link::DevelopmentId, id, Link::OperationalId).await
}

/// The development streams supporting a (readable) operational stream,
/// those the caller may read, by key.
///
/// # Errors
/// `UNAUTHENTICATED`; database errors.
pub async fn supported_by(ctx: Ctx<'_>, id: i64) -> ApiResult<Vec<value_stream::Model>> {
    linked(ctx, Link::OperationalId, id, Link::DevelopmentId).await
}

/// The streams the support links whose `from` side is `id` lead to (their
/// `to` side), those the caller may read, by key: the one lookup behind
/// [`supports_of`] and [`supported_by`], which differ only in direction.
async fn linked(
    ctx: Ctx<'_>,
    from: Link,
    id: i64,
    to: Link,
) -> ApiResult<Vec<value_stream::Model>> {
    let ids = Query::select()
        .column(to)
        .from(value_stream_support::Entity)
        .and_where(from.eq(id))
        .to_owned();
    Ok(readable(ctx)?
        .filter(value_stream::Column::Id.in_subquery(ids))
        .order_by_asc(value_stream::Column::Key)
        .all(ctx.db)
        .await?)
}

/// Stages of a stream the caller has read, in order, with their states.
///
/// # Errors
/// Database errors only.
pub async fn stages_of(ctx: Ctx<'_>, id: i64) -> ApiResult<Vec<Stage>> {
    let stages = value_stream_stage::Entity::find()
        .filter(value_stream_stage::Column::ValueStreamId.eq(id))
        .order_by_asc(value_stream_stage::Column::Position)
        .all(ctx.db)
        .await?;
    let states = value_stream_stage_state::Entity::find()
        .filter(value_stream_stage_state::Column::ValueStreamId.eq(id))
        .order_by_asc(value_stream_stage_state::Column::Position)
        .all(ctx.db)
        .await?;
    Ok(stages
        .into_iter()
        .map(|model| Stage {
            states: states
                .iter()
                .filter(|s| s.stage_id == model.id)
                .map(|s| s.state.clone())
                .collect(),
            model,
        })
        .collect())
}

fn name(n: &str) -> ApiResult<String> {
    let n = n.trim();
    if n.is_empty() || n.chars().count() > 200 {
        return Err(ApiError::bad_input("name must have 1 to 200 characters"));
    }
    Ok(n.to_owned())
}

/// Checks stages against the owning unit's workflow: at least one stage,
/// unique names (ignoring case), each covering at least one state of the
/// workflow, no state in two stages. Returns them with trimmed names.
async fn checked_stages(
    ctx: Ctx<'_>,
    unit_id: i64,
    stages: Vec<StageInput>,
) -> ApiResult<Vec<StageInput>> {
    if stages.is_empty() {
        return Err(ApiError::bad_input(
            "a value stream needs at least one stage",
        ));
    }
    let workflow = units::effective_workflow(ctx.db, unit_id).await?;
    let mut names = HashSet::new();
    let mut covered = HashSet::new();
    let mut out = Vec::with_capacity(stages.len());
    for stage in stages {
        let stage_name = name(&stage.name)
            .map_err(|_| ApiError::bad_input("a stage's name must have 1 to 200 characters"))?;
        if !names.insert(stage_name.to_lowercase()) {
            return Err(ApiError::bad_input(format!(
                "two stages are named {stage_name:?}"
            )));
        }
        if stage.states.is_empty() {
            return Err(ApiError::bad_input(format!(
                "stage {stage_name:?} covers no workflow state"
            )));
        }
        for state in &stage.states {
            if workflow.state(state).is_none() {
                return Err(workflow.unknown_state(state));
            }
            if !covered.insert(state.clone()) {
                return Err(ApiError::bad_input(format!(
                    "state {state:?} is in more than one stage"
                )));
            }
        }
        out.push(StageInput {
            name: stage_name,
            ..stage
        });
    }
    Ok(out)
}

/// Checks and normalises the investment fields.
fn checked_investment(mut inv: Investment) -> ApiResult<Investment> {
    for (field, v) in [
        ("budget", inv.budget),
        ("costPerPeriod", inv.cost_per_period),
    ] {
        if v.is_some_and(|v| !v.is_finite() || v < 0.0) {
            return Err(ApiError::bad_input(format!(
                "`{field}` must be a finite number of at least 0"
            )));
        }
    }
    if let Some(p) = inv.budget_period.as_deref() {
        let p = p.trim();
        if p.is_empty() || p.chars().count() > 32 {
            return Err(ApiError::bad_input(
                "`budgetPeriod` must have 1 to 32 characters",
            ));
        }
        inv.budget_period = Some(p.to_owned());
    }
    if inv.cost_per_period.is_some() != inv.cost_period.is_some() {
        return Err(ApiError::bad_input(
            "`costPerPeriod` and `costPeriod` go together: give both or neither",
        ));
    }
    Ok(inv)
}

/// Checks the streams a stream of `kind` supports: only development streams
/// support others, and only operational streams the caller may read.
/// Returns the distinct ids.
async fn checked_supports(
    ctx: Ctx<'_>,
    kind: ValueStreamKind,
    ids: Vec<i64>,
) -> ApiResult<Vec<i64>> {
    if ids.is_empty() {
        return Ok(ids);
    }
    if kind != ValueStreamKind::Development {
        return Err(ApiError::bad_input(
            "only DEVELOPMENT value streams support other streams",
        ));
    }
    let mut out: Vec<i64> = Vec::with_capacity(ids.len());
    for id in ids {
        if out.contains(&id) {
            continue;
        }
        let stream = find(ctx, id)
            .await?
            .ok_or_else(|| ApiError::not_found("supported value stream"))?;
        if stream.kind != ValueStreamKind::Operational.as_str() {
            return Err(ApiError::bad_input(format!(
                "{:?} is not an OPERATIONAL value stream: a development stream supports operational ones",
                stream.key
            )));
        }
        out.push(id);
    }
    Ok(out)
}

fn forbidden() -> ApiError {
    ApiError::forbidden("you may not write value streams of this unit")
}

/// Replaces a stream's stages (checked by the caller), in order. Also
/// used by the demo seed, so the demo's streams are stored as these are.
pub(crate) async fn write_stages(
    txn: &DatabaseTransaction,
    stream_id: i64,
    stages: &[StageInput],
) -> ApiResult<()> {
    value_stream_stage_state::Entity::delete_many()
        .filter(value_stream_stage_state::Column::ValueStreamId.eq(stream_id))
        .exec(txn)
        .await?;
    value_stream_stage::Entity::delete_many()
        .filter(value_stream_stage::Column::ValueStreamId.eq(stream_id))
        .exec(txn)
        .await?;
    for (position, stage) in (0i32..).zip(stages) {
        let stored = value_stream_stage::ActiveModel {
            value_stream_id: Set(stream_id),
            position: Set(position),
            name: Set(stage.name.clone()),
            value_adding: Set(stage.value_adding),
            ..Default::default()
        }
        .insert(txn)
        .await?;
        let states =
            (0i32..)
                .zip(&stage.states)
                .map(|(i, state)| value_stream_stage_state::ActiveModel {
                    stage_id: Set(stored.id),
                    value_stream_id: Set(stream_id),
                    position: Set(i),
                    state: Set(state.clone()),
                    ..Default::default()
                });
        value_stream_stage_state::Entity::insert_many(states)
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// Replaces the operational streams a development stream supports.
pub(crate) async fn write_supports(
    txn: &DatabaseTransaction,
    stream_id: i64,
    supports: &[i64],
) -> ApiResult<()> {
    value_stream_support::Entity::delete_many()
        .filter(value_stream_support::Column::DevelopmentId.eq(stream_id))
        .exec(txn)
        .await?;
    if supports.is_empty() {
        return Ok(());
    }
    let rows = supports.iter().map(|op| value_stream_support::ActiveModel {
        development_id: Set(stream_id),
        operational_id: Set(*op),
        ..Default::default()
    });
    value_stream_support::Entity::insert_many(rows)
        .exec(txn)
        .await?;
    Ok(())
}

/// Creates a value stream with its stages and supported streams, all or
/// nothing.
///
/// # Errors
/// `NOT_FOUND` for an unknown unit or supported stream, `FORBIDDEN` where
/// the caller may not write value streams, `BAD_USER_INPUT` for bad fields
/// or stages, `CONFLICT` for a key in use.
pub async fn create(ctx: Ctx<'_>, input: NewValueStream) -> ApiResult<value_stream::Model> {
    ctx.policy.viewer()?;
    let unit = units::find(ctx, input.unit_id)
        .await?
        .ok_or_else(|| ApiError::not_found("unit"))?;
    let path = units::path_of(ctx.db, &unit).await?;
    if !ctx.policy.can_write_value_streams_of(&path) {
        return Err(forbidden());
    }
    validate_item_key(&input.key).map_err(|_| {
        ApiError::bad_input(
            "a value stream key must be 1 to 64 characters of letters, digits, '.', '_' and '-', starting with a letter or digit",
        )
    })?;
    let stream_name = name(&input.name)?;
    let stages = checked_stages(ctx, unit.id, input.stages).await?;
    let investment = checked_investment(input.investment)?;
    let supports = checked_supports(ctx, input.kind, input.supports).await?;

    let txn = ctx.db.begin().await?;
    if value_stream::Entity::find()
        .filter(value_stream::Column::Key.eq(&input.key))
        .one(&txn)
        .await?
        .is_some()
    {
        return Err(ApiError::Conflict(format!(
            "value stream key {:?} is in use",
            input.key
        )));
    }
    let now = Utc::now();
    let stream = value_stream::ActiveModel {
        unit_id: Set(unit.id),
        key: Set(input.key),
        name: Set(stream_name),
        kind: Set(input.kind.as_str().to_owned()),
        budget: Set(investment.budget),
        budget_period: Set(investment.budget_period),
        cost_per_period: Set(investment.cost_per_period),
        cost_period: Set(investment.cost_period.map(|p| p.as_str().to_owned())),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    write_stages(&txn, stream.id, &stages).await?;
    write_supports(&txn, stream.id, &supports).await?;
    txn.commit().await?;
    Ok(stream)
}

/// A readable stream the caller may write, with its owner's place.
async fn writable(ctx: Ctx<'_>, id: i64) -> ApiResult<(value_stream::Model, UnitPath)> {
    let (stream, path) = found(ctx, id).await?;
    if !ctx.policy.can_write_value_streams_of(&path) {
        return Err(forbidden());
    }
    Ok((stream, path))
}

fn apply<T>(patch: Patch<T>, current: Option<T>) -> Option<T> {
    match patch {
        Patch::Keep => current,
        Patch::Clear => None,
        Patch::Set(v) => Some(v),
    }
}

/// Changes a value stream: name, supported streams, stages (replaced as an
/// ordered list) and investment, all or nothing.
///
/// # Errors
/// `NOT_FOUND` for a stream (or supported stream) the caller may not read,
/// `FORBIDDEN` where they may read but not write it, `BAD_USER_INPUT` for
/// bad fields or stages.
pub async fn update(
    ctx: Ctx<'_>,
    id: i64,
    changes: ValueStreamChanges,
) -> ApiResult<value_stream::Model> {
    let (stream, _) = writable(ctx, id).await?;
    let kind = ValueStreamKind::parse(&stream.kind)?;
    let new_name = changes.name.as_deref().map(name).transpose()?;
    let stages = match changes.stages {
        Some(stages) => Some(checked_stages(ctx, stream.unit_id, stages).await?),
        None => None,
    };
    let current_period = stream
        .cost_period
        .as_deref()
        .map(CostPeriod::parse)
        .transpose()?;
    let investment = checked_investment(Investment {
        budget: apply(changes.budget, stream.budget),
        budget_period: apply(changes.budget_period, stream.budget_period.clone()),
        cost_per_period: apply(changes.cost_per_period, stream.cost_per_period),
        cost_period: apply(changes.cost_period, current_period),
    })?;
    let supports = match changes.supports {
        Some(ids) => Some(checked_supports(ctx, kind, ids).await?),
        None => None,
    };

    let txn = ctx.db.begin().await?;
    let mut active: value_stream::ActiveModel = stream.into();
    if let Some(n) = new_name {
        active.name = Set(n);
    }
    active.budget = Set(investment.budget);
    active.budget_period = Set(investment.budget_period);
    active.cost_per_period = Set(investment.cost_per_period);
    active.cost_period = Set(investment.cost_period.map(|p| p.as_str().to_owned()));
    active.updated_at = Set(Utc::now());
    let stream = active.update(&txn).await?;
    if let Some(stages) = &stages {
        write_stages(&txn, stream.id, stages).await?;
    }
    if let Some(supports) = &supports {
        write_supports(&txn, stream.id, supports).await?;
    }
    txn.commit().await?;
    Ok(stream)
}

/// The value stream map (DESIGN §3.6) of a stream over `window`, over the
/// items of its owning unit's subtree, with the stream. See
/// [`value_stream_map`](super::metrics::value_stream_map) for what counts.
///
/// # Errors
/// `NOT_FOUND` for a stream the caller may not read (rule 1), `FORBIDDEN`
/// outside their aggregate scope.
pub async fn value_stream_map(
    ctx: Ctx<'_>,
    id: i64,
    window: Window,
) -> ApiResult<(value_stream::Model, ValueStreamMap)> {
    let (stream, path) = found(ctx, id).await?;
    ctx.policy.require_aggregates_of(&path)?;
    let specs: Vec<StageSpec> = stages_of(ctx, stream.id)
        .await?
        .into_iter()
        .map(|s| StageSpec {
            name: s.model.name,
            position: s.model.position,
            value_adding: s.model.value_adding,
            states: s.states,
        })
        .collect();
    let map = value_stream_map::compute(ctx.db, &path, &specs, window).await?;
    Ok((stream, map))
}
