//! Delivery metrics from the facts held in memory against the SQL path,
//! the reference: two servers on one database, one computing in memory
//! (the default), one in SQL (`GEMBA_ANALYTICS=sql`), answer every unit's
//! delivery metrics, alone and with its subtree, and every drill-down,
//! with identical numbers: over the demo organisation, over randomized
//! deployments, changes, incidents and releases, and after deployments are
//! recorded again under another unit or status (which moves their
//! changes' first deployment and their incidents' cause).

use serde_json::{Value, json};

use crate::analytics::{Rng, TEAMS, a_sql_twin, loaded, units};
use crate::both;
use crate::harness::{ADMIN, TestApp};
use crate::ingest::post_ndjson;

const FIELDS: &str = "deployments deploymentDays deploymentFrequency
    leadTimeForChanges { count mean p50 p85 p95 min max }
    leadTimeBreakdown { coding review deploy }
    changeFailureRate { numerator denominator value }
    timeToRestore { count mean p50 p85 p95 min max }
    releases releasesPerWeek itemsPerRelease";

fn one() -> String {
    format!(
        "query($u: ID!, $s: UnitScope, $from: DateTime!, $to: DateTime!) {{
  deliveryMetrics(unit: $u, window: {{from: $from, to: $to}}, scope: $s) {{ {FIELDS} }} }}"
    )
}

fn children() -> String {
    format!(
        "query($k: String!, $s: UnitScope, $from: DateTime!, $to: DateTime!) {{
  unit(key: $k) {{ children {{ key
    deliveryMetrics(window: {{from: $from, to: $to}}, scope: $s) {{ {FIELDS} }} }} }} }}"
    )
}

const WINDOWS: &[(&str, &str)] = &[
    ("2026-01-01T00:00:00Z", "2026-04-01T00:00:00Z"),
    ("2026-02-10T12:00:00Z", "2026-02-24T06:30:00Z"),
    ("2024-06-01T00:00:00Z", "2027-06-01T00:00:00Z"),
];

/// Every unit's delivery metrics, with its subtree and alone, and the
/// children of the first units, on both servers; returns how many queries
/// ran.
async fn same_both_ways(memory: &TestApp, sql: &TestApp, token: &str) -> usize {
    let units = units(memory, token).await;
    let (one, children) = (one(), children());
    let mut n = 0;
    for (from, to) in WINDOWS {
        for scope in ["SUBTREE", "UNIT_ONLY"] {
            for (id, key) in &units {
                let vars = json!({"u": id, "s": scope, "from": from, "to": to});
                let a = memory.ok(token, &one, vars.clone()).await;
                let b = sql.ok(token, &one, vars).await;
                assert_eq!(a, b, "{key} {scope} {from}..{to}");
                n += 1;
            }
            for (_, key) in units.iter().take(4) {
                let vars = json!({"k": key, "s": scope, "from": from, "to": to});
                let a = memory.ok(token, &children, vars.clone()).await;
                let b = sql.ok(token, &children, vars).await;
                assert_eq!(a, b, "children of {key} {scope} {from}..{to}");
                if a["unit"]["children"]
                    .as_array()
                    .is_some_and(|c| !c.is_empty())
                {
                    n += 1;
                }
            }
        }
    }
    n
}

