//! `gemba bench metrics`: times `flowMetrics` and `deliveryMetrics` through
//! the GraphQL schema (everything a request runs but the socket: policy,
//! resolvers, SQL, serialisation of the result) at organisation, portfolio,
//! program and team level for a 90-day and a 2-year window, beside the best
//! single plain-SQL statement computing the same flow numbers from the same
//! facts (the floor), and time in state with the cumulative flow as a
//! series of their own. Reports the median and p95 of every series.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use async_graphql::{Request, Variables};
use chrono::{Duration, DurationRound, Utc};
use entity::{unit, user};
use rand::RngCore;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use serde_json::json;

use crate::auth::token::TokenKeys;
use crate::config::{AnalyticsMode, Settings};
use crate::domain::{Role, UnitKind};
use crate::graphql::{GembaSchema, RequestCtx, Services, build_schema};
use crate::policy::Policy;
use crate::service::metrics::flow::{self, Scope};
use crate::service::metrics::{MetricFilter, Window};
use crate::service::{units, users};

/// The §3.1 flow numbers the floor computes too.
const FLOW_QUERY: &str = "query($u: ID!, $from: DateTime!, $to: DateTime!) {
  flowMetrics(unit: $u, window: {from: $from, to: $to}) {
    throughput
    throughputByFlowType { flowType count share }
    throughputByWeek { week count }
    leadTime { count mean p50 p85 p95 min max }
    cycleTime { count mean p50 p85 p95 min max }
    flowEfficiency { numerator denominator value }
    wipAtEnd averageWip
    agingWip { count mean p50 p85 p95 min max }
    littlesLaw { averageWip predictedWip }
  } }";

/// Time in state (§3.2) and the cumulative flow (§3.3): per state, and per
/// state and day.
const STATE_QUERY: &str = "query($u: ID!, $from: DateTime!, $to: DateTime!) {
  flowMetrics(unit: $u, window: {from: $from, to: $to}) {
    timeInState { state total perItem { count mean p50 p85 p95 min max } }
    cumulativeFlow { date counts { state count } }
  } }";

const DELIVERY_QUERY: &str = "query($u: ID!, $from: DateTime!, $to: DateTime!) {
  deliveryMetrics(unit: $u, window: {from: $from, to: $to}) {
    deployments deploymentDays deploymentFrequency
    leadTimeForChanges { count mean p50 p85 p95 }
    leadTimeBreakdown { coding review deploy }
    changeFailureRate { numerator denominator value }
    timeToRestore { count p50 }
    releases itemsPerRelease
  } }";

/// The flow numbers of every child of a unit (a drill-down) in one query.
const CHILDREN_QUERY: &str = "query($k: String!, $from: DateTime!, $to: DateTime!) {
  unit(key: $k) { children { key
    flowMetrics(window: {from: $from, to: $to}) {
      throughput
      leadTime { count mean p50 p85 p95 }
      cycleTime { count mean p50 p85 p95 }
      flowEfficiency { value }
      wipAtEnd averageWip
      agingWip { count p50 p85 }
    } } } }";

const BENCH_EMAIL: &str = "bench@gemba.local";

/// One measured series.
#[derive(Clone, Debug)]
pub struct Series {
    pub level: UnitKind,
    pub unit_key: String,
    pub days: i64,
    pub what: &'static str,
    pub median_ms: f64,
    pub p95_ms: f64,
    /// Completed items in the window (from the flow query).
    pub throughput: i64,
}

