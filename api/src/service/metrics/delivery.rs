//! Delivery metrics (DESIGN §3.5, DORA) of units (each with its subtree, or
//! alone) over a window.
//!
//! Every unit asked for is computed by the same statements, grouped by the
//! unit a row counts for: through the closure table (`ancestor_id`) for a
//! subtree, by the row's own `unit_id` for a unit alone. The children of a
//! drill-down cost what one unit costs, and one unit's numbers are those it
//! has among its siblings. Deployments, changes, incidents and releases
//! carry only their own unit, so the closure join is exact for any set of
//! units, nested or not.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, QueryResult};

use super::flow::exact_mean;
use super::grouped;
use super::history::duration;
use super::stats::Distribution;
use super::{Ratio, Window};
use crate::error::ApiResult;
use crate::service::facts::delivery::{PRODUCTION, SUCCESS};
use crate::service::sql::Sql;
use crate::service::{Ctx, Reach};

/// Mean seconds of each stage of the lead time for changes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Breakdown {
    /// Opened − first commit, over changes that report both.
    pub coding: Option<f64>,
    /// Merged − opened, over changes that report when they were opened.
    pub review: Option<f64>,
    /// Deployed − merged.
    pub deploy: Option<f64>,
}

#[derive(Clone, Debug)]
pub struct DeliveryMetrics {
    pub deployments: usize,
    pub deployment_days: usize,
    /// Per day of the window.
    pub deployment_frequency: f64,
    pub lead_time_for_changes: Distribution,
    pub breakdown: Breakdown,
    pub change_failure_rate: Ratio,
    pub time_to_restore: Distribution,
    pub releases: usize,
    /// Releases per week of the window.
    pub releases_per_week: f64,
    /// Items delivered per release; `None` without releases.
    pub items_per_release: Option<f64>,
}

/// How the rows of a unit column count for the units asked for: each row
/// once per unit of `ids` it belongs to (its own, or for a subtree any
/// ancestor), that unit being `group`. Sibling units own disjoint subtrees;
/// nested ones each count the rows beneath them.
struct Membership {
    /// Joined after the table (empty for the unit alone).
    join: String,
    cond: String,
    group: String,
}

/// `col` (a unit id column) restricted to `ids` or, for a subtree, beneath
/// one of them through the closure table aliased `alias`.
fn membership(sql: &mut Sql, col: &str, alias: &str, ids: &[i64], reach: Reach) -> Membership {
    let marks: Vec<String> = ids.iter().map(|id| sql.bind(*id)).collect();
    let marks = marks.join(", ");
    match reach {
        Reach::UnitOnly => Membership {
            join: String::new(),
            cond: format!("{col} IN ({marks})"),
            group: col.to_owned(),
        },
        Reach::Subtree => Membership {
            join: format!(" JOIN unit_closure {alias} ON {alias}.descendant_id = {col}"),
            cond: format!("{alias}.ancestor_id IN ({marks})"),
            group: format!("{alias}.ancestor_id"),
        },
    }
}

/// `col` (a unit id column) is the unit `group` (an expression of the
/// enclosing statement) or, for a subtree, beneath it.
fn belongs(col: &str, group: &str, reach: Reach) -> String {
    match reach {
        Reach::UnitOnly => format!("{col} = {group}"),
        Reach::Subtree => format!(
            "EXISTS (SELECT 1 FROM unit_closure b WHERE b.ancestor_id = {group} \
             AND b.descendant_id = {col})"
        ),
    }
}

/// Successful production deployments `d` of the units (or subtrees)
/// finished in the window: the joins after `deployment d`, the condition
/// and the unit each row counts for.
fn deployed_in(sql: &mut Sql, ids: &[i64], reach: Reach, window: Window) -> Membership {
    let units = membership(sql, "d.unit_id", "du", ids, reach);
    let from = sql.bind(window.from);
    let to = sql.bind(window.to);
    let env = sql.bind(PRODUCTION);
    let ok = sql.bind(SUCCESS);
    Membership {
        cond: format!(
            "{} AND d.environment = {env} AND d.status = {ok} \
             AND d.finished_at >= {from} AND d.finished_at < {to}",
            units.cond
        ),
        ..units
    }
}

/// Milliseconds from `earlier` to `later` (timestamp columns), each
/// instant truncated to the millisecond as [`super::history::duration`]
/// does (SQLite's date functions keep whole milliseconds, rounded).
fn ms_between(backend: DbBackend, later: &str, earlier: &str) -> String {
    if backend == DbBackend::Postgres {
        format!(
            "(FLOOR(EXTRACT(EPOCH FROM {later}) * 1000) - FLOOR(EXTRACT(EPOCH FROM {earlier}) * 1000))"
        )
    } else {
        format!(
            "(ROUND(julianday({later}) * 86400000.0) - ROUND(julianday({earlier}) * 86400000.0))"
        )
    }
}

