//! Flow metrics (DESIGN §3.1) against a hand-computed fixture, and who may
//! read them (the aggregate rule of §2).

use serde_json::{Value, json};

use crate::both;
use crate::harness::{ADMIN, EXEC, PROGRAM, TEAM, TestApp, code};
use crate::ingest::post_ndjson;
use crate::writes::unit_id;

const DAY: f64 = 86_400.0;

/// Items of team-atlas (and one of team-borealis) in March 2026; the window
/// is [March 1, March 15).
pub(crate) fn fixture() -> String {
    let mut events = Vec::new();
    let mut n = 0;
    let mut ev = |kind: &str, data: Value| {
        n += 1;
        events.push(json!({"id": format!("fx-{n}"), "type": kind, "source": "fx", "data": data}));
    };
    let items: &[(&str, &str, &str, &str)] = &[
        ("A", "team-atlas", "STORY", "2026-02-20T00:00:00Z"),
        ("B", "team-atlas", "DEFECT", "2026-03-01T00:00:00Z"),
        ("C", "team-atlas", "STORY", "2026-03-01T00:00:00Z"),
        ("D", "team-atlas", "STORY", "2026-03-01T00:00:00Z"),
        ("E", "team-atlas", "STORY", "2026-02-01T00:00:00Z"),
        ("F", "team-atlas", "STORY", "2026-03-01T00:00:00Z"),
        ("G", "team-atlas", "STORY", "2026-03-01T00:00:00Z"),
        ("H", "team-borealis", "STORY", "2026-03-01T00:00:00Z"),
    ];
    for (key, unit, kind, created) in items {
        ev(
            "work_item.upserted",
            json!({"external_id": format!("FX-{key}"), "key": format!("FX-{key}"), "unit": unit,
                   "type": kind, "title": key, "state": "Backlog", "created_at": created}),
        );
    }
    // I: a defect found in production, untouched.
    ev(
        "work_item.upserted",
        json!({"external_id": "FX-I", "key": "FX-I", "unit": "team-atlas", "type": "DEFECT",
               "title": "I", "state": "Backlog", "created_at": "2026-03-05T00:00:00Z",
               "found_in": "PRODUCTION"}),
    );
    let moves: &[(&str, &str, &str)] = &[
        // A: active 1 day, waiting 1 day, active 1 day, done on the 5th.
        ("A", "In Progress", "2026-03-02T00:00:00Z"),
        ("A", "In Review", "2026-03-03T00:00:00Z"),
        ("A", "Testing", "2026-03-04T00:00:00Z"),
        ("A", "Done", "2026-03-05T00:00:00Z"),
        // B: done, reopened, done again: completion is the last entry.
        ("B", "In Progress", "2026-03-02T12:00:00Z"),
        ("B", "Done", "2026-03-03T12:00:00Z"),
        ("B", "In Progress", "2026-03-06T00:00:00Z"),
        ("B", "Done", "2026-03-07T00:00:00Z"),
        // C: canceled.
        ("C", "In Progress", "2026-03-02T00:00:00Z"),
        ("C", "Canceled", "2026-03-04T00:00:00Z"),
        // D: done after the window.
        ("D", "In Progress", "2026-03-10T00:00:00Z"),
        ("D", "Done", "2026-03-20T00:00:00Z"),
        // E: done before the window.
        ("E", "Done", "2026-02-10T00:00:00Z"),
        // F: done in the window without starting; reopened after it.
        ("F", "Done", "2026-03-08T00:00:00Z"),
        ("F", "In Progress", "2026-03-16T00:00:00Z"),
        // G: backfilled out of order.
        ("G", "Done", "2026-03-12T00:00:00Z"),
        ("G", "In Progress", "2026-03-11T00:00:00Z"),
        // H: another team.
        ("H", "Done", "2026-03-09T00:00:00Z"),
    ];
    for (key, state, at) in moves {
        ev(
            "work_item.transitioned",
            json!({"external_id": format!("FX-{key}"), "to_state": state, "at": at}),
        );
    }
    events.iter().map(|e| format!("{e}\n")).collect()
}

const Q: &str = "query($u: ID!, $f: MetricFilterInput, $from: DateTime!, $to: DateTime!) {
  flowMetrics(unit: $u, window: {from: $from, to: $to}, filter: $f) {
    throughput
    throughputByFlowType { flowType count share }
    throughputByWeek { week start count }
    leadTime { count mean p50 p85 p95 min max }
    cycleTime { count mean p50 p85 p95 min max }
    flowEfficiency { numerator denominator value }
    wipAtEnd averageWip
    agingWip { count p50 }
    oldestWip { workItem { key } age }
    littlesLaw { averageWip predictedWip }
    quality { escapedDefects defectEscapeRate { numerator denominator value } }
    timeInState { state category total perItem { count p50 } }
    cumulativeFlow { date counts { state count } }
  } }";

fn vars(unit: &Value, filter: Value) -> Value {
    json!({"u": unit, "f": filter, "from": "2026-03-01T00:00:00Z", "to": "2026-03-15T00:00:00Z"})
}

fn close(v: &Value, want: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - want).abs() < 1e-9)
}

