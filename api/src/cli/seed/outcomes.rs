//! The demo's outcomes and value streams: per portfolio two objectives with
//! key results measured over the 90 days and linked to the portfolio's
//! epics (DESIGN §1.6, §3.7), and an operational and a development value
//! stream over the default workflow with their investment (§1.4, §3.6).

use chrono::{DateTime, TimeDelta, Utc};
use entity::{key_result, key_result_measurement, objective, objective_work_item, value_stream};
use rand::Rng;
use rand::rngs::StdRng;
use sea_orm::{ActiveModelTrait, DatabaseTransaction, EntityTrait, Set};

use super::{BACKLOG, BLOCKED, IN_PROGRESS, IN_REVIEW, Plan, SOURCE, TESTING, Tree, api_err};
use crate::domain::{CostPeriod, ValueStreamKind, WorkItemType};
use crate::service::value_streams::{StageInput, write_stages, write_supports};

/// A key result: title, start value, target value, share of the way to the
/// target reached by now.
type Kr = (&'static str, f64, f64, f64);

/// An objective: title, days its period began before now, days it ends
/// after now, indices of the portfolio's epics it is linked to, key results.
type Okr = (&'static str, i64, i64, &'static [usize], &'static [Kr]);

/// Per portfolio, in [`super::PORTFOLIOS`] order.
const OBJECTIVES: &[[Okr; 2]] = &[
    [
        (
            "Make paying with Acme effortless",
            90,
            30,
            &[0, 1],
            &[
                ("Checkout conversion rate (%)", 62.0, 75.0, 0.55),
                ("Share of transfers sent instantly (%)", 5.0, 30.0, 0.7),
                (
                    "Payment support contacts per 1,000 customers",
                    14.0,
                    8.0,
                    0.35,
                ),
            ],
        ),
        (
            "Grow the digital wallet",
            60,
            60,
            &[2, 3],
            &[
                ("Monthly active wallet users (thousands)", 120.0, 200.0, 0.4),
                (
                    "Peer-to-peer transfers per month (thousands)",
                    40.0,
                    90.0,
                    0.25,
                ),
            ],
        ),
    ],
    [
        (
            "Decide loans in minutes",
            90,
            30,
            &[0, 1],
            &[
                ("Applications decided automatically (%)", 20.0, 70.0, 0.6),
                ("Median days to a mortgage offer", 21.0, 7.0, 0.45),
                ("Application completion rate (%)", 45.0, 65.0, 0.3),
            ],
        ),
        (
            "Servicing without a phone call",
            60,
            60,
            &[2, 3],
            &[
                ("Servicing calls per month (thousands)", 30.0, 18.0, 0.2),
                ("Settlements done in self-service (%)", 10.0, 50.0, 0.5),
            ],
        ),
    ],
];

/// Days between key result measurements.
const MEASURE_EVERY_DAYS: i64 = 14;

/// What [`store`] wrote.
#[derive(Debug, Default)]
pub(super) struct Counts {
    pub objectives: usize,
    pub key_results: usize,
    pub measurements: usize,
    pub links: usize,
    pub value_streams: usize,
}

/// Objectives with their key results, measurements and linked epics.
async fn objectives(
    txn: &DatabaseTransaction,
    rng: &mut StdRng,
    now: DateTime<Utc>,
    tree: &Tree,
    plan: &Plan,
    ids: &[i64],
    counts: &mut Counts,
) -> anyhow::Result<()> {
    for (portfolio, okrs) in tree.portfolios.iter().zip(OBJECTIVES) {
        let epics: Vec<i64> = plan
            .items
            .iter()
            .zip(ids)
            .filter(|(i, _)| i.unit_id == portfolio.unit.id && i.item_type == WorkItemType::Epic)
            .map(|(_, id)| *id)
            .collect();
        let prefix = portfolio.unit.key.to_uppercase();
        for (o, (title, began, ends, linked, krs)) in okrs.iter().enumerate() {
            let start = now - TimeDelta::days(*began);
            let stored = objective::ActiveModel {
                unit_id: Set(portfolio.unit.id),
                key: Set(format!("{prefix}-O{}", o + 1)),
                title: Set((*title).to_owned()),
                period_start: Set(start),
                period_end: Set(now + TimeDelta::days(*ends)),
                created_at: Set(start),
                ..Default::default()
            }
            .insert(txn)
            .await?;
            counts.objectives += 1;
            let links: Vec<objective_work_item::ActiveModel> = linked
                .iter()
                .filter_map(|&e| epics.get(e))
                .map(|&w| objective_work_item::ActiveModel {
                    objective_id: Set(stored.id),
                    work_item_id: Set(w),
                    linked_at: Set(start + TimeDelta::days(1)),
                })
                .collect();
            counts.links += links.len();
            if !links.is_empty() {
                objective_work_item::Entity::insert_many(links)
                    .exec_without_returning(txn)
                    .await?;
            }
            for (k, (kr_title, from, to, reached)) in krs.iter().enumerate() {
                let kr = key_result::ActiveModel {
                    objective_id: Set(stored.id),
                    key: Set(format!("{prefix}-O{}-KR{}", o + 1, k + 1)),
                    title: Set((*kr_title).to_owned()),
                    start_value: Set(*from),
                    target_value: Set(*to),
                    ..Default::default()
                }
                .insert(txn)
                .await?;
                counts.key_results += 1;
                // From the start value towards `reached` of the way, with
                // noise, never past the target nor back past the start.
                let mut rows = Vec::new();
                let steps = (*began / MEASURE_EVERY_DAYS).max(1);
                for s in 0..=steps {
                    let at = start + TimeDelta::days(s * MEASURE_EVERY_DAYS) + TimeDelta::hours(9);
                    if at >= now {
                        break;
                    }
                    let share = reached * s as f64 / steps as f64;
                    let noise = if s == 0 {
                        0.0
                    } else {
                        rng.gen_range(-0.04..0.04)
                    };
                    let share = (share + noise).clamp(0.0, 1.0);
                    let value = from + (to - from) * share;
                    rows.push(key_result_measurement::ActiveModel {
                        key_result_id: Set(kr.id),
                        value: Set((value * 10.0).round() / 10.0),
                        at: Set(at),
                        source: Set(Some(SOURCE.to_owned())),
                        ..Default::default()
                    });
                }
                counts.measurements += rows.len();
                if !rows.is_empty() {
                    key_result_measurement::Entity::insert_many(rows)
                        .exec_without_returning(txn)
                        .await?;
                }
            }
        }
    }
    Ok(())
}

fn stage(name: &str, states: &[&str], value_adding: bool) -> StageInput {
    StageInput {
        name: name.to_owned(),
        states: states.iter().map(|s| (*s).to_owned()).collect(),
        value_adding,
    }
}

/// Per portfolio: operational name, development name, operational budget,
/// development budget (a year), development cost per month.
const STREAMS: &[(&str, &str, f64, f64, f64)] = &[
    (
        "Customer pays a merchant",
        "Payments platform delivery",
        4_800_000.0,
        2_400_000.0,
        190_000.0,
    ),
    (
        "Customer takes out a loan",
        "Lending platform delivery",
        3_600_000.0,
        1_800_000.0,
        140_000.0,
    ),
];

/// Each portfolio's operational stream and the development stream that
/// supports it, written as the value stream service writes them.
async fn value_streams(
    txn: &DatabaseTransaction,
    now: DateTime<Utc>,
    tree: &Tree,
    counts: &mut Counts,
) -> anyhow::Result<()> {
    let founded = now - TimeDelta::days(90);
    for (portfolio, (ops_name, dev_name, ops_budget, dev_budget, dev_cost)) in
        tree.portfolios.iter().zip(STREAMS)
    {
        let key = &portfolio.unit.key;
        let stream = |k: String, name: &str, kind: ValueStreamKind, budget: f64, cost: f64| {
            value_stream::ActiveModel {
                unit_id: Set(portfolio.unit.id),
                key: Set(k),
                name: Set(name.to_owned()),
                kind: Set(kind.as_str().to_owned()),
                budget: Set(Some(budget)),
                budget_period: Set(Some("FY2027".to_owned())),
                cost_per_period: Set(Some(cost)),
                cost_period: Set(Some(CostPeriod::Month.as_str().to_owned())),
                created_at: Set(founded),
                updated_at: Set(founded),
                ..Default::default()
            }
        };
        let ops = stream(
            format!("{key}-customer"),
            ops_name,
            ValueStreamKind::Operational,
            *ops_budget,
            ops_budget / 12.0,
        )
        .insert(txn)
        .await?;
        write_stages(
            txn,
            ops.id,
            &[
                stage("Order", &[BACKLOG], false),
                stage("Prepare", &[IN_PROGRESS], true),
                stage("Approve", &[IN_REVIEW, BLOCKED], false),
                stage("Fulfil", &[TESTING], true),
            ],
        )
        .await
        .map_err(api_err)?;
        let dev = stream(
            format!("{key}-delivery"),
            dev_name,
            ValueStreamKind::Development,
            *dev_budget,
            *dev_cost,
        )
        .insert(txn)
        .await?;
        write_stages(
            txn,
            dev.id,
            &[
                stage("Backlog", &[BACKLOG], false),
                stage("Build", &[IN_PROGRESS], true),
                stage("Review", &[IN_REVIEW, BLOCKED], false),
                stage("Test", &[TESTING], true),
            ],
        )
        .await
        .map_err(api_err)?;
        write_supports(txn, dev.id, &[ops.id])
            .await
            .map_err(api_err)?;
        counts.value_streams += 2;
    }
    Ok(())
}

/// Writes the objectives and value streams of every portfolio.
pub(super) async fn store(
    txn: &DatabaseTransaction,
    rng: &mut StdRng,
    now: DateTime<Utc>,
    tree: &Tree,
    plan: &Plan,
    ids: &[i64],
) -> anyhow::Result<Counts> {
    let mut counts = Counts::default();
    objectives(txn, rng, now, tree, plan, ids, &mut counts).await?;
    value_streams(txn, now, tree, &mut counts).await?;
    Ok(counts)
}
