//! Outcomes (DESIGN §1.6): objectives owned by a unit, their key results and
//! the values measured for them. Objectives are read wherever the owning
//! unit's aggregates are, and written by admins, executives in scope and the
//! portfolio's own managers.

use chrono::{DateTime, Utc};
use entity::{key_result, key_result_measurement, objective, objective_work_item, work_item};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set, TransactionTrait,
};

use super::forecast::{self, Progress, WhenForecast};
use super::metrics::{self, FlowMetrics, FlowParts, MetricFilter, Precomputed, Window};
use super::{Ctx, units, work_items};
use crate::domain::{UnitKind, WorkItemType, validate_item_key};
use crate::error::{ApiError, ApiResult};
use crate::policy::UnitPath;

/// The most items one `linkWorkItems` or `unlinkWorkItems` call names.
pub const MAX_LINKS_PER_CALL: usize = 100;

/// Input of [`create_objective`].
#[derive(Debug)]
pub struct NewObjective {
    pub unit_id: i64,
    pub key: String,
    pub title: String,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
}

/// Input of [`create_key_result`].
#[derive(Debug)]
pub struct NewKeyResult {
    pub objective_id: i64,
    pub key: String,
    pub title: String,
    pub start_value: f64,
    pub target_value: f64,
}

fn title(t: &str) -> ApiResult<String> {
    let t = t.trim();
    if t.is_empty() || t.chars().count() > 500 {
        return Err(ApiError::bad_input("title must have 1 to 500 characters"));
    }
    Ok(t.to_owned())
}