/// Runs the benchmark against the synthetic (or any) organisation in `db`.
///
/// # Errors
/// When a query fails or the tree lacks a level.
pub async fn metrics(
    db: &DatabaseConnection,
    runs: usize,
    analytics: AnalyticsMode,
) -> anyhow::Result<Vec<Series>> {
    let settings = Settings {
        analytics,
        ..Settings::default()
    };
    let (policy, services) = admin(db, settings).await?;
    if analytics == AnalyticsMode::Memory {
        let started = Instant::now();
        if !services.analytics.wait_loaded().await {
            bail!("the flow facts were not loaded");
        }
        let (bytes, rows) = services.analytics.size();
        tracing::warn!(
            rows,
            mib = bytes / (1 << 20),
            seconds = started.elapsed().as_secs_f64(),
            "flow facts loaded in memory"
        );
    }
    let env = Env {
        schema: build_schema(&services.settings),
        db,
        policy,
        services,
    };
    let end = Utc::now().duration_trunc(Duration::hours(1))?;
    let mut out = Vec::new();
    for kind in [
        UnitKind::Organization,
        UnitKind::Portfolio,
        UnitKind::Program,
        UnitKind::Team,
    ] {
        let unit = first_of(db, kind).await?;
        let path = units::path_of(db, &unit)
            .await
            .map_err(crate::cli::seed::api_err)?;
        let id = crate::graphql::ids::encode(crate::graphql::ids::kind::UNIT, unit.id).0;
        for days in [90i64, 730] {
            let from = end - Duration::days(days);
            let vars = json!({"u": id, "from": from.to_rfc3339(), "to": end.to_rfc3339()});
            let (first, mut times) = timed(&env, FLOW_QUERY, &vars, runs).await?;
            let throughput = first["flowMetrics"]["throughput"].as_i64().unwrap_or(0);
            out.push(series(
                kind,
                &unit.key,
                days,
                "flowMetrics",
                &mut times,
                throughput,
            ));

            let window = Window { from, to: end };
            let filter = MetricFilter::default();
            let scope = Scope {
                unit: &path,
                filter: &filter,
            };
            let mut times = Vec::with_capacity(runs);
            for run in 0..=runs {
                let started = Instant::now();
                flow::floor(db, &scope, window).await?;
                if run > 0 {
                    times.push(started.elapsed().as_secs_f64() * 1000.0);
                }
            }
            out.push(series(
                kind,
                &unit.key,
                days,
                "floor (one SQL statement)",
                &mut times,
                throughput,
            ));

            let (_, mut times) = timed(&env, STATE_QUERY, &vars, runs).await?;
            out.push(series(
                kind,
                &unit.key,
                days,
                "flowMetrics: timeInState + cumulativeFlow",
                &mut times,
                throughput,
            ));

            if kind == UnitKind::Organization {
                let vars =
                    json!({"k": unit.key, "from": from.to_rfc3339(), "to": end.to_rfc3339()});
                let (_, mut times) = timed(&env, CHILDREN_QUERY, &vars, runs).await?;
                out.push(series(
                    kind,
                    &unit.key,
                    days,
                    "children's flowMetrics (one query)",
                    &mut times,
                    throughput,
                ));
            }

            let (_, mut times) = timed(&env, DELIVERY_QUERY, &vars, runs).await?;
            out.push(series(
                kind,
                &unit.key,
                days,
                "deliveryMetrics",
                &mut times,
                throughput,
            ));
            tracing::info!(level = kind.as_str(), days, "measured");
        }
    }
    Ok(out)
}

/// What a timed request needs.
struct Env<'a> {
    schema: GembaSchema,
    db: &'a DatabaseConnection,
    policy: Policy,
    services: Arc<Services>,
}

/// Runs `query` once to warm up (its data is returned) and `runs` times
/// timed, in milliseconds, including serialising the response.
async fn timed(
    env: &Env<'_>,
    query: &str,
    vars: &serde_json::Value,
    runs: usize,
) -> anyhow::Result<(serde_json::Value, Vec<f64>)> {
    let mut first = serde_json::Value::Null;
    let mut times = Vec::with_capacity(runs);
    for run in 0..=runs {
        let ctx = RequestCtx::new(
            env.db.clone(),
            env.policy.clone(),
            env.services.clone(),
            None,
        );
        let started = Instant::now();
        let response = env
            .schema
            .execute(
                Request::new(query)
                    .variables(Variables::from_json(vars.clone()))
                    .data(ctx),
            )
            .await;
        let data = serde_json::to_string(&response.data)?;
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        if !response.errors.is_empty() {
            bail!("the query failed: {:?}", response.errors);
        }
        if run == 0 {
            first = serde_json::from_str(&data)?;
        } else {
            times.push(elapsed);
        }
    }
    Ok((first, times))
}

