//! Delivery progress (DESIGN §3.7) and Monte Carlo forecasts (§3.8) of
//! work items and units. The database gives the leaves and the daily
//! throughput sample (bounded rows: one per state and unit, one per day);
//! [`engine`] runs the trials.
//!
//! Both are aggregates: the caller must read the aggregates of the item's or
//! unit's owning unit, and the answers are counts and dates, never items.

pub mod engine;

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, DurationRound, Utc};
use entity::work_item;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};

use super::facts::flow::ms;
use super::metrics::Window;
use super::metrics::flow::line_condition;
use super::sql::Sql;
use super::{Ctx, Reach, units};
use crate::error::{ApiError, ApiResult};
use crate::policy::UnitPath;

const DAY_MS: i64 = 86_400_000;
/// The longest "how many" horizon, in days (ten years).
pub const MAX_DAYS: i64 = 3_650;

/// A forecast's inputs, as the caller gave them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Input {
    pub as_of: Option<DateTime<Utc>>,
    pub sample_from: Option<DateTime<Utc>>,
    pub trials: Option<i64>,
    pub seed: Option<i64>,
    pub target: Option<DateTime<Utc>>,
}

/// [`Input`] checked, with its defaults filled in.
#[derive(Clone, Copy, Debug)]
pub struct Settled {
    pub as_of: DateTime<Utc>,
    pub sample: Window,
    pub trials: u32,
    pub seed: u64,
    pub target: Option<DateTime<Utc>>,
}

impl Input {
    /// Defaults: `asOf` now (to the whole second, so the dates a forecast
    /// answers read plainly), the sample the 90 days before it, 10,000
    /// trials, seed 1.
    ///
    /// # Errors
    /// `BAD_USER_INPUT` for trials outside 1–100,000, a sample that does not
    /// end after it starts or is longer than `max_days`.
    pub fn settle(self, max_days: i64) -> ApiResult<Settled> {
        let as_of = self.as_of.unwrap_or_else(|| {
            let now = Utc::now();
            now.duration_trunc(Duration::seconds(1)).unwrap_or(now)
        });
        let from = self.sample_from.unwrap_or(as_of - Duration::days(90));
        if from >= as_of {
            return Err(ApiError::bad_input("`sampleFrom` must be before `asOf`"));
        }
        let sample = Window::new(from, as_of, max_days)?;
        let trials = self.trials.unwrap_or(i64::from(engine::DEFAULT_TRIALS));
        let trials = u32::try_from(trials)
            .ok()
            .filter(|t| (1..=engine::MAX_TRIALS).contains(t))
            .ok_or_else(|| {
                ApiError::bad_input(format!(
                    "`trials` must be between 1 and {}",
                    engine::MAX_TRIALS
                ))
            })?;
        Ok(Settled {
            as_of,
            sample,
            trials,
            seed: self.seed.map_or(engine::DEFAULT_SEED, |s| s as u64),
            target: self.target,
        })
    }
}

impl Settled {
    /// Whole days in the sample, the last one possibly partial.
    pub fn sample_days(&self) -> usize {
        let span = ms(self.sample.to) - ms(self.sample.from);
        usize::try_from(span.div_euclid(DAY_MS) + i64::from(span % DAY_MS != 0)).unwrap_or(0)
    }
}

/// Leaves by state category at an instant (DESIGN §3.7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Leaves not `CANCELED`.
    pub total: u64,
    pub done: u64,
    /// `ACTIVE` or `WAITING`.
    pub in_progress: u64,
    /// `NEW`.
    pub not_started: u64,
}

impl Progress {
    pub fn progress(&self) -> Option<f64> {
        (self.total > 0).then(|| self.done as f64 / self.total as f64)
    }

    pub fn remaining(&self) -> u64 {
        self.in_progress + self.not_started
    }
}

/// The leaves of `roots` (each counted once) at `as_of`: their categories
/// and the units that own the unfinished ones.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Leaves {
    progress: Progress,
    open_units: BTreeSet<i64>,
}

