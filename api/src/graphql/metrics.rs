//! Metric shapes of DESIGN §5: durations in seconds, rates with their parts.

use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::delivery::reach;
use super::ids::{self, kind};
use super::rc;
use super::units::UnitScope;
use super::work_items::WorkItem;
use crate::domain::{FlowType, StateCategory, UnitKind, WorkItemType};
use crate::error::GqlResult;
use crate::service::metrics::{self, MetricFilter, Window, dora, stats};

/// A half-open time window `[from, to)` given as RFC 3339 date-times and
/// evaluated in UTC. `to` must be after `from` and the window may span at
/// most the server's limit (1,827 days by default), else `BAD_USER_INPUT`.
#[derive(InputObject)]
pub struct TimeWindowInput {
    /// Start of the window, included.
    pub from: DateTime<Utc>,
    /// End of the window, excluded; must be after `from`.
    pub to: DateTime<Utc>,
}

/// The complexity a metric adds for its window: a metric reads every fact
/// of a subtree and answers per day (cumulative flow), so it costs 100 plus
/// one per day. The complexity limit and the cost budgets count it so: 30
/// aliased five-year metrics no longer pass as 30 cheap fields.
pub(crate) fn window_cost(window: &TimeWindowInput) -> usize {
    let days = (window.to - window.from).num_days().max(0);
    100 + usize::try_from(days).unwrap_or(usize::MAX / 2)
}

/// The complexity of live metrics over the last `days` days: as a metric's
/// window of that length ([`window_cost`]).
pub(crate) fn days_cost(days: i32) -> usize {
    100 + usize::try_from(days.max(0)).unwrap_or(usize::MAX / 2)
}

/// A half-open time window `[from, to)` in UTC.
#[derive(SimpleObject)]
pub struct TimeWindow {
    /// Start of the window, included.
    pub from: DateTime<Utc>,
    /// End of the window, excluded.
    pub to: DateTime<Utc>,
}

/// Which work items a flow metric covers; every item of the unit's subtree
/// when omitted. The conditions combine with AND, and an empty list matches
/// no item.
#[derive(InputObject, Default)]
pub struct MetricFilterInput {
    /// Only items of these work item types (e.g. `[STORY, DEFECT]`); every
    /// type when omitted.
    pub types: Option<Vec<WorkItemType>>,
    /// Only items of these Flow Framework flow types; every flow type when
    /// omitted.
    pub flow_types: Option<Vec<FlowType>>,
    /// Kinds of the owning units, e.g. `[TEAM]` for team-level work only;
    /// every level when omitted.
    pub levels: Option<Vec<UnitKind>>,
    /// `SUBTREE` (the default) covers the unit and every unit beneath it;
    /// `UNIT_ONLY` covers only the items the unit owns itself.
    pub scope: Option<UnitScope>,
}

/// A distribution of durations in seconds; nulls when `count` is 0.
/// Percentiles are continuous (linear interpolation between the closest
/// ranks, as PostgreSQL `percentile_cont`): the median of 90 and 100 is 95.
#[derive(SimpleObject)]
pub struct Distribution {
    /// How many values (items, changes or incidents) the distribution holds.
    pub count: i32,
    /// Arithmetic mean in seconds; null when `count` is 0.
    pub mean: Option<f64>,
    /// Median (continuous 50th percentile) in seconds; null when `count` is
    /// 0.
    pub p50: Option<f64>,
    /// Continuous 85th percentile in seconds; null when `count` is 0.
    pub p85: Option<f64>,
    /// Continuous 95th percentile in seconds; null when `count` is 0.
    pub p95: Option<f64>,
    /// Smallest value in seconds; null when `count` is 0.
    pub min: Option<f64>,
    /// Largest value in seconds; null when `count` is 0.
    pub max: Option<f64>,
}

impl From<stats::Distribution> for Distribution {
    fn from(d: stats::Distribution) -> Self {
        Self {
            count: i32::try_from(d.count).unwrap_or(i32::MAX),
            mean: d.mean,
            p50: d.p50,
            p85: d.p85,
            p95: d.p95,
            min: d.min,
            max: d.max,
        }
    }
}

