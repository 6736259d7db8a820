//! Time in state (DESIGN §3.2) and the cumulative flow (§3.3) from the
//! visits the tree holds ([`super::tree`]), exactly as the SQL path
//! ([`crate::service::metrics::states`]) computes them: the same visits,
//! durations as integer milliseconds turned into seconds the way the
//! statements do, the cumulative flow as per-day changes summed into
//! running counts.

use std::collections::BTreeMap;

use chrono::NaiveTime;

use super::columns::Facts;
use super::compute::{Filter, Groups, completed_in, distribution, seconds};
use super::tree::{GAP, Tree};
use crate::service::facts::flow::{OPEN, ms};
use crate::service::metrics::states::{DAY_MS, day_ends, running};
use crate::service::metrics::{StateTime, Window};

/// What one group gathers of one state.
#[derive(Default)]
struct StateAcc {
    /// Per completed item that visited the state, milliseconds in it.
    values: Vec<i64>,
    sum: i128,
    /// The least (by name) category of the visits counted.
    category: u8,
}

/// For each group, time in each state visited by its items completed in
/// `window` (still done at its end) before their completion, every visit
/// cut at the completion and summed per item; in no particular order.
pub fn time_in_state(
    facts: &Facts,
    tree: &Tree,
    groups: &Groups,
    filter: &Filter,
    window: Window,
) -> Vec<Vec<StateTime>> {
    let c = &facts.completions;
    let o = &c.owners;
    // Category codes ranked by name, for the least one.
    let names = tree.categories.values();
    let mut rank = vec![0u8; names.len() + 1];
    let mut by_name: Vec<usize> = (0..names.len()).collect();
    by_name.sort_by(|a, b| names[*a].cmp(&names[*b]));
    for (r, i) in by_name.into_iter().enumerate() {
        rank[i + 1] = u8::try_from(r + 1).unwrap_or(u8::MAX);
    }
    let states = tree.states.len() + 1;
    let mut acc: Vec<Vec<Option<StateAcc>>> = (0..groups.count())
        .map(|_| (0..states).map(|_| None).collect())
        .collect();
    // One item's time per state: (state, ms, least category).
    let mut item: Vec<(u16, i64, u8)> = Vec::new();
    for (i, g) in completed_in(facts, groups, filter, window) {
        let done = c.completed[i];
        let Some(s) = tree.slot_of(o.item[i]) else {
            continue;
        };
        let (starts, state, category) = tree.entries(s);
        item.clear();
        for j in 0..starts.len() {
            let start = starts[j];
            if start >= done {
                break;
            }
            if state[j] == GAP {
                continue;
            }
            let end = starts.get(j + 1).copied().unwrap_or(OPEN).min(done);
            let cat = category[j];
            match item.iter_mut().find(|(st, _, _)| *st == state[j]) {
                Some(e) => {
                    e.1 += end - start;
                    if rank[usize::from(cat)] < rank[usize::from(e.2)] {
                        e.2 = cat;
                    }
                }
                None => item.push((state[j], end - start, cat)),
            }
        }
        for &(st, spent, cat) in &item {
            let a = acc[g][usize::from(st)].get_or_insert_with(|| StateAcc {
                category: cat,
                ..StateAcc::default()
            });
            a.values.push(spent);
            a.sum += i128::from(spent);
            if rank[usize::from(cat)] < rank[usize::from(a.category)] {
                a.category = cat;
            }
        }
    }
    acc.into_iter()
        .map(|states| {
            states
                .into_iter()
                .enumerate()
                .filter_map(|(code, a)| {
                    let a = a?;
                    let code = u32::try_from(code).ok()?;
                    Some(StateTime {
                        state: tree.states.value(code)?.clone(),
                        category: tree.categories.value(u32::from(a.category))?.clone(),
                        total: seconds(a.sum),
                        per_item: distribution(a.values, a.sum),
                    })
                })
                .collect()
        })
        .collect()
}

/// For each group, per state the number of its items in the state at each
/// of [`day_ends`] of `window`; states never occupied at a day's end are
/// left out. Each visit `[from, to)` counts at the day ends `e` with
/// `from < e <= to`, as the SQL path's per-day changes.
pub fn cumulative_flow(
    tree: &Tree,
    groups: &Groups,
    filter: &Filter,
    window: Window,
) -> Vec<BTreeMap<String, Vec<usize>>> {
    let ends = day_ends(window);
    let Some(first_end) = ends.first() else {
        return (0..groups.count()).map(|_| BTreeMap::new()).collect();
    };
    let days = ends.len();
    let m0 = ms(window.from.date_naive().and_time(NaiveTime::MIN).and_utc());
    let (to, e0) = (ms(window.to), ms(*first_end));
    let states = tree.states.len() + 1;
    // Per group and state, the changes per day.
    let mut deltas: Vec<Vec<Vec<i64>>> = (0..groups.count())
        .map(|_| vec![Vec::new(); states])
        .collect();
    let o = &tree.owners;
    for s in 0..tree.slots() {
        // The unit first, as the completions' and WIP's scans do.
        let Some(g) = groups.of(o, s) else { continue };
        let (starts, state, _) = tree.entries(s);
        if starts.is_empty() {
            continue;
        }
        if !filter.matches(o, s) {
            continue;
        }
        for j in 0..starts.len() {
            let from = starts[j];
            if from >= to {
                break;
            }
            let until = starts.get(j + 1).copied().unwrap_or(OPEN);
            if state[j] == GAP || until < e0 {
                continue;
            }
            let k_in = if from < m0 { 0 } else { (from - m0) / DAY_MS };
            let d = &mut deltas[g][usize::from(state[j])];
            if d.is_empty() {
                d.resize(days, 0);
            }
            if let Some(n) = usize::try_from(k_in).ok().and_then(|k| d.get_mut(k)) {
                *n += 1;
            }
            if until < to
                && let Some(n) = usize::try_from((until - m0) / DAY_MS)
                    .ok()
                    .and_then(|k| d.get_mut(k))
            {
                *n -= 1;
            }
        }
    }
    deltas
        .into_iter()
        .map(|per_state| {
            let named: BTreeMap<String, Vec<i64>> = per_state
                .into_iter()
                .enumerate()
                .filter(|(_, d)| !d.is_empty())
                .filter_map(|(code, d)| {
                    let name = tree.states.value(u32::try_from(code).ok()?)?;
                    Some((name.clone(), d))
                })
                .collect();
            running(named)
        })
        .collect()
}