/// Reads the leaves below `roots` (an item with no children is its own
/// leaf) in the state each was in at `as_of`, from the tree in memory when
/// the replica holds it, else from the per-visit facts. Leaves that did not
/// exist yet at `as_of` are not counted.
async fn leaves(ctx: Ctx<'_>, roots: &[i64], as_of: DateTime<Utc>) -> Result<Leaves, DbErr> {
    if roots.is_empty() {
        return Ok(Leaves {
            progress: Progress::default(),
            open_units: BTreeSet::new(),
        });
    }
    if let Some(l) = ctx.analytics.leaves(roots, ms(as_of)).await {
        return Ok(Leaves {
            progress: Progress {
                total: l.done + l.in_progress + l.not_started,
                done: l.done,
                in_progress: l.in_progress,
                not_started: l.not_started,
            },
            open_units: l.open_units.into_iter().collect(),
        });
    }
    leaves_in_sql(ctx.db, roots, as_of).await
}

/// [`leaves`] from the per-visit facts: the reference.
pub(crate) async fn leaves_in_sql(
    db: &impl ConnectionTrait,
    roots: &[i64],
    as_of: DateTime<Utc>,
) -> Result<Leaves, DbErr> {
    let mut out = Leaves {
        progress: Progress::default(),
        open_units: BTreeSet::new(),
    };
    if roots.is_empty() {
        return Ok(out);
    }
    let mut sql = Sql::new(db.get_database_backend());
    let marks: Vec<String> = roots.iter().map(|id| sql.bind(*id)).collect();
    let at = sql.bind(ms(as_of));
    sql.push(&format!(
        "WITH RECURSIVE d(id) AS ( \
           SELECT id FROM work_item WHERE id IN ({}) \
           UNION SELECT w.id FROM work_item w JOIN d ON w.parent_id = d.id) \
         SELECT s.unit_id AS unit_id, s.category AS category, COUNT(*) AS n \
         FROM d JOIN flow_state s ON s.work_item_id = d.id \
           AND s.from_ms <= {at} AND s.to_ms > {at} \
         WHERE NOT EXISTS (SELECT 1 FROM work_item c WHERE c.parent_id = d.id) \
         GROUP BY s.unit_id, s.category",
        marks.join(", ")
    ));
    for row in db.query_all_raw(sql.statement()).await? {
        let unit: i64 = row.try_get("", "unit_id")?;
        let category: String = row.try_get("", "category")?;
        let n = u64::try_from(row.try_get::<i64>("", "n")?).unwrap_or(0);
        let p = &mut out.progress;
        match category.as_str() {
            "CANCELED" => continue,
            "DONE" => p.done += n,
            "NEW" => {
                p.not_started += n;
                out.open_units.insert(unit);
            }
            _ => {
                p.in_progress += n;
                out.open_units.insert(unit);
            }
        }
        p.total += n;
    }
    Ok(out)
}

/// The daily throughput of leaf items completed in the subtrees of `units`
/// (counted once each) over the sample: one entry per day, zeros included.
/// A completion counts as in every flow metric: its last entry into `DONE`,
/// still done at the sample's end.
///
/// From the facts in memory when the replica holds them, else in SQL.
async fn daily_throughput(
    ctx: Ctx<'_>,
    units: &[UnitPath],
    settled: &Settled,
) -> Result<Vec<u32>, DbErr> {
    let span = (ms(settled.sample.from), ms(settled.sample.to));
    if let Some(days) = ctx
        .analytics
        .daily_throughput(units, span, settled.sample_days())
        .await
    {
        return Ok(days);
    }
    daily_throughput_in_sql(ctx.db, units, settled).await
}