/// A rate: `value` = numerator ÷ denominator, null when the denominator is 0.
/// Both parts are returned so a client can sum or re-weight rates itself.
#[derive(SimpleObject)]
pub struct Ratio {
    /// The part being measured: a count, or seconds for time-based rates
    /// such as flow efficiency.
    pub numerator: f64,
    /// The whole it is measured against, in the same unit as the numerator.
    pub denominator: f64,
    /// Numerator ÷ denominator; null when the denominator is 0.
    pub value: Option<f64>,
}

impl From<metrics::Ratio> for Ratio {
    fn from(r: metrics::Ratio) -> Self {
        Self {
            numerator: r.numerator,
            denominator: r.denominator,
            value: r.value(),
        }
    }
}

/// Items of one flow type completed in the window, and their share.
#[derive(SimpleObject)]
pub struct FlowTypeCount {
    /// The Flow Framework flow type counted.
    pub flow_type: FlowType,
    /// Items of this flow type completed in the window.
    pub count: i32,
    /// This flow type's count ÷ all items completed in the window, 0 to 1;
    /// null when none were.
    pub share: Option<f64>,
}

/// Items completed in one ISO week (Monday to Sunday, UTC). Only
/// completions inside the window count, so the first and last weeks may be
/// partial.
#[derive(SimpleObject)]
pub struct WeekCount {
    /// ISO week, e.g. `2026-W05`.
    pub week: String,
    /// Its Monday, 00:00 UTC.
    pub start: DateTime<Utc>,
    /// Items completed in this week and inside the window.
    pub count: i32,
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Flow metrics (DESIGN §3.1) of a unit over a window.
pub struct FlowMetrics(pub(super) metrics::FlowMetrics);

/// Flow, time-in-state and quality metrics of a unit's work items (by
/// default the unit and every unit beneath it) over a window, durations in
/// seconds; only viewers who may read the unit's aggregates get them, others
/// get `FORBIDDEN`. An item is completed in the window when its last entry
/// into a `DONE` state falls inside it and it is still `DONE` at the window's
/// end; it starts at its first entry into an `ACTIVE` or `WAITING` state.
#[Object]
impl FlowMetrics {
    /// The window `[from, to)` these metrics cover (for live metrics, the
    /// last days up to the instant they were computed).
    async fn window(&self) -> TimeWindow {
        TimeWindow {
            from: self.0.window.from,
            to: self.0.window.to,
        }
    }

    /// Flow velocity: the number of items completed in the window.
    async fn throughput(&self) -> i32 {
        count(self.0.throughput)
    }

    /// Flow distribution: every flow type with its count and share of the
    /// throughput, including types with none.
    async fn throughput_by_flow_type(&self) -> Vec<FlowTypeCount> {
        let total = self.0.throughput;
        self.0
            .by_flow_type
            .iter()
            .map(|(flow_type, n)| FlowTypeCount {
                flow_type: *flow_type,
                count: count(*n),
                share: (total > 0).then(|| *n as f64 / total as f64),
            })
            .collect()
    }

    /// Completions per ISO week, oldest week first (weeks without any are
    /// left out).
    async fn throughput_by_week(&self) -> Vec<WeekCount> {
        self.0
            .by_week
            .iter()
            .map(|w| WeekCount {
                week: w.week.clone(),
                start: w.start,
                count: count(w.count),
            })
            .collect()
    }

    /// Lead time: completion − creation in seconds, for items completed in
    /// the window.
    async fn lead_time(&self) -> Distribution {
        self.0.lead_time.into()
    }

    /// Cycle (flow) time: completion − start in seconds, for items completed
    /// in the window that started; items that never started are left out.
    async fn cycle_time(&self) -> Distribution {
        self.0.cycle_time.into()
    }

