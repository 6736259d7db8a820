//! Flow metrics of DESIGN §3.1 aggregated from the per-item facts
//! ([`crate::service::facts`]) inside the database: counts, sums and percentiles
//! come back as a handful of rows whatever the subtree's size.
//!
//! PostgreSQL computes the continuous percentiles with `percentile_cont`;
//! SQLite, which has none, sorts the values and the server reads them as a
//! stream, keeping only the ranks it needs.

use chrono::{DateTime, NaiveTime, Utc};
use futures::TryStreamExt;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, QueryResult, Statement, StreamTrait};

use super::stats::{Distribution, PERCENTILES, RankPicker};
use super::{MetricFilter, Ratio, WeekCount, Window};
use crate::domain::{FlowType, UnitKind};
use crate::policy::UnitPath;
use crate::service::Reach;
use crate::service::facts::flow::ms;
use crate::service::sql::Sql;

/// Milliseconds in a week.
pub(crate) const WEEK_MS: i64 = 7 * 86_400_000;
/// 1970-01-01 was a Thursday: shifting by three days makes weeks start on
/// Mondays (ISO 8601).
pub(crate) const MONDAY_SHIFT_MS: i64 = 3 * 86_400_000;

/// What the facts rows of a metric must match: the unit (or its subtree)
/// and the filter.
pub struct Scope<'a> {
    pub unit: &'a UnitPath,
    pub filter: &'a MetricFilter,
}

impl Scope<'_> {
    /// The `WHERE` conditions (joined by `AND`) for a facts table.
    pub(super) fn condition(&self, sql: &mut Sql) -> String {
        let mut parts = line_condition(sql, "", &[self.unit], self.filter.reach);
        let mut list = |column: &str, names: Option<Vec<&'static str>>| {
            if let Some(names) = names {
                if names.is_empty() {
                    parts.push("1 = 0".to_owned());
                } else {
                    let marks: Vec<String> = names.into_iter().map(|n| sql.bind(n)).collect();
                    parts.push(format!("{column} IN ({})", marks.join(", ")));
                }
            }
        };
        list(
            "item_type",
            self.filter
                .types
                .as_ref()
                .map(|t| t.iter().map(|t| t.as_str()).collect()),
        );
        list(
            "flow_type",
            self.filter
                .flow_types
                .as_ref()
                .map(|t| t.iter().map(|t| t.as_str()).collect()),
        );
        list(
            "level",
            self.filter
                .levels
                .as_ref()
                .map(|t| t.iter().map(|t| t.as_str()).collect()),
        );
        if let Some(roots) = &self.filter.leaves_of {
            let marks: Vec<String> = roots.iter().map(|id| sql.bind(*id)).collect();
            parts.push(format!("work_item_id IN ({})", super::leaves_below(&marks)));
        }
        if parts.is_empty() {
            "1 = 1".to_owned()
        } else {
            parts.join(" AND ")
        }
    }
}

/// The facts' line columns, top down: the prefix of their line index.
const LINE: [&str; 3] = ["portfolio_id", "program_id", "team_id"];

/// The line of a unit, top down: its portfolio, program and team, as
/// many as its kind has (none for the organisation); `None` when its
/// ancestors do not match its kind.
fn line_of(unit: &UnitPath) -> Option<Vec<i64>> {
    let depth = match unit.kind {
        UnitKind::Organization => 0,
        UnitKind::Portfolio => 1,
        UnitKind::Program => 2,
        UnitKind::Team => 3,
    };
    if depth == 0 {
        return Some(Vec::new());
    }
    // Ancestors come farthest first: the organisation, then the line.
    (unit.ancestors.len() == depth).then(|| {
        let mut line: Vec<i64> = unit.ancestors[1..].to_vec();
        line.push(unit.id);
        line
    })
}

