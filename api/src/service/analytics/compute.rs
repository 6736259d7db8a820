//! The completions and WIP parts of flow metrics (DESIGN §3.1) from the
//! columns, exactly as the SQL path ([`crate::service::metrics::flow`])
//! computes them: the same rows, durations as integer milliseconds turned
//! into seconds the way the statements do, sums of integers (so the order
//! of the rows does not matter), continuous percentiles of the same values
//! found by selection rather than by sorting.

use super::columns::{Facts, NO_START, Owners};
use super::tree::Tree;
use crate::domain::UnitKind;
use crate::policy::UnitPath;
use crate::service::Reach;
use crate::service::facts::flow::ms;
use crate::service::metrics::flow::{Completions, MONDAY_SHIFT_MS, Scope, WEEK_MS, Wip, tally};
use crate::service::metrics::stats::{Distribution, PERCENTILES};
use crate::service::metrics::{MetricFilter, Ratio, Window};

/// The owner column a query matches a unit on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitCol {
    Unit,
    Portfolio,
    Program,
    Team,
}

impl UnitCol {
    /// The column holding a unit of `kind` for `reach`; `None` for the
    /// organisation's subtree (every row).
    pub fn of(reach: Reach, kind: UnitKind) -> Option<Self> {
        match (reach, kind) {
            (Reach::UnitOnly, _) => Some(Self::Unit),
            (Reach::Subtree, UnitKind::Organization) => None,
            (Reach::Subtree, UnitKind::Portfolio) => Some(Self::Portfolio),
            (Reach::Subtree, UnitKind::Program) => Some(Self::Program),
            (Reach::Subtree, UnitKind::Team) => Some(Self::Team),
        }
    }

    fn column(self, o: &Owners) -> &[u32] {
        match self {
            Self::Unit => &o.unit,
            Self::Portfolio => &o.portfolio,
            Self::Program => &o.program,
            Self::Team => &o.team,
        }
    }
}

/// A filter's conditions as codes.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    types: Option<Vec<u32>>,
    flow_types: Option<Vec<u32>>,
    levels: Option<Vec<u32>>,
}

impl Filter {
    /// `None` for what the columns do not hold (an objective's leaves).
    pub fn of(filter: &MetricFilter, facts: &Facts) -> Option<Self> {
        if filter.leaves_of.is_some() {
            return None;
        }
        let codes = |names: Option<Vec<&'static str>>| {
            names.map(|names| {
                names
                    .into_iter()
                    .filter_map(|n| facts.dicts.names.get(&n.to_owned()))
                    .collect::<Vec<u32>>()
            })
        };
        Some(Self {
            types: codes(
                filter
                    .types
                    .as_ref()
                    .map(|t| t.iter().map(|t| t.as_str()).collect()),
            ),
            flow_types: codes(
                filter
                    .flow_types
                    .as_ref()
                    .map(|t| t.iter().map(|t| t.as_str()).collect()),
            ),
            levels: codes(
                filter
                    .levels
                    .as_ref()
                    .map(|t| t.iter().map(|t| t.as_str()).collect()),
            ),
        })
    }

    pub(super) fn matches(&self, o: &Owners, i: usize) -> bool {
        let ok = |list: &Option<Vec<u32>>, v: u32| list.as_ref().is_none_or(|l| l.contains(&v));
        ok(&self.types, o.item_type[i])
            && ok(&self.flow_types, o.flow_type[i])
            && ok(&self.levels, o.level[i])
    }
}

/// Which rows belong to which group: a slot per unit code.
pub struct Groups {
    col: Option<UnitCol>,
    /// Per unit code, its group's index + 1 (0: none).
    slot: Vec<u32>,
    count: usize,
}

impl Groups {
    /// One group: `scope`'s unit (or every row for the organisation).
    pub fn one(scope: &Scope<'_>, facts: &Facts) -> Self {
        let col = UnitCol::of(scope.filter.reach, scope.unit.kind);
        let mut g = Self {
            col,
            slot: vec![0; facts.dicts.units.len() + 1],
            count: 1,
        };
        if let Some(code) = facts.dicts.units.get(&scope.unit.id)
            && let Some(s) = g.slot.get_mut(code as usize)
        {
            *s = 1;
        }
        g
    }

    /// A group per unit of `ids`, matched on `col`.
    pub fn many(col: UnitCol, ids: &[i64], facts: &Facts) -> Self {
        let mut slot = vec![0; facts.dicts.units.len() + 1];
        for (i, id) in ids.iter().enumerate() {
            if let Some(code) = facts.dicts.units.get(id)
                && let Some(s) = slot.get_mut(code as usize)
            {
                *s = u32::try_from(i + 1).unwrap_or(0);
            }
        }
        Self {
            col: Some(col),
            slot,
            count: ids.len(),
        }
    }

    /// Groups told apart.
    pub(super) fn count(&self) -> usize {
        self.count
    }