    /// Σ time in ACTIVE states ÷ Σ cycle time, between each item's start and
    /// completion, for items completed in the window (in seconds; every
    /// visit counts, and only time in ACTIVE states counts as active).
    async fn flow_efficiency(&self) -> Ratio {
        self.0.flow_efficiency.into()
    }

    /// Flow load: items in an ACTIVE or WAITING state at the window's end.
    async fn wip_at_end(&self) -> i32 {
        count(self.0.wip_at_end)
    }

    /// WIP (items in ACTIVE or WAITING states) averaged over the window,
    /// weighted by time.
    async fn average_wip(&self) -> f64 {
        self.0.average_wip
    }

    /// Ages in seconds (window end − start) of the items in progress at the
    /// window's end, over all of them, including items you may not read.
    async fn aging_wip(&self) -> Distribution {
        self.0.aging.into()
    }

    /// The oldest items in progress at the window's end that you may read
    /// (at most 10), oldest first.
    async fn oldest_wip(&self) -> Vec<AgingItem> {
        self.0
            .oldest
            .iter()
            .map(|a| AgingItem {
                work_item: WorkItem::new(a.item.clone()),
                age: a.age,
            })
            .collect()
    }

    /// Average WIP beside what Little's law predicts from throughput and
    /// mean cycle time: far apart, the system is not stable.
    async fn littles_law(&self) -> LittlesLaw {
        LittlesLaw {
            average_wip: self.0.average_wip,
            predicted_wip: self.0.predicted_wip(),
        }
    }

    /// For each state: time spent in it by the items completed in the
    /// window, between creation and completion, every visit summed. States
    /// no such item visited are left out; the rest follow workflow order.
    async fn time_in_state(&self) -> GqlResult<Vec<StateTime>> {
        self.0
            .time_in_state
            .iter()
            .map(|t| {
                Ok(StateTime {
                    state: t.state.clone(),
                    category: StateCategory::parse(&t.category)?,
                    total: t.total,
                    per_item: t.per_item.into(),
                })
            })
            .collect()
    }

    /// Cumulative flow diagram: for each UTC day of the window, oldest first,
    /// the items in each state at its end (at the window's end for a partial
    /// last day).
    async fn cumulative_flow(&self) -> Vec<CumulativeFlowDay> {
        self.0
            .cumulative_flow
            .iter()
            .map(|d| CumulativeFlowDay {
                date: d.date.format("%Y-%m-%d").to_string(),
                counts: d
                    .counts
                    .iter()
                    .map(|(state, n)| StateCount {
                        state: state.clone(),
                        count: count(*n),
                    })
                    .collect(),
            })
            .collect()
    }

    /// Quality: escaped defects and the defect escape rate, over defects
    /// created (not completed) in the window.
    async fn quality(&self) -> QualityMetrics {
        QualityMetrics {
            escaped_defects: count(self.0.escaped_defects),
            defect_escape_rate: self.0.defect_escape_rate.into(),
        }
    }
}

/// Time spent in one workflow state by the items completed in the window,
/// from each item's creation to its completion, every visit summed (5 days,
/// then 3 more after leaving and coming back, is 8 days).
#[derive(SimpleObject)]
pub struct StateTime {
    /// The workflow state's name.
    pub state: String,
    /// The flow-state category the state maps to.
    pub category: StateCategory,
    /// Seconds, summed over all the items completed in the window.
    pub total: f64,
    /// Per item that was in the state.
    pub per_item: Distribution,
}

/// One UTC day of a cumulative flow diagram: how many items were in each
/// state at the end of the day.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct CumulativeFlowDay {
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
    #[graphql(skip)]
    pub counts: Vec<StateCount>,
}

#[ComplexObject]
impl CumulativeFlowDay {
    /// One entry per state of the unit's workflow, in workflow order, then
    /// any other state items were in; states with no items count 0.
    async fn counts(&self) -> &[StateCount] {
        // Years of days, each resolved in the request's task: spending the
        // task's cooperative budget lets it yield now and then, so its
        // connection notices a client that left (and a worker is not held
        // for seconds by one request).
        tokio::task::consume_budget().await;
        &self.counts
    }
}