/// [`ms_between`] in seconds.
fn seconds_between(backend: DbBackend, later: &str, earlier: &str) -> String {
    format!(
        "CAST({} AS DOUBLE PRECISION) / 1000",
        ms_between(backend, later, earlier)
    )
}

/// The UTC date of a timestamp column.
fn utc_date(backend: DbBackend, col: &str) -> String {
    if backend == DbBackend::Postgres {
        format!("CAST({col} AT TIME ZONE 'UTC' AS DATE)")
    } else {
        format!("date({col})")
    }
}

/// Ids per statement: the placeholders stay well under both backends'
/// limits.
const IDS_PER_STATEMENT: usize = 500;

/// What the statements (or the facts in memory) count for one unit.
#[derive(Debug, Default)]
pub struct Counted {
    pub deployments: usize,
    pub days: usize,
    pub caused: usize,
    pub lead: Distribution,
    pub breakdown: Breakdown,
    pub restore: Distribution,
    pub releases: usize,
    pub delivered: usize,
}

/// The delivery metrics of each of `unit_ids` (each with its subtree for
/// [`Reach::Subtree`]), whose aggregates the caller may read: four
/// statements for all of them (six on SQLite, which reads the values of
/// the two percentiles sorted), whatever their number up to
/// [`IDS_PER_STATEMENT`], each grouped by the unit a row counts for.
pub(super) async fn compute_many(
    ctx: Ctx<'_>,
    unit_ids: &[i64],
    reach: Reach,
    window: Window,
) -> ApiResult<HashMap<i64, DeliveryMetrics>> {
    let mut ids = unit_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut out = HashMap::with_capacity(ids.len());
    if let Some(tree) = ctx.units.tree(ctx.db).await?
        && let Some(counted) = ctx.analytics.delivery(&ids, reach, window, &tree).await
    {
        for (id, c) in ids.iter().zip(counted) {
            out.insert(*id, assemble(c, window));
        }
        return Ok(out);
    }
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let mut counted = count(ctx.db, chunk, reach, window).await?;
        for id in chunk {
            let c = counted.remove(id).unwrap_or_default();
            out.insert(*id, assemble(c, window));
        }
    }
    Ok(out)
}

fn assemble(c: Counted, window: Window) -> DeliveryMetrics {
    let seconds = duration(window.from, window.to);
    DeliveryMetrics {
        deployments: c.deployments,
        deployment_days: c.days,
        deployment_frequency: c.deployments as f64 / (seconds / 86_400.0),
        lead_time_for_changes: c.lead,
        breakdown: c.breakdown,
        change_failure_rate: Ratio {
            numerator: c.caused as f64,
            denominator: c.deployments as f64,
        },
        time_to_restore: c.restore,
        releases: c.releases,
        releases_per_week: c.releases as f64 / (seconds / (7.0 * 86_400.0)),
        items_per_release: (c.releases > 0).then(|| c.delivered as f64 / c.releases as f64),
    }
}

fn size(row: &QueryResult, name: &str) -> Result<usize, DbErr> {
    let n = row.try_get::<Option<i64>>("", name)?.unwrap_or(0);
    Ok(usize::try_from(n).unwrap_or(0))
}