/// The conditions on a facts table (its columns prefixed by `prefix`)
/// that select the rows of `units` — each unit with its subtree, or its
/// own rows for [`Reach::UnitOnly`] — written as a prefix of the line
/// index `(portfolio_id, program_id, team_id, time)`: a value set per
/// level down to the units', then `NULL` below them for their own rows.
/// The units are of one kind; the conditions are joined by `AND`, none
/// for the organisation's subtree.
pub(crate) fn line_condition(
    sql: &mut Sql,
    prefix: &str,
    units: &[&UnitPath],
    reach: Reach,
) -> Vec<String> {
    let mut parts = Vec::new();
    if units.is_empty() {
        parts.push("1 = 0".to_owned());
        return parts;
    }
    let lines: Option<Vec<Vec<i64>>> = units.iter().map(|u| line_of(u)).collect();
    let depth = lines.as_ref().and_then(|l| l.first()).map(Vec::len);
    let ids = |sql: &mut Sql, ids: &mut dyn Iterator<Item = i64>| {
        let mut seen = Vec::new();
        for id in ids {
            if !seen.contains(&id) {
                seen.push(id);
            }
        }
        let marks: Vec<String> = seen.into_iter().map(|id| sql.bind(id)).collect();
        if let [one] = marks.as_slice() {
            format!("= {one}")
        } else {
            format!("IN ({})", marks.join(", "))
        }
    };
    match (lines, depth) {
        (Some(lines), Some(depth)) if lines.iter().all(|l| l.len() == depth) => {
            for (level, column) in LINE.iter().enumerate().take(depth) {
                let set = ids(sql, &mut lines.iter().map(|l| l[level]));
                parts.push(format!("{prefix}{column} {set}"));
            }
            if reach == Reach::UnitOnly {
                for column in &LINE[depth..] {
                    parts.push(format!("{prefix}{column} IS NULL"));
                }
            }
        }
        // Not one kind, or a line that does not match its kind: each unit's
        // own column, correct without the index.
        _ if reach == Reach::UnitOnly => {}
        _ if units.iter().any(|u| u.kind == UnitKind::Organization) => return parts,
        _ => {
            let mut any = Vec::new();
            for (kind, column) in [
                (UnitKind::Portfolio, LINE[0]),
                (UnitKind::Program, LINE[1]),
                (UnitKind::Team, LINE[2]),
            ] {
                let mut of_kind = units
                    .iter()
                    .filter(|u| u.kind == kind)
                    .map(|u| u.id)
                    .peekable();
                if of_kind.peek().is_some() {
                    any.push(format!("{prefix}{column} {}", ids(sql, &mut of_kind)));
                }
            }
            parts.push(if let [one] = any.as_slice() {
                one.clone()
            } else {
                format!("({})", any.join(" OR "))
            });
        }
    }
    if reach == Reach::UnitOnly {
        let set = ids(sql, &mut units.iter().map(|u| u.id));
        parts.push(format!("{prefix}unit_id {set}"));
    }
    parts
}

/// Throughput, distribution, lead and cycle time, flow efficiency.
#[derive(Clone, Debug, Default)]
pub struct Completions {
    pub throughput: usize,
    pub by_flow_type: Vec<(FlowType, usize)>,
    pub by_week: Vec<WeekCount>,
    pub lead_time: Distribution,
    pub cycle_time: Distribution,
    pub flow_efficiency: Ratio,
}

impl Default for Ratio {
    fn default() -> Self {
        Self {
            numerator: 0.0,
            denominator: 0.0,
        }
    }
}

/// WIP at the window's end, time-weighted average WIP and aging.
#[derive(Clone, Debug, Default)]
pub struct Wip {
    pub at_end: usize,
    pub average: f64,
    pub aging: Distribution,
}

pub(super) fn seconds_of(expr: &str) -> String {
    format!("CAST({expr} AS DOUBLE PRECISION) / 1000")
}

/// The sum in seconds of the milliseconds in column `ms`: an exact integer
/// whatever the order of the rows, then in seconds.
pub(super) fn exact_sum(ms: &str) -> String {
    format!("CAST(SUM({ms}) AS DOUBLE PRECISION) / 1000")
}