async fn flow_metrics_match_the_hand_computed_fixture(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let (status, report) = post_ndjson(&app, &admin, &fixture()).await;
    assert_eq!((status, &report["rejected"]), (200, &json!(0)), "{report}");
    let atlas = unit_id(&app, &admin, "team-atlas").await;

    let d = app.ok(&admin, Q, vars(&atlas, Value::Null)).await;
    let m = &d["flowMetrics"];
    assert_eq!(m["throughput"], 4, "{m}");
    let flows: Vec<(Value, Value)> = m["throughputByFlowType"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["flowType"].clone(), f["count"].clone()))
        .collect();
    assert!(flows.contains(&(json!("FEATURE"), json!(3))), "{m}");
    assert!(flows.contains(&(json!("DEFECT"), json!(1))), "{m}");
    assert!(flows.contains(&(json!("RISK"), json!(0))), "{m}");
    let defect = m["throughputByFlowType"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["flowType"] == "DEFECT")
        .unwrap();
    assert!(close(&defect["share"], 0.25), "{m}");
    assert_eq!(
        m["throughputByWeek"],
        json!([
            {"week": "2026-W10", "start": "2026-03-02T00:00:00+00:00", "count": 3},
            {"week": "2026-W11", "start": "2026-03-09T00:00:00+00:00", "count": 1},
        ])
    );
    // Lead times: B 6 d, F 7 d, G 11 d, A 13 d.
    let lead = &m["leadTime"];
    assert_eq!(lead["count"], 4);
    for (field, want) in [
        ("mean", 9.25 * DAY),
        ("p50", 9.0 * DAY),
        ("p85", 1_045_440.0),
        ("p95", 1_097_280.0),
        ("min", 6.0 * DAY),
        ("max", 13.0 * DAY),
    ] {
        assert!(close(&lead[field], want), "leadTime.{field}: {lead}");
    }
    // Cycle times: G 1 d, A 3 d, B 4.5 d (F never started).
    let cycle = &m["cycleTime"];
    assert_eq!(cycle["count"], 3);
    for (field, want) in [
        ("mean", 8.5 * DAY / 3.0),
        ("p50", 3.0 * DAY),
        ("p85", 349_920.0),
        ("p95", 375_840.0),
        ("min", DAY),
        ("max", 4.5 * DAY),
    ] {
        assert!(close(&cycle[field], want), "cycleTime.{field}: {cycle}");
    }
    // Active: A 2 d, B 2 d (both visits), G 1 d, over 8.5 d of cycle time.
    let eff = &m["flowEfficiency"];
    assert!(close(&eff["numerator"], 5.0 * DAY), "{eff}");
    assert!(close(&eff["denominator"], 8.5 * DAY), "{eff}");
    assert!(close(&eff["value"], 5.0 / 8.5), "{eff}");

    // In progress within the window: A 3 d, B 2 d, C 2 d, D 5 d, G 1 d.
    assert_eq!(m["wipAtEnd"], 1, "{m}");
    assert!(close(&m["averageWip"], 13.0 / 14.0), "{m}");
    assert_eq!(m["agingWip"]["count"], 1);
    assert!(close(&m["agingWip"]["p50"], 5.0 * DAY), "{m}");
    assert_eq!(m["oldestWip"][0]["workItem"]["key"], "FX-D", "{m}");
    assert!(close(&m["oldestWip"][0]["age"], 5.0 * DAY), "{m}");
    assert!(close(&m["littlesLaw"]["averageWip"], 13.0 / 14.0), "{m}");
    // 4 items in 14 days × a mean cycle time of 8.5 / 3 days.
    assert!(
        close(&m["littlesLaw"]["predictedWip"], 4.0 / 14.0 * 8.5 / 3.0),
        "{m}"
    );
    assert_eq!(
        m["quality"],
        json!({"escapedDefects": 1, "defectEscapeRate": {"numerator": 1.0, "denominator": 2.0, "value": 0.5}})
    );
    // Time in state until completion, every visit: A, B, F, G.
    let tis: Vec<(Value, Value, f64, Value)> = m["timeInState"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["state"].clone(),
                t["category"].clone(),
                t["total"].as_f64().unwrap() / DAY,
                t["perItem"]["count"].clone(),
            )
        })
        .collect();
    assert_eq!(
        tis,
        vec![
            (json!("Backlog"), json!("NEW"), 28.5, json!(4)),
            (json!("In Progress"), json!("ACTIVE"), 4.0, json!(3)),
            (json!("In Review"), json!("WAITING"), 1.0, json!(1)),
            (json!("Testing"), json!("ACTIVE"), 1.0, json!(1)),
            (json!("Done"), json!("DONE"), 2.5, json!(1)),
        ],
        "{m}"
    );
    assert!(close(&m["timeInState"][1]["perItem"]["p50"], DAY), "{m}");
    // Cumulative flow: 14 days, states in workflow order.
    let cfd = m["cumulativeFlow"].as_array().unwrap();
    assert_eq!(cfd.len(), 14);
    let day = |i: usize| -> Vec<(String, i64)> {
        cfd[i]["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["state"].as_str().unwrap().to_owned(),
                    c["count"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(cfd[0]["date"], "2026-03-01");
    let first: Vec<(String, i64)> = [
        ("Backlog", 6),
        ("In Progress", 0),
        ("In Review", 0),
        ("Blocked", 0),
        ("Testing", 0),
        ("Done", 1),
        ("Canceled", 0),
    ]
    .iter()
    .map(|(s, n)| ((*s).to_owned(), *n))
    .collect();
    assert_eq!(day(0), first);
    assert_eq!(cfd[13]["date"], "2026-03-14");
    let last: Vec<(String, i64)> = [
        ("Backlog", 1),
        ("In Progress", 1),
        ("In Review", 0),
        ("Blocked", 0),
        ("Testing", 0),
        ("Done", 5),
        ("Canceled", 1),
    ]
    .iter()
    .map(|(s, n)| ((*s).to_owned(), *n))
    .collect();
    assert_eq!(day(13), last);

    // An executive gets the aggregates, not the team's items.
    let exec = app.login(EXEC).await;
    let d = app.ok(&exec, Q, vars(&atlas, Value::Null)).await;
    assert_eq!(d["flowMetrics"]["wipAtEnd"], 1, "{d}");
    assert_eq!(d["flowMetrics"]["oldestWip"], json!([]), "{d}");

    // The program's subtree adds team-borealis's H.
    let checkout = unit_id(&app, &admin, "payments-checkout").await;
    let d = app.ok(&admin, Q, vars(&checkout, Value::Null)).await;
    assert_eq!(d["flowMetrics"]["throughput"], 5, "{d}");
    for (filter, want) in [
        (json!({"types": ["DEFECT"]}), 1),
        (json!({"flowTypes": ["FEATURE"]}), 4),
        (json!({"levels": ["TEAM"]}), 5),
        (json!({"levels": ["PROGRAM"]}), 0),
        (json!({"scope": "UNIT_ONLY"}), 0),
    ] {
        let d = app.ok(&admin, Q, vars(&checkout, filter.clone())).await;
        assert_eq!(d["flowMetrics"]["throughput"], want, "{filter}: {d}");
    }

    // A unit with no data: zero counts and null distributions.
    let comet = unit_id(&app, &admin, "team-comet").await;
    let d = app.ok(&admin, Q, vars(&comet, Value::Null)).await;
    let m = &d["flowMetrics"];
    assert_eq!(m["throughput"], 0);
    assert_eq!(
        m["leadTime"],
        json!({"count": 0, "mean": null, "p50": null, "p85": null, "p95": null, "min": null, "max": null})
    );
    assert_eq!(m["flowEfficiency"]["value"], Value::Null);
    assert_eq!(m["throughputByWeek"], json!([]));
}
both!(flow_metrics_match_the_hand_computed_fixture);

async fn flow_metrics_follow_the_aggregate_rule(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let team = app.login(TEAM).await;
    let program = app.login(PROGRAM).await;
    let exec = app.login(EXEC).await;
    let mut units = std::collections::HashMap::new();
    for k in [
        "team-atlas",
        "team-borealis",
        "payments-checkout",
        "payments",
        "org",
        "lending",
    ] {
        units.insert(k, unit_id(&app, &admin, k).await);
    }
    let allowed = |who: &str, unit: &str| match who {
        "team" => ["team-atlas", "payments-checkout", "payments", "org"].contains(&unit),
        "program" => [
            "team-atlas",
            "team-borealis",
            "payments-checkout",
            "payments",
            "org",
        ]
        .contains(&unit),
        _ => true,
    };
    for (who, token) in [("team", &team), ("program", &program), ("exec", &exec)] {
        for (key, id) in &units {
            let body = app.gql(Some(token), Q, vars(id, Value::Null)).await;
            if allowed(who, key) {
                assert!(body.get("errors").is_none(), "{who} on {key}: {body}");
            } else {
                assert_eq!(code(&body), "FORBIDDEN", "{who} on {key}: {body}");
                assert_eq!(body["data"], Value::Null, "{body}");
            }
        }
    }
    let anonymous = app.gql(None, Q, vars(&units["org"], Value::Null)).await;
    assert_eq!(code(&anonymous), "UNAUTHENTICATED", "{anonymous}");

    // Bad windows and units.
    let atlas = &units["team-atlas"];
    for (from, to) in [
        ("2026-03-15T00:00:00Z", "2026-03-01T00:00:00Z"),
        ("2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z"),
        ("2020-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
    ] {
        let body = app
            .gql(Some(&admin), Q, json!({"u": atlas, "from": from, "to": to}))
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{from}..{to}: {body}");
    }
    let body = app
        .gql(
            Some(&admin),
            Q,
            vars(&json!("VW5pdDo5OTk5OTk"), Value::Null),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    let body = app
        .gql(
            Some(&admin),
            Q,
            vars(atlas, json!({"flowTypes": ["SPEED"]})),
        )
        .await;
    assert_eq!(
        code(&body),
        "BAD_USER_INPUT",
        "an unknown flow type: {body}"
    );
}
both!(flow_metrics_follow_the_aggregate_rule);

async fn unit_only(app: &TestApp, token: &str, unit: &Value) -> Value {
    app.ok(token, Q, vars(unit, json!({"scope": "UNIT_ONLY"})))
        .await["flowMetrics"]
        .clone()
}

/// The flow facts behind the metrics are rewritten when history arrives
/// late or out of order, in a later request, and when an item moves
/// through the API.
async fn late_history_corrects_flow_metrics(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let atlas = unit_id(&app, &admin, "team-atlas").await;
    let send = |n: usize, kind: &str, data: Value| {
        format!(
            "{}\n",
            json!({"id": format!("late-{n}"), "type": kind, "source": "late", "data": data})
        )
    };
    let first = [
        send(
            1,
            "work_item.upserted",
            json!({"external_id": "L-1", "key": "LATE-1",
            "unit": "team-atlas", "type": "STORY", "title": "late", "state": "Backlog",
            "created_at": "2026-03-01T00:00:00Z"}),
        ),
        send(
            2,
            "work_item.transitioned",
            json!({"external_id": "L-1",
            "to_state": "In Progress", "at": "2026-03-02T00:00:00Z"}),
        ),
        send(
            3,
            "work_item.transitioned",
            json!({"external_id": "L-1",
            "to_state": "Done", "at": "2026-03-06T00:00:00Z"}),
        ),
    ]
    .concat();
    let (status, report) = post_ndjson(&app, &admin, &first).await;
    assert_eq!((status, &report["applied"]), (200, &json!(3)), "{report}");
    let m = unit_only(&app, &admin, &atlas).await;
    assert_eq!(m["throughput"], 1, "{m}");
    assert!(close(&m["cycleTime"]["p50"], 4.0 * DAY), "{m}");
    assert!(close(&m["flowEfficiency"]["numerator"], 4.0 * DAY), "{m}");
    let before = m;

    // Backfilled: it waited in review from the 4th, so 2 of its 4 days
    // were active.
    let review = send(
        4,
        "work_item.transitioned",
        json!({"external_id": "L-1",
        "to_state": "In Review", "at": "2026-03-04T00:00:00Z"}),
    );
    let (status, report) = post_ndjson(&app, &admin, &review).await;
    assert_eq!((status, &report["applied"]), (200, &json!(1)), "{report}");
    let m = unit_only(&app, &admin, &atlas).await;
    assert_eq!(m["throughput"], 1, "{m}");
    assert!(close(&m["flowEfficiency"]["numerator"], 2.0 * DAY), "{m}");
    assert!(close(&m["flowEfficiency"]["denominator"], 4.0 * DAY), "{m}");
    // Time in state and the cumulative flow see the backfilled visit too:
    // in progress the 2nd–4th, in review the 4th–6th.
    let days_in = |m: &Value, state: &str| -> Option<f64> {
        m["timeInState"]
            .as_array()?
            .iter()
            .find(|t| t["state"] == state)
            .and_then(|t| t["total"].as_f64())
            .map(|s| s / DAY)
    };
    assert_eq!(days_in(&before, "In Progress"), Some(4.0), "{before}");
    assert_eq!(days_in(&before, "In Review"), None, "{before}");
    assert_eq!(days_in(&m, "In Progress"), Some(2.0), "{m}");
    assert_eq!(days_in(&m, "In Review"), Some(2.0), "{m}");
    let on_the_4th = |m: &Value, state: &str| -> i64 {
        let day = &m["cumulativeFlow"][3];
        assert_eq!(day["date"], "2026-03-04", "{m}");
        day["counts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["state"] == state)
            .and_then(|c| c["count"].as_i64())
            .unwrap_or(0)
    };
    assert_eq!(
        on_the_4th(&m, "In Review"),
        on_the_4th(&before, "In Review") + 1
    );
    assert_eq!(
        on_the_4th(&m, "In Progress"),
        on_the_4th(&before, "In Progress") - 1
    );

    // Reopened inside the window (the 10th): no longer completed, and in
    // progress at the end with an age from its first start (the 2nd).
    let reopen = send(
        5,
        "work_item.transitioned",
        json!({"external_id": "L-1",
        "to_state": "In Progress", "at": "2026-03-10T00:00:00Z"}),
    );
    let (status, report) = post_ndjson(&app, &admin, &reopen).await;
    assert_eq!((status, &report["applied"]), (200, &json!(1)), "{report}");
    let m = unit_only(&app, &admin, &atlas).await;
    assert_eq!(
        (&m["throughput"], &m["wipAtEnd"]),
        (&json!(0), &json!(1)),
        "{m}"
    );
    assert!(close(&m["agingWip"]["p50"], 13.0 * DAY), "{m}");
    // In progress the 2nd–6th and the 10th–15th: 9 of 14 days.
    assert!(close(&m["averageWip"], 9.0 / 14.0), "{m}");

    // A move through the API counts at once for a window ending later.
    let created = app
        .ok(
            &admin,
            "mutation($u: ID!) { createWorkItem(input: {unit: $u, type: STORY, title: \"now\"}) { workItem { id } } }",
            json!({"u": atlas}),
        )
        .await;
    let item = created["createWorkItem"]["workItem"]["id"].clone();
    let now = chrono::Utc::now();
    let later = json!({"u": atlas, "f": {"scope": "UNIT_ONLY"},
        "from": (now - chrono::Duration::days(1)).to_rfc3339(),
        "to": (now + chrono::Duration::days(1)).to_rfc3339()});
    let wip = |m: &Value| m["flowMetrics"]["wipAtEnd"].as_i64().unwrap();
    let before = wip(&app.ok(&admin, Q, later.clone()).await);
    app.ok(
        &admin,
        "mutation($i: ID!) { moveWorkItem(input: {workItem: $i, toState: \"In Progress\"}) { workItem { state } } }",
        json!({"i": item}),
    )
    .await;
    let m = app.ok(&admin, Q, later).await;
    assert_eq!(wip(&m), before + 1, "{m}");
    let oldest: Vec<&Value> = m["flowMetrics"]["oldestWip"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert!(
        oldest.iter().any(|o| o["workItem"]["key"] == "LATE-1"),
        "{m}"
    );
}
both!(late_history_corrects_flow_metrics);

const DQ: &str = "query($u: ID!, $from: DateTime!, $to: DateTime!) {
  deliveryMetrics(unit: $u, window: {from: $from, to: $to}) {
    deployments deploymentDays deploymentFrequency
    leadTimeForChanges { count mean p50 min max }
    leadTimeBreakdown { coding review deploy }
    changeFailureRate { numerator denominator value }
    timeToRestore { count mean min max }
    releases releasesPerWeek itemsPerRelease
  } }";

/// Changes, deployments, incidents and releases of team-atlas (and one
/// deployment of team-borealis) around the window [March 1, March 15).
fn delivery_fixture() -> String {
    let mut events = Vec::new();
    let mut n = 0;
    let mut ev = |kind: &str, data: Value| {
        n += 1;
        events.push(json!({"id": format!("dx-{n}"), "type": kind, "source": "dx", "data": data}));
    };
    for key in ["DX-1", "DX-2"] {
        ev(
            "work_item.upserted",
            json!({"external_id": key, "key": key, "unit": "team-atlas", "type": "STORY",
                   "title": key, "state": "Backlog", "created_at": "2026-02-01T00:00:00Z"}),
        );
    }
    // c1: committed, opened, merged a day apart; c2: no first commit; c3:
    // first deployed before the window.
    ev(
        "change.upserted",
        json!({"external_id": "c1", "unit": "team-atlas", "repository": "acme/x",
        "first_commit_at": "2026-03-01T00:00:00Z", "opened_at": "2026-03-02T00:00:00Z",
        "merged_at": "2026-03-03T00:00:00Z"}),
    );
    ev(
        "change.upserted",
        json!({"external_id": "c2", "unit": "team-atlas", "repository": "acme/x",
        "opened_at": "2026-03-04T00:00:00Z", "merged_at": "2026-03-05T12:00:00Z"}),
    );
    ev(
        "change.upserted",
        json!({"external_id": "c3", "unit": "team-atlas", "repository": "acme/x",
        "merged_at": "2026-02-20T00:00:00Z"}),
    );
    // External id, unit, environment, status, finished at, changes.
    type Dep<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, &'a [&'a str]);
    let deps: &[Dep] = &[
        (
            "d0",
            "team-atlas",
            "PRODUCTION",
            "SUCCESS",
            "2026-02-21T00:00:00Z",
            &["c3"],
        ),
        (
            "d1",
            "team-atlas",
            "PRODUCTION",
            "SUCCESS",
            "2026-03-04T00:00:00Z",
            &["c1", "c3"],
        ),
        (
            "d2",
            "team-atlas",
            "PRODUCTION",
            "SUCCESS",
            "2026-03-06T00:00:00Z",
            &["c2"],
        ),
        (
            "d3",
            "team-atlas",
            "PRODUCTION",
            "FAILURE",
            "2026-03-06T12:00:00Z",
            &[],
        ),
        (
            "d4",
            "team-atlas",
            "STAGING",
            "SUCCESS",
            "2026-03-10T00:00:00Z",
            &[],
        ),
        (
            "d5",
            "team-atlas",
            "PRODUCTION",
            "SUCCESS",
            "2026-03-12T00:00:00Z",
            &["c1"],
        ),
        (
            "d6",
            "team-atlas",
            "PRODUCTION",
            "SUCCESS",
            "2026-03-20T00:00:00Z",
            &[],
        ),
        (
            "d7",
            "team-borealis",
            "PRODUCTION",
            "SUCCESS",
            "2026-03-05T00:00:00Z",
            &[],
        ),
    ];
    for (ext, unit, env, status, at, changes) in deps {
        ev(
            "deployment.recorded",
            json!({"external_id": ext, "unit": unit, "environment": env,
            "status": status, "finished_at": at, "changes": changes}),
        );
    }
    // i1 names d1; i2 names none: the latest successful production
    // deployment before it is d2 (d3 failed); i3 names d0, before the window.
    ev(
        "incident.opened",
        json!({"external_id": "i1", "unit": "team-atlas", "severity": "SEV2",
        "opened_at": "2026-03-04T06:00:00Z", "deployment": "d1"}),
    );
    ev(
        "incident.resolved",
        json!({"external_id": "i1", "resolved_at": "2026-03-04T10:00:00Z"}),
    );
    ev(
        "incident.opened",
        json!({"external_id": "i2", "unit": "team-atlas", "severity": "SEV3",
        "opened_at": "2026-03-07T00:00:00Z"}),
    );
    ev(
        "incident.resolved",
        json!({"external_id": "i2", "resolved_at": "2026-03-08T00:00:00Z"}),
    );
    ev(
        "incident.opened",
        json!({"external_id": "i3", "unit": "team-atlas", "severity": "SEV3",
        "opened_at": "2026-03-14T00:00:00Z", "deployment": "d0"}),
    );
    ev(
        "incident.resolved",
        json!({"external_id": "i3", "resolved_at": "2026-03-16T00:00:00Z"}),
    );
    ev(
        "release.recorded",
        json!({"external_id": "r0", "unit": "team-atlas", "name": "0.9",
        "released_at": "2026-02-01T00:00:00Z", "work_items": ["DX-1"]}),
    );
    ev(
        "release.recorded",
        json!({"external_id": "r1", "unit": "team-atlas", "name": "1.0",
        "released_at": "2026-03-10T00:00:00Z", "work_items": ["DX-1", "DX-2"]}),
    );
    ev(
        "release.recorded",
        json!({"external_id": "r2", "unit": "team-atlas", "name": "1.1",
        "released_at": "2026-03-12T00:00:00Z", "work_items": ["DX-1"]}),
    );
    events.iter().map(|e| format!("{e}\n")).collect()
}

async fn delivery_metrics_match_the_hand_computed_fixture(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let (status, report) = post_ndjson(&app, &admin, &delivery_fixture()).await;
    assert_eq!((status, &report["rejected"]), (200, &json!(0)), "{report}");
    let atlas = unit_id(&app, &admin, "team-atlas").await;
    let window =
        |u: &Value| json!({"u": u, "from": "2026-03-01T00:00:00Z", "to": "2026-03-15T00:00:00Z"});
    let d = app.ok(&admin, DQ, window(&atlas)).await;
    let m = &d["deliveryMetrics"];
    // d1, d2, d5; not the failed d3, the staging d4, nor d0 and d6 outside.
    assert_eq!(
        (&m["deployments"], &m["deploymentDays"]),
        (&json!(3), &json!(3)),
        "{m}"
    );
    assert!(close(&m["deploymentFrequency"], 3.0 / 14.0), "{m}");
    // c1 at d1: 3 days from its first commit; c2 at d2: half a day from its
    // merge; c3 was first deployed before the window.
    let lead = &m["leadTimeForChanges"];
    assert_eq!(lead["count"], 2, "{m}");
    assert!(close(&lead["mean"], 1.75 * DAY), "{m}");
    assert!(
        close(&lead["min"], 0.5 * DAY) && close(&lead["max"], 3.0 * DAY),
        "{m}"
    );
    let b = &m["leadTimeBreakdown"];
    assert!(close(&b["coding"], DAY), "{m}");
    assert!(close(&b["review"], 1.25 * DAY), "{m}");
    assert!(close(&b["deploy"], 0.75 * DAY), "{m}");
    // d1 (named by i1) and d2 (before i2) failed; d5 did not.
    assert_eq!(
        m["changeFailureRate"]["numerator"].as_f64(),
        Some(2.0),
        "{m}"
    );
    assert_eq!(m["changeFailureRate"]["denominator"].as_f64(), Some(3.0));
    assert!(close(&m["changeFailureRate"]["value"], 2.0 / 3.0), "{m}");
    // i1 in 4 hours, i2 in a day; i3 resolved after the window.
    let ttr = &m["timeToRestore"];
    assert_eq!(ttr["count"], 2, "{m}");
    assert!(close(&ttr["mean"], (4.0 * 3600.0 + DAY) / 2.0), "{m}");
    assert_eq!(m["releases"], 2, "{m}");
    // Two releases in two weeks.
    assert!(close(&m["releasesPerWeek"], 1.0), "{m}");
    assert!(close(&m["itemsPerRelease"], 1.5), "{m}");
    // DORA levels: 3 deployments in 14 days is more than weekly (high); a
    // median lead time of 1.75 days is high; 2 failures in 3 is low; a
    // median restore of 14 hours is high.
    let levels = "query($u: ID!, $from: DateTime!, $to: DateTime!) {
      deliveryMetrics(unit: $u, window: {from: $from, to: $to}) {
        performance { deploymentFrequency leadTimeForChanges changeFailureRate timeToRestore } } }";
    let d = app.ok(&admin, levels, window(&atlas)).await;
    assert_eq!(
        d["deliveryMetrics"]["performance"],
        json!({"deploymentFrequency": "HIGH", "leadTimeForChanges": "HIGH",
               "changeFailureRate": "LOW", "timeToRestore": "HIGH"})
    );

    // The program adds team-borealis's deployment.
    let checkout = unit_id(&app, &admin, "payments-checkout").await;
    let d = app.ok(&admin, DQ, window(&checkout)).await;
    assert_eq!(d["deliveryMetrics"]["deployments"], 4, "{d}");
    // Nothing in a unit without data: zeros and nulls.
    let comet = unit_id(&app, &admin, "team-comet").await;
    let d = app.ok(&admin, DQ, window(&comet)).await;
    let m = &d["deliveryMetrics"];
    assert_eq!(
        (&m["deployments"], &m["releases"]),
        (&json!(0), &json!(0)),
        "{m}"
    );
    assert_eq!(m["changeFailureRate"]["value"], Value::Null);
    assert_eq!(m["itemsPerRelease"], Value::Null);
    assert_eq!(m["leadTimeForChanges"]["mean"], Value::Null);
    // Nothing to judge by: no deployment is low, the rest unknown.
    let d = app.ok(&admin, levels, window(&comet)).await;
    assert_eq!(
        d["deliveryMetrics"]["performance"],
        json!({"deploymentFrequency": "LOW", "leadTimeForChanges": null,
               "changeFailureRate": null, "timeToRestore": null})
    );
    // The aggregate rule: a team member may not read a sibling team's.
    let team = app.login(TEAM).await;
    let borealis = unit_id(&app, &admin, "team-borealis").await;
    assert!(
        app.gql(Some(&team), DQ, window(&atlas))
            .await
            .get("errors")
            .is_none()
    );
    let body = app.gql(Some(&team), DQ, window(&borealis)).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
}
both!(delivery_metrics_match_the_hand_computed_fixture);

/// The public anchors, through the API: the median of lead times of
/// 90 and 100 days is 95 days, and 4 failed out of 6 deployments is a
/// change failure rate of 0.667.
async fn public_anchors(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let mut events = Vec::new();
    let mut ev = |kind: &str, data: Value| {
        let id = format!("anchor-{}", events.len());
        events.push(format!(
            "{}\n",
            json!({"id": id, "type": kind, "source": "anchor", "data": data})
        ));
    };
    // Created 90 and 100 days before March 11; both done on the 11th.
    for (key, created) in [
        ("AN-1", "2025-12-11T00:00:00Z"),
        ("AN-2", "2025-12-01T00:00:00Z"),
    ] {
        ev(
            "work_item.upserted",
            json!({"external_id": key, "key": key, "unit": "team-fjord", "type": "STORY",
                   "title": key, "state": "Backlog", "created_at": created}),
        );
        ev(
            "work_item.transitioned",
            json!({"external_id": key, "to_state": "Done", "at": "2026-03-11T00:00:00Z"}),
        );
    }
    for d in 1..=6 {
        ev(
            "deployment.recorded",
            json!({"external_id": format!("ad{d}"), "unit": "team-fjord",
                   "environment": "PRODUCTION", "status": "SUCCESS",
                   "finished_at": format!("2026-03-0{d}T00:00:00Z"), "changes": []}),
        );
    }
    for d in 1..=4 {
        ev(
            "incident.opened",
            json!({"external_id": format!("ai{d}"), "unit": "team-fjord", "severity": "SEV2",
                   "opened_at": format!("2026-03-0{d}T06:00:00Z"), "deployment": format!("ad{d}")}),
        );
    }
    let (status, report) = post_ndjson(&app, &admin, &events.concat()).await;
    assert_eq!((status, &report["rejected"]), (200, &json!(0)), "{report}");
    let fjord = unit_id(&app, &admin, "team-fjord").await;
    let vars = json!({"u": fjord, "from": "2026-03-01T00:00:00Z", "to": "2026-03-15T00:00:00Z"});
    let d = app
        .ok(
            &admin,
            "query($u: ID!, $from: DateTime!, $to: DateTime!) { \
             flowMetrics(unit: $u, window: {from: $from, to: $to}) { leadTime { count p50 } } \
             deliveryMetrics(unit: $u, window: {from: $from, to: $to}) { \
               changeFailureRate { numerator denominator value } } }",
            vars,
        )
        .await;
    assert_eq!(d["flowMetrics"]["leadTime"]["count"], 2, "{d}");
    assert!(
        close(&d["flowMetrics"]["leadTime"]["p50"], 95.0 * DAY),
        "{d}"
    );
    let cfr = &d["deliveryMetrics"]["changeFailureRate"];
    assert_eq!(
        (cfr["numerator"].as_f64(), cfr["denominator"].as_f64()),
        (Some(4.0), Some(6.0)),
        "{d}"
    );
    let value = cfr["value"].as_f64().unwrap();
    assert_eq!((value * 1000.0).round() / 1000.0, 0.667, "{d}");
}
both!(public_anchors);

/// The delivery facts (a change's first deployment, an incident's cause)
/// follow deployments that arrive late, out of order, or are re-recorded
/// with another status or other changes.
async fn late_deliveries_correct_delivery_metrics(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let fjord = unit_id(&app, &admin, "team-fjord").await;
    let mut n = 0;
    let mut send = |events: &[(&str, Value)]| {
        events
            .iter()
            .map(|(kind, data)| {
                n += 1;
                format!(
                    "{}\n",
                    json!({"id": format!("late-d{n}"), "type": kind, "source": "ld", "data": data})
                )
            })
            .collect::<String>()
    };
    let deploy = |ext: &str, status: &str, at: &str, changes: &[&str]| {
        (
            "deployment.recorded",
            json!({"external_id": ext, "unit": "team-fjord", "environment": "PRODUCTION",
                   "status": status, "finished_at": at, "changes": changes}),
        )
    };
    let read = || async {
        let d = app
            .ok(
                &admin,
                DQ,
                json!({"u": fjord, "from": "2026-03-01T00:00:00Z", "to": "2026-03-15T00:00:00Z"}),
            )
            .await;
        let m = d["deliveryMetrics"].clone();
        (
            m["deployments"].as_i64().unwrap(),
            m["changeFailureRate"]["numerator"].as_f64().unwrap(),
            m["leadTimeForChanges"]["count"].as_i64().unwrap(),
            m["leadTimeForChanges"]["mean"].as_f64().map(|s| s / DAY),
        )
    };
    // An incident on the 5th naming no deployment, and a change merged on
    // the 1st, first deployed on the 8th.
    let first = send(&[
        (
            "incident.opened",
            json!({"external_id": "lx1", "unit": "team-fjord", "severity": "SEV2",
                   "opened_at": "2026-03-05T00:00:00Z"}),
        ),
        (
            "change.upserted",
            json!({"external_id": "lc1", "unit": "team-fjord", "repository": "acme/y",
                   "merged_at": "2026-03-01T00:00:00Z"}),
        ),
        deploy("ld2", "SUCCESS", "2026-03-08T00:00:00Z", &["lc1"]),
    ]);
    let (status, report) = post_ndjson(&app, &admin, &first).await;
    assert_eq!((status, &report["applied"]), (200, &json!(3)), "{report}");
    assert_eq!(read().await, (1, 0.0, 1, Some(7.0)));

    // Backfilled: a deployment on the 4th shipped the change first, and the
    // incident after it is its failure.
    let backfill = send(&[deploy("ld1", "SUCCESS", "2026-03-04T00:00:00Z", &["lc1"])]);
    let (status, report) = post_ndjson(&app, &admin, &backfill).await;
    assert_eq!((status, &report["applied"]), (200, &json!(1)), "{report}");
    assert_eq!(read().await, (2, 1.0, 1, Some(3.0)));

    // Re-recorded without the change: the change counts at the 8th again;
    // the deployment still caused the incident.
    let relinked = send(&[deploy("ld1", "SUCCESS", "2026-03-04T00:00:00Z", &[])]);
    let (status, report) = post_ndjson(&app, &admin, &relinked).await;
    assert_eq!((status, &report["applied"]), (200, &json!(1)), "{report}");
    assert_eq!(read().await, (2, 1.0, 1, Some(7.0)));

    // Re-recorded as failed: it caused nothing (no successful deployment
    // came before the incident).
    let failed = send(&[deploy("ld1", "FAILURE", "2026-03-04T00:00:00Z", &[])]);
    let (status, report) = post_ndjson(&app, &admin, &failed).await;
    assert_eq!((status, &report["applied"]), (200, &json!(1)), "{report}");
    assert_eq!(read().await, (1, 0.0, 1, Some(7.0)));
}
both!(late_deliveries_correct_delivery_metrics);

/// The longest window is a setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_window_is_configured() {
    let settings = gemba::config::Settings {
        max_metric_window_days: 30,
        ..gemba::config::Settings::default()
    };
    let app = TestApp::spawn_with(crate::harness::Backend::Sqlite, settings)
        .await
        .unwrap();
    let admin = app.login(ADMIN).await;
    let atlas = unit_id(&app, &admin, "team-atlas").await;
    let window = |to: &str| json!({"u": atlas, "from": "2026-03-01T00:00:00Z", "to": to});
    let ok = app
        .gql(Some(&admin), DQ, window("2026-03-31T00:00:00Z"))
        .await;
    assert!(ok.get("errors").is_none(), "30 days: {ok}");
    let long = app
        .gql(Some(&admin), DQ, window("2026-03-31T00:00:01Z"))
        .await;
    assert_eq!(code(&long), "BAD_USER_INPUT", "{long}");
    let long = app
        .gql(Some(&admin), Q, window("2026-04-02T00:00:00Z"))
        .await;
    assert_eq!(code(&long), "BAD_USER_INPUT", "{long}");
}

const FLOW_FIELDS: &str = "throughput throughputByFlowType { flowType count share }
    throughputByWeek { week count } leadTime { count mean p50 p85 p95 min max }
    cycleTime { count mean p50 p85 p95 min max } flowEfficiency { numerator denominator value }
    wipAtEnd averageWip agingWip { count mean p50 p85 p95 min max }
    timeInState { state category total perItem { count mean p50 p85 p95 min max } }
    cumulativeFlow { date counts { state count } }
    quality { escapedDefects defectEscapeRate { numerator denominator value } }";

const DELIVERY_FIELDS: &str = "deployments deploymentDays deploymentFrequency
    leadTimeForChanges { count mean p50 p85 p95 min max } leadTimeBreakdown { coding review deploy }
    changeFailureRate { numerator denominator value } timeToRestore { count mean p50 p85 p95 min max }
    performance { deploymentFrequency leadTimeForChanges changeFailureRate timeToRestore }
    releases releasesPerWeek itemsPerRelease";

/// Changes, deployments, incidents and releases of team-borealis and
/// team-comet in [March 1, March 15), beside team-atlas's of
/// [`delivery_fixture`]: three sibling teams with deliveries.
fn sibling_delivery_fixture() -> String {
    let mut events = Vec::new();
    let mut ev = |kind: &str, data: Value| {
        let id = format!("sx-{}", events.len());
        events.push(format!(
            "{}\n",
            json!({"id": id, "type": kind, "source": "sx", "data": data})
        ));
    };
    ev(
        "work_item.upserted",
        json!({"external_id": "SX-1", "key": "SX-1", "unit": "team-comet", "type": "STORY",
               "title": "SX-1", "state": "Backlog", "created_at": "2026-02-01T00:00:00Z"}),
    );
    // External id, unit, first commit, opened, merged.
    type Change<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>, &'a str);
    let changes: &[Change] = &[
        (
            "cc1",
            "team-comet",
            Some("2026-03-02T00:00:00Z"),
            Some("2026-03-02T12:00:00Z"),
            "2026-03-03T00:00:00Z",
        ),
        ("cc2", "team-comet", None, None, "2026-03-06T00:00:00Z"),
        (
            "cc3",
            "team-comet",
            None,
            Some("2026-03-07T00:00:00Z"),
            "2026-03-08T00:00:00Z",
        ),
        (
            "cb1",
            "team-borealis",
            Some("2026-03-09T00:00:00Z"),
            None,
            "2026-03-10T00:00:00Z",
        ),
    ];
    for (ext, unit, first_commit, opened, merged) in changes {
        ev(
            "change.upserted",
            json!({"external_id": ext, "unit": unit, "repository": "acme/z",
                   "first_commit_at": first_commit, "opened_at": opened, "merged_at": merged}),
        );
    }
    let deps: &[(&str, &str, &str, &[&str])] = &[
        ("cd1", "team-comet", "2026-03-03T06:00:00Z", &["cc1"]),
        ("cd2", "team-comet", "2026-03-07T00:00:00Z", &["cc2"]),
        ("cd3", "team-comet", "2026-03-09T00:00:00Z", &["cc3"]),
        ("cd4", "team-comet", "2026-03-09T12:00:00Z", &[]),
        ("bd1", "team-borealis", "2026-03-11T00:00:00Z", &["cb1"]),
    ];
    for (ext, unit, at, changes) in deps {
        ev(
            "deployment.recorded",
            json!({"external_id": ext, "unit": unit, "environment": "PRODUCTION",
                   "status": "SUCCESS", "finished_at": at, "changes": changes}),
        );
    }
    // ci1 names cd1; ci2 names none (cd4 caused it); bi1 names bd1.
    // External id, unit, opened, deployment named, resolved.
    type Incident<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, &'a str);
    let incidents: &[Incident] = &[
        (
            "ci1",
            "team-comet",
            "2026-03-03T07:00:00Z",
            Some("cd1"),
            "2026-03-05T00:00:00Z",
        ),
        (
            "ci2",
            "team-comet",
            "2026-03-09T13:00:00Z",
            None,
            "2026-03-09T15:00:00Z",
        ),
        (
            "bi1",
            "team-borealis",
            "2026-03-11T01:00:00Z",
            Some("bd1"),
            "2026-03-11T01:30:00Z",
        ),
    ];
    for (ext, unit, opened, deployment, resolved) in incidents {
        ev(
            "incident.opened",
            json!({"external_id": ext, "unit": unit, "severity": "SEV2",
                   "opened_at": opened, "deployment": deployment}),
        );
        ev(
            "incident.resolved",
            json!({"external_id": ext, "resolved_at": resolved}),
        );
    }
    ev(
        "release.recorded",
        json!({"external_id": "cr1", "unit": "team-comet", "name": "2.0",
               "released_at": "2026-03-10T00:00:00Z", "work_items": ["SX-1"]}),
    );
    ev(
        "release.recorded",
        json!({"external_id": "br1", "unit": "team-borealis", "name": "3.0",
               "released_at": "2026-03-12T00:00:00Z", "work_items": []}),
    );
    events.concat()
}

/// `Unit.flowMetrics` and `Unit.deliveryMetrics` drill down a tree with the
/// root fields' numbers; the children of one parent are computed together
/// (the statements do not grow with their number), and a child outside the
/// viewer's aggregate scope is refused on that field alone.
async fn drill_down_matches_the_root_fields(app: TestApp) {
    let admin = app.login(ADMIN).await;
    for events in [fixture(), delivery_fixture(), sibling_delivery_fixture()] {
        let (status, report) = post_ndjson(&app, &admin, &events).await;
        assert_eq!((status, &report["rejected"]), (200, &json!(0)), "{report}");
    }
    let now = chrono::Utc::now();
    let windows = [
        json!({"from": "2026-03-01T00:00:00Z", "to": "2026-03-15T00:00:00Z"}),
        json!({"from": (now - chrono::Duration::days(90)).to_rfc3339(), "to": now.to_rfc3339()}),
    ];
    let drill = format!(
        "query($k: String!, $w: TimeWindowInput!) {{ unit(key: $k) {{ children {{ id key
           flowMetrics(window: $w) {{ {FLOW_FIELDS} }}
           deliveryMetrics(window: $w) {{ {DELIVERY_FIELDS} }}
           unitOnly: deliveryMetrics(window: $w, scope: UNIT_ONLY) {{ {DELIVERY_FIELDS} }} }} }} }}"
    );
    let root = format!(
        "query($u: ID!, $w: TimeWindowInput!) {{ flowMetrics(unit: $u, window: $w) {{ {FLOW_FIELDS} }}
           deliveryMetrics(unit: $u, window: $w) {{ {DELIVERY_FIELDS} }}
           unitOnly: deliveryMetrics(unit: $u, window: $w, scope: UNIT_ONLY) {{ {DELIVERY_FIELDS} }} }}"
    );
    for w in &windows {
        for parent in ["org", "payments", "payments-checkout", "payments-wallet"] {
            let d = app.ok(&admin, &drill, json!({"k": parent, "w": w})).await;
            let children = d["unit"]["children"].as_array().unwrap();
            assert!(!children.is_empty(), "{parent}");
            for child in children {
                let one = app
                    .ok(&admin, &root, json!({"u": child["id"], "w": w}))
                    .await;
                assert_eq!(child["flowMetrics"], one["flowMetrics"], "{}", child["key"]);
                assert_eq!(
                    child["deliveryMetrics"], one["deliveryMetrics"],
                    "{}",
                    child["key"]
                );
                assert_eq!(child["unitOnly"], one["unitOnly"], "{}", child["key"]);
            }
        }
    }
    // The three teams of the fixtures delivered in March: the numbers
    // compared above are not empty ones.
    let d = app
        .ok(
            &admin,
            &drill,
            json!({"k": "payments-checkout", "w": windows[0]}),
        )
        .await;
    let delivered: Vec<(Value, Value, Value, Value)> = d["unit"]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let m = &c["deliveryMetrics"];
            (
                c["key"].clone(),
                m["deployments"].clone(),
                m["leadTimeForChanges"]["count"].clone(),
                m["releases"].clone(),
            )
        })
        .collect();
    assert_eq!(
        delivered,
        [
            (json!("team-atlas"), json!(3), json!(2), json!(2)),
            (json!("team-borealis"), json!(2), json!(1), json!(1)),
            (json!("team-comet"), json!(4), json!(3), json!(1)),
        ]
    );
    let comet = &d["unit"]["children"][2]["deliveryMetrics"];
    // cd1 (named by ci1) and cd4 (the latest before ci2) failed.
    assert_eq!(comet["changeFailureRate"]["value"], json!(0.5), "{comet}");
    // cc1 in a day and 6 hours, cc2 in a day, cc3 in a day: the median
    // is a day.
    assert!(close(&comet["leadTimeForChanges"]["p50"], DAY), "{comet}");
    // ci1 in 41 hours, ci2 in 2.
    assert!(
        close(&comet["timeToRestore"]["p50"], 21.5 * 3600.0),
        "{comet}"
    );

    // Statements: three teams cost what two cost.
    let flow_only = format!(
        "query($k: String!, $w: TimeWindowInput!) {{ unit(key: $k) {{ children {{ key
           flowMetrics(window: $w) {{ {FLOW_FIELDS} }} }} }} }}"
    );
    let delivery_only = format!(
        "query($k: String!, $w: TimeWindowInput!) {{ unit(key: $k) {{ children {{ key
           deliveryMetrics(window: $w) {{ {DELIVERY_FIELDS} }} }} }} }}"
    );
    for query in [&flow_only, &delivery_only] {
        let mut counts = Vec::new();
        for (program, teams) in [("payments-checkout", 3), ("payments-wallet", 2)] {
            // The fewest of three runs: a replica's snapshot of the tree
            // may expire and be read again during any one of them.
            let mut fewest = u64::MAX;
            for _ in 0..3 {
                let before = app.statements().await;
                let d = app
                    .ok(&admin, query, json!({"k": program, "w": windows[1]}))
                    .await;
                fewest = fewest.min(app.statements().await - before);
                assert_eq!(d["unit"]["children"].as_array().unwrap().len(), teams);
            }
            counts.push(fewest);
        }
        assert_eq!(
            counts[0], counts[1],
            "statements for 3 and 2 teams: {counts:?} of {query}"
        );
    }

    // A team member sees their own team's numbers beside a refusal for
    // each sibling team.
    let team = app.login(TEAM).await;
    for (query, field, own) in [
        (&flow_only, "flowMetrics", "throughput"),
        (&delivery_only, "deliveryMetrics", "deployments"),
    ] {
        let body = app
            .gql(
                Some(&team),
                query,
                json!({"k": "payments-checkout", "w": windows[0]}),
            )
            .await;
        let children = body["data"]["unit"]["children"].as_array().unwrap();
        for child in children {
            if child["key"] == "team-atlas" {
                let want = if field == "flowMetrics" { 4 } else { 3 };
                assert_eq!(child[field][own], want, "{body}");
            } else {
                assert_eq!(child[field], Value::Null, "{body}");
            }
        }
        let refused: Vec<&Value> = body["errors"].as_array().unwrap().iter().collect();
        assert_eq!(refused.len(), children.len() - 1, "{body}");
        assert!(
            refused
                .iter()
                .all(|e| e["extensions"]["code"] == "FORBIDDEN"),
            "{body}"
        );
    }
}
both!(drill_down_matches_the_root_fields);