    /// The group of row `i`.
    pub(super) fn of(&self, o: &Owners, i: usize) -> Option<usize> {
        let Some(col) = self.col else {
            return Some(0);
        };
        let code = col.column(o)[i];
        match self.slot.get(code as usize) {
            Some(&s) if s > 0 => Some(s as usize - 1),
            _ => None,
        }
    }
}

/// The completion rows inside `window` and still done at its end, that
/// `filter` keeps, with their group.
pub(super) fn completed_in<'a>(
    facts: &'a Facts,
    groups: &'a Groups,
    filter: &'a Filter,
    window: Window,
) -> impl Iterator<Item = (usize, usize)> + 'a {
    let (from, to) = (ms(window.from), ms(window.to));
    let c = &facts.completions;
    let o = &c.owners;
    // The unit first: one small column, and for a team or a program far
    // more selective than the window.
    (0..c.len()).filter_map(move |i| {
        let g = groups.of(o, i)?;
        let done = c.completed[i];
        if done < from || done >= to || c.left[i] < to {
            return None;
        }
        filter.matches(o, i).then_some((i, g))
    })
}

/// What one group gathers of its completions.
#[derive(Default)]
struct CompletionAcc {
    /// Per week of the window (from its first) and flow type code.
    counts: Vec<usize>,
    lead: Vec<i64>,
    lead_sum: i128,
    cycle: Vec<i64>,
    cycle_sum: i128,
    active: i128,
}

/// Throughput, distribution, lead and cycle time and flow efficiency of
/// each group over `window`: the completions inside it still in `DONE` at
/// its end.
pub fn completions(
    facts: &Facts,
    groups: &Groups,
    filter: &Filter,
    window: Window,
) -> Vec<Completions> {
    let (from, to) = (ms(window.from), ms(window.to));
    let c = &facts.completions;
    let o = &c.owners;
    // Weeks since the epoch's Monday grow with the instant: the window's
    // completions fall between the weeks of its first and last instants.
    let first_week = (from + MONDAY_SHIFT_MS) / WEEK_MS;
    let weeks = usize::try_from((to - 1 + MONDAY_SHIFT_MS) / WEEK_MS - first_week + 1).unwrap_or(0);
    let codes = facts.dicts.names.len() + 1;
    let mut acc: Vec<CompletionAcc> = (0..groups.count)
        .map(|_| CompletionAcc {
            counts: vec![0; weeks * codes],
            ..CompletionAcc::default()
        })
        .collect();
    for (i, g) in completed_in(facts, groups, filter, window) {
        let done = c.completed[i];
        let a = &mut acc[g];
        let week = usize::try_from((done + MONDAY_SHIFT_MS) / WEEK_MS - first_week).unwrap_or(0);
        a.counts[week * codes + o.flow_type[i] as usize] += 1;
        let lead = done - c.created[i];
        a.lead.push(lead);
        a.lead_sum += i128::from(lead);
        let start = c.start[i];
        if start != NO_START {
            let cycle = done - start;
            a.cycle.push(cycle);
            a.cycle_sum += i128::from(cycle);
            a.active += i128::from(c.active[i]);
        }
    }
    acc.into_iter()
        .map(|a| {
            let rows = a
                .counts
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| {
                    let flow = u32::try_from(k % codes).unwrap_or(0);
                    let name = facts.dicts.names.value(flow).cloned().unwrap_or_default();
                    (name, first_week + (k / codes) as i64, *n)
                });
            let mut out = tally(rows);
            out.flow_efficiency = Ratio {
                numerator: seconds(a.active),
                denominator: seconds(a.cycle_sum),
            };
            out.lead_time = distribution(a.lead, a.lead_sum);
            out.cycle_time = distribution(a.cycle, a.cycle_sum);
            out
        })
        .collect()
}

/// What one group gathers of its stretches in progress.
#[derive(Default)]
struct WipAcc {
    at_end: usize,
    overlap: i128,
    ages: Vec<i64>,
    age_sum: i128,
}

/// WIP at the end, time-weighted average WIP and aging of each group.
pub fn wip(facts: &Facts, groups: &Groups, filter: &Filter, window: Window) -> Vec<Wip> {
    let (from, to) = (ms(window.from), ms(window.to));
    let w = &facts.wip;
    let o = &w.owners;
    let mut acc: Vec<WipAcc> = (0..groups.count).map(|_| WipAcc::default()).collect();
    for i in 0..w.len() {
        // The unit first, as in `completed_in`.
        let Some(g) = groups.of(o, i) else { continue };
        let (a, b) = (w.from[i], w.to[i]);
        if b <= from || a >= to {
            continue;
        }
        if !filter.matches(o, i) {
            continue;
        }
        let x = &mut acc[g];
        x.overlap += i128::from(b.min(to) - a.max(from));
        if b >= to {
            x.at_end += 1;
            let age = to - w.start[i];
            x.ages.push(age);
            x.age_sum += i128::from(age);
        }
    }
    let length = (to - from) as f64 / 1000.0;
    acc.into_iter()
        .map(|x| Wip {
            at_end: x.at_end,
            average: seconds(x.overlap) / length,
            aging: distribution(x.ages, x.age_sum),
        })
        .collect()
}