/// How many items were in one state at the end of a day.
#[derive(SimpleObject)]
pub struct StateCount {
    /// The workflow state's name.
    pub state: String,
    /// Items in the state at the end of the day (at the window's end for a
    /// partial last day).
    pub count: i32,
}

/// An item in progress and its age in seconds.
#[derive(SimpleObject)]
pub struct AgingItem {
    /// The work item in progress at the window's end.
    pub work_item: WorkItem,
    /// Seconds from its start (first entry into an ACTIVE or WAITING state)
    /// to the window's end.
    pub age: f64,
}

/// Little's law check: the measured average WIP beside the WIP that
/// throughput and mean cycle time predict; far apart, the system is not
/// stable.
#[derive(SimpleObject)]
pub struct LittlesLaw {
    /// WIP averaged over the window, weighted by time (as `averageWip`).
    pub average_wip: f64,
    /// Little's law's prediction: throughput per second of the window × mean
    /// cycle time in seconds; null when no completed item has a cycle time.
    pub predicted_wip: Option<f64>,
}

/// Quality metrics over the defects created in the window.
#[derive(SimpleObject)]
pub struct QualityMetrics {
    /// `DEFECT` items found in `PRODUCTION`, created in the window.
    pub escaped_defects: i32,
    /// Escaped defects ÷ all defects created in the window.
    pub defect_escape_rate: Ratio,
}

/// The window, filter and parts a flow metrics field asks for.
pub(super) fn flow_request(
    ctx: &Context<'_>,
    window: TimeWindowInput,
    filter: Option<MetricFilterInput>,
) -> GqlResult<(Window, MetricFilter, metrics::FlowParts)> {
    let r = rc(ctx)?;
    r.policy.viewer()?;
    let window = Window::new(
        window.from,
        window.to,
        r.services.settings.max_metric_window_days,
    )?;
    let (filter, parts) = flow_selection(ctx, filter);
    Ok((window, filter, parts))
}

/// The filter and the parts a flow metrics field (or subscription) asks for.
pub(super) fn flow_selection(
    ctx: &Context<'_>,
    filter: Option<MetricFilterInput>,
) -> (MetricFilter, metrics::FlowParts) {
    let f = filter.unwrap_or_default();
    let filter = MetricFilter {
        types: f.types,
        flow_types: f.flow_types,
        levels: f.levels,
        reach: reach(f.scope),
        leaves_of: None,
    };
    let la = ctx.look_ahead();
    let asked = |names: &[&str]| names.iter().any(|n| la.field(n).exists());
    let parts = metrics::FlowParts {
        completions: asked(&[
            "throughput",
            "throughputByFlowType",
            "throughputByWeek",
            "leadTime",
            "cycleTime",
            "flowEfficiency",
            "littlesLaw",
        ]),
        wip: asked(&["wipAtEnd", "averageWip", "agingWip", "littlesLaw"]),
        oldest: asked(&["oldestWip"]),
        quality: asked(&["quality"]),
        time_in_state: asked(&["timeInState"]),
        cumulative_flow: asked(&["cumulativeFlow"]),
    };
    (filter, parts)
}

pub(super) async fn flow_metrics(
    ctx: &Context<'_>,
    unit: ID,
    window: TimeWindowInput,
    filter: Option<MetricFilterInput>,
) -> GqlResult<FlowMetrics> {
    let unit_id = ids::expect(&unit, kind::UNIT, "unit")?;
    let (window, filter, parts) = flow_request(ctx, window, filter)?;
    Ok(FlowMetrics(
        metrics::flow_metrics(rc(ctx)?.svc(), unit_id, window, &filter, parts).await?,
    ))
}