/// An instant `ms` milliseconds after 2026-01-05.
fn at(ms: u64) -> String {
    let base = chrono::DateTime::parse_from_rfc3339("2026-01-05T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    (base + chrono::Duration::milliseconds(ms as i64))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

const DAY_MS: u64 = 86_400_000;

/// Random delivery events over about 80 days: per deployment, one to
/// three changes (some without an opening or a first commit), deployments
/// to production or staging that succeed or fail, incidents naming their
/// deployment or not, some resolved, and releases of a few items; then,
/// in a second body, some deployments recorded again under another team
/// or with another status.
fn deliveries(seed: u64, deployments: usize) -> (String, String) {
    let mut rng = Rng(seed);
    let mut first = Vec::new();
    let mut again = Vec::new();
    let mut n = 0;
    let mut ev = |out: &mut Vec<Value>, kind: &str, data: Value| {
        n += 1;
        out.push(
            json!({"id": format!("dv{seed}-{n}"), "type": kind, "source": "dv", "data": data}),
        );
    };
    for i in 0..5 {
        let key = format!("DV{seed}-{i}");
        ev(
            &mut first,
            "work_item.upserted",
            json!({"external_id": key, "key": key, "unit": TEAMS[i % TEAMS.len()],
                   "type": "STORY", "title": key, "state": "Backlog",
                   "created_at": at(0)}),
        );
    }
    for d in 0..deployments {
        let team = TEAMS[rng.below(TEAMS.len() as u64) as usize];
        let finished = rng.below(80 * DAY_MS);
        let mut changes = Vec::new();
        for c in 0..=rng.below(3) {
            let key = format!("dv{seed}-pr-{d}-{c}");
            let merged = finished.saturating_sub(rng.below(4 * DAY_MS));
            let opened = merged.saturating_sub(rng.below(3 * DAY_MS));
            let commit = opened.saturating_sub(rng.below(5 * DAY_MS));
            let mut data = json!({"external_id": key, "unit": team, "repository": "acme/dv",
                                  "merged_at": at(merged)});
            if rng.below(4) > 0 {
                data["opened_at"] = json!(at(opened));
            }
            if rng.below(3) > 0 {
                data["first_commit_at"] = json!(at(commit));
            }
            ev(&mut first, "change.upserted", data);
            changes.push(key);
        }
        // A change shipped again by a later deployment keeps its first.
        if d > 0 && rng.below(5) == 0 {
            changes.push(format!("dv{seed}-pr-{}-0", rng.below(d as u64)));
        }
        let env = if rng.below(5) == 0 {
            "STAGING"
        } else {
            "PRODUCTION"
        };
        let status = if rng.below(8) == 0 {
            "FAILURE"
        } else {
            "SUCCESS"
        };
        let dep = format!("dv{seed}-dep-{d}");
        ev(
            &mut first,
            "deployment.recorded",
            json!({"external_id": dep, "unit": team, "environment": env, "status": status,
                   "finished_at": at(finished), "changes": changes}),
        );
        if rng.below(4) == 0 {
            let inc = format!("dv{seed}-inc-{d}");
            let opened = finished + rng.below(2 * DAY_MS) + 1;
            let mut data = json!({"external_id": inc, "unit": team, "opened_at": at(opened),
                                  "severity": "SEV2"});
            if rng.below(2) == 0 {
                data["deployment"] = json!(dep);
            }
            ev(&mut first, "incident.opened", data);
            if rng.below(3) > 0 {
                ev(
                    &mut first,
                    "incident.resolved",
                    json!({"external_id": inc, "resolved_at": at(opened + rng.below(DAY_MS) + 1)}),
                );
            }
        }
        if rng.below(6) == 0 {
            let items: Vec<String> = (0..rng.below(4))
                .map(|i| format!("DV{seed}-{}", (i + rng.below(5)) % 5))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            ev(
                &mut first,
                "release.recorded",
                json!({"external_id": format!("dv{seed}-rel-{d}"), "unit": team,
                       "name": format!("{d}"), "released_at": at(finished + 1),
                       "work_items": items}),
            );
        }
        if rng.below(7) == 0 {
            let other = TEAMS[rng.below(TEAMS.len() as u64) as usize];
            let status = if rng.below(3) == 0 {
                "FAILURE"
            } else {
                "SUCCESS"
            };
            ev(
                &mut again,
                "deployment.recorded",
                json!({"external_id": dep, "unit": other, "environment": "PRODUCTION",
                       "status": status, "finished_at": at(finished), "changes": changes}),
            );
        }
    }
    let lines = |v: &[Value]| v.iter().map(|e| format!("{e}\n")).collect::<String>();
    (lines(&first), lines(&again))
}

async fn delivery_metrics_from_memory_and_sql_agree(app: TestApp) {
    let sql = a_sql_twin(&app).await;
    let admin = app.login(ADMIN).await;
    loaded(&app).await;
    let answered = app.metric("gemba_analytics_answers_total").await;
    // The demo organisation's deliveries.
    let mut n = same_both_ways(&app, &sql, &admin).await;
    let (first, again) = deliveries(11, 160);
    let (status, report) = post_ndjson(&app, &admin, &first).await;
    assert_eq!((status, &report["rejected"]), (200, &json!(0)), "{report}");
    n += same_both_ways(&app, &sql, &admin).await;
    let (status, report) = post_ndjson(&app, &admin, &again).await;
    assert_eq!((status, &report["rejected"]), (200, &json!(0)), "{report}");
    n += same_both_ways(&app, &sql, &admin).await;

    // Every query was answered from memory on the memory server.
    let answered = app.metric("gemba_analytics_answers_total").await - answered;
    assert!(answered >= n as u64, "{answered} answers for {n} queries");
    assert_eq!(sql.metric("gemba_analytics_answers_total").await, 0);
}
both!(delivery_metrics_from_memory_and_sql_agree);
