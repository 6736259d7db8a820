//! Metrics of several units at once: a drill-down's children (the
//! portfolios of the organisation, the programs of a portfolio, the teams
//! of a program). Each unit is refused (`FORBIDDEN`, `NOT_FOUND`) on its
//! own; the others are computed together.
//!
//! Flow metrics: throughput, lead and cycle time, flow efficiency, WIP,
//! aging, time in state, the cumulative flow and quality come from one
//! grouped statement per part for all the units of a kind, whatever their
//! number, and the units' workflows (which order the states) from one
//! reading; only the oldest items in progress, a list read under the item
//! rule, are read per unit.
//!
//! Delivery metrics: every figure, percentiles included, comes from the
//! statements that compute one unit ([`super::delivery`]), grouped by unit.

use std::collections::{BTreeMap, HashMap};

use sea_orm::{ConnectionTrait, DbErr};

use super::delivery::{self, DeliveryMetrics};
use super::flow::{
    Completions, MONDAY_SHIFT_MS, Scope, WEEK_MS, Wip, line_condition, seconds_of, tally,
};
use super::grouped::by_group;
use super::{
    FlowMetrics, FlowParts, MetricFilter, Precomputed, Ratio, StateTime, Window, assemble, states,
};
use crate::domain::{UnitKind, WorkItemType};
use crate::error::{ApiError, ApiResult};
use crate::policy::UnitPath;
use crate::service::analytics::GroupedParts;
use crate::service::analytics::compute::UnitCol;
use crate::service::facts::flow::ms;
use crate::service::sql::Sql;
use crate::service::{Ctx, Reach, units};

/// The units of `unit_ids` whose aggregates the caller may read, and a
/// refusal for each of the others: `NOT_FOUND` when unknown, `FORBIDDEN`
/// outside the caller's aggregate scope.
async fn readable<T>(
    ctx: Ctx<'_>,
    unit_ids: &[i64],
) -> ApiResult<(Vec<UnitPath>, HashMap<i64, ApiResult<T>>)> {
    ctx.policy.viewer()?;
    let found = units::find_many_unchecked(ctx.db, unit_ids).await?;
    let paths = units::paths_of(ctx.db, &found).await?;
    let mut refused: HashMap<i64, ApiResult<T>> = HashMap::new();
    let mut readable: Vec<UnitPath> = Vec::new();
    for id in unit_ids {
        match paths.iter().find(|p| p.id == *id) {
            None => {
                refused.insert(*id, Err(ApiError::not_found("unit")));
            }
            Some(p) if !ctx.policy.can_read_aggregates_of(p) => {
                refused.insert(
                    *id,
                    Err(ApiError::forbidden(
                        "you may not read aggregates of this unit",
                    )),
                );
            }
            Some(p) => readable.push(p.clone()),
        }
    }
    Ok((readable, refused))
}

/// The flow metrics of each of `unit_ids`, each `FORBIDDEN` outside the
/// caller's aggregate scope and `NOT_FOUND` when unknown, independently.
///
/// # Errors
/// Database errors, for all.
pub async fn flow_metrics_of_many(
    ctx: Ctx<'_>,
    unit_ids: &[i64],
    window: Window,
    filter: &MetricFilter,
    parts: FlowParts,
) -> ApiResult<HashMap<i64, ApiResult<FlowMetrics>>> {
    let (readable, mut out) = readable(ctx, unit_ids).await?;
    // Units grouped by kind, told apart by one facts column.
    let mut by_kind: HashMap<UnitKind, Vec<&UnitPath>> = HashMap::new();
    for p in &readable {
        by_kind.entry(p.kind).or_default().push(p);
    }
    for (kind, group) in by_kind {
        let column = column(filter.reach, kind);
        let mut pre = if group.len() > 1 && !column.is_empty() {
            grouped(ctx, column, &group, window, filter, parts).await?
        } else {
            HashMap::new()
        };
        for p in group {
            let m = assemble(
                ctx,
                p,
                window,
                filter,
                parts,
                pre.remove(&p.id).unwrap_or_default(),
            )
            .await;
            out.insert(p.id, m);
        }
    }
    Ok(out)
}

