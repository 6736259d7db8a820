//! Metrics (DESIGN §3) aggregated over a unit's subtree and a window, for
//! the viewers the aggregate rule of §2 allows.
//!
//! Every metric aggregates inside the database: flow metrics and the value
//! stream map over per-item facts kept at write time ([`crate::service::facts`]), delivery
//! metrics over deployments, changes and incidents. A request's memory does
//! not grow with the subtree. The completions and WIP parts of flow metrics
//! come from the replica's facts in memory when it holds them
//! ([`crate::service::analytics`]), with the same numbers. The flow and delivery metrics of sibling units
//! (a drill-down's children) are computed together ([`siblings`]): their
//! statements do not grow with the number of units.

pub mod delivery;
pub mod dora;
pub mod flow;
pub mod grouped;
pub mod history;
pub mod siblings;
pub mod states;
pub mod stats;
pub mod value_stream_map;

/// The flow fact writers live in [`crate::service::facts::flow`]; this path
/// stays for the callers outside the crate that knew them here.
pub use crate::service::facts::flow as facts;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use entity::{unit, work_item};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use self::history::duration;
use self::stats::Distribution;
use super::Reach;
use super::{Ctx, in_unit, units, work_items};
use crate::domain::{FlowType, UnitKind, WorkItemType};
use crate::error::{ApiError, ApiResult};
use crate::policy::UnitPath;

/// `[from, to)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Window {
    /// # Errors
    /// `BAD_USER_INPUT` for an empty or reversed window, or one longer than
    /// `max_days`.
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>, max_days: i64) -> ApiResult<Self> {
        if to <= from {
            return Err(ApiError::bad_input(
                "the window's `to` must be after `from`",
            ));
        }
        if to - from > Duration::days(max_days) {
            return Err(ApiError::bad_input(format!(
                "a window may cover at most {max_days} days"
            )));
        }
        Ok(Self { from, to })
    }
}

/// Which items a metric covers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MetricFilter {
    pub types: Option<Vec<WorkItemType>>,
    pub flow_types: Option<Vec<FlowType>>,
    /// Kinds of the owning units (e.g. only team-level items).
    pub levels: Option<Vec<UnitKind>>,
    pub reach: Reach,
    /// Only the leaves below these items (an item with no children is its
    /// own leaf): an objective's linked work (DESIGN §3.7).
    pub leaves_of: Option<Vec<i64>>,
}

/// A rate with its parts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ratio {
    pub numerator: f64,
    pub denominator: f64,
}

impl Ratio {
    /// `None` when the denominator is zero.
    pub fn value(&self) -> Option<f64> {
        (self.denominator != 0.0).then(|| self.numerator / self.denominator)
    }
}

/// Items completed in one ISO week.
#[derive(Clone, Debug, PartialEq)]
pub struct WeekCount {
    /// `2026-W05`.
    pub week: String,
    /// Monday 00:00 UTC.
    pub start: DateTime<Utc>,
    pub count: usize,
}

/// An item in progress at the window's end, and its age.
#[derive(Clone, Debug)]
pub struct Aging {
    pub item: work_item::Model,
    /// Window end − start, in seconds.
    pub age: f64,
}

/// Time in one state (DESIGN §3.2).
#[derive(Clone, Debug)]
pub struct StateTime {
    pub state: String,
    pub category: String,
    /// Seconds, over the items completed in the window.
    pub total: f64,
    /// Per item that was in the state.
    pub per_item: Distribution,
}

/// Items in each state at the end of one UTC day (DESIGN §3.3).
#[derive(Clone, Debug)]
pub struct FlowDay {
    pub date: chrono::NaiveDate,
    /// Every state, in workflow order.
    pub counts: Vec<(String, usize)>,
}

/// Oldest items in progress listed.
pub const OLDEST: usize = 10;

/// DESIGN §3.1 and §3.4, so far: throughput, distribution, lead and cycle
/// time, flow efficiency, WIP, aging WIP and quality.
#[derive(Clone, Debug)]
pub struct FlowMetrics {
    pub window: Window,
    pub throughput: usize,
    /// Every flow type, in declaration order, with its count.
    pub by_flow_type: Vec<(FlowType, usize)>,
    pub by_week: Vec<WeekCount>,
    pub lead_time: Distribution,
    pub cycle_time: Distribution,
    pub flow_efficiency: Ratio,
    pub wip_at_end: usize,
    /// Time-weighted over the window.
    pub average_wip: f64,
    pub aging: Distribution,
    /// The oldest items in progress that the caller may read, oldest first.
    pub oldest: Vec<Aging>,
    /// `DEFECT` items found in production, created in the window.
    pub escaped_defects: usize,
    /// Escaped defects ÷ all defects created in the window.
    pub defect_escape_rate: Ratio,
    pub time_in_state: Vec<StateTime>,
    pub cumulative_flow: Vec<FlowDay>,
}

