//! Delivery metrics (DESIGN §3.5, DORA) of a unit's subtree over a window.

use entity::{release, release_work_item};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QuerySelect,
};

use super::grouped;
use super::history::duration;
use super::stats::Distribution;
use super::{Ratio, Window};
use crate::error::ApiResult;
use crate::service::Reach;
use crate::service::facts::delivery::{PRODUCTION, SUCCESS};
use crate::service::sql::Sql;
use crate::service::{Ctx, in_unit};

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

/// The caller has been checked against the unit's aggregate scope.
/// `col` restricted to the unit or its subtree.
fn unit_condition(sql: &mut Sql, col: &str, unit_id: i64, reach: Reach) -> String {
    let id = sql.bind(unit_id);
    match reach {
        Reach::UnitOnly => format!("{col} = {id}"),
        Reach::Subtree => {
            format!("{col} IN (SELECT descendant_id FROM unit_closure WHERE ancestor_id = {id})")
        }
    }
}

/// A successful production deployment `alias` of the unit (or subtree)
/// finished in the window.
fn deployed_in(sql: &mut Sql, alias: &str, unit_id: i64, reach: Reach, window: Window) -> String {
    let units = unit_condition(sql, &format!("{alias}.unit_id"), unit_id, reach);
    let from = sql.bind(window.from);
    let to = sql.bind(window.to);
    let env = sql.bind(PRODUCTION);
    let ok = sql.bind(SUCCESS);
    format!(
        "{units} AND {alias}.environment = {env} AND {alias}.status = {ok} \
         AND {alias}.finished_at >= {from} AND {alias}.finished_at < {to}"
    )
}

/// Seconds from `earlier` to `later` (timestamp columns), each instant
/// truncated to the millisecond as [`super::history::duration`] does.
fn seconds_between(backend: DbBackend, later: &str, earlier: &str) -> String {
    if backend == DbBackend::Postgres {
        format!(
            "CAST(FLOOR(EXTRACT(EPOCH FROM {later}) * 1000) - FLOOR(EXTRACT(EPOCH FROM {earlier}) * 1000) \
             AS DOUBLE PRECISION) / 1000"
        )
    } else {
        format!(
            "(ROUND(julianday({later}) * 86400000.0) - ROUND(julianday({earlier}) * 86400000.0)) / 1000.0"
        )
    }
}

/// The UTC date of a timestamp column.
fn utc_date(backend: DbBackend, col: &str) -> String {
    if backend == DbBackend::Postgres {
        format!("CAST({col} AT TIME ZONE 'UTC' AS DATE)")
    } else {
        format!("date({col})")
    }
}