async fn count(
    db: &DatabaseConnection,
    ids: &[i64],
    reach: Reach,
    window: Window,
) -> Result<HashMap<i64, Counted>, DbErr> {
    let backend = db.get_database_backend();
    // The statements are independent: they run side by side.
    let (deployed, lead, restore, released) = futures::try_join!(
        async {
            // Successful production deployments in the window, their days,
            // and those that caused an incident of the same unit (subtree).
            let mut sql = Sql::new(backend);
            let d = deployed_in(&mut sql, ids, reach, window);
            let day = utc_date(backend, "d.finished_at");
            sql.push(&format!(
                "SELECT {g} AS g, COUNT(*) AS n, COUNT(DISTINCT {day}) AS days, \
                 SUM(CASE WHEN EXISTS (SELECT 1 FROM incident i \
                   WHERE i.cause_deployment_id = d.id AND {of_unit}) THEN 1 ELSE 0 END) AS caused \
                 FROM deployment d{join} WHERE {cond} GROUP BY {g}",
                g = d.group,
                of_unit = belongs("i.unit_id", &d.group, reach),
                join = d.join,
                cond = d.cond,
            ));
            let mut out = HashMap::new();
            for row in db.query_all_raw(sql.statement()).await? {
                let g: i64 = row.try_get("", "g")?;
                out.insert(
                    g,
                    (size(&row, "n")?, size(&row, "days")?, size(&row, "caused")?),
                );
            }
            Ok::<_, DbErr>(out)
        },
        async {
            // Each change at its first successful production deployment,
            // when that is one of the window's.
            let mut sql = Sql::new(backend);
            let d = deployed_in(&mut sql, ids, reach, window);
            let since = |col: &str| ms_between(backend, "d.finished_at", col);
            let between = |later: &str, earlier: &str| ms_between(backend, later, earlier);
            let inner = format!(
                "SELECT {g} AS g, {lead} AS lead, {lead_ms} AS lead_ms, {coding} AS coding, \
                 {review} AS review, {deploy} AS deploy \
                 FROM change c JOIN deployment d ON d.id = c.first_deployment_id{join} \
                 WHERE {cond}",
                g = d.group,
                lead = seconds_between(
                    backend,
                    "d.finished_at",
                    "COALESCE(c.first_commit_at, c.merged_at)"
                ),
                lead_ms = since("COALESCE(c.first_commit_at, c.merged_at)"),
                coding = between("c.opened_at", "c.first_commit_at"),
                review = between("c.merged_at", "c.opened_at"),
                deploy = since("c.merged_at"),
                join = d.join,
                cond = d.cond,
            );
            // Exact means of the milliseconds, whatever the order of rows.
            let extra = format!(
                ", {} AS coding, {} AS review, {} AS deploy",
                exact_mean("coding"),
                exact_mean("review"),
                exact_mean("deploy")
            );
            let mut out = HashMap::new();
            for g in
                grouped::by_group::<i64>(db, sql.values(), &inner, &["lead"], &["lead_ms"], &extra)
                    .await?
            {
                let breakdown = Breakdown {
                    coding: g.row.try_get("", "coding")?,
                    review: g.row.try_get("", "review")?,
                    deploy: g.row.try_get("", "deploy")?,
                };
                out.insert(g.key, (g.dists[0], breakdown));
            }
            Ok(out)
        },
        async {
            // Incidents resolved in the window.
            let mut sql = Sql::new(backend);
            let i = membership(&mut sql, "i.unit_id", "iu", ids, reach);
            let from = sql.bind(window.from);
            let to = sql.bind(window.to);
            let inner = format!(
                "SELECT {g} AS g, {restore} AS restore, {restore_ms} AS restore_ms \
                 FROM incident i{join} \
                 WHERE {cond} AND i.resolved_at >= {from} AND i.resolved_at < {to}",
                g = i.group,
                restore = seconds_between(backend, "i.resolved_at", "i.opened_at"),
                restore_ms = ms_between(backend, "i.resolved_at", "i.opened_at"),
                join = i.join,
                cond = i.cond,
            );
            let groups = grouped::by_group::<i64>(
                db,
                sql.values(),
                &inner,
                &["restore"],
                &["restore_ms"],
                "",
            )
            .await?;
            Ok(groups
                .into_iter()
                .map(|g| (g.key, g.dists[0]))
                .collect::<HashMap<_, _>>())
        },
        async {
            // Releases in the window and the items they delivered.
            let mut sql = Sql::new(backend);
            let r = membership(&mut sql, "r.unit_id", "ru", ids, reach);
            let from = sql.bind(window.from);
            let to = sql.bind(window.to);
            sql.push(&format!(
                "SELECT {g} AS g, COUNT(DISTINCT r.id) AS n, COUNT(w.release_id) AS items \
                 FROM release r{join} LEFT JOIN release_work_item w ON w.release_id = r.id \
                 WHERE {cond} AND r.released_at >= {from} AND r.released_at < {to} GROUP BY {g}",
                g = r.group,
                join = r.join,
                cond = r.cond,
            ));
            let mut out = HashMap::new();
            for row in db.query_all_raw(sql.statement()).await? {
                let g: i64 = row.try_get("", "g")?;
                out.insert(g, (size(&row, "n")?, size(&row, "items")?));
            }
            Ok(out)
        },
    )?;

    let mut out: HashMap<i64, Counted> = HashMap::new();
    for (g, (deployments, days, caused)) in deployed {
        let c = out.entry(g).or_default();
        c.deployments = deployments;
        c.days = days;
        c.caused = caused;
    }
    for (g, (lead, breakdown)) in lead {
        let c = out.entry(g).or_default();
        c.lead = lead;
        c.breakdown = breakdown;
    }
    for (g, restore) in restore {
        out.entry(g).or_default().restore = restore;
    }
    for (g, (releases, delivered)) in released {
        let c = out.entry(g).or_default();
        c.releases = releases;
        c.delivered = delivered;
    }
    Ok(out)
}
