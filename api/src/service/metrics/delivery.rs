//! Delivery metrics (DESIGN §3.5, DORA) of a unit's subtree over a window.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::{change, deployment, deployment_change, incident, release, release_work_item};
use sea_orm::{ColumnTrait, EntityTrait, JoinType, QueryFilter, QuerySelect};

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
pub(super) async fn compute(
    ctx: Ctx<'_>,
    unit_id: i64,
    reach: Reach,
    window: Window,
) -> ApiResult<DeliveryMetrics> {
    // Successful production deployments of the subtree, up to the window's end.
    let deployments: Vec<(i64, i64, DateTime<Utc>)> = in_unit(
        deployment::Entity::find(),
        deployment::Column::UnitId,
        unit_id,
        reach,
    )
    .select_only()
    .column(deployment::Column::Id)
    .column(deployment::Column::UnitId)
    .column(deployment::Column::FinishedAt)
    .filter(deployment::Column::Environment.eq(PRODUCTION))
    .filter(deployment::Column::Status.eq(SUCCESS))
    .into_tuple()
    .all(ctx.db)
    .await?;
    let in_window: HashMap<i64, DateTime<Utc>> = deployments
        .iter()
        .filter(|(_, _, at)| window.contains(*at))
        .map(|(id, _, at)| (*id, *at))
        .collect();
    let days: HashSet<chrono::NaiveDate> = in_window.values().map(|t| t.date_naive()).collect();

    // Changes they shipped, each counted at its first successful production
    // deployment anywhere.
    let shipped: Vec<i64> = deployment_change::Entity::find()
        .select_only()
        .column(deployment_change::Column::ChangeId)
        .filter(deployment_change::Column::DeploymentId.is_in(in_window.keys().copied()))
        .into_tuple()
        .all(ctx.db)
        .await?;
    let mut lead = Vec::new();
    let (mut coding, mut review, mut deploy) = (Vec::new(), Vec::new(), Vec::new());
    if !shipped.is_empty() {
        let firsts: Vec<(i64, i64, DateTime<Utc>)> = deployment_change::Entity::find()
            .select_only()
            .column(deployment_change::Column::ChangeId)
            .column(deployment::Column::Id)
            .column(deployment::Column::FinishedAt)
            .join(
                JoinType::InnerJoin,
                deployment_change::Entity::belongs_to(deployment::Entity)
                    .from(deployment_change::Column::DeploymentId)
                    .to(deployment::Column::Id)
                    .into(),
            )
            .filter(deployment_change::Column::ChangeId.is_in(shipped.iter().copied()))
            .filter(deployment::Column::Environment.eq(PRODUCTION))
            .filter(deployment::Column::Status.eq(SUCCESS))
            .into_tuple()
            .all(ctx.db)
            .await?;
        let mut first: HashMap<i64, (DateTime<Utc>, i64)> = HashMap::new();
        for (change_id, dep_id, at) in firsts {
            let e = first.entry(change_id).or_insert((at, dep_id));
            if (at, dep_id) < *e {
                *e = (at, dep_id);
            }
        }
        let changes = change::Entity::find()
            .filter(change::Column::Id.is_in(first.keys().copied()))
            .all(ctx.db)
            .await?;
        for c in changes {
            let Some((deployed, dep_id)) = first.get(&c.id) else {
                continue;
            };
            if !in_window.contains_key(dep_id) {
                continue;
            }
            lead.push(duration(
                c.first_commit_at.unwrap_or(c.merged_at),
                *deployed,
            ));
            if let (Some(fc), Some(op)) = (c.first_commit_at, c.opened_at) {
                coding.push(duration(fc, op));
            }
            if let Some(op) = c.opened_at {
                review.push(duration(op, c.merged_at));
            }
            deploy.push(duration(c.merged_at, *deployed));
        }
    }

    // Incidents of the subtree: what caused them, and how long they lasted.
    let incidents = in_unit(
        incident::Entity::find(),
        incident::Column::UnitId,
        unit_id,
        reach,
    )
    .all(ctx.db)
    .await?;
    let mut failed: HashSet<i64> = HashSet::new();
    let mut restore = Vec::new();
    for i in &incidents {
        let cause = i.deployment_id.or_else(|| {
            deployments
                .iter()
                .filter(|(_, unit, at)| *unit == i.unit_id && *at < i.opened_at)
                .max_by_key(|(id, _, at)| (*at, *id))
                .map(|(id, _, _)| *id)
        });
        failed.extend(cause);
        if let Some(resolved) = i.resolved_at.filter(|r| window.contains(*r)) {
            restore.push(duration(i.opened_at, resolved));
        }
    }
    let caused = in_window.keys().filter(|d| failed.contains(d)).count();

    let releases: Vec<i64> = in_unit(
        release::Entity::find(),
        release::Column::UnitId,
        unit_id,
        reach,
    )
    .select_only()
    .column(release::Column::Id)
    .filter(release::Column::ReleasedAt.gte(window.from))
    .filter(release::Column::ReleasedAt.lt(window.to))
    .into_tuple()
    .all(ctx.db)
    .await?;
    let delivered = if releases.is_empty() {
        0
    } else {
        release_work_item::Entity::find()
            .filter(release_work_item::Column::ReleaseId.is_in(releases.iter().copied()))
            .all(ctx.db)
            .await?
            .len()
    };

    Ok(DeliveryMetrics {
        deployments: in_window.len(),
        deployment_days: days.len(),
        deployment_frequency: in_window.len() as f64
            / (duration(window.from, window.to) / 86_400.0),
        lead_time_for_changes: Distribution::of(lead),
        breakdown: Breakdown {
            coding: mean(&coding),
            review: mean(&review),
            deploy: mean(&deploy),
        },
        change_failure_rate: Ratio {
            numerator: caused as f64,
            denominator: in_window.len() as f64,
        },
        time_to_restore: Distribution::of(restore),
        releases: releases.len(),
        items_per_release: (!releases.is_empty()).then(|| delivered as f64 / releases.len() as f64),
    })
}