/// The delivery metrics (DESIGN §3.5) of each of `unit_ids` (each with its
/// subtree for [`Reach::Subtree`]), each `FORBIDDEN` outside the caller's
/// aggregate scope and `NOT_FOUND` when unknown, independently. The
/// readable units share the statements of one unit.
///
/// # Errors
/// Database errors, for all.
pub async fn delivery_metrics_of_many(
    ctx: Ctx<'_>,
    unit_ids: &[i64],
    window: Window,
    reach: Reach,
) -> ApiResult<HashMap<i64, ApiResult<DeliveryMetrics>>> {
    let (readable, mut out) = readable(ctx, unit_ids).await?;
    if readable.is_empty() {
        return Ok(out);
    }
    let ids: Vec<i64> = readable.iter().map(|p| p.id).collect();
    for (id, m) in delivery::compute_many(ctx, &ids, reach, window).await? {
        out.insert(id, Ok(m));
    }
    Ok(out)
}

/// The facts column that holds a unit of this kind, for this reach; empty
/// for the organisation, which is one unit.
fn column(reach: Reach, kind: UnitKind) -> &'static str {
    match (reach, kind) {
        (Reach::UnitOnly, _) => "unit_id",
        (Reach::Subtree, UnitKind::Organization) => "",
        (Reach::Subtree, UnitKind::Portfolio) => "portfolio_id",
        (Reach::Subtree, UnitKind::Program) => "program_id",
        (Reach::Subtree, UnitKind::Team) => "team_id",
    }
}

/// The in-memory column matching the facts column `column`.
fn memory_column(column: &str) -> Option<UnitCol> {
    match column {
        "unit_id" => Some(UnitCol::Unit),
        "portfolio_id" => Some(UnitCol::Portfolio),
        "program_id" => Some(UnitCol::Program),
        "team_id" => Some(UnitCol::Team),
        _ => None,
    }
}

/// The conditions selecting the rows of `group` (of one kind) and the
/// filter's.
fn condition(sql: &mut Sql, group: &[&UnitPath], filter: &MetricFilter) -> String {
    let everything = UnitPath {
        id: 0,
        kind: UnitKind::Organization,
        ancestors: Vec::new(),
    };
    let filter = MetricFilter {
        reach: Reach::Subtree,
        ..filter.clone()
    };
    let cond = Scope {
        unit: &everything,
        filter: &filter,
    }
    .condition(sql);
    let mut parts = line_condition(sql, "", group, filter.reach);
    parts.push(cond);
    parts.join(" AND ")
}