/// Milliseconds as seconds, as `CAST(ms AS DOUBLE PRECISION) / 1000`.
pub(super) fn seconds(ms: i128) -> f64 {
    ms as f64 / 1000.0
}

/// The distribution of durations in milliseconds, in seconds: the mean is
/// the exact sum over the count, the percentiles interpolate between the
/// two closest ranks found by selection.
pub(super) fn distribution(mut values: Vec<i64>, sum: i128) -> Distribution {
    let n = values.len();
    if n == 0 {
        return Distribution::default();
    }
    let mut p = [0.0; 3];
    // Ranks only grow from one percentile to the next: each selection
    // works on what lies above the previous one.
    let mut base = 0usize;
    for (k, pct) in PERCENTILES.iter().enumerate() {
        let r = pct * (n - 1) as f64;
        let (lo, hi) = (r.floor() as usize, r.ceil() as usize);
        let (_, at, above) = values[base..].select_nth_unstable(lo - base);
        let low = *at;
        let high = if hi > lo {
            above.iter().copied().min().unwrap_or(low)
        } else {
            low
        };
        let (low, high) = (seconds(i128::from(low)), seconds(i128::from(high)));
        p[k] = low + (high - low) * r.fract();
        base = lo;
    }
    let (min, max) = values
        .iter()
        .fold((i64::MAX, i64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
    Distribution {
        count: n,
        mean: Some(seconds(sum) / n as f64),
        p50: Some(p[0]),
        p85: Some(p[1]),
        p95: Some(p[2]),
        min: Some(seconds(i128::from(min))),
        max: Some(seconds(i128::from(max))),
    }
}

/// Per day from `from` (`days` of them, the last maybe partial, ending at
/// `to`), the completions of leaf items (no children in `tree`) inside
/// `[from, to)` and still done at `to`, owned in the subtree of one of
/// `units`: a forecast's sample (DESIGN §3.8), as the SQL path counts it.
pub fn daily_leaf_throughput(
    facts: &Facts,
    tree: &Tree,
    units: &[UnitPath],
    (from, to): (i64, i64),
    days: usize,
) -> Vec<u32> {
    const DAY_MS: i64 = 86_400_000;
    let mut out = vec![0u32; days];
    if units.is_empty() || days == 0 {
        return out;
    }
    // Per column, the unit codes whose subtree counts; every row for the
    // organisation.
    let n = facts.dicts.units.len() + 1;
    let mut wanted = [vec![false; n], vec![false; n], vec![false; n]];
    let mut everything = false;
    for u in units {
        let column = match u.kind {
            UnitKind::Organization => {
                everything = true;
                continue;
            }
            UnitKind::Portfolio => 0,
            UnitKind::Program => 1,
            UnitKind::Team => 2,
        };
        if let Some(code) = facts.dicts.units.get(&u.id) {
            wanted[column][code as usize] = true;
        }
    }
    let c = &facts.completions;
    let o = &c.owners;
    for i in 0..c.len() {
        let done = c.completed[i];
        if done < from || done >= to || c.left[i] < to {
            continue;
        }
        let ours = everything
            || wanted[0][o.portfolio[i] as usize]
            || wanted[1][o.program[i] as usize]
            || wanted[2][o.team[i] as usize];
        if !ours || !tree.is_leaf(o.item[i]) {
            continue;
        }
        if let Some(slot) = usize::try_from((done - from) / DAY_MS)
            .ok()
            .and_then(|d| out.get_mut(d))
        {
            *slot = slot.saturating_add(1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::metrics::stats::RankPicker;

    #[test]
    fn selection_gives_the_sorted_percentiles() {
        for n in 1..60usize {
            let values: Vec<i64> = (0..n).map(|i| ((i * 7919) % 103) as i64 * 1337).collect();
            let mut sorted = values.clone();
            sorted.sort_unstable();
            let mut picker = RankPicker::new(n);
            for v in &sorted {
                if !picker.feed(*v as f64 / 1000.0) {
                    break;
                }
            }
            let sum: i128 = values.iter().map(|v| i128::from(*v)).sum();
            let d = distribution(values, sum);
            assert_eq!([d.p50, d.p85, d.p95], picker.finish().map(Some), "{n}");
            assert_eq!(d.min, Some(sorted[0] as f64 / 1000.0));
            assert_eq!(d.max, Some(sorted[n - 1] as f64 / 1000.0));
            assert_eq!(d.mean, Some(sum as f64 / 1000.0 / n as f64));
        }
        assert_eq!(distribution(Vec::new(), 0), Distribution::default());
    }
}