/// # Errors
/// `NOT_FOUND` for an unknown unit, `FORBIDDEN` where the caller may not
/// write objectives, `BAD_USER_INPUT` for bad fields, `CONFLICT` for a key in
/// use.
pub async fn create_objective(ctx: Ctx<'_>, input: NewObjective) -> ApiResult<objective::Model> {
    ctx.policy.viewer()?;
    let unit = units::find(ctx, input.unit_id)
        .await?
        .ok_or_else(|| ApiError::not_found("unit"))?;
    let path = units::path_of(ctx.db, &unit).await?;
    if !ctx.policy.can_write_objectives_of(&path) {
        return Err(ApiError::forbidden(
            "you may not write objectives of this unit",
        ));
    }
    validate_item_key(&input.key)?;
    let title = title(&input.title)?;
    if input.period_end <= input.period_start {
        return Err(ApiError::bad_input("periodEnd must be after periodStart"));
    }
    if objective::Entity::find()
        .filter(objective::Column::Key.eq(&input.key))
        .one(ctx.db)
        .await?
        .is_some()
    {
        return Err(ApiError::Conflict(format!(
            "objective key {:?} is in use",
            input.key
        )));
    }
    Ok(objective::ActiveModel {
        unit_id: Set(unit.id),
        key: Set(input.key),
        title: Set(title),
        period_start: Set(input.period_start),
        period_end: Set(input.period_end),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(ctx.db)
    .await?)
}

/// # Errors
/// `NOT_FOUND` for an objective the caller may not read, `FORBIDDEN` where
/// they may read but not write it, `BAD_USER_INPUT` for bad fields (a target
/// equal to the start would make progress undefined), `CONFLICT` for a key
/// in use.
pub async fn create_key_result(ctx: Ctx<'_>, input: NewKeyResult) -> ApiResult<key_result::Model> {
    let objective = find_objective(ctx, input.objective_id)
        .await?
        .ok_or_else(|| ApiError::not_found("objective"))?;
    let path = units::path(ctx.db, objective.unit_id).await?;
    if !ctx.policy.can_write_objectives_of(&path) {
        return Err(ApiError::forbidden(
            "you may not write objectives of this unit",
        ));
    }
    validate_item_key(&input.key)?;
    let title = title(&input.title)?;
    if !input.start_value.is_finite() || !input.target_value.is_finite() {
        return Err(ApiError::bad_input("values must be finite numbers"));
    }
    if input.start_value == input.target_value {
        return Err(ApiError::bad_input(
            "targetValue must differ from startValue",
        ));
    }
    if key_result::Entity::find()
        .filter(key_result::Column::Key.eq(&input.key))
        .one(ctx.db)
        .await?
        .is_some()
    {
        return Err(ApiError::Conflict(format!(
            "key result key {:?} is in use",
            input.key
        )));
    }
    Ok(key_result::ActiveModel {
        objective_id: Set(objective.id),
        key: Set(input.key),
        title: Set(title),
        start_value: Set(input.start_value),
        target_value: Set(input.target_value),
        ..Default::default()
    }
    .insert(ctx.db)
    .await?)
}

/// An objective, if the caller may read it.
///
/// # Errors
/// Database errors only.
pub async fn find_objective(ctx: Ctx<'_>, id: i64) -> ApiResult<Option<objective::Model>> {
    ctx.policy.viewer()?;
    let Some(o) = objective::Entity::find_by_id(id).one(ctx.db).await? else {
        return Ok(None);
    };
    let path = units::path(ctx.db, o.unit_id).await?;
    Ok(ctx.policy.can_read_objectives_of(&path).then_some(o))
}

/// A key result, if the caller may read its objective.
///
/// # Errors
/// Database errors only.
pub async fn find_key_result(ctx: Ctx<'_>, id: i64) -> ApiResult<Option<key_result::Model>> {
    let Some(kr) = key_result::Entity::find_by_id(id).one(ctx.db).await? else {
        return Ok(None);
    };
    Ok(find_objective(ctx, kr.objective_id).await?.map(|_| kr))
}

/// The objectives owned by `unit_id` itself, by period then key; none when
/// the caller may not read them.
///
/// # Errors
/// Database errors only.
pub async fn objectives_of(ctx: Ctx<'_>, unit_id: i64) -> ApiResult<Vec<objective::Model>> {
    ctx.policy.viewer()?;
    let path = units::path(ctx.db, unit_id).await?;
    if !ctx.policy.can_read_objectives_of(&path) {
        return Ok(Vec::new());
    }
    Ok(objective::Entity::find()
        .filter(objective::Column::UnitId.eq(unit_id))
        .order_by_asc(objective::Column::PeriodStart)
        .order_by_asc(objective::Column::Key)
        .all(ctx.db)
        .await?)
}

/// Key results of an objective the caller has read.
///
/// # Errors
/// Database errors only.
pub async fn key_results_of(ctx: Ctx<'_>, objective_id: i64) -> ApiResult<Vec<key_result::Model>> {
    Ok(key_result::Entity::find()
        .filter(key_result::Column::ObjectiveId.eq(objective_id))
        .order_by_asc(key_result::Column::Key)
        .all(ctx.db)
        .await?)
}

/// Measured values of a key result the caller has read, oldest first.
///
/// # Errors
/// Database errors only.
pub async fn measurements_of(
    ctx: Ctx<'_>,
    key_result_id: i64,
) -> ApiResult<Vec<key_result_measurement::Model>> {
    Ok(key_result_measurement::Entity::find()
        .filter(key_result_measurement::Column::KeyResultId.eq(key_result_id))
        .order_by_asc(key_result_measurement::Column::At)
        .order_by_asc(key_result_measurement::Column::Id)
        .all(ctx.db)
        .await?)
}

/// The current value of a key result the caller has read: its latest
/// measurement by `at`, or its start value before any.
///
/// # Errors
/// Database errors only.
pub async fn current_value(ctx: Ctx<'_>, kr: &key_result::Model) -> ApiResult<f64> {
    Ok(key_result_measurement::Entity::find()
        .filter(key_result_measurement::Column::KeyResultId.eq(kr.id))
        .order_by_desc(key_result_measurement::Column::At)
        .order_by_desc(key_result_measurement::Column::Id)
        .one(ctx.db)
        .await?
        .map_or(kr.start_value, |m| m.value))
}

/// Progress of a key result at `current` (DESIGN §1.6): (current − start) ÷
/// (target − start), clamped to [0, 1].
#[must_use]
pub fn progress(kr: &key_result::Model, current: f64) -> f64 {
    ((current - kr.start_value) / (kr.target_value - kr.start_value)).clamp(0.0, 1.0)
}

/// Links (or, with `link` false, unlinks) epics and features to an
/// objective (DESIGN §3.7). Idempotent: linking a linked item or unlinking
/// an unlinked one changes nothing. All or nothing.
///
/// # Errors
/// `NOT_FOUND` for an objective or item the caller may not read (as for one
/// that does not exist), `FORBIDDEN` where they may read but not write the
/// objective, `BAD_USER_INPUT` for an item that is not an epic or feature or
/// for an empty or too long list.
pub async fn link_work_items(
    ctx: Ctx<'_>,
    objective_id: i64,
    item_ids: &[i64],
    link: bool,
) -> ApiResult<objective::Model> {
    let objective = find_objective(ctx, objective_id)
        .await?
        .ok_or_else(|| ApiError::not_found("objective"))?;
    let path = units::path(ctx.db, objective.unit_id).await?;
    if !ctx.policy.can_write_objectives_of(&path) {
        return Err(ApiError::forbidden(
            "you may not write objectives of this unit",
        ));
    }
    if item_ids.is_empty() || item_ids.len() > MAX_LINKS_PER_CALL {
        return Err(ApiError::bad_input(format!(
            "name 1 to {MAX_LINKS_PER_CALL} work items"
        )));
    }
    let items = work_items::find_many(ctx, item_ids).await?;
    for id in item_ids {
        let item = items
            .iter()
            .find(|i| i.id == *id)
            .ok_or_else(|| ApiError::not_found("work item"))?;
        let kind = WorkItemType::parse(&item.item_type)?;
        if !matches!(kind, WorkItemType::Epic | WorkItemType::Feature) {
            return Err(ApiError::bad_input(format!(
                "only epics and features serve objectives; {} is a {}",
                item.key, item.item_type
            )));
        }
    }
    let txn = ctx.db.begin().await?;
    if link {
        let now = Utc::now();
        let rows = items.iter().map(|i| objective_work_item::ActiveModel {
            objective_id: Set(objective.id),
            work_item_id: Set(i.id),
            linked_at: Set(now),
        });
        objective_work_item::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([
                    objective_work_item::Column::ObjectiveId,
                    objective_work_item::Column::WorkItemId,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
    } else {
        objective_work_item::Entity::delete_many()
            .filter(objective_work_item::Column::ObjectiveId.eq(objective.id))
            .filter(objective_work_item::Column::WorkItemId.is_in(item_ids.iter().copied()))
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(objective)
}

/// Ids of every item linked to an objective the caller has read, readable
/// or not (for aggregates only).
async fn linked_ids(ctx: Ctx<'_>, objective_id: i64) -> ApiResult<Vec<i64>> {
    Ok(objective_work_item::Entity::find()
        .filter(objective_work_item::Column::ObjectiveId.eq(objective_id))
        .all(ctx.db)
        .await?
        .into_iter()
        .map(|l| l.work_item_id)
        .collect())
}

/// The items linked to an objective the caller has read, those they may
/// read, by key.
///
/// # Errors
/// Database errors only.
pub async fn linked_items(ctx: Ctx<'_>, objective_id: i64) -> ApiResult<Vec<work_item::Model>> {
    let ids = linked_ids(ctx, objective_id).await?;
    let mut items = work_items::find_many(ctx, &ids).await?;
    items.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(items)
}

/// The objectives an item the caller has read is linked to, those they may
/// read, by key.
///
/// # Errors
/// Database errors only.
pub async fn objectives_of_item(ctx: Ctx<'_>, item_id: i64) -> ApiResult<Vec<objective::Model>> {
    ctx.policy.viewer()?;
    let ids: Vec<i64> = objective_work_item::Entity::find()
        .filter(objective_work_item::Column::WorkItemId.eq(item_id))
        .all(ctx.db)
        .await?
        .into_iter()
        .map(|l| l.objective_id)
        .collect();
    let mut out = Vec::new();
    for o in objective::Entity::find()
        .filter(objective::Column::Id.is_in(ids))
        .order_by_asc(objective::Column::Key)
        .all(ctx.db)
        .await?
    {
        let path = units::path(ctx.db, o.unit_id).await?;
        if ctx.policy.can_read_objectives_of(&path) {
            out.push(o);
        }
    }
    Ok(out)
}

/// Delivery progress of an objective the caller has read: the union of its
/// linked items' leaves, each counted once, at `as_of` (default now).
///
/// # Errors
/// Database errors only.
pub async fn delivery_of(
    ctx: Ctx<'_>,
    objective: &objective::Model,
    as_of: Option<DateTime<Utc>>,
) -> ApiResult<Progress> {
    let roots = linked_ids(ctx, objective.id).await?;
    forecast::progress_of(ctx, &roots, as_of).await
}

/// "When will the objective's linked work be done?", against its period's
/// end unless the input names a target.
///
/// # Errors
/// `BAD_USER_INPUT` for bad inputs; database errors.
pub async fn forecast_of(
    ctx: Ctx<'_>,
    objective: &objective::Model,
    input: forecast::Input,
    max_days: i64,
) -> ApiResult<WhenForecast> {
    let roots = linked_ids(ctx, objective.id).await?;
    forecast::when_of(ctx, &roots, input, Some(objective.period_end), max_days).await
}

/// The flow of the objective's linked work (DESIGN §3.7): the flow metrics
/// of §3.1 over the leaves below its linked items, wherever in the
/// organisation they live, each counted once. An aggregate, read wherever
/// the objective is; the oldest items in progress list only those the
/// caller may read.
///
/// # Errors
/// Database errors.
pub async fn flow_of(
    ctx: Ctx<'_>,
    objective: &objective::Model,
    window: Window,
    parts: FlowParts,
) -> ApiResult<FlowMetrics> {
    let roots = linked_ids(ctx, objective.id).await?;
    let owner = units::find_many_unchecked(ctx.db, &[objective.unit_id]).await?;
    let path = units::paths_of(ctx.db, &owner)
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found("unit"))?;
    // The organisation, so linked work anywhere counts.
    let everywhere = UnitPath {
        id: path.ancestors.first().copied().unwrap_or(path.id),
        kind: UnitKind::Organization,
        ancestors: Vec::new(),
    };
    let filter = MetricFilter {
        leaves_of: Some(roots),
        ..MetricFilter::default()
    };
    metrics::assemble(
        ctx,
        &everywhere,
        window,
        &filter,
        parts,
        Precomputed::default(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kr(start: f64, target: f64) -> key_result::Model {
        key_result::Model {
            id: 1,
            objective_id: 1,
            key: "KR".into(),
            title: "t".into(),
            start_value: start,
            target_value: target,
        }
    }

    #[test]
    fn progress_is_clamped_and_works_downwards() {
        assert!((progress(&kr(0.0, 200.0), 50.0) - 0.25).abs() < 1e-12);
        assert_eq!(progress(&kr(0.0, 200.0), 250.0), 1.0);
        assert_eq!(progress(&kr(0.0, 200.0), -5.0), 0.0);
        // Lower is better: churn from 10 % down to 4 %.
        assert!((progress(&kr(10.0, 4.0), 7.0) - 0.5).abs() < 1e-12);
    }
}