/// [`daily_throughput`] in the database: the reference.
async fn daily_throughput_in_sql(
    db: &impl ConnectionTrait,
    units: &[UnitPath],
    settled: &Settled,
) -> Result<Vec<u32>, DbErr> {
    let mut days = vec![0u32; settled.sample_days()];
    if units.is_empty() || days.is_empty() {
        return Ok(days);
    }
    let mut sql = Sql::new(db.get_database_backend());
    let cond = subtrees_condition(&mut sql, units);
    let from = sql.bind(ms(settled.sample.from));
    let to = sql.bind(ms(settled.sample.to));
    let day = sql.bind(DAY_MS);
    sql.push(&format!(
        "SELECT (f.completed_ms - {from}) / {day} AS d, COUNT(*) AS n FROM flow_completion f \
         WHERE ({cond}) AND f.completed_ms >= {from} AND f.completed_ms < {to} \
           AND f.left_ms >= {to} \
           AND NOT EXISTS (SELECT 1 FROM work_item c WHERE c.parent_id = f.work_item_id) \
         GROUP BY 1"
    ));
    for row in db.query_all_raw(sql.statement()).await? {
        let d: i64 = row.try_get("", "d")?;
        let n: i64 = row.try_get("", "n")?;
        if let Some(slot) = usize::try_from(d).ok().and_then(|d| days.get_mut(d)) {
            *slot = u32::try_from(n).unwrap_or(u32::MAX);
        }
    }
    Ok(days)
}

/// Facts owned by any of `units` or a unit beneath one of them: each
/// unit's line as a prefix of the facts' line index.
fn subtrees_condition(sql: &mut Sql, units: &[UnitPath]) -> String {
    if units.is_empty() {
        return "1 = 0".into();
    }
    let mut parts = Vec::new();
    for u in units {
        let line = line_condition(sql, "f.", &[u], Reach::Subtree);
        if line.is_empty() {
            return "1 = 1".into();
        }
        parts.push(format!("({})", line.join(" AND ")));
    }
    parts.join(" OR ")
}

/// Runs the trials on the blocking pool: up to 100,000 trials of 3,650
/// days are seconds of CPU that must not hold a runtime worker.
async fn off_the_runtime<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("a forecast's trials failed: {e}")))
}

/// A "when" forecast with its inputs' sizes.
#[derive(Clone, Debug)]
pub struct WhenForecast {
    pub remaining: u64,
    pub sample_days: usize,
    pub sample_completed: u64,
    pub trials: u32,
    /// The dates by which 50 %, 85 % and 95 % of the trials finished.
    pub dates: [Option<DateTime<Utc>>; 3],
    pub probability_by_target: Option<f64>,
}

/// A "how many" forecast with its inputs' sizes.
#[derive(Clone, Debug)]
pub struct HowManyForecast {
    pub days: u32,
    pub sample_days: usize,
    pub sample_completed: u64,
    pub trials: u32,
    pub counts: [Option<u64>; 3],
}

/// The item, after checking that the caller may read its unit's
/// aggregates.
async fn item_in_scope(ctx: Ctx<'_>, item: &work_item::Model) -> ApiResult<()> {
    let unit = units::find(ctx, item.unit_id)
        .await?
        .ok_or_else(|| ApiError::not_found("unit"))?;
    let path = units::path_of(ctx.db, &unit).await?;
    ctx.policy.require_aggregates_of(&path)
}

async fn paths(db: &DatabaseConnection, ids: &BTreeSet<i64>) -> ApiResult<Vec<UnitPath>> {
    let ids: Vec<i64> = ids.iter().copied().collect();
    let found = units::find_many_unchecked(db, &ids).await?;
    units::paths_of(db, &found).await
}

/// Delivery progress of `roots` (an item, or an objective's linked items)
/// at `as_of` (default now). The caller has checked access.
///
/// # Errors
/// Database errors.
pub async fn progress_of(
    ctx: Ctx<'_>,
    roots: &[i64],
    as_of: Option<DateTime<Utc>>,
) -> ApiResult<Progress> {
    Ok(leaves(ctx, roots, as_of.unwrap_or_else(Utc::now))
        .await?
        .progress)
}

