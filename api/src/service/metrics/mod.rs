//! Metrics (DESIGN §3) aggregated over a unit's subtree and a window, for
//! the viewers the aggregate rule of §2 allows.
//!
//! Flow metrics read each item's transition history in chunks of items and
//! keep only what the aggregates need: counts, and the durations the
//! distributions are taken over.

pub mod delivery;
pub mod facts;
pub mod flow;
pub mod history;
pub mod stats;
pub mod value_stream_map;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use entity::{transition, unit, work_item};
use sea_orm::sea_query::Query;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};

use self::history::{Step, duration, facts, time_in_states};
use self::stats::Distribution;
use super::work_items::Reach;
use super::{Ctx, in_unit, units, work_items};
use crate::domain::{FlowType, UnitKind, WorkItemType};
use crate::error::{ApiError, ApiResult};
use crate::policy::UnitPath;

/// Items whose histories are read at a time.
const CHUNK: u64 = 5000;

/// `[from, to)`.
#[derive(Clone, Copy, Debug)]
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

    fn contains(&self, t: DateTime<Utc>) -> bool {
        self.from <= t && t < self.to
    }
}

/// Which items a metric covers.
#[derive(Clone, Debug, Default)]
pub struct MetricFilter {
    pub types: Option<Vec<WorkItemType>>,
    pub flow_types: Option<Vec<FlowType>>,
    /// Kinds of the owning units (e.g. only team-level items).
    pub levels: Option<Vec<UnitKind>>,
    pub reach: Reach,
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
    delivery::compute(ctx, unit_id, reach, window).await
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
#[derive(Clone, Copy, Debug)]
pub struct FlowParts {
    /// Throughput, distribution, lead and cycle time, flow efficiency.
    pub completions: bool,
    /// WIP at the end, average WIP, aging distribution.
    pub wip: bool,
    /// The oldest items in progress.
    pub oldest: bool,
    pub quality: bool,
    /// Time in state and the cumulative flow: these replay histories.
    pub history: bool,
}

impl FlowParts {
    pub const ALL: Self = Self {
        completions: true,
        wip: true,
        oldest: true,
        quality: true,
        history: true,
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
    let scope = flow::Scope {
        unit: &path,
        filter,
    };
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
            if parts.completions {
                Ok::<_, ApiError>(Some(flow::completions(ctx.db, &scope, window).await?))
            } else {
                Ok(None)
            }
        },
        async {
            if parts.wip {
                Ok::<_, ApiError>(Some(flow::wip(ctx.db, &scope, window).await?))
            } else {
                Ok(None)
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
    let items = items_of(unit_id, filter);
    if parts.quality {
        let defects = items
            .clone()
            .filter(work_item::Column::ItemType.eq(WorkItemType::Defect.as_str()))
            .filter(work_item::Column::CreatedAt.gte(window.from))
            .filter(work_item::Column::CreatedAt.lt(window.to));
        let all = defects.clone().count(ctx.db).await?;
        let escaped = defects
            .filter(work_item::Column::FoundIn.eq("PRODUCTION"))
            .count(ctx.db)
            .await?;
        out.escaped_defects = usize::try_from(escaped).unwrap_or(usize::MAX);
        out.defect_escape_rate = Ratio {
            numerator: escaped as f64,
            denominator: all as f64,
        };
    }
    if parts.history {
        let (time_in_state, cumulative_flow) = replay(ctx, unit_id, items, window).await?;
        out.time_in_state = time_in_state;
        out.cumulative_flow = cumulative_flow;
    }
    Ok(out)
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

/// Time in state (§3.2) and the cumulative flow (§3.3), from the items'
/// histories, read a chunk of items at a time.
async fn replay(
    ctx: Ctx<'_>,
    unit_id: i64,
    items: sea_orm::Select<work_item::Entity>,
    window: Window,
) -> ApiResult<(Vec<StateTime>, Vec<FlowDay>)> {
    let items = items
        .select_only()
        .column(work_item::Column::Id)
        .filter(work_item::Column::CreatedAt.lt(window.to));
    // Time in state: state → (category, total, per item).
    let mut states: BTreeMap<String, (String, f64, Vec<f64>)> = BTreeMap::new();
    let days = day_ends(window);
    let mut flow_counts: BTreeMap<(usize, String), usize> = BTreeMap::new();
    let mut after = 0i64;
    loop {
        let chunk: Vec<i64> = items
            .clone()
            .filter(work_item::Column::Id.gt(after))
            .order_by_asc(work_item::Column::Id)
            .limit(CHUNK)
            .into_tuple()
            .all(ctx.db)
            .await?;
        let Some(last) = chunk.last() else { break };
        after = *last;
        let steps: Vec<(i64, DateTime<Utc>, String, String)> = transition::Entity::find()
            .select_only()
            .column(transition::Column::WorkItemId)
            .column(transition::Column::At)
            .column(transition::Column::ToState)
            .column(transition::Column::ToCategory)
            .filter(transition::Column::WorkItemId.is_in(chunk.iter().copied()))
            .filter(transition::Column::At.lt(window.to))
            .order_by_asc(transition::Column::WorkItemId)
            .order_by_asc(transition::Column::At)
            .order_by_asc(transition::Column::Id)
            .into_tuple()
            .all(ctx.db)
            .await?;
        let mut rest = steps.as_slice();
        for id in &chunk {
            let n = rest.iter().take_while(|s| s.0 == *id).count();
            let (mine, tail) = rest.split_at(n);
            rest = tail;
            let history: Vec<Step> = mine
                .iter()
                .map(|(_, at, state, category)| Step {
                    at: *at,
                    state: state.clone(),
                    category: category.clone(),
                })
                .collect();
            let mut next = 0;
            for (day, end) in days.iter().enumerate() {
                while next < history.len() && history[next].at < *end {
                    next += 1;
                }
                if let Some(s) = next.checked_sub(1).map(|i| &history[i]) {
                    *flow_counts.entry((day, s.state.clone())).or_default() += 1;
                }
            }
            let Some(done) = facts(&history, window.to)
                .completion
                .filter(|c| window.contains(*c))
            else {
                continue;
            };
            for (state, spent) in time_in_states(&history, done) {
                let category = history
                    .iter()
                    .find(|s| s.state == state)
                    .map(|s| s.category.clone())
                    .unwrap_or_default();
                let e = states
                    .entry(state.to_owned())
                    .or_insert_with(|| (category, 0.0, Vec::new()));
                e.1 += spent;
                e.2.push(spent);
            }
        }
    }
    // States in the unit's workflow order, then any others by name.
    let workflow = units::effective_workflow(ctx.db, unit_id).await?;
    let mut order: Vec<(String, String)> = workflow
        .states
        .iter()
        .map(|s| (s.name.clone(), s.category.clone()))
        .collect();
    let seen: Vec<(String, String)> = states
        .iter()
        .map(|(name, (category, ..))| (name.clone(), category.clone()))
        .chain(
            flow_counts
                .keys()
                .map(|(_, name)| (name.clone(), String::new())),
        )
        .collect();
    for (name, category) in seen {
        if !order.iter().any(|(n, _)| *n == name) {
            order.push((name, category));
        }
    }
    let time_in_state = order
        .iter()
        .filter_map(|(name, _)| {
            let (category, total, per) = states.remove(name)?;
            Some(StateTime {
                state: name.clone(),
                category,
                total,
                per_item: Distribution::of(per),
            })
        })
        .collect();
    let cumulative_flow = days
        .iter()
        .enumerate()
        .map(|(day, end)| FlowDay {
            date: (*end - Duration::nanoseconds(1)).date_naive(),
            counts: order
                .iter()
                .map(|(name, _)| {
                    let n = flow_counts.get(&(day, name.clone())).copied().unwrap_or(0);
                    (name.clone(), n)
                })
                .collect(),
        })
        .collect();
    Ok((time_in_state, cumulative_flow))
}

/// The end of each UTC day the window touches: the next midnight, or the
/// window's end for its last, partial day.
fn day_ends(window: Window) -> Vec<DateTime<Utc>> {
    let mut ends = Vec::new();
    let mut day = window.from.date_naive();
    while let Some(next) = day.succ_opt() {
        let end = next.and_time(NaiveTime::MIN).and_utc().min(window.to);
        ends.push(end);
        if end >= window.to {
            break;
        }
        day = next;
    }
    ends
}