async fn grouped(
    ctx: Ctx<'_>,
    column: &str,
    group: &[&UnitPath],
    window: Window,
    filter: &MetricFilter,
    parts: FlowParts,
) -> ApiResult<HashMap<i64, Precomputed>> {
    let ids: &[i64] = &group.iter().map(|u| u.id).collect::<Vec<_>>();
    let states = parts.time_in_state || parts.cumulative_flow;
    let memory = match memory_column(column) {
        Some(col) => ctx.analytics.grouped(col, ids, filter, window, parts).await,
        None => GroupedParts::default(),
    };
    // Each part from memory when it answered, else from SQL; the SQL
    // statements run side by side.
    let GroupedParts {
        completions: held_completions,
        wip: held_wip,
        time_in_state: held_time_in_state,
        cumulative_flow: held_cumulative_flow,
    } = memory;
    let ((completions, wip), (time_in_state, cumulative_flow), quality) = futures::try_join!(
        async move {
            futures::try_join!(
                async move {
                    match held_completions {
                        Some(c) => Ok(c),
                        None if parts.completions => {
                            completions(ctx, column, group, window, filter).await
                        }
                        None => Ok(HashMap::new()),
                    }
                },
                async move {
                    match held_wip {
                        Some(w) => Ok(w),
                        None if parts.wip => wip(ctx, column, group, window, filter).await,
                        None => Ok(HashMap::new()),
                    }
                },
            )
        },
        async move {
            futures::try_join!(
                async move {
                    match held_time_in_state {
                        Some(t) => Ok(t),
                        None if parts.time_in_state => {
                            time_in_state(ctx, column, group, window, filter).await
                        }
                        None => Ok(HashMap::new()),
                    }
                },
                async move {
                    match held_cumulative_flow {
                        Some(c) => Ok(c),
                        None if parts.cumulative_flow => {
                            cumulative_flow(ctx, column, group, window, filter).await
                        }
                        None => Ok(HashMap::new()),
                    }
                },
            )
        },
        async {
            if parts.quality {
                quality(ctx, column, ids, window, filter).await
            } else {
                Ok(HashMap::new())
            }
        },
    )?;
    let mut workflows: HashMap<i64, units::EffectiveWorkflow> = if states {
        units::effective_workflows(ctx.db, ids)
            .await?
            .into_iter()
            .collect()
    } else {
        HashMap::new()
    };
    let (mut time_in_state, mut cumulative_flow) = (time_in_state, cumulative_flow);
    Ok(ids
        .iter()
        .map(|id| {
            let pre = Precomputed {
                completions: parts.completions.then(|| {
                    completions
                        .get(id)
                        .cloned()
                        .unwrap_or_else(|| tally(Vec::new()))
                }),
                wip: parts.wip.then(|| wip.get(id).cloned().unwrap_or_default()),
                time_in_state: parts
                    .time_in_state
                    .then(|| time_in_state.remove(id).unwrap_or_default()),
                cumulative_flow: parts
                    .cumulative_flow
                    .then(|| cumulative_flow.remove(id).unwrap_or_default()),
                workflow: workflows.remove(id),
                quality: parts
                    .quality
                    .then(|| quality.get(id).copied().unwrap_or((0, 0))),
            };
            (*id, pre)
        })
        .collect())
}

/// Time in state per unit: one statement, as for one unit.
async fn time_in_state(
    ctx: Ctx<'_>,
    column: &str,
    group: &[&UnitPath],
    window: Window,
    filter: &MetricFilter,
) -> Result<HashMap<i64, Vec<StateTime>>, DbErr> {
    let mut sql = Sql::new(ctx.db.get_database_backend());
    let cond = condition(&mut sql, group, filter);
    let from = sql.bind(ms(window.from));
    let to = sql.bind(ms(window.to));
    let completed =
        format!("{cond} AND completed_ms >= {from} AND completed_ms < {to} AND left_ms >= {to}");
    states::time_in_state_by_unit(ctx.db, &sql, &completed, column).await
}

/// The cumulative flow per unit: one statement, as for one unit.
async fn cumulative_flow(
    ctx: Ctx<'_>,
    column: &str,
    group: &[&UnitPath],
    window: Window,
    filter: &MetricFilter,
) -> Result<HashMap<i64, BTreeMap<String, Vec<usize>>>, DbErr> {
    let mut sql = Sql::new(ctx.db.get_database_backend());
    let cond = condition(&mut sql, group, filter);
    states::cumulative_flow_by_unit(ctx.db, sql, &cond, column, window).await
}