/// The mean in seconds of the milliseconds in column `ms`: their sum, an
/// exact integer whatever the order of the rows, in seconds, over their
/// count (null for none). The in-memory path computes the same.
pub(super) fn exact_mean(ms: &str) -> String {
    format!("CAST(SUM({ms}) AS DOUBLE PRECISION) / 1000 / NULLIF(COUNT({ms}), 0)")
}

/// The completions in `window`: entered `DONE` inside it and still there at
/// its end.
pub(super) fn completed_in(sql: &mut Sql, scope: &Scope<'_>, window: Window) -> String {
    let cond = scope.condition(sql);
    let from = sql.bind(ms(window.from));
    let to = sql.bind(ms(window.to));
    format!("{cond} AND completed_ms >= {from} AND completed_ms < {to} AND left_ms >= {to}")
}

/// # Errors
/// Database errors only.
pub async fn completions(
    db: &DatabaseConnection,
    scope: &Scope<'_>,
    window: Window,
) -> Result<Completions, DbErr> {
    // Two statements, each a scan of the window's completions, run side by
    // side on two connections.
    let (mut out, (lead_time, cycle_time, flow_efficiency)) =
        futures::try_join!(counts(db, scope, window), durations(db, scope, window))?;
    out.lead_time = lead_time;
    out.cycle_time = cycle_time;
    out.flow_efficiency = flow_efficiency;
    Ok(out)
}

/// Throughput in all, per flow type and per ISO week.
async fn counts(
    db: &DatabaseConnection,
    scope: &Scope<'_>,
    window: Window,
) -> Result<Completions, DbErr> {
    let backend = db.get_database_backend();
    let mut sql = Sql::new(backend);
    let cond = completed_in(&mut sql, scope, window);
    let shift = sql.bind(MONDAY_SHIFT_MS);
    let week = sql.bind(WEEK_MS);
    sql.push(&format!(
        "SELECT flow_type, (completed_ms + {shift}) / {week} AS wk, COUNT(*) AS n \
         FROM flow_completion WHERE {cond} GROUP BY flow_type, wk"
    ));
    let mut rows = Vec::new();
    for row in db.query_all_raw(sql.statement()).await? {
        rows.push((
            row.try_get::<String>("", "flow_type")?,
            row.try_get::<i64>("", "wk")?,
            usize::try_from(row.try_get::<i64>("", "n")?).unwrap_or(0),
        ));
    }
    Ok(tally(rows))
}

/// Throughput in all, per flow type and per ISO week, from completions
/// counted per (flow type, week since the epoch's Monday).
pub(crate) fn tally(rows: impl IntoIterator<Item = (String, i64, usize)>) -> Completions {
    let mut out = Completions::default();
    let mut by_flow = [0usize; 4];
    let mut weeks: std::collections::BTreeMap<i64, usize> = std::collections::BTreeMap::new();
    for (flow, wk, n) in rows {
        out.throughput += n;
        if let Some(i) = FlowType::ALL.iter().position(|f| f.as_str() == flow) {
            by_flow[i] += n;
        }
        *weeks.entry(wk).or_default() += n;
    }
    out.by_flow_type = FlowType::ALL.iter().copied().zip(by_flow).collect();
    out.by_week = weeks
        .into_iter()
        .filter_map(|(wk, count)| {
            let monday = DateTime::<Utc>::from_timestamp_millis(wk * WEEK_MS - MONDAY_SHIFT_MS)?;
            let iso = chrono::Datelike::iso_week(&monday);
            Some(WeekCount {
                week: format!("{}-W{:02}", iso.year(), iso.week()),
                start: monday.date_naive().and_time(NaiveTime::MIN).and_utc(),
                count,
            })
        })
        .collect();
    out
}