fn series(
    level: UnitKind,
    key: &str,
    days: i64,
    what: &'static str,
    times: &mut [f64],
    throughput: i64,
) -> Series {
    times.sort_by(f64::total_cmp);
    let pick = |p: f64| percentile(times, p);
    Series {
        level,
        unit_key: key.to_owned(),
        days,
        what,
        median_ms: pick(0.5),
        p95_ms: pick(0.95),
        throughput,
    }
}

/// The unit of `kind` with the lowest id (for the synthetic tree: the
/// first portfolio, its first program, that program's first team).
async fn first_of(db: &DatabaseConnection, kind: UnitKind) -> anyhow::Result<unit::Model> {
    unit::Entity::find()
        .filter(unit::Column::Kind.eq(kind.as_str()))
        .order_by_asc(unit::Column::Id)
        .one(db)
        .await?
        .with_context(|| format!("no {} unit", kind.as_str()))
}

/// A policy for an admin of the organisation (created on first use) and
/// the services a request needs.
async fn admin(
    db: &DatabaseConnection,
    settings: Settings,
) -> anyhow::Result<(Policy, Arc<Services>)> {
    let existing = user::Entity::find()
        .filter(user::Column::Email.eq(BENCH_EMAIL))
        .one(db)
        .await?;
    let user = match existing {
        Some(u) => u,
        None => {
            let mut pw = [0u8; 24];
            rand::rngs::OsRng.fill_bytes(&mut pw);
            let password: String = pw.iter().map(|b| format!("{b:02x}")).collect();
            let u = users::insert_user(db, BENCH_EMAIL, "Benchmark", password)
                .await
                .map_err(crate::cli::seed::api_err)?;
            let org = units::organisation(db)
                .await
                .map_err(crate::cli::seed::api_err)?;
            users::insert_membership(db, u.id, &org, Role::Admin)
                .await
                .map_err(crate::cli::seed::api_err)?;
            u
        }
    };
    let mut secret = [0u8; 48];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let keys = TokenKeys::new(&secret)?;
    let (token, _) = keys
        .issue(user.id, std::time::Duration::from_secs(3600))
        .map_err(crate::cli::seed::api_err)?;
    let viewer = crate::auth::authenticate(db, &keys, &token)
        .await
        .map_err(crate::cli::seed::api_err)?;
    let bus = crate::events::EventBus::default();
    let live = crate::service::live::LiveHub::start(db, &bus);
    let analytics = crate::service::analytics::Analytics::start(db, &bus, &settings);
    let services = Arc::new(Services::new(keys, settings, bus, live, analytics));
    Ok((Policy::for_viewer(viewer), services))
}

/// The median a row must reach on the 1M-item organisation (PostgreSQL,
/// the 2-core reference machine), where one is set: organisation flow in
/// 50 ms over 90 days and 100 ms over two years, its time in state and
/// cumulative flow in 250 ms and its delivery metrics in 100 ms over two
/// years, the portfolios' flow in one drill-down in 150 ms, a team's flow in
/// 5 ms.
fn target_ms(x: &Series) -> Option<f64> {
    let two_years = x.days > 365;
    match (x.level, x.what) {
        (UnitKind::Organization, "flowMetrics") => Some(if two_years { 100.0 } else { 50.0 }),
        (UnitKind::Organization, "flowMetrics: timeInState + cumulativeFlow") if two_years => {
            Some(250.0)
        }
        (UnitKind::Organization, "deliveryMetrics") if two_years => Some(100.0),
        (UnitKind::Organization, "children's flowMetrics (one query)") => Some(150.0),
        (UnitKind::Team, "flowMetrics") => Some(5.0),
        _ => None,
    }
}

