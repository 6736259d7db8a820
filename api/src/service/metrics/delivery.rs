//! Delivery metrics (DESIGN §3.5, DORA) of a unit's subtree over a window.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use entity::{incident, release, release_work_item};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
};

use super::flow::Sql;
use super::history::duration;
use super::stats::Distribution;
use super::{Ratio, Window};
use crate::error::ApiResult;
use crate::service::work_items::Reach;
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
    /// Items delivered per release; `None` without releases.
    pub items_per_release: Option<f64>,
}

const PRODUCTION: &str = "PRODUCTION";
const SUCCESS: &str = "SUCCESS";

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
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

pub(super) async fn compute(
    ctx: Ctx<'_>,
    unit_id: i64,
    reach: Reach,
    window: Window,
) -> ApiResult<DeliveryMetrics> {
    let backend = ctx.db.get_database_backend();
    // Successful production deployments of the subtree in the window.
    let mut sql = Sql::new(backend);
    let cond = deployed_in(&mut sql, "d", unit_id, reach, window);
    sql.push(&format!(
        "SELECT d.finished_at AS at FROM deployment d WHERE {cond}"
    ));
    let mut deployments = 0usize;
    let mut days: HashSet<chrono::NaiveDate> = HashSet::new();
    for row in ctx.db.query_all_raw(sql.statement()).await? {
        let at: DateTime<Utc> = row.try_get("", "at")?;
        deployments += 1;
        days.insert(at.date_naive());
    }

    // Changes whose first successful production deployment (by time, then
    // id) is one of those.
    let mut sql = Sql::new(backend);
    let cond = deployed_in(&mut sql, "d", unit_id, reach, window);
    let env = sql.bind(PRODUCTION);
    let ok = sql.bind(SUCCESS);
    sql.push(&format!(
        "SELECT c.first_commit_at AS first_commit_at, c.opened_at AS opened_at, \
           c.merged_at AS merged_at, d.finished_at AS deployed_at \
         FROM deployment d \
         JOIN deployment_change dc ON dc.deployment_id = d.id \
         JOIN change c ON c.id = dc.change_id \
         WHERE {cond} AND NOT EXISTS (SELECT 1 FROM deployment_change dc2 \
           JOIN deployment e ON e.id = dc2.deployment_id \
           WHERE dc2.change_id = dc.change_id AND e.environment = {env} AND e.status = {ok} \
           AND (e.finished_at < d.finished_at OR (e.finished_at = d.finished_at AND e.id < d.id)))"
    ));
    let mut lead = Vec::new();
    let (mut coding, mut review, mut deploy) = (Vec::new(), Vec::new(), Vec::new());
    for row in ctx.db.query_all_raw(sql.statement()).await? {
        let first_commit: Option<DateTime<Utc>> = row.try_get("", "first_commit_at")?;
        let opened: Option<DateTime<Utc>> = row.try_get("", "opened_at")?;
        let merged: DateTime<Utc> = row.try_get("", "merged_at")?;
        let deployed: DateTime<Utc> = row.try_get("", "deployed_at")?;
        lead.push(duration(first_commit.unwrap_or(merged), deployed));
        if let (Some(fc), Some(op)) = (first_commit, opened) {
            coding.push(duration(fc, op));
        }
        if let Some(op) = opened {
            review.push(duration(op, merged));
        }
        deploy.push(duration(merged, deployed));
    }

    // Deployments that caused an incident of the subtree: named by it, or
    // the latest successful production deployment of the incident's unit
    // before it opened.
    let mut sql = Sql::new(backend);
    let cond = deployed_in(&mut sql, "d", unit_id, reach, window);
    let named = unit_condition(&mut sql, "i.unit_id", unit_id, reach);
    let env = sql.bind(PRODUCTION);
    let ok = sql.bind(SUCCESS);
    sql.push(&format!(
        "SELECT COUNT(*) AS n FROM deployment d WHERE {cond} AND ( \
           EXISTS (SELECT 1 FROM incident i WHERE i.deployment_id = d.id AND {named}) \
           OR EXISTS (SELECT 1 FROM incident i WHERE i.unit_id = d.unit_id \
             AND i.deployment_id IS NULL AND i.opened_at > d.finished_at \
             AND NOT EXISTS (SELECT 1 FROM deployment e WHERE e.unit_id = d.unit_id \
               AND e.environment = {env} AND e.status = {ok} AND e.finished_at < i.opened_at \
               AND (e.finished_at > d.finished_at OR (e.finished_at = d.finished_at AND e.id > d.id)))))"
    ));
    let caused = match ctx.db.query_one_raw(sql.statement()).await? {
        Some(row) => usize::try_from(row.try_get::<i64>("", "n")?).unwrap_or(0),
        None => 0,
    };

    let restored: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> = in_unit(
        incident::Entity::find(),
        incident::Column::UnitId,
        unit_id,
        reach,
    )
    .select_only()
    .column(incident::Column::OpenedAt)
    .column(incident::Column::ResolvedAt)
    .filter(incident::Column::ResolvedAt.gte(window.from))
    .filter(incident::Column::ResolvedAt.lt(window.to))
    .into_tuple()
    .all(ctx.db)
    .await?;
    let restore: Vec<f64> = restored
        .into_iter()
        .filter_map(|(opened, resolved)| resolved.map(|r| duration(opened, r)))
        .collect();

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
    let releases = releases_in.clone().count(ctx.db).await?;
    let delivered = if releases == 0 {
        0
    } else {
        release_work_item::Entity::find()
            .filter(
                release_work_item::Column::ReleaseId
                    .in_subquery(sea_orm::QueryTrait::into_query(releases_in)),
            )
            .count(ctx.db)
            .await?
    };

    Ok(DeliveryMetrics {
        deployments,
        deployment_days: days.len(),
        deployment_frequency: deployments as f64 / (duration(window.from, window.to) / 86_400.0),
        lead_time_for_changes: Distribution::of(lead),
        breakdown: Breakdown {
            coding: mean(&coding),
            review: mean(&review),
            deploy: mean(&deploy),
        },
        change_failure_rate: Ratio {
            numerator: caused as f64,
            denominator: deployments as f64,
        },
        time_to_restore: Distribution::of(restore),
        releases: usize::try_from(releases).unwrap_or(usize::MAX),
        items_per_release: (releases > 0).then(|| delivered as f64 / releases as f64),
    })
}
