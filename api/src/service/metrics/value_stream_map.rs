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

use chrono::{DateTime, Utc};
use entity::{transition, work_item};
use sea_orm::sea_query::Query;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::history::{Step, duration, facts};
use super::stats::Distribution;
use super::{CHUNK, Ratio, Window};
use crate::domain::StateCategory;
use crate::error::ApiResult;
use crate::service::work_items::Reach;
use crate::service::{Ctx, in_unit};

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

/// What one item did in one stage.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Visit {
    process: f64,
    wait: f64,
    accurate: bool,
}

/// Per stage, what the item did there (`None`: never entered), from the
/// history `steps` up to `done`.
fn trace(stages: &[StageSpec], steps: &[Step], done: DateTime<Utc>) -> Vec<Option<Visit>> {
    let n = stages.len();
    let stage_of = |state: &str| {
        stages
            .iter()
            .position(|s| s.states.iter().any(|x| x == state))
    };
    let mut out: Vec<Option<Visit>> = vec![None; n];
    // Whether the item has gone past each stage since entering it.
    let mut past = vec![false; n];
    for (i, s) in steps.iter().enumerate().filter(|(_, s)| s.at < done) {
        let stage = stage_of(&s.state);
        let place = stage.or((s.category == StateCategory::Done.as_str()).then_some(n));
        if let Some(place) = place {
            for k in 0..n {
                let Some(visit) = out[k].as_mut() else {
                    continue;
                };
                if place > k {
                    past[k] = true;
                } else if past[k] {
                    visit.accurate = false;
                }
            }
        }
        let Some(k) = stage else { continue };
        let leave = steps.get(i + 1).map_or(done, |next| next.at.min(done));
        let spent = if leave > s.at {
            duration(s.at, leave)
        } else {
            0.0
        };
        let visit = out[k].get_or_insert(Visit {
            accurate: true,
            ..Visit::default()
        });
        if stages[k].value_adding && s.category == StateCategory::Active.as_str() {
            visit.process += spent;
        } else {
            visit.wait += spent;
        }
    }
    out
}

/// Running sums of the map while items are read.
struct Tally {
    stages: Vec<(Vec<f64>, Vec<f64>, usize)>,
    lead: Vec<f64>,
    process: Vec<f64>,
    wait: Vec<f64>,
}

impl Tally {
    fn new(n: usize) -> Self {
        Self {
            stages: vec![(Vec::new(), Vec::new(), 0); n],
            lead: Vec::new(),
            process: Vec::new(),
            wait: Vec::new(),
        }
    }

    /// Adds an item created at `created` and completed at `done`, if it
    /// entered any stage.
    fn add(&mut self, visits: &[Option<Visit>], created: DateTime<Utc>, done: DateTime<Utc>) {
        if visits.iter().all(Option::is_none) {
            return;
        }
        let (mut process, mut wait) = (0.0, 0.0);
        for (stage, visit) in self.stages.iter_mut().zip(visits) {
            let Some(v) = visit else { continue };
            stage.0.push(v.process);
            stage.1.push(v.wait);
            stage.2 += usize::from(v.accurate);
            process += v.process;
            wait += v.wait;
        }
        self.lead.push(duration(created, done));
        self.process.push(process);
        self.wait.push(wait);
    }

    fn finish(self, specs: &[StageSpec], window: Window) -> ValueStreamMap {
        let stages: Vec<StageMap> = specs
            .iter()
            .zip(self.stages)
            .map(|(spec, (process, wait, accurate))| StageMap {
                name: spec.name.clone(),
                position: spec.position,
                value_adding: spec.value_adding,
                items: process.len(),
                complete_and_accurate: Ratio {
                    numerator: accurate as f64,
                    denominator: process.len() as f64,
                },
                process_time: Distribution::of(process),
                wait_time: Distribution::of(wait),
            })
            .collect();
        let rolled = stages
            .iter()
            .filter_map(|s| s.complete_and_accurate.value())
            .fold(None, |acc: Option<f64>, v| Some(acc.unwrap_or(1.0) * v));
        ValueStreamMap {
            window,
            items: self.lead.len(),
            activity_ratio: Ratio {
                numerator: self.process.iter().sum(),
                denominator: self.lead.iter().sum(),
            },
            stages,
            lead_time: Distribution::of(self.lead),
            process_time: Distribution::of(self.process),
            wait_time: Distribution::of(self.wait),
            rolled_complete_and_accurate: rolled,
        }
    }
}