/// `Unit.flowMetrics`: the same numbers as the root field, with sibling
/// units computed together through the request's loader.
pub(super) async fn unit_flow_metrics(
    ctx: &Context<'_>,
    unit_id: i64,
    window: TimeWindowInput,
    filter: Option<MetricFilterInput>,
) -> GqlResult<FlowMetrics> {
    let (window, filter, parts) = flow_request(ctx, window, filter)?;
    let key = super::loaders::FlowKey {
        unit: unit_id,
        window,
        filter,
        parts,
    };
    match rc(ctx)?.flow_metrics.load_one(key).await? {
        Some(Ok(m)) => Ok(FlowMetrics(m)),
        Some(Err(e)) => Err(e.into()),
        None => Err(crate::error::ApiError::not_found("unit").into()),
    }
}

/// Mean seconds of each stage of the lead time for changes; null where no
/// change reports the stage's ends.
#[derive(SimpleObject)]
pub struct LeadTimeBreakdown {
    /// Opened − first commit, averaged over the changes that report both.
    pub coding: Option<f64>,
    /// Merged − opened, averaged over the changes that report when they were
    /// opened.
    pub review: Option<f64>,
    /// Deployed − merged, averaged over all the changes counted.
    pub deploy: Option<f64>,
}

/// A DORA performance level (2023 Accelerate State of DevOps report).
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum DoraLevel {
    /// Deploys daily or more; changes reach production within a day; at most
    /// 5 % of deployments fail; service restored within an hour.
    Elite,
    /// Deploys between daily and weekly; lead time a day to a week; at most
    /// 10 % fail; restored within a day.
    High,
    /// Deploys between weekly and monthly; lead time a week to a month; at
    /// most 15 % fail; restored within a week.
    Medium,
    /// Deploys less than monthly; lead time over a month; more than 15 %
    /// fail; restoring takes over a week.
    Low,
}

impl From<dora::Level> for DoraLevel {
    fn from(l: dora::Level) -> Self {
        match l {
            dora::Level::Elite => Self::Elite,
            dora::Level::High => Self::High,
            dora::Level::Medium => Self::Medium,
            dora::Level::Low => Self::Low,
        }
    }
}

/// The DORA level of each key delivery metric. Thresholds: deployment
/// frequency ≥ 1/day elite, ≥ 1/week high, ≥ 1/month (30 days) medium;
/// median lead time for changes ≤ 1 day, ≤ 1 week, ≤ 30 days; change
/// failure rate ≤ 5 %, ≤ 10 %, ≤ 15 %; median time to restore ≤ 1 hour,
/// ≤ 1 day, ≤ 1 week; worse is `LOW`.
#[derive(SimpleObject)]
pub struct DoraPerformance {
    /// From `deploymentFrequency`; `LOW` with no deployment.
    pub deployment_frequency: Option<DoraLevel>,
    /// From the median of `leadTimeForChanges`; null when no change was
    /// deployed in the window.
    pub lead_time_for_changes: Option<DoraLevel>,
    /// From `changeFailureRate`; null without deployments.
    pub change_failure_rate: Option<DoraLevel>,
    /// From the median of `timeToRestore`; null when no incident was
    /// resolved in the window.
    pub time_to_restore: Option<DoraLevel>,
}

/// Delivery metrics (DESIGN §3.5) of a unit over a window.
pub struct DeliveryMetrics(metrics::delivery::DeliveryMetrics);

/// DORA delivery metrics of a unit's deployments, changes, incidents and
/// releases (by default the unit and every unit beneath it) over a window,
/// for viewers who may read the unit's aggregates (`FORBIDDEN` for others).
/// Durations are in seconds; days are UTC days.
#[Object]
impl DeliveryMetrics {
    /// Successful `PRODUCTION` deployments finished in the window.
    async fn deployments(&self) -> i32 {
        count(self.0.deployments)
    }

    /// Distinct UTC days with at least one of them.
    async fn deployment_days(&self) -> i32 {
        count(self.0.deployment_days)
    }

    /// Deployment frequency: successful production deployments in the
    /// window ÷ the window's length in days (fractional for partial days).
    async fn deployment_frequency(&self) -> f64 {
        self.0.deployment_frequency
    }