pub(super) async fn compute(
    ctx: Ctx<'_>,
    unit_id: i64,
    reach: Reach,
    window: Window,
) -> ApiResult<DeliveryMetrics> {
    let db = ctx.db;
    let backend = db.get_database_backend();
    // The statements are independent: they run side by side.
    let ((deployments, days), (lead, breakdown), caused, restore, (releases, delivered)) = futures::try_join!(
        async {
            // Successful production deployments of the subtree in the window.
            let mut sql = Sql::new(backend);
            let cond = deployed_in(&mut sql, "d", unit_id, reach, window);
            let day = utc_date(backend, "d.finished_at");
            sql.push(&format!(
                "SELECT COUNT(*) AS n, COUNT(DISTINCT {day}) AS days FROM deployment d WHERE {cond}"
            ));
            let row = db.query_one_raw(sql.statement()).await?;
            let get = |name: &str| -> Result<usize, DbErr> {
                Ok(match &row {
                    Some(row) => usize::try_from(row.try_get::<i64>("", name)?).unwrap_or(0),
                    None => 0,
                })
            };
            Ok::<_, DbErr>((get("n")?, get("days")?))
        },
        async {
            // Each change at its first successful production deployment,
            // when that is one of the window's.
            let mut sql = Sql::new(backend);
            let cond = deployed_in(&mut sql, "d", unit_id, reach, window);
            let since = |col: &str| seconds_between(backend, "d.finished_at", col);
            let between = |later: &str, earlier: &str| seconds_between(backend, later, earlier);
            let inner = format!(
                "SELECT CAST(0 AS BIGINT) AS g, {lead} AS lead, {coding} AS coding, \
                 {review} AS review, {deploy} AS deploy \
                 FROM change c JOIN deployment d ON d.id = c.first_deployment_id WHERE {cond}",
                lead = since("COALESCE(c.first_commit_at, c.merged_at)"),
                coding = between("c.opened_at", "c.first_commit_at"),
                review = between("c.merged_at", "c.opened_at"),
                deploy = since("c.merged_at"),
            );
            let groups = grouped::by_group::<i64>(
                db,
                sql.values(),
                &inner,
                &["lead"],
                ", AVG(coding) AS coding, AVG(review) AS review, AVG(deploy) AS deploy",
            )
            .await?;
            let Some(g) = groups.into_iter().next() else {
                return Ok((Distribution::default(), Breakdown::default()));
            };
            let breakdown = Breakdown {
                coding: g.row.try_get("", "coding")?,
                review: g.row.try_get("", "review")?,
                deploy: g.row.try_get("", "deploy")?,
            };
            Ok((g.dists[0], breakdown))
        },
        async {
            // Deployments that caused an incident of the subtree.
            let mut sql = Sql::new(backend);
            let cond = deployed_in(&mut sql, "d", unit_id, reach, window);
            let of_units = unit_condition(&mut sql, "i.unit_id", unit_id, reach);
            sql.push(&format!(
                "SELECT COUNT(*) AS n FROM deployment d WHERE {cond} AND EXISTS \
                 (SELECT 1 FROM incident i WHERE i.cause_deployment_id = d.id AND {of_units})"
            ));
            Ok(match db.query_one_raw(sql.statement()).await? {
                Some(row) => usize::try_from(row.try_get::<i64>("", "n")?).unwrap_or(0),
                None => 0,
            })
        },
        async {
            // Incidents of the subtree resolved in the window.
            let mut sql = Sql::new(backend);
            let units = unit_condition(&mut sql, "i.unit_id", unit_id, reach);
            let from = sql.bind(window.from);
            let to = sql.bind(window.to);
            let inner = format!(
                "SELECT CAST(0 AS BIGINT) AS g, {restore} AS restore FROM incident i \
                 WHERE {units} AND i.resolved_at >= {from} AND i.resolved_at < {to}",
                restore = seconds_between(backend, "i.resolved_at", "i.opened_at"),
            );
            let groups =
                grouped::by_group::<i64>(db, sql.values(), &inner, &["restore"], "").await?;
            Ok(groups
                .into_iter()
                .next()
                .map_or_else(Distribution::default, |g| g.dists[0]))
        },
        async {
            let releases_in = in_unit(
                release::Entity::find(),
                release::Column::UnitId,
                unit_id,
                reach,
            )
            .select_only()
            .column(release::Column::Id)
            .filter(release::Column::ReleasedAt.gte(window.from))
            .filter(release::Column::ReleasedAt.lt(window.to));
            let releases = releases_in.clone().count(db).await?;
            let delivered = if releases == 0 {
                0
            } else {
                release_work_item::Entity::find()
                    .filter(
                        release_work_item::Column::ReleaseId
                            .in_subquery(sea_orm::QueryTrait::into_query(releases_in)),
                    )
                    .count(db)
                    .await?
            };
            Ok((releases, delivered))
        },
    )?;

    Ok(DeliveryMetrics {
        deployments,
        deployment_days: days,
        deployment_frequency: deployments as f64 / (duration(window.from, window.to) / 86_400.0),
        lead_time_for_changes: lead,
        breakdown,
        change_failure_rate: Ratio {
            numerator: caused as f64,
            denominator: deployments as f64,
        },
        time_to_restore: restore,
        releases: usize::try_from(releases).unwrap_or(usize::MAX),
        releases_per_week: releases as f64 / (duration(window.from, window.to) / (7.0 * 86_400.0)),
        items_per_release: (releases > 0).then(|| delivered as f64 / releases as f64),
    })
}
