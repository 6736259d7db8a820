//! The value stream map (DESIGN §3.6) of a stream over a window.
//!
//! Which items count: the items of the owning unit's subtree *completed in
//! the window* (§3's "count at completion" convention: the last entry into a
//! `DONE` state, still done at the window's end) that entered at least one of
//! the stream's states before completing. Canceled items never complete and
//! are left out; items that never touched the stream's states did not flow
//! through it. Each item is measured from its creation to its completion,
//! every visit of a re-entered state summed.
//!
//! Definitions, per stage:
//! - **passed through**: the item was in one of the stage's states at least
//!   once before completing;
//! - **process time**: time in the stage's `ACTIVE` states when the stage is
//!   value-adding (§1.2: `ACTIVE` is value-adding time);
//! - **wait time**: every other moment in the stage's states (its `WAITING`
//!   and `NEW` states, and all of a non-value-adding stage's time);
//! - **%C&A** (complete and accurate): of the items that passed through the
//!   stage, the share never sent back to it or an earlier stage after having
//!   gone past it. "Past" means a later stage's state or a `DONE` state; a
//!   reopened item (`DONE` before its completion, then back into a stage)
//!   counts as sent back. States outside every stage (a backlog, `Blocked`
//!   when unmapped) neither move an item past a stage nor back.
//!
//! Totals: lead time (completion − creation, as in §3.1) and process time
//! per item, their sums as the activity ratio (Σ process ÷ Σ lead time), and
//! the rolled %C&A (the product of the stages' %C&A, over the stages at
//! least one item passed through). Time in no stage's states counts only in
//! the lead time.

use sea_orm::DatabaseConnection;

use super::flow::{Scope, completed_in, seconds_of};
use super::grouped;
use super::stats::Distribution;
use super::{MetricFilter, Ratio, Window};
use crate::error::ApiResult;
use crate::policy::UnitPath;
use crate::service::sql::Sql;

/// A stage as the map needs it.
#[derive(Clone, Debug)]
pub struct StageSpec {
    pub name: String,
    pub position: i32,
    pub value_adding: bool,
    /// The workflow states it covers.
    pub states: Vec<String>,
}

/// One stage of the map.
#[derive(Clone, Debug)]
pub struct StageMap {
    pub name: String,
    pub position: i32,
    pub value_adding: bool,
    /// Items that passed through the stage.
    pub items: usize,
    /// Seconds per item that passed through.
    pub process_time: Distribution,
    pub wait_time: Distribution,
    /// Items never sent back ÷ items that passed through.
    pub complete_and_accurate: Ratio,
}

/// The value stream map of a stream over a window.
#[derive(Clone, Debug)]
pub struct ValueStreamMap {
    pub window: Window,
    /// Items completed in the window that flowed through the stream.
    pub items: usize,
    /// In stream order.
    pub stages: Vec<StageMap>,
    /// Completion − creation, per item.
    pub lead_time: Distribution,
    /// Process time over all stages, per item.
    pub process_time: Distribution,
    /// Wait time over all stages, per item.
    pub wait_time: Distribution,
    /// Σ process time ÷ Σ lead time, in seconds.
    pub activity_ratio: Ratio,
    /// Product of the stages' %C&A; `None` when no item passed any stage.
    pub rolled_complete_and_accurate: Option<f64>,
}

