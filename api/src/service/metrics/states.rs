//! Time in state (DESIGN §3.2) and the cumulative flow (§3.3) aggregated
//! from the per-visit facts (`flow_state`) inside the database: the answer
//! is a row per state, or per state and day, whatever the subtree's size.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};

use super::flow::{Scope, completed_in, seconds_of};
use super::grouped::{self, Group};
use super::{StateTime, Window};
use crate::service::facts::flow::ms;
use crate::service::sql::Sql;

/// Milliseconds in a day.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// For each state visited by an item completed in `window` (before its
/// completion), the time spent there between creation and completion,
/// every visit summed; in no particular order.
///
/// # Errors
/// Database errors only.
pub async fn time_in_state(
    db: &DatabaseConnection,
    scope: &Scope<'_>,
    window: Window,
) -> Result<Vec<StateTime>, DbErr> {
    let mut sql = Sql::new(db.get_database_backend());
    let completed = completed_in(&mut sql, scope, window);
    let groups: Vec<Group<String>> = grouped::by_group(
        db,
        sql.values(),
        &per_item(&completed, None),
        &["v"],
        &["ms"],
        ", MIN(category) AS category",
    )
    .await?;
    groups
        .into_iter()
        .map(|g| state_time(g.key.clone(), g))
        .collect()
}

/// [`time_in_state`] of several units in one statement: the completions
/// `completed` selects (a condition on `flow_completion`, bound in `sql`)
/// by the unit in their `column`.
///
/// # Errors
/// Database errors only.
pub(crate) async fn time_in_state_by_unit(
    db: &DatabaseConnection,
    sql: &Sql,
    completed: &str,
    column: &str,
) -> Result<HashMap<i64, Vec<StateTime>>, DbErr> {
    let groups: Vec<Group<String>> = grouped::by_group(
        db,
        sql.values(),
        &per_item(completed, Some(column)),
        &["v"],
        &["ms"],
        ", MIN(category) AS category",
    )
    .await?;
    let mut out: HashMap<i64, Vec<StateTime>> = HashMap::new();
    for g in groups {
        // The group is "unit:state".
        let Some((unit, state)) = g.key.split_once(':') else {
            continue;
        };
        let Ok(unit) = unit.parse::<i64>() else {
            continue;
        };
        let state = state.to_owned();
        out.entry(unit).or_default().push(state_time(state, g)?);
    }
    Ok(out)
}

/// An item's milliseconds in a state before its completion.
const SPENT_MS: &str =
    "SUM(CASE WHEN s.to_ms < c.completed_ms THEN s.to_ms ELSE c.completed_ms END - s.from_ms)";

/// Per completed item and state: the visits that began before the
/// completion, each cut at it, as the column `v` of groups `g` (the state,
/// or with `unit` the facts column's unit and the state as "unit:state"),
/// and the same in integer milliseconds as `ms`, for an exact total and
/// mean whatever the order of the rows.
fn per_item(completed: &str, unit: Option<&str>) -> String {
    let (select_unit, group, by_unit) = match unit {
        Some(column) => (
            format!(", {column} AS u"),
            "CAST(c.u AS TEXT) || ':' || s.state",
            ", c.u",
        ),
        None => (String::new(), "s.state", ""),
    };
    format!(
        "SELECT {group} AS g, MIN(s.category) AS category, {spent} AS v, {ms} AS ms \
         FROM (SELECT id, work_item_id, completed_ms{select_unit} FROM flow_completion \
               WHERE {completed}) c \
         JOIN flow_state s ON s.work_item_id = c.work_item_id AND s.from_ms < c.completed_ms \
         GROUP BY c.id{by_unit}, s.state",
        spent = seconds_of(SPENT_MS),
        ms = SPENT_MS,
    )
}

fn state_time(state: String, g: Group<String>) -> Result<StateTime, DbErr> {
    Ok(StateTime {
        category: g.row.try_get("", "category")?,
        state,
        total: g.sums[0],
        per_item: g.dists[0],
    })
}