/// Defects created in the window per unit (with its subtree unless
/// `column` is the unit's own): (all, escaped to production), in one
/// statement.
async fn quality(
    ctx: Ctx<'_>,
    column: &str,
    ids: &[i64],
    window: Window,
    filter: &MetricFilter,
) -> Result<HashMap<i64, (u64, u64)>, DbErr> {
    let mut sql = Sql::new(ctx.db.get_database_backend());
    let (join, unit) = if column == "unit_id" {
        ("", "w.unit_id")
    } else {
        (
            " JOIN unit_closure uc ON uc.descendant_id = w.unit_id",
            "uc.ancestor_id",
        )
    };
    let marks: Vec<String> = ids.iter().map(|id| sql.bind(*id)).collect();
    let mut conds = vec![
        format!("{unit} IN ({})", marks.join(", ")),
        format!("w.item_type = {}", sql.bind(WorkItemType::Defect.as_str())),
        format!("w.created_at >= {}", sql.bind(window.from)),
        format!("w.created_at < {}", sql.bind(window.to)),
    ];
    let mut list = |expr: &str, names: Option<Vec<&'static str>>| {
        if let Some(names) = names {
            let marks: Vec<String> = names.into_iter().map(|n| sql.bind(n)).collect();
            if marks.is_empty() {
                conds.push("1 = 0".to_owned());
            } else {
                conds.push(format!("{expr} IN ({})", marks.join(", ")));
            }
        }
    };
    list(
        "w.item_type",
        filter
            .types
            .as_ref()
            .map(|t| t.iter().map(|t| t.as_str()).collect()),
    );
    list(
        "w.flow_type",
        filter
            .flow_types
            .as_ref()
            .map(|t| t.iter().map(|t| t.as_str()).collect()),
    );
    if let Some(levels) = &filter.levels {
        let marks: Vec<String> = levels.iter().map(|k| sql.bind(k.as_str())).collect();
        if marks.is_empty() {
            conds.push("1 = 0".to_owned());
        } else {
            conds.push(format!(
                "w.unit_id IN (SELECT id FROM unit WHERE kind IN ({}))",
                marks.join(", ")
            ));
        }
    }
    let production = sql.bind("PRODUCTION");
    sql.push(&format!(
        "SELECT {unit} AS g, COUNT(*) AS n, \
         SUM(CASE WHEN w.found_in = {production} THEN 1 ELSE 0 END) AS escaped \
         FROM work_item w{join} WHERE {} GROUP BY {unit}",
        conds.join(" AND ")
    ));
    let mut out = HashMap::new();
    for row in ctx.db.query_all_raw(sql.statement()).await? {
        let n: i64 = row.try_get("", "n")?;
        let escaped: Option<i64> = row.try_get("", "escaped")?;
        out.insert(
            row.try_get::<i64>("", "g")?,
            (
                u64::try_from(n).unwrap_or(0),
                u64::try_from(escaped.unwrap_or(0)).unwrap_or(0),
            ),
        );
    }
    Ok(out)
}

/// Throughput, lead and cycle time and flow efficiency per unit: two
/// statements, as for one unit.
async fn completions(
    ctx: Ctx<'_>,
    column: &str,
    group: &[&UnitPath],
    window: Window,
    filter: &MetricFilter,
) -> Result<HashMap<i64, Completions>, DbErr> {
    let backend = ctx.db.get_database_backend();
    let completed = |sql: &mut Sql| {
        let cond = condition(sql, group, filter);
        let from = sql.bind(ms(window.from));
        let to = sql.bind(ms(window.to));
        format!("{cond} AND completed_ms >= {from} AND completed_ms < {to} AND left_ms >= {to}")
    };
    let mut counts = Sql::new(backend);
    let cond = completed(&mut counts);
    let shift = counts.bind(MONDAY_SHIFT_MS);
    let week = counts.bind(WEEK_MS);
    counts.push(&format!(
        "SELECT {column} AS g, flow_type, (completed_ms + {shift}) / {week} AS wk, COUNT(*) AS n \
         FROM flow_completion WHERE {cond} GROUP BY {column}, flow_type, wk"
    ));
    let mut rows: HashMap<i64, Vec<(String, i64, usize)>> = HashMap::new();
    for row in ctx.db.query_all_raw(counts.statement()).await? {
        rows.entry(row.try_get("", "g")?).or_default().push((
            row.try_get("", "flow_type")?,
            row.try_get("", "wk")?,
            usize::try_from(row.try_get::<i64>("", "n")?).unwrap_or(0),
        ));
    }
    let mut out: HashMap<i64, Completions> = rows.into_iter().map(|(g, r)| (g, tally(r))).collect();

    let mut durations = Sql::new(backend);
    let cond = completed(&mut durations);
    let inner = format!(
        "SELECT {column} AS g, {lead} AS lead, {cycle} AS cycle, \
         completed_ms - created_ms AS lead_ms, \
         CASE WHEN start_ms IS NULL THEN 0 ELSE active_ms END AS active_ms, \
         completed_ms - start_ms AS flow_ms FROM flow_completion WHERE {cond}",
        lead = seconds_of("completed_ms - created_ms"),
        cycle = seconds_of("completed_ms - start_ms"),
    );
    let extra = format!(
        ", {} AS active, {} AS flow",
        seconds_of("SUM(active_ms)"),
        seconds_of("SUM(flow_ms)")
    );
    for g in by_group::<i64>(
        ctx.db,
        &durations.values,
        &inner,
        &["lead", "cycle"],
        &["lead_ms", "flow_ms"],
        &extra,
    )
    .await?
    {
        let c = out.entry(g.key).or_default();
        let mut dists = g.dists.into_iter();
        c.lead_time = dists.next().unwrap_or_default();
        c.cycle_time = dists.next().unwrap_or_default();
        c.flow_efficiency = Ratio {
            numerator: g.row.try_get::<Option<f64>>("", "active")?.unwrap_or(0.0),
            denominator: g.row.try_get::<Option<f64>>("", "flow")?.unwrap_or(0.0),
        };
    }
    Ok(out)
}