    /// Deployed − first commit (merged when unknown), for each change at its
    /// first successful production deployment, when that falls in the window.
    async fn lead_time_for_changes(&self) -> Distribution {
        self.0.lead_time_for_changes.into()
    }

    /// Mean seconds spent coding, in review and waiting for deployment,
    /// over the same changes as `leadTimeForChanges`.
    async fn lead_time_breakdown(&self) -> LeadTimeBreakdown {
        let b = self.0.breakdown;
        LeadTimeBreakdown {
            coding: b.coding,
            review: b.review,
            deploy: b.deploy,
        }
    }

    /// Successful production deployments in the window that caused an
    /// incident (the deployment the incident names, else its unit's latest
    /// successful production deployment before it opened) ÷ `deployments`.
    async fn change_failure_rate(&self) -> Ratio {
        self.0.change_failure_rate.into()
    }

    /// Time to restore service: resolved − opened in seconds, for incidents
    /// resolved in the window.
    async fn time_to_restore(&self) -> Distribution {
        self.0.time_to_restore.into()
    }

    /// The DORA performance level of each key metric in this window, by
    /// the thresholds of the 2023 Accelerate State of DevOps report.
    async fn performance(&self) -> DoraPerformance {
        let p = dora::Performance::of(&self.0);
        DoraPerformance {
            deployment_frequency: p.deployment_frequency.map(Into::into),
            lead_time_for_changes: p.lead_time_for_changes.map(Into::into),
            change_failure_rate: p.change_failure_rate.map(Into::into),
            time_to_restore: p.time_to_restore.map(Into::into),
        }
    }

    /// Releases whose release time falls in the window.
    async fn releases(&self) -> i32 {
        count(self.0.releases)
    }

    /// Release velocity: releases per week (7 days) of the window.
    async fn releases_per_week(&self) -> f64 {
        self.0.releases_per_week
    }

    /// Work items delivered per release in the window (all of them, not only
    /// those you may read); null without releases.
    async fn items_per_release(&self) -> Option<f64> {
        self.0.items_per_release
    }
}

pub(super) async fn delivery_metrics(
    ctx: &Context<'_>,
    unit: ID,
    window: TimeWindowInput,
    scope: Option<UnitScope>,
) -> GqlResult<DeliveryMetrics> {
    let r = rc(ctx)?;
    r.policy.viewer()?;
    let unit_id = ids::expect(&unit, kind::UNIT, "unit")?;
    let window = Window::new(
        window.from,
        window.to,
        r.services.settings.max_metric_window_days,
    )?;
    Ok(DeliveryMetrics(
        metrics::delivery_metrics(r.svc(), unit_id, window, reach(scope)).await?,
    ))
}

/// `Unit.deliveryMetrics`: through the request's loader, so the children
/// of one parent are computed together.
pub(super) async fn unit_delivery_metrics(
    ctx: &Context<'_>,
    unit_id: i64,
    window: TimeWindowInput,
    scope: Option<UnitScope>,
) -> GqlResult<DeliveryMetrics> {
    let r = rc(ctx)?;
    r.policy.viewer()?;
    let window = Window::new(
        window.from,
        window.to,
        r.services.settings.max_metric_window_days,
    )?;
    let key = super::loaders::DeliveryKey {
        unit: unit_id,
        window,
        reach: reach(scope),
    };
    match r.delivery_metrics.load_one(key).await? {
        Some(Ok(m)) => Ok(DeliveryMetrics(m)),
        Some(Err(e)) => Err(e.into()),
        None => Err(crate::error::ApiError::not_found("unit").into()),
    }
}

#[derive(Default)]
pub struct MetricsQuery;

#[Object]
impl MetricsQuery {
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
        scope: Option<super::units::UnitScope>,
    ) -> GqlResult<super::metrics::DeliveryMetrics> {
        super::metrics::delivery_metrics(ctx, unit, window, scope).await
    }
}