/// Lead time, cycle time and flow efficiency.
async fn durations(
    db: &DatabaseConnection,
    scope: &Scope<'_>,
    window: Window,
) -> Result<(Distribution, Distribution, Ratio), DbErr> {
    let backend = db.get_database_backend();
    let mut out = Completions::default();
    let mut sql = Sql::new(backend);
    let cond = completed_in(&mut sql, scope, window);
    let lead = seconds_of("completed_ms - created_ms");
    let cycle = seconds_of("completed_ms - start_ms");
    let inner = format!(
        "SELECT {lead} AS lead, {cycle} AS cycle, completed_ms - created_ms AS lead_ms, \
         completed_ms - start_ms AS cycle_ms, active_ms, start_ms, completed_ms \
         FROM flow_completion WHERE {cond}"
    );
    let pg = sql.pg();
    let pct = |col: &str| {
        if pg {
            format!(
                ", percentile_cont(ARRAY[0.5, 0.85, 0.95]::float8[]) WITHIN GROUP (ORDER BY {col}) AS {col}_p"
            )
        } else {
            String::new()
        }
    };
    sql.push(&format!(
        "SELECT COUNT(lead) AS lead_n, {lead_mean} AS lead_mean, MIN(lead) AS lead_min, \
         MAX(lead) AS lead_max{lp}, COUNT(cycle) AS cycle_n, {cycle_mean} AS cycle_mean, \
         MIN(cycle) AS cycle_min, MAX(cycle) AS cycle_max{cp}, \
         {active} AS active, {flow} AS flow FROM ({inner}) f",
        lp = pct("lead"),
        cp = pct("cycle"),
        lead_mean = exact_mean("lead_ms"),
        cycle_mean = exact_mean("cycle_ms"),
        active = seconds_of("SUM(CASE WHEN start_ms IS NULL THEN 0 ELSE active_ms END)"),
        flow = seconds_of("SUM(completed_ms - start_ms)"),
    ));
    if let Some(row) = db.query_one_raw(sql.statement()).await? {
        out.lead_time = distribution(&row, "lead", pg)?;
        out.cycle_time = distribution(&row, "cycle", pg)?;
        out.flow_efficiency = Ratio {
            numerator: row.try_get::<Option<f64>>("", "active")?.unwrap_or(0.0),
            denominator: row.try_get::<Option<f64>>("", "flow")?.unwrap_or(0.0),
        };
        if !pg {
            for (name, d) in [("lead", &mut out.lead_time), ("cycle", &mut out.cycle_time)] {
                if d.count > 0 {
                    let mut sorted = Sql::new(backend);
                    sorted.values.clone_from(&sql.values);
                    sorted.push(&format!(
                        "SELECT {name} AS v FROM ({inner}) f WHERE {name} IS NOT NULL ORDER BY v"
                    ));
                    set_percentiles(
                        d,
                        sorted_percentiles(db, sorted.statement(), d.count).await?,
                    );
                }
            }
        }
    }
    Ok((out.lead_time, out.cycle_time, out.flow_efficiency))
}

/// # Errors
/// Database errors only.
pub async fn wip(db: &DatabaseConnection, scope: &Scope<'_>, window: Window) -> Result<Wip, DbErr> {
    let (mut out, aging) = futures::try_join!(load(db, scope, window), aging(db, scope, window))?;
    out.aging = aging;
    Ok(out)
}

/// WIP at the end and the time-weighted average.
async fn load(db: &DatabaseConnection, scope: &Scope<'_>, window: Window) -> Result<Wip, DbErr> {
    let backend = db.get_database_backend();
    let mut sql = Sql::new(backend);
    let cond = scope.condition(&mut sql);
    let from = sql.bind(ms(window.from));
    let to = sql.bind(ms(window.to));
    let (least, greatest) = if sql.pg() {
        ("LEAST", "GREATEST")
    } else {
        ("MIN", "MAX")
    };
    sql.push(&format!(
        "SELECT SUM(CASE WHEN to_ms >= {to} THEN 1 ELSE 0 END) AS at_end, \
         {overlap} AS overlap FROM flow_wip \
         WHERE {cond} AND to_ms > {from} AND from_ms < {to}",
        overlap = seconds_of(&format!(
            "SUM({least}(to_ms, {to}) - {greatest}(from_ms, {from}))"
        )),
    ));
    let mut out = Wip::default();
    if let Some(row) = db.query_one_raw(sql.statement()).await? {
        out.at_end =
            usize::try_from(row.try_get::<Option<i64>>("", "at_end")?.unwrap_or(0)).unwrap_or(0);
        let overlap = row.try_get::<Option<f64>>("", "overlap")?.unwrap_or(0.0);
        let length = (ms(window.to) - ms(window.from)) as f64 / 1000.0;
        out.average = overlap / length;
    }

    Ok(out)
}