/// The map of `stages` over the items of `unit_id`'s subtree, for a caller
/// already allowed to read the unit's aggregates.
///
/// # Errors
/// Database errors only.
pub async fn compute(
    ctx: Ctx<'_>,
    unit_id: i64,
    stages: &[StageSpec],
    window: Window,
) -> ApiResult<ValueStreamMap> {
    // Only an item with a DONE transition inside the window can have
    // completed in it; its whole history decides whether it did.
    let done_in_window = Query::select()
        .column(transition::Column::WorkItemId)
        .from(transition::Entity)
        .and_where(transition::Column::ToCategory.eq(StateCategory::Done.as_str()))
        .and_where(transition::Column::At.gte(window.from))
        .and_where(transition::Column::At.lt(window.to))
        .to_owned();
    let items = in_unit(
        work_item::Entity::find()
            .select_only()
            .column(work_item::Column::Id)
            .column(work_item::Column::CreatedAt)
            .filter(work_item::Column::Id.in_subquery(done_in_window)),
        work_item::Column::UnitId,
        unit_id,
        Reach::Subtree,
    );
    let mut tally = Tally::new(stages.len());
    let mut after = 0i64;
    loop {
        let chunk: Vec<(i64, DateTime<Utc>)> = items
            .clone()
            .filter(work_item::Column::Id.gt(after))
            .order_by_asc(work_item::Column::Id)
            .limit(CHUNK)
            .into_tuple()
            .all(ctx.db)
            .await?;
        let Some(last) = chunk.last() else { break };
        after = last.0;
        let steps: Vec<(i64, DateTime<Utc>, String, String)> = transition::Entity::find()
            .select_only()
            .column(transition::Column::WorkItemId)
            .column(transition::Column::At)
            .column(transition::Column::ToState)
            .column(transition::Column::ToCategory)
            .filter(transition::Column::WorkItemId.is_in(chunk.iter().map(|c| c.0)))
            .filter(transition::Column::At.lt(window.to))
            .order_by_asc(transition::Column::WorkItemId)
            .order_by_asc(transition::Column::At)
            .order_by_asc(transition::Column::Id)
            .into_tuple()
            .all(ctx.db)
            .await?;
        let mut rest = steps.as_slice();
        for (id, created_at) in &chunk {
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
            let Some(done) = facts(&history, window.to)
                .completion
                .filter(|c| window.contains(*c))
            else {
                continue;
            };
            tally.add(&trace(stages, &history, done), *created_at, done);
        }
    }
    Ok(tally.finish(stages, window))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(day: u32, hour: u32) -> DateTime<Utc> {
        format!("2026-03-{day:02}T{hour:02}:00:00Z")
            .parse()
            .unwrap()
    }

    fn step(day: u32, hour: u32, state: &str, category: &str) -> Step {
        Step {
            at: t(day, hour),
            state: state.into(),
            category: category.into(),
        }
    }

    fn stages() -> Vec<StageSpec> {
        let spec = |position: i32, name: &str, value_adding: bool, states: &[&str]| StageSpec {
            name: name.into(),
            position,
            value_adding,
            states: states.iter().map(|s| (*s).to_owned()).collect(),
        };
        vec![
            spec(0, "Build", true, &["In Progress", "Blocked"]),
            spec(1, "Review", false, &["In Review"]),
            spec(2, "Verify", false, &["Testing"]),
        ]
    }

    const H: f64 = 3600.0;

    #[test]
    fn sent_back_and_reopened() {
        // Build 1st–2nd (24 h active), review 12 h, back to build 12 h,
        // blocked 12 h, build 12 h, review, verify, done on the 5th; then
        // reopened into verify for 12 h and done again.
        let h = vec![
            step(1, 0, "Backlog", "NEW"),
            step(1, 0, "In Progress", "ACTIVE"),
            step(2, 0, "In Review", "WAITING"),
            step(2, 12, "In Progress", "ACTIVE"),
            step(3, 0, "Blocked", "WAITING"),
            step(3, 12, "In Progress", "ACTIVE"),
            step(4, 0, "In Review", "WAITING"),
            step(4, 12, "Testing", "ACTIVE"),
            step(5, 0, "Done", "DONE"),
            step(6, 0, "Testing", "ACTIVE"),
            step(6, 12, "Done", "DONE"),
        ];
        let v = trace(&stages(), &h, t(6, 12));
        let visit = |p: f64, w: f64, a: bool| {
            Some(Visit {
                process: p * H,
                wait: w * H,
                accurate: a,
            })
        };
        assert_eq!(v[0], visit(48.0, 12.0, false));
        // Review's own sending back is not its failure.
        assert_eq!(v[1], visit(0.0, 24.0, true));
        // Verify: 12 h + 12 h, waiting (not value-adding); reopened.
        assert_eq!(v[2], visit(0.0, 24.0, false));
        let mut tally = Tally::new(3);
        tally.add(&v, t(1, 0), t(6, 12));
        // Straight to done without entering a stage: not in the stream.
        tally.add(&[None, None, None], t(1, 0), t(2, 0));
        let window = Window {
            from: t(1, 0),
            to: t(10, 0),
        };
        let map = tally.finish(&stages(), window);
        assert_eq!(map.items, 1);
        assert_eq!(map.activity_ratio.numerator, 48.0 * H);
        assert_eq!(map.activity_ratio.denominator, 132.0 * H);
        assert_eq!(map.rolled_complete_and_accurate, Some(0.0));
    }

    #[test]
    fn an_empty_map_has_no_rates() {
        let map = Tally::new(3).finish(
            &stages(),
            Window {
                from: t(1, 0),
                to: t(2, 0),
            },
        );
        assert_eq!(map.items, 0);
        assert_eq!(map.stages[0].complete_and_accurate.value(), None);
        assert_eq!(map.stages[2].process_time, Distribution::default());
        assert_eq!(map.activity_ratio.value(), None);
        assert_eq!(map.rolled_complete_and_accurate, None);
    }
}