/// The end of each UTC day the window touches: the next midnight, or the
/// window's end for its last, partial day.
pub fn day_ends(window: Window) -> Vec<DateTime<Utc>> {
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

/// For each state, the number of items in it at each of [`day_ends`]
/// (an item is in the state its last transition before the instant
/// entered). States never occupied at a day's end are left out.
///
/// Each visit `[from, to)` counts at the day ends `e` with
/// `from < e <= to`: it adds one from the first day ending after `from`
/// and takes it away from the first day ending after `to`. The database
/// sums those changes per state and day; the running sum is taken here.
///
/// # Errors
/// Database errors only.
pub async fn cumulative_flow(
    db: &DatabaseConnection,
    scope: &Scope<'_>,
    window: Window,
) -> Result<BTreeMap<String, Vec<usize>>, DbErr> {
    let mut sql = Sql::new(db.get_database_backend());
    let cond = scope.condition(&mut sql);
    Ok(cumulative_flow_of(db, sql, &cond, None, window)
        .await?
        .remove(&0)
        .unwrap_or_default())
}

/// [`cumulative_flow`] of several units in one statement: the visits
/// `cond` selects (a condition on `flow_state`, bound in `sql`) by the unit
/// in their `column`.
///
/// # Errors
/// Database errors only.
pub(crate) async fn cumulative_flow_by_unit(
    db: &DatabaseConnection,
    sql: Sql,
    cond: &str,
    column: &str,
    window: Window,
) -> Result<HashMap<i64, BTreeMap<String, Vec<usize>>>, DbErr> {
    cumulative_flow_of(db, sql, cond, Some(column), window).await
}

/// The cumulative flow per unit of `column` (all under 0 without one).
async fn cumulative_flow_of(
    db: &DatabaseConnection,
    mut sql: Sql,
    cond: &str,
    column: Option<&str>,
    window: Window,
) -> Result<HashMap<i64, BTreeMap<String, Vec<usize>>>, DbErr> {
    let ends = day_ends(window);
    let Some(first_end) = ends.first() else {
        return Ok(HashMap::new());
    };
    let midnight = window.from.date_naive().and_time(NaiveTime::MIN).and_utc();
    let m0 = sql.bind(ms(midnight));
    let day = sql.bind(DAY_MS);
    let to = sql.bind(ms(window.to));
    let e0 = sql.bind(ms(*first_end));
    let unit = column.unwrap_or("CAST(0 AS BIGINT)");
    sql.push(&format!(
        "SELECT f.u AS u, state, CASE WHEN d.sign = 1 THEN f.k_in ELSE f.k_out END AS k, \
         SUM(d.sign) AS n \
         FROM (SELECT {unit} AS u, state, \
                 CASE WHEN from_ms < {m0} THEN 0 ELSE (from_ms - {m0}) / {day} END AS k_in, \
                 CASE WHEN to_ms >= {to} THEN -1 ELSE (to_ms - {m0}) / {day} END AS k_out \
               FROM flow_state WHERE {cond} AND from_ms < {to} AND to_ms >= {e0}) f \
         CROSS JOIN (SELECT 1 AS sign UNION ALL SELECT -1 AS sign) d \
         WHERE d.sign = 1 OR f.k_out >= 0 \
         GROUP BY f.u, state, k"
    ));
    let mut deltas: HashMap<i64, BTreeMap<String, Vec<i64>>> = HashMap::new();
    for row in db.query_all_raw(sql.statement()).await? {
        let unit: i64 = row.try_get("", "u")?;
        let state: String = row.try_get("", "state")?;
        let k: i64 = row.try_get("", "k")?;
        let n: i64 = row.try_get("", "n")?;
        let Some(k) = usize::try_from(k).ok().filter(|k| *k < ends.len()) else {
            continue;
        };
        deltas
            .entry(unit)
            .or_default()
            .entry(state)
            .or_insert_with(|| vec![0; ends.len()])[k] += n;
    }
    Ok(deltas
        .into_iter()
        .map(|(unit, states)| (unit, running(states)))
        .collect())
}

/// Per state, the running sums of the per-day changes; states never
/// occupied at a day's end are left out.
pub(crate) fn running(deltas: BTreeMap<String, Vec<i64>>) -> BTreeMap<String, Vec<usize>> {
    deltas
        .into_iter()
        .filter_map(|(state, d)| {
            let counts: Vec<usize> = d
                .iter()
                .scan(0i64, |sum, n| {
                    *sum += n;
                    Some(usize::try_from(*sum).unwrap_or(0))
                })
                .collect();
            counts.iter().any(|n| *n > 0).then_some((state, counts))
        })
        .collect()
}

/// The UTC date of the day ending at `end`.
pub fn date_of(end: DateTime<Utc>) -> chrono::NaiveDate {
    (end - Duration::nanoseconds(1)).date_naive()
}