/// Delivery progress of an item the caller may read.
///
/// # Errors
/// `FORBIDDEN` outside the caller's aggregate scope; database errors.
pub async fn item_progress(
    ctx: Ctx<'_>,
    item: &work_item::Model,
    as_of: Option<DateTime<Utc>>,
) -> ApiResult<Progress> {
    item_in_scope(ctx, item).await?;
    progress_of(ctx, &[item.id], as_of).await
}

/// "When will `roots` be done?" (DESIGN §3.8). The caller has checked
/// access; `default_target` is the target when the input names none.
///
/// # Errors
/// `BAD_USER_INPUT` for bad inputs; database errors.
pub async fn when_of(
    ctx: Ctx<'_>,
    roots: &[i64],
    input: Input,
    default_target: Option<DateTime<Utc>>,
    max_days: i64,
) -> ApiResult<WhenForecast> {
    let settled = input.settle(max_days)?;
    let leaves = leaves(ctx, roots, settled.as_of).await?;
    let owners = paths(ctx.db, &leaves.open_units).await?;
    let sample = daily_throughput(ctx, &owners, &settled).await?;
    let target = settled.target.or(default_target);
    let target_days = target.map(|t| (ms(t) - ms(settled.as_of)).div_euclid(DAY_MS));
    let remaining = leaves.progress.remaining();
    let (trials, seed) = (settled.trials, settled.seed);
    let (sample, outcome) = off_the_runtime(move || {
        let outcome = engine::when(&sample, remaining, trials, seed, target_days);
        (sample, outcome)
    })
    .await?;
    let date = |days: Option<u32>| {
        days.map(|d| settled.as_of + Duration::milliseconds(i64::from(d) * DAY_MS))
    };
    Ok(WhenForecast {
        remaining,
        sample_days: sample.len(),
        sample_completed: sample.iter().map(|&n| u64::from(n)).sum(),
        trials: settled.trials,
        dates: outcome.days.map(date),
        probability_by_target: outcome.probability,
    })
}

/// "When will this item be done?" for an item the caller may read.
///
/// # Errors
/// `FORBIDDEN` outside the caller's aggregate scope, `BAD_USER_INPUT` for
/// bad inputs; database errors.
pub async fn item_when(
    ctx: Ctx<'_>,
    item: &work_item::Model,
    input: Input,
    max_days: i64,
) -> ApiResult<WhenForecast> {
    item_in_scope(ctx, item).await?;
    when_of(ctx, &[item.id], input, None, max_days).await
}

/// "How many leaf items will the unit's subtree finish in `days` days?"
///
/// # Errors
/// `NOT_FOUND` for an unknown unit, `FORBIDDEN` outside the caller's
/// aggregate scope, `BAD_USER_INPUT` for `days` outside 1–3,650 or bad
/// inputs; database errors.
pub async fn unit_how_many(
    ctx: Ctx<'_>,
    unit_id: i64,
    days: i64,
    input: Input,
    max_days: i64,
) -> ApiResult<HowManyForecast> {
    let unit = units::find(ctx, unit_id)
        .await?
        .ok_or_else(|| ApiError::not_found("unit"))?;
    let path = units::path_of(ctx.db, &unit).await?;
    ctx.policy.require_aggregates_of(&path)?;
    let days = u32::try_from(days)
        .ok()
        .filter(|d| (1..=MAX_DAYS).contains(&i64::from(*d)))
        .ok_or_else(|| ApiError::bad_input(format!("`days` must be between 1 and {MAX_DAYS}")))?;
    let settled = input.settle(max_days)?;
    let sample = daily_throughput(ctx, std::slice::from_ref(&path), &settled).await?;
    let (trials, seed) = (settled.trials, settled.seed);
    let (sample, outcome) = off_the_runtime(move || {
        let outcome = engine::how_many(&sample, days, trials, seed);
        (sample, outcome)
    })
    .await?;
    Ok(HowManyForecast {
        days,
        sample_days: sample.len(),
        sample_completed: sample.iter().map(|&n| u64::from(n)).sum(),
        trials: settled.trials,
        counts: outcome.counts,
    })
}