/// Ages of the items in progress at the end.
async fn aging(
    db: &DatabaseConnection,
    scope: &Scope<'_>,
    window: Window,
) -> Result<Distribution, DbErr> {
    let backend = db.get_database_backend();
    let mut out = Wip::default();
    let mut sql = Sql::new(backend);
    let cond = scope.condition(&mut sql);
    let to = sql.bind(ms(window.to));
    let age = seconds_of(&format!("{to} - start_ms"));
    let inner = format!(
        "SELECT {age} AS age, {to} - start_ms AS age_ms FROM flow_wip \
         WHERE {cond} AND to_ms >= {to} AND from_ms < {to}"
    );
    let pct = if sql.pg() {
        ", percentile_cont(ARRAY[0.5, 0.85, 0.95]::float8[]) WITHIN GROUP (ORDER BY age) AS age_p"
    } else {
        ""
    };
    let values = sql.values.clone();
    sql.push(&format!(
        "SELECT COUNT(age) AS age_n, {mean} AS age_mean, MIN(age) AS age_min, \
         MAX(age) AS age_max{pct} FROM ({inner}) f",
        mean = exact_mean("age_ms"),
    ));
    if let Some(row) = db.query_one_raw(sql.statement()).await? {
        out.aging = distribution(&row, "age", sql.pg())?;
        if !sql.pg() && out.aging.count > 0 {
            let mut sorted = Sql::new(backend);
            sorted.values = values;
            sorted.push(&format!("SELECT age AS v FROM ({inner}) f ORDER BY v"));
            let count = out.aging.count;
            set_percentiles(
                &mut out.aging,
                sorted_percentiles(db, sorted.statement(), count).await?,
            );
        }
    }
    Ok(out.aging)
}

/// Items in progress at the window's end, oldest first: `(item id, age in
/// seconds)`, `limit` from `offset`.
///
/// # Errors
/// Database errors only.
pub async fn oldest(
    db: &DatabaseConnection,
    scope: &Scope<'_>,
    window: Window,
    offset: u64,
    limit: u64,
) -> Result<Vec<(i64, f64)>, DbErr> {
    let mut sql = Sql::new(db.get_database_backend());
    let cond = scope.condition(&mut sql);
    let to = sql.bind(ms(window.to));
    let age = seconds_of(&format!("{to} - start_ms"));
    let limit = sql.bind(i64::try_from(limit).unwrap_or(i64::MAX));
    let offset = sql.bind(i64::try_from(offset).unwrap_or(i64::MAX));
    sql.push(&format!(
        "SELECT work_item_id, {age} AS age FROM flow_wip \
         WHERE {cond} AND to_ms >= {to} AND from_ms < {to} \
         ORDER BY start_ms, work_item_id LIMIT {limit} OFFSET {offset}"
    ));
    db.query_all_raw(sql.statement())
        .await?
        .into_iter()
        .map(|row| Ok((row.try_get("", "work_item_id")?, row.try_get("", "age")?)))
        .collect()
}

