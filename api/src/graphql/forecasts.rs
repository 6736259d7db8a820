//! Delivery progress and Monte Carlo forecasts (DESIGN §3.7, §3.8): the
//! shapes, and the resolvers the work item, objective and unit types call.

use async_graphql::{Context, InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use entity::work_item;

use super::rc;
use crate::error::GqlResult;
use crate::service::forecast::{self, Input, Progress, engine};

/// How a forecast samples and simulates. Every field is optional.
#[derive(InputObject, Default, Clone, Copy)]
pub struct ForecastInput {
    /// The instant the forecast is made at: remaining work is counted then
    /// and the sample ends there. Default: now.
    pub as_of: Option<DateTime<Utc>>,
    /// Start of the throughput sample `[sampleFrom, asOf)`; must be before
    /// `asOf` and the sample at most the metric window limit (1,827 days by
    /// default). Default: 90 days before `asOf`.
    pub sample_from: Option<DateTime<Utc>>,
    /// Monte Carlo trials, 1 to 100,000 (`BAD_USER_INPUT` otherwise).
    /// Default: 10,000.
    pub trials: Option<i32>,
    /// Seed of the random draws: the same data, inputs and seed give the
    /// same answer on every server and database. Default: 1.
    pub seed: Option<i32>,
    /// The date `probabilityByTarget` is computed for. Default: none for a
    /// work item, the period's end for an objective.
    pub target_date: Option<DateTime<Utc>>,
}

impl From<ForecastInput> for Input {
    fn from(i: ForecastInput) -> Self {
        Self {
            as_of: i.as_of,
            sample_from: i.sample_from,
            trials: i.trials.map(i64::from),
            seed: i.seed.map(i64::from),
            target: i.target_date,
        }
    }
}

/// The complexity of a forecast: 100, plus one per hundred trials.
pub(crate) fn forecast_cost(input: Option<&ForecastInput>) -> usize {
    100 + trials(input) / 100
}

/// The trials a forecast asks for (the default when it names none).
fn trials(input: Option<&ForecastInput>) -> usize {
    input
        .and_then(|i| i.trials)
        .map_or(engine::DEFAULT_TRIALS as usize, |t| {
            usize::try_from(t).unwrap_or(0)
        })
}

/// The complexity of a "how many" forecast: its draws (trials × days)
/// cost one point per 20,000, beside the 100 every forecast costs.
pub(crate) fn how_many_cost(days: i32, input: Option<&ForecastInput>) -> usize {
    let days = usize::try_from(days).unwrap_or(0);
    100 + trials(input).saturating_mul(days) / 20_000
}

/// Delivery progress (DESIGN §3.7): the leaf items below (an item with no
/// children is its own leaf) by state category at an instant. Canceled
/// leaves are left out of every count.
#[derive(SimpleObject)]
pub struct DeliveryProgress {
    /// Leaves not canceled.
    pub total: i32,
    /// Leaves in a `DONE` state.
    pub done: i32,
    /// Leaves in an `ACTIVE` or `WAITING` state.
    pub in_progress: i32,
    /// Leaves in a `NEW` state.
    pub not_started: i32,
    /// `done` ÷ `total`, 0 to 1; null when `total` is 0.
    pub progress: Option<f64>,
}

fn int(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl From<Progress> for DeliveryProgress {
    fn from(p: Progress) -> Self {
        Self {
            total: int(p.total),
            done: int(p.done),
            in_progress: int(p.in_progress),
            not_started: int(p.not_started),
            progress: p.progress(),
        }
    }
}

/// "When will it be done?": a Monte Carlo forecast over the daily
/// throughput of the units that own the remaining leaves (DESIGN §3.8).
/// Dates are null when the sample completed nothing, or when that share of
/// trials needs more than ten years.
#[derive(SimpleObject)]
pub struct WhenForecast {
    /// Leaves neither done nor canceled at `asOf`.
    pub remaining: i32,
    /// Days in the sample, days without completions included.
    pub sample_days: i32,
    /// Leaf items completed over the sample.
    pub sample_completed: i32,
    /// Trials run.
    pub trials: i32,
    /// The date by which half the trials finished.
    pub p50: Option<DateTime<Utc>>,
    /// The date by which 85 % of the trials finished.
    pub p85: Option<DateTime<Utc>>,
    /// The date by which 95 % of the trials finished.
    pub p95: Option<DateTime<Utc>>,
    /// The share of trials finished by the target date, 0 to 1; null
    /// without a target or when the sample completed nothing (1 when
    /// nothing remains).
    pub probability_by_target: Option<f64>,
}

impl From<forecast::WhenForecast> for WhenForecast {
    fn from(f: forecast::WhenForecast) -> Self {
        let [p50, p85, p95] = f.dates;
        Self {
            remaining: int(f.remaining),
            sample_days: int(f.sample_days as u64),
            sample_completed: int(f.sample_completed),
            trials: int(u64::from(f.trials)),
            p50,
            p85,
            p95,
            probability_by_target: f.probability_by_target,
        }
    }
}

/// "How many in so many days?": a Monte Carlo forecast over a unit's daily
/// throughput of leaf items (DESIGN §3.8). Counts are null when the sample
/// has no days.
#[derive(SimpleObject)]
pub struct HowManyForecast {
    /// The days forecast.
    pub days: i32,
    /// Days in the sample, days without completions included.
    pub sample_days: i32,
    /// Leaf items completed over the sample.
    pub sample_completed: i32,
    /// Trials run.
    pub trials: i32,
    /// Half the trials finish at least this many items.
    pub p50: Option<i32>,
    /// 85 % of the trials finish at least this many items.
    pub p85: Option<i32>,
    /// 95 % of the trials finish at least this many items.
    pub p95: Option<i32>,
}

impl From<forecast::HowManyForecast> for HowManyForecast {
    fn from(f: forecast::HowManyForecast) -> Self {
        let [p50, p85, p95] = f.counts.map(|c| c.map(int));
        Self {
            days: int(u64::from(f.days)),
            sample_days: int(f.sample_days as u64),
            sample_completed: int(f.sample_completed),
            trials: int(u64::from(f.trials)),
            p50,
            p85,
            p95,
        }
    }
}

pub(super) async fn item_delivery(
    ctx: &Context<'_>,
    item: &work_item::Model,
    as_of: Option<DateTime<Utc>>,
) -> GqlResult<DeliveryProgress> {
    let r = rc(ctx)?;
    Ok(forecast::item_progress(r.svc(), item, as_of).await?.into())
}

pub(super) async fn item_forecast(
    ctx: &Context<'_>,
    item: &work_item::Model,
    input: Option<ForecastInput>,
) -> GqlResult<WhenForecast> {
    let r = rc(ctx)?;
    let max = r.services.settings.max_metric_window_days;
    Ok(
        forecast::item_when(r.svc(), item, input.unwrap_or_default().into(), max)
            .await?
            .into(),
    )
}

pub(super) async fn unit_throughput_forecast(
    ctx: &Context<'_>,
    unit_id: i64,
    days: i32,
    input: Option<ForecastInput>,
) -> GqlResult<HowManyForecast> {
    let r = rc(ctx)?;
    let max = r.services.settings.max_metric_window_days;
    let input = input.unwrap_or_default().into();
    Ok(
        forecast::unit_how_many(r.svc(), unit_id, i64::from(days), input, max)
            .await?
            .into(),
    )
}