/// The report as a Markdown table, each row beside its target where one is
/// set.
pub fn table(series: &[Series], runs: usize) -> String {
    let mut s = String::from(
        "| level (unit) | window | completed | what | median ms | p95 ms | target ms |\n|---|---|---|---|---|---|---|\n",
    );
    for x in series {
        let target = target_ms(x).map_or_else(String::new, |t| {
            let met = if x.median_ms <= t { "met" } else { "missed" };
            format!("≤ {t:.0}: {met}")
        });
        s.push_str(&format!(
            "| {} ({}) | {} d | {} | {} | {:.1} | {:.1} | {target} |\n",
            x.level.as_str(),
            x.unit_key,
            x.days,
            x.throughput,
            x.what,
            x.median_ms,
            x.p95_ms
        ));
    }
    s.push_str(
        "\nTargets are set for the 1M-item organisation on PostgreSQL; a smaller one meets them more easily.\n",
    );
    s.push_str(&format!("\n{runs} runs per row after one warm-up run.\n"));
    s
}

/// The continuous percentile `p` of sorted `times`; 0 when empty.
fn percentile(times: &[f64], p: f64) -> f64 {
    if times.is_empty() {
        return 0.0;
    }
    let rank = p * (times.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    times[lo] + (times[hi] - times[lo]) * rank.fract()
}

/// The inputs of `gemba bench forecast`.
#[derive(Clone, Copy, Debug)]
pub struct ForecastBench {
    pub trials: u32,
    pub sample_days: usize,
    pub remaining: u64,
    pub days: u32,
    pub runs: usize,
}

/// Times both Monte Carlo forecasts on one thread over an irregular
/// generated sample (four days in ten without completions, up to eight on
/// the others), a new seed per run; returns a table of milliseconds.
#[must_use]
pub fn forecast(b: &ForecastBench) -> String {
    use crate::service::forecast::engine::{self, SplitMix64};
    let mut rng = SplitMix64::new(42);
    let sample: Vec<u32> = (0..b.sample_days)
        .map(|_| {
            if rng.below(10) < 4 {
                0
            } else {
                1 + rng.below(8) as u32
            }
        })
        .collect();
    let time = |f: &dyn Fn(u64)| {
        f(0);
        let mut times: Vec<f64> = (1..=b.runs as u64)
            .map(|seed| {
                let started = Instant::now();
                f(seed);
                started.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        times.sort_by(f64::total_cmp);
        (percentile(&times, 0.5), percentile(&times, 0.95))
    };
    let (when_p50, when_p95) = time(&|seed| {
        std::hint::black_box(engine::when(&sample, b.remaining, b.trials, seed, Some(60)));
    });
    let (many_p50, many_p95) = time(&|seed| {
        std::hint::black_box(engine::how_many(&sample, b.days, b.trials, seed));
    });
    let completed: u32 = sample.iter().sum();
    format!(
        "sample: {} days, {completed} completed; {} trials, {} runs\n\
         | forecast | median ms | p95 ms |\n|---|---:|---:|\n\
         | when ({} remaining) | {when_p50:.2} | {when_p95:.2} |\n\
         | how many ({} days) | {many_p50:.2} | {many_p95:.2} |\n",
        b.sample_days, b.trials, b.runs, b.remaining, b.days
    )
}

/// Stories per feature in `gemba bench progress`.
const STORIES_PER_FEATURE: usize = 200;
/// Teams the stories of `gemba bench progress` are spread over.
const PROGRESS_TEAMS: usize = 10;

/// `gemba bench progress`: loads, through the ingest path, an epic whose
/// features hold `leaves` stories, each feature's on one of ten teams of a
/// new portfolio
/// (six in ten done over the last 90 days, two in progress, one canceled,
/// one not started), then times the epic's delivery progress (DESIGN §3.7)
/// and its "when" forecast (§3.8, 10,000 trials) through the GraphQL schema.
/// Returns a table of milliseconds.
///
/// # Errors
/// When the load or a query fails.
pub async fn progress(
    db: &DatabaseConnection,
    leaves: usize,
    runs: usize,
) -> anyhow::Result<String> {
    use crate::policy::IngestScope;
    use crate::service::ingest::{BATCH_SIZE, EventType, Raw, Status, apply_batch};

    // Loaded in SQL mode; each mode is measured afterwards on its own
    // services.
    let settings = Settings {
        analytics: AnalyticsMode::Sql,
        ..Settings::default()
    };
    let (_, services) = admin(db, settings).await?;
    let now = Utc::now().duration_trunc(Duration::hours(1))?;
    let at = |days: f64| (now - Duration::seconds((days * 86_400.0) as i64)).to_rfc3339();
    let mut events: Vec<serde_json::Value> = Vec::new();
    let mut ev = |kind: EventType, id: String, data: serde_json::Value| {
        events.push(
            json!({"id": id, "type": kind.as_str(), "source": "bench-progress", "data": data}),
        );
    };
    ev(
        EventType::UnitUpserted,
        "bp-u-pf".into(),
        json!({"key": "bp-portfolio", "kind": "PORTFOLIO", "name": "Progress bench", "parent": null}),
    );
    ev(
        EventType::UnitUpserted,
        "bp-u-pg".into(),
        json!({"key": "bp-program", "kind": "PROGRAM", "name": "Progress bench program", "parent": "bp-portfolio"}),
    );
    for t in 0..PROGRESS_TEAMS {
        ev(
            EventType::UnitUpserted,
            format!("bp-u-t{t}"),
            json!({"key": format!("bp-team-{t}"), "kind": "TEAM", "name": format!("Progress bench team {t}"), "parent": "bp-program"}),
        );
    }
    ev(
        EventType::WorkItemUpserted,
        "bp-epic".into(),
        json!({"external_id": "BP-EPIC", "key": "BP-EPIC", "unit": "bp-portfolio", "type": "EPIC",
               "title": "The epic", "state": "In Progress", "created_at": at(150.0)}),
    );
    for f in 0..leaves.div_ceil(STORIES_PER_FEATURE) {
        ev(
            EventType::WorkItemUpserted,
            format!("bp-f{f}"),
            json!({"external_id": format!("BP-F{f}"), "key": format!("BP-F{f}"), "unit": "bp-program",
                   "type": "FEATURE", "title": format!("Feature {f}"), "state": "In Progress",
                   "parent": "BP-EPIC", "created_at": at(140.0)}),
        );
    }
    for s in 0..leaves {
        let key = format!("BP-S{s}");
        ev(
            EventType::WorkItemUpserted,
            format!("bp-s{s}"),
            json!({"external_id": key, "key": key, "unit": format!("bp-team-{}", s / STORIES_PER_FEATURE % PROGRESS_TEAMS),
                   "type": "STORY", "title": format!("Story {s}"), "state": "Backlog",
                   "parent": format!("BP-F{}", s / STORIES_PER_FEATURE), "created_at": at(130.0)}),
        );
        // Spread over the last 90 days, one story in 997 steps.
        let done_ago = 1.0 + (s * 89 % 997) as f64 * 89.0 / 997.0;
        let moves: &[(&str, f64)] = match s % 10 {
            0..=5 => &[("In Progress", done_ago + 6.0), ("Done", done_ago)],
            6 | 7 => &[("In Progress", done_ago)],
            8 => &[("Canceled", done_ago)],
            _ => &[],
        };
        for (i, (state, ago)) in moves.iter().enumerate() {
            ev(
                EventType::WorkItemTransitioned,
                format!("bp-s{s}-t{i}"),
                json!({"external_id": key, "to_state": state, "at": at(*ago)}),
            );
        }
    }
    let total = events.len();
    let scope = IngestScope {
        key_id: None,
        unit_root: None,
    };
    let started = Instant::now();
    let mut rejected = 0usize;
    let mut raw: Vec<(usize, Raw)> = events
        .into_iter()
        .enumerate()
        .map(|(i, v)| (i + 1, Raw::Value(v)))
        .collect();
    while !raw.is_empty() {
        let rest = raw.split_off(raw.len().min(BATCH_SIZE));
        let results = apply_batch(db, scope, &services.bus, false, raw)
            .await
            .map_err(crate::cli::seed::api_err)?;
        rejected += results
            .iter()
            .filter(|r| r.status == Status::Rejected)
            .count();
        raw = rest;
    }
    if rejected > 0 {
        bail!("{rejected} of {total} events were rejected");
    }
    let load_s = started.elapsed().as_secs_f64();

    let vars = json!({"k": "BP-EPIC"});
    let mut rows = Vec::new();
    for mode in [AnalyticsMode::Sql, AnalyticsMode::Memory] {
        let settings = Settings {
            analytics: mode,
            ..Settings::default()
        };
        let (policy, services) = admin(db, settings).await?;
        let how = if mode == AnalyticsMode::Memory {
            let started = Instant::now();
            if !services.analytics.wait_loaded().await {
                bail!("the facts were not loaded");
            }
            let (bytes, _) = services.analytics.size();
            format!(
                "memory: facts and tree loaded in {:.1} s, {} MiB",
                started.elapsed().as_secs_f64(),
                bytes >> 20
            )
        } else {
            "SQL".to_owned()
        };
        let env = Env {
            schema: build_schema(&services.settings),
            db,
            policy,
            services,
        };
        for (what, query) in [
            (
                "WorkItem.delivery (progress now)",
                "query($k: String!) { workItem(key: $k) { delivery { total done inProgress notStarted progress } } }",
            ),
            (
                "WorkItem.forecast (10,000 trials)",
                "query($k: String!) { workItem(key: $k) { forecast(input: {seed: 7}) { remaining sampleCompleted p50 p85 p95 } } }",
            ),
        ] {
            let (first, mut times) = timed(&env, query, &vars, runs).await?;
            times.sort_by(f64::total_cmp);
            rows.push(format!(
                "| {what} | {how} | {:.1} | {:.1} | `{}` |\n",
                percentile(&times, 0.5),
                percentile(&times, 0.95),
                first["workItem"]
            ));
        }
    }
    let mut s = format!(
        "{leaves} leaves below BP-EPIC; {total} events ingested in {load_s:.1} s \
         (duplicates of an earlier run are acknowledged, not applied).\n\n\
         | what | computed in | median ms | p95 ms | answer |\n|---|---|---|---|---|\n"
    );
    for r in rows {
        s.push_str(&r);
    }
    s.push_str(&format!("\n{runs} runs per row after one warm-up run.\n"));
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(level: UnitKind, days: i64, what: &'static str, median_ms: f64) -> Series {
        Series {
            level,
            unit_key: "u".into(),
            days,
            what,
            median_ms,
            p95_ms: median_ms,
            throughput: 1,
        }
    }

    #[test]
    fn rows_stand_beside_their_targets() {
        let t = table(
            &[
                row(UnitKind::Organization, 730, "flowMetrics", 5.6),
                row(UnitKind::Organization, 90, "flowMetrics", 55.0),
                row(
                    UnitKind::Organization,
                    730,
                    "flowMetrics: timeInState + cumulativeFlow",
                    2177.6,
                ),
                row(UnitKind::Organization, 90, "deliveryMetrics", 279.0),
                row(UnitKind::Team, 90, "flowMetrics", 1.7),
            ],
            5,
        );
        let lines: Vec<&str> = t.lines().skip(2).take(5).collect();
        assert!(lines[0].ends_with("| ≤ 100: met |"), "{t}");
        assert!(lines[1].ends_with("| ≤ 50: missed |"), "{t}");
        assert!(lines[2].ends_with("| ≤ 250: missed |"), "{t}");
        // No target for the 90-day delivery metrics.
        assert!(lines[3].ends_with("|  |"), "{t}");
        assert!(lines[4].ends_with("| ≤ 5: met |"), "{t}");
    }
}