/// `count`, `mean`, `min`, `max` (and on PostgreSQL the percentiles) from
/// the columns `{name}_n`, `{name}_mean`, ... of `row`.
pub(super) fn distribution(row: &QueryResult, name: &str, pg: bool) -> Result<Distribution, DbErr> {
    let count = usize::try_from(row.try_get::<i64>("", &format!("{name}_n"))?).unwrap_or(0);
    if count == 0 {
        return Ok(Distribution::default());
    }
    let mut d = Distribution {
        count,
        mean: row.try_get("", &format!("{name}_mean"))?,
        min: row.try_get("", &format!("{name}_min"))?,
        max: row.try_get("", &format!("{name}_max"))?,
        ..Distribution::default()
    };
    if pg
        && let Some(p) = row.try_get::<Option<Vec<f64>>>("", &format!("{name}_p"))?
        && p.len() == PERCENTILES.len()
    {
        set_percentiles(&mut d, [p[0], p[1], p[2]]);
    }
    Ok(d)
}

pub(super) fn set_percentiles(d: &mut Distribution, p: [f64; 3]) {
    d.p50 = Some(p[0]);
    d.p85 = Some(p[1]);
    d.p95 = Some(p[2]);
}

/// The continuous percentiles of the `count` values `stmt` returns in
/// ascending order (one column, `v`), reading them as a stream.
async fn sorted_percentiles(
    db: &DatabaseConnection,
    stmt: Statement,
    count: usize,
) -> Result<[f64; 3], DbErr> {
    let mut picker = RankPicker::new(count);
    let mut stream = db.stream_raw(stmt).await?;
    while let Some(row) = stream.try_next().await? {
        if !picker.feed(row.try_get("", "v")?) {
            break;
        }
    }
    Ok(picker.finish())
}

/// The floor the benchmark compares against: the same flow numbers as
/// [`completions`] and [`wip`] (PostgreSQL) from one plain SQL statement,
/// each facts table scanned once. Returns throughput and WIP at the end.
///
/// # Errors
/// Database errors; on SQLite, which lacks `percentile_cont`, always.
pub async fn floor(
    db: &DatabaseConnection,
    scope: &Scope<'_>,
    window: Window,
) -> Result<(i64, i64), DbErr> {
    let mut sql = Sql::new(db.get_database_backend());
    if !sql.pg() {
        return Err(DbErr::Custom("the floor query needs PostgreSQL".into()));
    }
    let completed = completed_in(&mut sql, scope, window);
    let cond = scope.condition(&mut sql);
    let from = sql.bind(ms(window.from));
    let to = sql.bind(ms(window.to));
    let shift = sql.bind(MONDAY_SHIFT_MS);
    let week = sql.bind(WEEK_MS);
    let p = "percentile_cont(ARRAY[0.5, 0.85, 0.95]::float8[]) WITHIN GROUP";
    sql.push(&format!(
        "WITH c AS MATERIALIZED (SELECT flow_type, completed_ms, created_ms, start_ms, active_ms \
           FROM flow_completion WHERE {completed}), \
         w AS MATERIALIZED (SELECT from_ms, to_ms, start_ms FROM flow_wip \
           WHERE {cond} AND to_ms > {from} AND from_ms < {to}) \
         SELECT \
          (SELECT COUNT(*) FROM c) AS throughput, \
          (SELECT array_agg(n) FROM (SELECT COUNT(*) AS n FROM c GROUP BY flow_type) f) AS by_flow, \
          (SELECT array_agg(n) FROM (SELECT COUNT(*) AS n FROM c \
             GROUP BY (completed_ms + {shift}) / {week}) k) AS by_week, \
          (SELECT ARRAY[AVG(l), MIN(l), MAX(l)] || {p} (ORDER BY l) FROM \
             (SELECT (completed_ms - created_ms)::float8 / 1000 AS l FROM c) x) AS lead, \
          (SELECT ARRAY[AVG(y), MIN(y), MAX(y)] || {p} (ORDER BY y) FROM \
             (SELECT (completed_ms - start_ms)::float8 / 1000 AS y FROM c \
              WHERE start_ms IS NOT NULL) x) AS cycle, \
          (SELECT ARRAY[SUM(active_ms)::float8 / 1000, SUM(completed_ms - start_ms)::float8 / 1000] \
             FROM c WHERE start_ms IS NOT NULL) AS efficiency, \
          (SELECT COUNT(*) FILTER (WHERE to_ms >= {to}) FROM w) AS wip_at_end, \
          (SELECT SUM(LEAST(to_ms, {to}) - GREATEST(from_ms, {from}))::float8 / 1000 FROM w) AS wip_seconds, \
          (SELECT ARRAY[AVG(a), MIN(a), MAX(a)] || {p} (ORDER BY a) FROM \
             (SELECT ({to} - start_ms)::float8 / 1000 AS a FROM w WHERE to_ms >= {to}) x) AS aging"
    ));
    let row = db
        .query_one_raw(sql.statement())
        .await?
        .ok_or_else(|| DbErr::Custom("no row".into()))?;
    Ok((
        row.try_get("", "throughput")?,
        row.try_get("", "wip_at_end")?,
    ))
}