/// WIP at the end, average WIP and aging per unit: two statements, as for
/// one unit.
async fn wip(
    ctx: Ctx<'_>,
    column: &str,
    group: &[&UnitPath],
    window: Window,
    filter: &MetricFilter,
) -> Result<HashMap<i64, Wip>, DbErr> {
    let backend = ctx.db.get_database_backend();
    let mut load = Sql::new(backend);
    let cond = condition(&mut load, group, filter);
    let from = load.bind(ms(window.from));
    let to = load.bind(ms(window.to));
    let (least, greatest) = if load.pg() {
        ("LEAST", "GREATEST")
    } else {
        ("MIN", "MAX")
    };
    load.push(&format!(
        "SELECT {column} AS g, SUM(CASE WHEN to_ms >= {to} THEN 1 ELSE 0 END) AS at_end, \
         {overlap} AS overlap FROM flow_wip \
         WHERE {cond} AND to_ms > {from} AND from_ms < {to} GROUP BY {column}",
        overlap = seconds_of(&format!(
            "SUM({least}(to_ms, {to}) - {greatest}(from_ms, {from}))"
        )),
    ));
    let length = (ms(window.to) - ms(window.from)) as f64 / 1000.0;
    let mut out: HashMap<i64, Wip> = HashMap::new();
    for row in ctx.db.query_all_raw(load.statement()).await? {
        let w = out.entry(row.try_get("", "g")?).or_default();
        w.at_end =
            usize::try_from(row.try_get::<Option<i64>>("", "at_end")?.unwrap_or(0)).unwrap_or(0);
        w.average = row.try_get::<Option<f64>>("", "overlap")?.unwrap_or(0.0) / length;
    }

    let mut aging = Sql::new(backend);
    let cond = condition(&mut aging, group, filter);
    let to = aging.bind(ms(window.to));
    let inner = format!(
        "SELECT {column} AS g, {age} AS age, {to} - start_ms AS age_ms FROM flow_wip \
         WHERE {cond} AND to_ms >= {to} AND from_ms < {to}",
        age = seconds_of(&format!("{to} - start_ms")),
    );
    for g in by_group::<i64>(ctx.db, &aging.values, &inner, &["age"], &["age_ms"], "").await? {
        out.entry(g.key).or_default().aging = g.dists.into_iter().next().unwrap_or_default();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_are_told_apart_by_their_own_column() {
        assert_eq!(column(Reach::Subtree, UnitKind::Team), "team_id");
        assert_eq!(column(Reach::Subtree, UnitKind::Portfolio), "portfolio_id");
        assert_eq!(column(Reach::UnitOnly, UnitKind::Program), "unit_id");
        assert_eq!(column(Reach::Subtree, UnitKind::Organization), "");
    }
}
