//! Time in state (DESIGN §3.2) and the cumulative flow (§3.3) aggregated
//! from the per-visit facts (`flow_state`) inside the database: the answer
//! is a row per state, or per state and day, whatever the subtree's size.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};

use super::flow::{Scope, completed_in, seconds_of};
use super::grouped::{self, Group};
use super::{StateTime, Window};
use crate::service::facts::flow::ms;
use crate::service::sql::Sql;

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

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
    // Per completed item and state: the visits that began before the
    // completion, each cut at it.
    let per_item = format!(
        "SELECT s.state AS g, MIN(s.category) AS category, {spent} AS v \
         FROM (SELECT id, work_item_id, completed_ms FROM flow_completion WHERE {completed}) c \
         JOIN flow_state s ON s.work_item_id = c.work_item_id AND s.from_ms < c.completed_ms \
         GROUP BY c.id, s.state",
        spent = seconds_of(
            "SUM(CASE WHEN s.to_ms < c.completed_ms THEN s.to_ms ELSE c.completed_ms END - s.from_ms)"
        ),
    );
    let groups: Vec<Group<String>> = grouped::by_group(
        db,
        sql.values(),
        &per_item,
        &["v"],
        &[],
        ", MIN(category) AS category",
    )
    .await?;
    groups
        .into_iter()
        .map(|g| {
            Ok(StateTime {
                category: g.row.try_get("", "category")?,
                state: g.key,
                total: g.sums[0],
                per_item: g.dists[0],
            })
        })
        .collect()
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
    let ends = day_ends(window);
    let Some(first_end) = ends.first() else {
        return Ok(BTreeMap::new());
    };
    let midnight = window.from.date_naive().and_time(NaiveTime::MIN).and_utc();
    let mut sql = Sql::new(db.get_database_backend());
    let cond = scope.condition(&mut sql);
    let m0 = sql.bind(ms(midnight));
    let day = sql.bind(DAY_MS);
    let to = sql.bind(ms(window.to));
    let e0 = sql.bind(ms(*first_end));
    sql.push(&format!(
        "SELECT state, CASE WHEN d.sign = 1 THEN f.k_in ELSE f.k_out END AS k, \
         SUM(d.sign) AS n \
         FROM (SELECT state, \
                 CASE WHEN from_ms < {m0} THEN 0 ELSE (from_ms - {m0}) / {day} END AS k_in, \
                 CASE WHEN to_ms >= {to} THEN -1 ELSE (to_ms - {m0}) / {day} END AS k_out \
               FROM flow_state WHERE {cond} AND from_ms < {to} AND to_ms >= {e0}) f \
         CROSS JOIN (SELECT 1 AS sign UNION ALL SELECT -1 AS sign) d \
         WHERE d.sign = 1 OR f.k_out >= 0 \
         GROUP BY state, k"
    ));
    let mut deltas: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for row in db.query_all_raw(sql.statement()).await? {
        let state: String = row.try_get("", "state")?;
        let k: i64 = row.try_get("", "k")?;
        let n: i64 = row.try_get("", "n")?;
        let Some(k) = usize::try_from(k).ok().filter(|k| *k < ends.len()) else {
            continue;
        };
        deltas.entry(state).or_insert_with(|| vec![0; ends.len()])[k] += n;
    }
    Ok(deltas
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
        .collect())
}

/// The UTC date of the day ending at `end`.
pub fn date_of(end: DateTime<Utc>) -> chrono::NaiveDate {
    (end - Duration::nanoseconds(1)).date_naive()
}
