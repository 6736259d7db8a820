//! Metric shapes of DESIGN §5: durations in seconds, rates with their parts.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::delivery::reach;
use super::ids::{self, kind};
use super::rc;
use super::types::{UnitScope, WorkItem};
use crate::domain::{FlowType, StateCategory, UnitKind, WorkItemType};
use crate::error::GqlResult;
use crate::service::metrics::{self, MetricFilter, Window, stats};

/// `[from, to)`, RFC 3339.
#[derive(InputObject)]
pub struct TimeWindowInput {
    pub from: DateTime<Utc>,
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

/// Which items a metric covers; every item of the unit's subtree when
/// omitted.
#[derive(InputObject, Default)]
pub struct MetricFilterInput {
    pub types: Option<Vec<WorkItemType>>,
    pub flow_types: Option<Vec<FlowType>>,
    /// Kinds of the owning units, e.g. `[TEAM]` for team-level work only.
    pub levels: Option<Vec<UnitKind>>,
    /// `UNIT_ONLY` for the unit's own items.
    pub scope: Option<UnitScope>,
}

/// A distribution of durations in seconds; nulls when `count` is 0.
#[derive(SimpleObject)]
pub struct Distribution {
    pub count: i32,
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p85: Option<f64>,
    pub p95: Option<f64>,
    pub min: Option<f64>,
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
#[derive(SimpleObject)]
pub struct Ratio {
    pub numerator: f64,
    pub denominator: f64,
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
    pub flow_type: FlowType,
    pub count: i32,
    /// Of all items completed in the window; null when none were.
    pub share: Option<f64>,
}

/// Items completed in one ISO week.
#[derive(SimpleObject)]
pub struct WeekCount {
    /// ISO week, e.g. `2026-W05`.
    pub week: String,
    /// Its Monday, 00:00 UTC.
    pub start: DateTime<Utc>,
    pub count: i32,
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Flow metrics (DESIGN §3.1) of a unit over a window.
pub struct FlowMetrics(metrics::FlowMetrics);

#[Object]
impl FlowMetrics {
    /// Items completed in the window.
    async fn throughput(&self) -> i32 {
        count(self.0.throughput)
    }

    /// Every flow type with its count and share of the throughput.
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

    /// Completions per ISO week (weeks without any are left out).
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

    /// Completion − creation, for items completed in the window.
    async fn lead_time(&self) -> Distribution {
        self.0.lead_time.into()
    }

    /// Completion − start, for items completed in the window that started.
    async fn cycle_time(&self) -> Distribution {
        self.0.cycle_time.into()
    }

    /// Σ time in ACTIVE states ÷ Σ cycle time, between each item's start and
    /// completion.
    async fn flow_efficiency(&self) -> Ratio {
        self.0.flow_efficiency.into()
    }

    /// Items in an ACTIVE or WAITING state at the window's end.
    async fn wip_at_end(&self) -> i32 {
        count(self.0.wip_at_end)
    }

    /// WIP averaged over the window, weighted by time.
    async fn average_wip(&self) -> f64 {
        self.0.average_wip
    }

    /// Ages (window end − start) of the items in progress at the window's end.
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
                work_item: WorkItem(a.item.clone()),
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
    /// window, between creation and completion, every visit summed.
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

    /// For each UTC day of the window, the items in each state at its end
    /// (at the window's end for a partial last day).
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

    /// DESIGN §3.4.
    async fn quality(&self) -> QualityMetrics {
        QualityMetrics {
            escaped_defects: count(self.0.escaped_defects),
            defect_escape_rate: self.0.defect_escape_rate.into(),
        }
    }
}

#[derive(SimpleObject)]
pub struct StateTime {
    pub state: String,
    pub category: StateCategory,
    /// Seconds.
    pub total: f64,
    /// Per item that was in the state.
    pub per_item: Distribution,
}

#[derive(SimpleObject)]
pub struct CumulativeFlowDay {
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
    pub counts: Vec<StateCount>,
}

#[derive(SimpleObject)]
pub struct StateCount {
    pub state: String,
    pub count: i32,
}

/// An item in progress and its age in seconds.
#[derive(SimpleObject)]
pub struct AgingItem {
    pub work_item: WorkItem,
    pub age: f64,
}

#[derive(SimpleObject)]
pub struct LittlesLaw {
    pub average_wip: f64,
    /// Throughput per second × mean cycle time; null without a cycle time.
    pub predicted_wip: Option<f64>,
}

#[derive(SimpleObject)]
pub struct QualityMetrics {
    /// `DEFECT` items found in `PRODUCTION`, created in the window.
    pub escaped_defects: i32,
    /// Escaped defects ÷ all defects created in the window.
    pub defect_escape_rate: Ratio,
}

pub(super) async fn flow_metrics(
    ctx: &Context<'_>,
    unit: ID,
    window: TimeWindowInput,
    filter: Option<MetricFilterInput>,
) -> GqlResult<FlowMetrics> {
    let r = rc(ctx)?;
    r.policy.viewer()?;
    let unit_id = ids::expect(&unit, kind::UNIT, "unit")?;
    let window = Window::new(
        window.from,
        window.to,
        r.services.settings.max_metric_window_days,
    )?;
    let f = filter.unwrap_or_default();
    let filter = MetricFilter {
        types: f.types,
        flow_types: f.flow_types,
        levels: f.levels,
        reach: reach(f.scope),
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
    Ok(FlowMetrics(
        metrics::flow_metrics(r.svc(), unit_id, window, &filter, parts).await?,
    ))
}

/// Mean seconds of each stage of the lead time for changes; null where no
/// change reports the stage's ends.
#[derive(SimpleObject)]
pub struct LeadTimeBreakdown {
    /// Opened − first commit.
    pub coding: Option<f64>,
    /// Merged − opened.
    pub review: Option<f64>,
    /// Deployed − merged.
    pub deploy: Option<f64>,
}

/// Delivery metrics (DESIGN §3.5) of a unit over a window.
pub struct DeliveryMetrics(metrics::delivery::DeliveryMetrics);

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

    /// Deployments per day of the window.
    async fn deployment_frequency(&self) -> f64 {
        self.0.deployment_frequency
    }

    /// Deployed − first commit (merged when unknown), for each change at its
    /// first successful production deployment, when that falls in the window.
    async fn lead_time_for_changes(&self) -> Distribution {
        self.0.lead_time_for_changes.into()
    }

    async fn lead_time_breakdown(&self) -> LeadTimeBreakdown {
        let b = self.0.breakdown;
        LeadTimeBreakdown {
            coding: b.coding,
            review: b.review,
            deploy: b.deploy,
        }
    }

    /// Deployments in the window that caused an incident (the one it names,
    /// else the unit's latest successful production deployment before it
    /// opened) ÷ deployments in the window.
    async fn change_failure_rate(&self) -> Ratio {
        self.0.change_failure_rate.into()
    }

    /// Resolved − opened, for incidents resolved in the window.
    async fn time_to_restore(&self) -> Distribution {
        self.0.time_to_restore.into()
    }

    /// Releases in the window.
    async fn releases(&self) -> i32 {
        count(self.0.releases)
    }

    /// Release velocity: releases per week (7 days) of the window.
    async fn releases_per_week(&self) -> f64 {
        self.0.releases_per_week
    }

    /// Work items delivered per release; null without releases.
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