impl FlowMetrics {
    /// Little's law's prediction of the average WIP: throughput per second
    /// × mean cycle time; `None` without a cycle time.
    pub fn predicted_wip(&self) -> Option<f64> {
        let mean = self.cycle_time.mean?;
        let seconds = duration(self.window.from, self.window.to);
        Some(self.throughput as f64 / seconds * mean)
    }
}

/// Delivery metrics (DESIGN §3.5) of `unit_id` over `window`.
///
/// # Errors
/// `NOT_FOUND` for an unknown unit, `FORBIDDEN` outside the caller's
/// aggregate scope.
pub async fn delivery_metrics(
    ctx: Ctx<'_>,
    unit_id: i64,
    window: Window,
    reach: Reach,
) -> ApiResult<delivery::DeliveryMetrics> {
    require_aggregates(ctx, unit_id).await?;
    let mut one = delivery::compute_many(ctx, &[unit_id], reach, window).await?;
    one.remove(&unit_id)
        .ok_or_else(|| ApiError::not_found("unit"))
}

async fn require_aggregates(ctx: Ctx<'_>, unit_id: i64) -> ApiResult<UnitPath> {
    ctx.policy.viewer()?;
    let unit = units::find(ctx, unit_id)
        .await?
        .ok_or_else(|| ApiError::not_found("unit"))?;
    let path = units::path_of(ctx.db, &unit).await?;
    ctx.policy.require_aggregates_of(&path)?;
    Ok(path)
}

/// Which parts of [`FlowMetrics`] to compute: each costs its own queries,
/// and a caller asks for what it shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowParts {
    /// Throughput, distribution, lead and cycle time, flow efficiency.
    pub completions: bool,
    /// WIP at the end, average WIP, aging distribution.
    pub wip: bool,
    /// The oldest items in progress.
    pub oldest: bool,
    pub quality: bool,
    pub time_in_state: bool,
    pub cumulative_flow: bool,
}

impl FlowParts {
    pub const ALL: Self = Self {
        completions: true,
        wip: true,
        oldest: true,
        quality: true,
        time_in_state: true,
        cumulative_flow: true,
    };
}

/// Flow metrics of `unit_id` over `window`; the parts not asked for are
/// left empty.
///
/// # Errors
/// `NOT_FOUND` for an unknown unit, `FORBIDDEN` outside the caller's
/// aggregate scope.
pub async fn flow_metrics(
    ctx: Ctx<'_>,
    unit_id: i64,
    window: Window,
    filter: &MetricFilter,
    parts: FlowParts,
) -> ApiResult<FlowMetrics> {
    let path = require_aggregates(ctx, unit_id).await?;
    assemble(ctx, &path, window, filter, parts, Precomputed::default()).await
}

/// Parts of [`FlowMetrics`] already computed for several units together.
#[derive(Default)]
pub(crate) struct Precomputed {
    pub completions: Option<flow::Completions>,
    pub wip: Option<flow::Wip>,
    /// Time in state per state, in no particular order.
    pub time_in_state: Option<Vec<StateTime>>,
    /// Items per state at each day's end.
    pub cumulative_flow: Option<BTreeMap<String, Vec<usize>>>,
    /// The unit's workflow, which orders the states.
    pub workflow: Option<units::EffectiveWorkflow>,
    /// Defects created in the window: (all, escaped to production).
    pub quality: Option<(u64, u64)>,
}