/// The map of `stages` over the items of the subtree of `unit`, for a
/// caller already allowed to read the unit's aggregates. Computed in the
/// database from the flow facts (each completion and the visits before it):
/// the answer is a row per stage, whatever the number of items.
///
/// # Errors
/// Database errors only.
pub async fn compute(
    db: &DatabaseConnection,
    unit: &UnitPath,
    stages: &[StageSpec],
    window: Window,
) -> ApiResult<ValueStreamMap> {
    let filter = MetricFilter::default();
    let scope = Scope {
        unit,
        filter: &filter,
    };
    let mut sql = Sql::new(db.get_database_backend());
    let completed = completed_in(&mut sql, &scope, window);
    // Each visit's stage (the first that lists its state) and whether its
    // time is process time (an ACTIVE state of a value-adding stage).
    let mut stage_case = String::from("CASE");
    let mut process_case = String::from("CASE");
    for (k, spec) in stages.iter().enumerate() {
        if spec.states.is_empty() {
            continue;
        }
        let marks: Vec<String> = spec.states.iter().map(|st| sql.bind(st.as_str())).collect();
        let list = marks.join(", ");
        stage_case.push_str(&format!(" WHEN s.state IN ({list}) THEN {k}"));
        let adds = if spec.value_adding {
            format!(
                "CASE WHEN s.category = {} THEN 1 ELSE 0 END",
                sql.bind(ACTIVE)
            )
        } else {
            "0".to_owned()
        };
        process_case.push_str(&format!(" WHEN s.state IN ({list}) THEN {adds}"));
    }
    if stage_case == "CASE" {
        // No stage lists a state: nothing flows through the stream.
        stage_case = "NULL".to_owned();
        process_case = "0".to_owned();
    } else {
        stage_case.push_str(" END");
        process_case.push_str(" ELSE 0 END");
    }
    let done = sql.bind(DONE);
    let past_all = stages.len();
    // The visits of each completed item before its completion, in order
    // (`seq`), with their place: the stage, or past every stage for a DONE
    // state, or none.
    let visits = format!(
        "WITH c AS (SELECT id AS cid, work_item_id, created_ms, completed_ms \
           FROM flow_completion WHERE {completed}), \
         v AS (SELECT c.cid AS cid, \
           ROW_NUMBER() OVER (PARTITION BY c.cid ORDER BY s.from_ms, s.id) AS seq, \
           {stage_case} AS stage, {process_case} AS adds, s.category AS category, \
           (CASE WHEN s.to_ms < c.completed_ms THEN s.to_ms ELSE c.completed_ms END) - s.from_ms AS spent \
           FROM c JOIN flow_state s ON s.work_item_id = c.work_item_id AND s.from_ms < c.completed_ms), \
         p AS (SELECT cid, seq, stage, adds, spent, \
           COALESCE(stage, CASE WHEN category = {done} THEN {past_all} END) AS place FROM v), \
         e AS (SELECT cid, stage AS k, MIN(seq) AS entered, \
           SUM(CASE WHEN adds = 1 THEN spent ELSE 0 END) AS process, SUM(spent) AS total \
           FROM p WHERE stage IS NOT NULL GROUP BY cid, stage), \
         gone AS (SELECT e.cid AS cid, e.k AS k, MIN(p.seq) AS past FROM e \
           JOIN p ON p.cid = e.cid AND p.place > e.k AND p.seq > e.entered GROUP BY e.cid, e.k), \
         back AS (SELECT DISTINCT gone.cid AS cid, gone.k AS k FROM gone \
           JOIN p ON p.cid = gone.cid AND p.place <= gone.k AND p.seq > gone.past), \
         per AS (SELECT e.cid AS cid, e.k AS k, e.process AS process, e.total - e.process AS wait, \
           CASE WHEN back.cid IS NULL THEN 1 ELSE 0 END AS accurate FROM e \
           LEFT JOIN back ON back.cid = e.cid AND back.k = e.k)"
    );
    let per_stage = format!(
        "{visits} SELECT CAST(k AS BIGINT) AS g, {process} AS process, {wait} AS wait, accurate FROM per",
        process = seconds_of("process"),
        wait = seconds_of("wait"),
    );
    let per_item = format!(
        "{visits} SELECT CAST(0 AS BIGINT) AS g, {lead} AS lead, {process} AS process, {wait} AS wait \
         FROM c JOIN (SELECT cid, SUM(process) AS process, SUM(wait) AS wait FROM per GROUP BY cid) t \
         ON t.cid = c.cid",
        lead = seconds_of("c.completed_ms - c.created_ms"),
        process = seconds_of("t.process"),
        wait = seconds_of("t.wait"),
    );
    let (by_stage, totals) = futures::try_join!(
        grouped::by_group::<i64>(
            db,
            sql.values(),
            &per_stage,
            &["process", "wait"],
            &[],
            ", SUM(accurate) AS accurate",
        ),
        grouped::by_group::<i64>(
            db,
            sql.values(),
            &per_item,
            &["lead", "process", "wait"],
            &[],
            ""
        ),
    )?;
    let mut out_stages = Vec::with_capacity(stages.len());
    for (k, spec) in stages.iter().enumerate() {
        let group = by_stage
            .iter()
            .find(|g| usize::try_from(g.key).ok() == Some(k));
        let (items, process_time, wait_time, accurate) = match group {
            Some(g) => (
                g.dists[0].count,
                g.dists[0],
                g.dists[1],
                g.row.try_get::<Option<i64>>("", "accurate")?.unwrap_or(0),
            ),
            None => (0, Distribution::default(), Distribution::default(), 0),
        };
        out_stages.push(StageMap {
            name: spec.name.clone(),
            position: spec.position,
            value_adding: spec.value_adding,
            items,
            process_time,
            wait_time,
            complete_and_accurate: Ratio {
                numerator: accurate as f64,
                denominator: items as f64,
            },
        });
    }
    let rolled = out_stages
        .iter()
        .filter_map(|s| s.complete_and_accurate.value())
        .fold(None, |acc: Option<f64>, v| Some(acc.unwrap_or(1.0) * v));
    let total = totals.into_iter().next();
    let dist = |i: usize| {
        total
            .as_ref()
            .map_or_else(Distribution::default, |t| t.dists[i])
    };
    let sum = |i: usize| total.as_ref().map_or(0.0, |t| t.sums[i]);
    Ok(ValueStreamMap {
        window,
        items: dist(0).count,
        stages: out_stages,
        lead_time: dist(0),
        process_time: dist(1),
        wait_time: dist(2),
        activity_ratio: Ratio {
            numerator: sum(1),
            denominator: sum(0),
        },
        rolled_complete_and_accurate: rolled,
    })
}

const ACTIVE: &str = "ACTIVE";
const DONE: &str = "DONE";