#[cfg(test)]
mod line_tests {
    use sea_orm::{DbBackend, Value};

    use super::*;

    fn path(id: i64, kind: UnitKind, ancestors: &[i64]) -> UnitPath {
        UnitPath {
            id,
            kind,
            ancestors: ancestors.to_vec(),
        }
    }

    fn render(units: &[&UnitPath], reach: Reach) -> (String, Vec<Value>) {
        let mut sql = Sql::new(DbBackend::Postgres);
        let text = line_condition(&mut sql, "f.", units, reach).join(" AND ");
        (text, sql.values)
    }

    #[test]
    fn a_subtree_is_the_prefix_of_its_line() {
        let team = path(40, UnitKind::Team, &[1, 10, 20]);
        let (text, values) = render(&[&team], Reach::Subtree);
        assert_eq!(
            text,
            "f.portfolio_id = $1 AND f.program_id = $2 AND f.team_id = $3"
        );
        assert_eq!(values, vec![10i64.into(), 20i64.into(), 40i64.into()]);
        let org = path(1, UnitKind::Organization, &[]);
        assert_eq!(render(&[&org], Reach::Subtree).0, "");
    }

    #[test]
    fn a_units_own_rows_have_no_levels_below_it() {
        let program = path(20, UnitKind::Program, &[1, 10]);
        let (text, values) = render(&[&program], Reach::UnitOnly);
        assert_eq!(
            text,
            "f.portfolio_id = $1 AND f.program_id = $2 AND f.team_id IS NULL AND f.unit_id = $3"
        );
        assert_eq!(values, vec![10i64.into(), 20i64.into(), 20i64.into()]);
        let org = path(1, UnitKind::Organization, &[]);
        assert_eq!(
            render(&[&org], Reach::UnitOnly).0,
            "f.portfolio_id IS NULL AND f.program_id IS NULL AND f.team_id IS NULL \
             AND f.unit_id = $1"
        );
    }

    #[test]
    fn siblings_share_their_ancestors_values() {
        let a = path(40, UnitKind::Team, &[1, 10, 20]);
        let b = path(41, UnitKind::Team, &[1, 10, 20]);
        let c = path(42, UnitKind::Team, &[1, 10, 21]);
        let (text, values) = render(&[&a, &b, &c], Reach::Subtree);
        assert_eq!(
            text,
            "f.portfolio_id = $1 AND f.program_id IN ($2, $3) AND f.team_id IN ($4, $5, $6)"
        );
        assert_eq!(values.len(), 6);
    }

    #[test]
    fn a_line_that_does_not_match_its_kind_falls_back_to_the_units_column() {
        let stray = path(40, UnitKind::Team, &[1]);
        assert_eq!(render(&[&stray], Reach::Subtree).0, "f.team_id = $1");
        let mixed = [
            &path(20, UnitKind::Program, &[1, 10]),
            &path(40, UnitKind::Team, &[1, 10, 20]),
        ];
        assert_eq!(render(&mixed, Reach::UnitOnly).0, "f.unit_id IN ($1, $2)");
        assert_eq!(
            render(&mixed, Reach::Subtree).0,
            "(f.program_id = $1 OR f.team_id = $2)"
        );
    }
}