/// The flow metrics of a unit the caller may read the aggregates of,
/// computing what `pre` does not hold.
pub(crate) async fn assemble(
    ctx: Ctx<'_>,
    path: &UnitPath,
    window: Window,
    filter: &MetricFilter,
    parts: FlowParts,
    pre: Precomputed,
) -> ApiResult<FlowMetrics> {
    let unit_id = path.id;
    let scope = flow::Scope { unit: path, filter };
    let mut out = FlowMetrics {
        window,
        throughput: 0,
        by_flow_type: FlowType::ALL.iter().map(|f| (*f, 0)).collect(),
        by_week: Vec::new(),
        lead_time: Distribution::default(),
        cycle_time: Distribution::default(),
        flow_efficiency: Ratio::default(),
        wip_at_end: 0,
        average_wip: 0.0,
        aging: Distribution::default(),
        oldest: Vec::new(),
        escaped_defects: 0,
        defect_escape_rate: Ratio::default(),
        time_in_state: Vec::new(),
        cumulative_flow: Vec::new(),
    };
    // The parts are independent: their statements run side by side.
    let (c, w, o) = futures::try_join!(
        async {
            match pre.completions {
                Some(c) => Ok::<_, ApiError>(Some(c)),
                None if parts.completions => {
                    if let Some(c) = ctx.analytics.completions(&scope, window).await {
                        return Ok(Some(c));
                    }
                    Ok(Some(flow::completions(ctx.db, &scope, window).await?))
                }
                None => Ok(None),
            }
        },
        async {
            match pre.wip {
                Some(w) => Ok::<_, ApiError>(Some(w)),
                None if parts.wip => {
                    if let Some(w) = ctx.analytics.wip(&scope, window).await {
                        return Ok(Some(w));
                    }
                    Ok(Some(flow::wip(ctx.db, &scope, window).await?))
                }
                None => Ok(None),
            }
        },
        async {
            if parts.oldest {
                oldest(ctx, &scope, window).await
            } else {
                Ok(Vec::new())
            }
        },
    )?;
    if let Some(c) = c {
        out.throughput = c.throughput;
        out.by_flow_type = c.by_flow_type;
        out.by_week = c.by_week;
        out.lead_time = c.lead_time;
        out.cycle_time = c.cycle_time;
        out.flow_efficiency = c.flow_efficiency;
    }
    if let Some(w) = w {
        out.wip_at_end = w.at_end;
        out.average_wip = w.average;
        out.aging = w.aging;
    }
    out.oldest = o;
    if parts.quality {
        let (all, escaped) = match pre.quality {
            Some(q) => q,
            None => quality(ctx, unit_id, window, filter).await?,
        };
        out.escaped_defects = usize::try_from(escaped).unwrap_or(usize::MAX);
        out.defect_escape_rate = Ratio {
            numerator: escaped as f64,
            denominator: all as f64,
        };
    }
    if parts.time_in_state || parts.cumulative_flow {
        let states = StatesPre {
            time_in_state: pre.time_in_state,
            cumulative_flow: pre.cumulative_flow,
            workflow: pre.workflow,
        };
        let (time_in_state, cumulative_flow) =
            state_metrics(ctx, unit_id, &scope, window, parts, states).await?;
        out.time_in_state = time_in_state;
        out.cumulative_flow = cumulative_flow;
    }
    Ok(out)
}

/// Defects of the unit (or subtree) `filter` selects created in the
/// window: (all, escaped to production).
async fn quality(
    ctx: Ctx<'_>,
    unit_id: i64,
    window: Window,
    filter: &MetricFilter,
) -> ApiResult<(u64, u64)> {
    let defects = items_of(unit_id, filter)
        .filter(work_item::Column::ItemType.eq(WorkItemType::Defect.as_str()))
        .filter(work_item::Column::CreatedAt.gte(window.from))
        .filter(work_item::Column::CreatedAt.lt(window.to));
    let all = defects.clone().count(ctx.db).await?;
    let escaped = defects
        .filter(work_item::Column::FoundIn.eq("PRODUCTION"))
        .count(ctx.db)
        .await?;
    Ok((all, escaped))
}

/// What [`state_metrics`] may find already computed.
struct StatesPre {
    time_in_state: Option<Vec<StateTime>>,
    cumulative_flow: Option<BTreeMap<String, Vec<usize>>>,
    workflow: Option<units::EffectiveWorkflow>,
}

/// The items of `unit_id` (or its subtree) that `filter` selects.
fn items_of(unit_id: i64, filter: &MetricFilter) -> sea_orm::Select<work_item::Entity> {
    let mut items = work_item::Entity::find();
    items = in_unit(items, work_item::Column::UnitId, unit_id, filter.reach);
    if let Some(types) = &filter.types {
        items = items.filter(work_item::Column::ItemType.is_in(types.iter().map(|t| t.as_str())));
    }
    if let Some(flows) = &filter.flow_types {
        items = items.filter(work_item::Column::FlowType.is_in(flows.iter().map(|t| t.as_str())));
    }
    if let Some(roots) = &filter.leaves_of {
        let marks = vec!["?".to_owned(); roots.len()];
        items = items.filter(Expr::cust_with_values(
            format!("work_item.id IN ({})", leaves_below(&marks)),
            roots.iter().copied(),
        ));
    }
    if let Some(levels) = &filter.levels {
        items = items.filter(
            work_item::Column::UnitId.in_subquery(
                Query::select()
                    .column(unit::Column::Id)
                    .from(unit::Entity)
                    .and_where(unit::Column::Kind.is_in(levels.iter().map(|k| k.as_str())))
                    .to_owned(),
            ),
        );
    }
    items
}

/// A `SELECT` of the ids of the leaves below the items whose ids are bound
/// at `marks` (an item with no children is its own leaf), each once.
pub(crate) fn leaves_below(marks: &[String]) -> String {
    if marks.is_empty() {
        return "SELECT id FROM work_item WHERE 1 = 0".to_owned();
    }
    format!(
        "WITH RECURSIVE d(id) AS ( \
           SELECT id FROM work_item WHERE id IN ({}) \
           UNION SELECT w.id FROM work_item w JOIN d ON w.parent_id = d.id) \
         SELECT d.id FROM d WHERE NOT EXISTS (SELECT 1 FROM work_item c WHERE c.parent_id = d.id)",
        marks.join(", ")
    )
}

/// The oldest items in progress at the window's end that the caller may
/// read, at most [`OLDEST`], read 100 candidates at a time.
async fn oldest(ctx: Ctx<'_>, scope: &flow::Scope<'_>, window: Window) -> ApiResult<Vec<Aging>> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    loop {
        let page = flow::oldest(ctx.db, scope, window, offset, 100).await?;
        if page.is_empty() {
            break;
        }
        offset += page.len() as u64;
        let ids: Vec<i64> = page.iter().map(|(id, _)| *id).collect();
        let readable = work_items::find_many(ctx, &ids).await?;
        for (id, age) in page {
            if let Some(item) = readable.iter().find(|m| m.id == id) {
                out.push(Aging {
                    item: item.clone(),
                    age,
                });
            }
        }
        if out.len() >= OLDEST {
            out.truncate(OLDEST);
            break;
        }
    }
    Ok(out)
}

/// Time in state (§3.2) and the cumulative flow (§3.3) as asked, with the
/// states in the unit's workflow order, then any others seen by name.
async fn state_metrics(
    ctx: Ctx<'_>,
    unit_id: i64,
    scope: &flow::Scope<'_>,
    window: Window,
    parts: FlowParts,
    pre: StatesPre,
) -> ApiResult<(Vec<StateTime>, Vec<FlowDay>)> {
    // From memory what the store answers, the rest from SQL side by side.
    let asked = (
        parts.time_in_state && pre.time_in_state.is_none(),
        parts.cumulative_flow && pre.cumulative_flow.is_none(),
    );
    let (held_totals, held_counts) = ctx.analytics.states(scope, window, asked).await;
    let (mut totals, flow_counts) = futures::try_join!(
        async {
            match pre.time_in_state.or(held_totals) {
                Some(t) => Ok(t),
                None if parts.time_in_state => states::time_in_state(ctx.db, scope, window).await,
                None => Ok(Vec::new()),
            }
        },
        async {
            match pre.cumulative_flow.or(held_counts) {
                Some(c) => Ok(c),
                None if parts.cumulative_flow => {
                    states::cumulative_flow(ctx.db, scope, window).await
                }
                None => Ok(BTreeMap::new()),
            }
        },
    )?;
    let workflow = match pre.workflow {
        Some(w) => w,
        None => units::effective_workflow(ctx.db, unit_id).await?,
    };
    let mut order: Vec<String> = workflow.states.iter().map(|s| s.name.clone()).collect();
    let seen: Vec<String> = totals
        .iter()
        .map(|t| t.state.clone())
        .chain(flow_counts.keys().cloned())
        .collect();
    for name in seen {
        if !order.contains(&name) {
            order.push(name);
        }
    }
    let time_in_state = order
        .iter()
        .filter_map(|name| {
            let i = totals.iter().position(|t| t.state == *name)?;
            Some(totals.swap_remove(i))
        })
        .collect();
    let cumulative_flow = if parts.cumulative_flow {
        states::day_ends(window)
            .iter()
            .enumerate()
            .map(|(day, end)| FlowDay {
                date: states::date_of(*end),
                counts: order
                    .iter()
                    .map(|name| {
                        let n = flow_counts
                            .get(name)
                            .and_then(|c| c.get(day).copied())
                            .unwrap_or(0);
                        (name.clone(), n)
                    })
                    .collect(),
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok((time_in_state, cumulative_flow))
}
