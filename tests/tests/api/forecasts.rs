//! Delivery progress (DESIGN §3.7) and Monte Carlo forecasts (§3.8)
//! against a hand-computed fixture, their bad inputs, and who may read them.

use serde_json::{Value, json};

use crate::both;
use crate::harness::{ADMIN, EXEC, TEAM, TestApp, code};
use crate::ingest::post_ndjson;

/// A feature of payments-checkout whose stories belong to team-atlas, in
/// March 2026. At April 1: S1 and S2 done (on March 30 and 31), S3 in
/// progress, S4 not started, S5 canceled; S6 is created on April 5.
fn fixture() -> String {
    let mut events = Vec::new();
    let mut n = 0;
    let mut ev = |kind: &str, data: Value| {
        n += 1;
        events.push(json!({"id": format!("fc-{n}"), "type": kind, "source": "fc", "data": data}));
    };
    ev(
        "work_item.upserted",
        json!({"external_id": "FC-F", "key": "FC-F", "unit": "payments-checkout",
               "type": "FEATURE", "title": "F", "state": "Backlog",
               "created_at": "2026-03-19T00:00:00Z"}),
    );
    for (key, created) in [
        ("S1", "2026-03-20T00:00:00Z"),
        ("S2", "2026-03-20T00:00:00Z"),
        ("S3", "2026-03-20T00:00:00Z"),
        ("S4", "2026-03-20T00:00:00Z"),
        ("S5", "2026-03-20T00:00:00Z"),
        ("S6", "2026-04-05T00:00:00Z"),
    ] {
        ev(
            "work_item.upserted",
            json!({"external_id": format!("FC-{key}"), "key": format!("FC-{key}"),
                   "unit": "team-atlas", "type": "STORY", "title": key, "state": "Backlog",
                   "parent": "FC-F", "created_at": created}),
        );
    }
    for (key, state, at) in [
        ("S1", "In Progress", "2026-03-25T00:00:00Z"),
        ("S1", "Done", "2026-03-30T10:00:00Z"),
        ("S2", "In Progress", "2026-03-26T00:00:00Z"),
        ("S2", "Done", "2026-03-31T10:00:00Z"),
        ("S3", "In Progress", "2026-03-28T00:00:00Z"),
        ("S5", "Canceled", "2026-03-27T00:00:00Z"),
    ] {
        ev(
            "work_item.transitioned",
            json!({"external_id": format!("FC-{key}"), "to_state": state, "at": at}),
        );
    }
    events.iter().map(|e| format!("{e}\n")).collect()
}

const ITEM: &str = "query($k: String!, $at: DateTime, $i: ForecastInput) {
  workItem(key: $k) {
    delivery(asOf: $at) { total done inProgress notStarted progress }
    forecast(input: $i) {
      remaining sampleDays sampleCompleted trials p50 p85 p95 probabilityByTarget
    }
  } }";

const UNIT: &str = "query($k: String!, $d: Int!, $i: ForecastInput) {
  unit(key: $k) {
    throughputForecast(days: $d, input: $i) {
      days sampleDays sampleCompleted trials p50 p85 p95
    }
  } }";

fn sample(as_of: &str, from: &str, target: Option<&str>) -> Value {
    json!({"asOf": as_of, "sampleFrom": from, "targetDate": target})
}

async fn setup(app: &TestApp) -> String {
    let admin = app.login(ADMIN).await;
    let (status, report) = post_ndjson(app, &admin, &fixture()).await;
    assert_eq!((status, &report["rejected"]), (200, &json!(0)), "{report}");
    admin
}

async fn delivery_progress_counts_leaves_at_an_instant(app: TestApp) {
    let admin = setup(&app).await;
    let at = |t: Option<&str>| json!({"k": "FC-F", "at": t});
    // Now: S6 exists and has not started.
    let d = app.ok(&admin, ITEM, at(None)).await;
    assert_eq!(
        d["workItem"]["delivery"],
        json!({"total": 5, "done": 2, "inProgress": 1, "notStarted": 2, "progress": 0.4})
    );
    // April 1: S6 did not exist yet.
    let d = app.ok(&admin, ITEM, at(Some("2026-04-01T00:00:00Z"))).await;
    assert_eq!(
        d["workItem"]["delivery"],
        json!({"total": 4, "done": 2, "inProgress": 1, "notStarted": 1, "progress": 0.5})
    );
    // March 30 at noon: S1 done, S2 and S3 in progress.
    let d = app.ok(&admin, ITEM, at(Some("2026-03-30T12:00:00Z"))).await;
    assert_eq!(
        d["workItem"]["delivery"],
        json!({"total": 4, "done": 1, "inProgress": 2, "notStarted": 1, "progress": 0.25})
    );
    // Before anything existed: nothing, and no progress.
    let d = app.ok(&admin, ITEM, at(Some("2026-03-01T00:00:00Z"))).await;
    assert_eq!(
        d["workItem"]["delivery"],
        json!({"total": 0, "done": 0, "inProgress": 0, "notStarted": 0, "progress": null})
    );
    // A leaf is its own single leaf.
    let d = app
        .ok(
            &admin,
            ITEM,
            json!({"k": "FC-S1", "at": "2026-04-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(d["workItem"]["delivery"]["progress"], 1.0);
}
both!(delivery_progress_counts_leaves_at_an_instant);

async fn forecasts_match_the_hand_computed_fixture(app: TestApp) {
    let admin = setup(&app).await;
    // One completion on each of the sample's two days, two leaves left:
    // every trial takes exactly two days.
    let input = |target| sample("2026-04-01T00:00:00Z", "2026-03-30T00:00:00Z", target);
    let d = app
        .ok(
            &admin,
            ITEM,
            json!({"k": "FC-F", "i": input(Some("2026-04-02T00:00:00Z"))}),
        )
        .await;
    assert_eq!(
        d["workItem"]["forecast"],
        json!({"remaining": 2, "sampleDays": 2, "sampleCompleted": 2, "trials": 10000,
               "p50": "2026-04-03T00:00:00+00:00", "p85": "2026-04-03T00:00:00+00:00",
               "p95": "2026-04-03T00:00:00+00:00", "probabilityByTarget": 0.0})
    );
    let d = app
        .ok(
            &admin,
            ITEM,
            json!({"k": "FC-F", "i": input(Some("2026-04-03T00:00:00Z"))}),
        )
        .await;
    assert_eq!(d["workItem"]["forecast"]["probabilityByTarget"], 1.0);

    // Nothing remaining: done at asOf, certainly.
    let d = app
        .ok(
            &admin,
            ITEM,
            json!({"k": "FC-S1", "i": input(Some("2026-03-15T00:00:00Z"))}),
        )
        .await;
    let f = &d["workItem"]["forecast"];
    assert_eq!(f["remaining"], 0, "{f}");
    assert_eq!(f["p95"], "2026-04-01T00:00:00+00:00", "{f}");
    assert_eq!(f["probabilityByTarget"], 1.0, "{f}");

    // A sample with no completion: no dates, no probability, an answer.
    let d = app
        .ok(
            &admin,
            ITEM,
            json!({"k": "FC-F", "i": sample("2026-03-25T00:00:00Z", "2026-03-20T00:00:00Z",
                                            Some("2026-06-01T00:00:00Z"))}),
        )
        .await;
    let f = &d["workItem"]["forecast"];
    assert_eq!(
        (&f["remaining"], &f["sampleDays"], &f["sampleCompleted"]),
        (&json!(5), &json!(5), &json!(0)),
        "{f}"
    );
    assert_eq!(
        (&f["p50"], &f["p95"], &f["probabilityByTarget"]),
        (&Value::Null, &Value::Null, &Value::Null),
        "{f}"
    );

    // How many in four days: four, in every trial.
    let d = app
        .ok(
            &admin,
            UNIT,
            json!({"k": "team-atlas", "d": 4, "i": input(None)}),
        )
        .await;
    assert_eq!(
        d["unit"]["throughputForecast"],
        json!({"days": 4, "sampleDays": 2, "sampleCompleted": 2, "trials": 10000,
               "p50": 4, "p85": 4, "p95": 4})
    );
    // An irregular sample: the seed reproduces the answer, and the
    // percentiles are ordered (more confidence, fewer items).
    let irregular = json!({"k": "team-atlas", "d": 30, "i": {
        "asOf": "2026-04-01T00:00:00Z", "sampleFrom": "2026-03-22T00:00:00Z",
        "trials": 5000, "seed": 7}});
    let a = app.ok(&admin, UNIT, irregular.clone()).await;
    let b = app.ok(&admin, UNIT, irregular).await;
    assert_eq!(a, b);
    let f = &a["unit"]["throughputForecast"];
    let (p50, p85, p95) = (
        f["p50"].as_i64().unwrap(),
        f["p85"].as_i64().unwrap(),
        f["p95"].as_i64().unwrap(),
    );
    assert!(p50 >= p85 && p85 >= p95 && p50 > 0, "{f}");
    assert_eq!(f["sampleDays"], 10, "{f}");
}
both!(forecasts_match_the_hand_computed_fixture);

async fn forecasts_refuse_bad_input_and_follow_the_aggregate_rule(app: TestApp) {
    let admin = setup(&app).await;
    let bad = |i: Value| json!({"k": "FC-F", "i": i});
    for input in [
        json!({"trials": 0}),
        json!({"trials": 100001}),
        json!({"asOf": "2026-04-01T00:00:00Z", "sampleFrom": "2026-04-01T00:00:00Z"}),
        json!({"asOf": "2026-04-01T00:00:00Z", "sampleFrom": "2016-04-01T00:00:00Z"}),
    ] {
        let body = app.gql(Some(&admin), ITEM, bad(input.clone())).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{input}: {body}");
    }
    for days in [0, 3651] {
        let body = app
            .gql(Some(&admin), UNIT, json!({"k": "team-atlas", "d": days}))
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{days}: {body}");
    }
    // 100,000 trials are allowed.
    let d = app
        .ok(
            &admin,
            UNIT,
            json!({"k": "team-atlas", "d": 5, "i": {"trials": 100000}}),
        )
        .await;
    assert_eq!(d["unit"]["throughputForecast"]["trials"], 100000);

    // An executive forecasts any unit; a team member their own team, not a
    // sibling team.
    let exec = app.login(EXEC).await;
    for unit in ["team-atlas", "team-borealis", "payments"] {
        app.ok(&exec, UNIT, json!({"k": unit, "d": 7})).await;
    }
    let team = app.login(TEAM).await;
    app.ok(&team, UNIT, json!({"k": "team-atlas", "d": 7}))
        .await;
    let body = app
        .gql(Some(&team), UNIT, json!({"k": "team-borealis", "d": 7}))
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
}
both!(forecasts_refuse_bad_input_and_follow_the_aggregate_rule);

const CREATE_OBJECTIVE: &str = "mutation($u: ID!) {
  createObjective(input: {unit: $u, key: \"PAY-OK\", title: \"Card payments grow\",
    periodStart: \"2026-01-01T00:00:00Z\", periodEnd: \"2026-04-03T00:00:00Z\"}) {
    objective { id } } }";

const LINK: &str = "mutation($o: ID!, $w: [ID!]!) {
  linkWorkItems(input: {objective: $o, workItems: $w}) {
    objective { linkedWorkItems { key } } } }";

const UNLINK: &str = "mutation($o: ID!, $w: [ID!]!) {
  unlinkWorkItems(input: {objective: $o, workItems: $w}) {
    objective { linkedWorkItems { key } } } }";

const OBJECTIVE: &str = "query($u: String!, $at: DateTime, $i: ForecastInput) {
  unit(key: $u) { objectives { key linkedWorkItems { key }
    delivery(asOf: $at) { total done inProgress notStarted progress }
    forecast(input: $i) { remaining p85 probabilityByTarget } } } }";

async fn item_id(app: &TestApp, token: &str, key: &str) -> Value {
    let d = app
        .ok(
            token,
            "query($k: String!) { workItem(key: $k) { id } }",
            json!({"k": key}),
        )
        .await;
    d["workItem"]["id"].clone()
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect()
}

/// Epics and features serve objectives: links are idempotent, all or
/// nothing, written by whoever may write the objective, and read under the
/// item rule; an objective's delivery counts each leaf once and its
/// forecast aims at the period's end.
async fn objectives_link_work_and_forecast_it(app: TestApp) {
    let admin = setup(&app).await;
    // FC-F gains an epic above it, and the wallet program a feature.
    let more = [
        json!({"id": "fc-l1", "type": "work_item.upserted", "source": "fc", "data": {
            "external_id": "FC-E", "key": "FC-E", "unit": "payments", "type": "EPIC",
            "title": "E", "state": "Backlog", "created_at": "2026-03-18T00:00:00Z"}}),
        json!({"id": "fc-l2", "type": "work_item.upserted", "source": "fc", "data": {
            "external_id": "FC-F", "key": "FC-F", "unit": "payments-checkout", "type": "FEATURE",
            "title": "F", "state": "Backlog", "parent": "FC-E",
            "created_at": "2026-03-19T00:00:00Z"}}),
        json!({"id": "fc-l3", "type": "work_item.upserted", "source": "fc", "data": {
            "external_id": "FC-W", "key": "FC-W", "unit": "payments-wallet", "type": "FEATURE",
            "title": "W", "state": "Backlog", "created_at": "2026-03-19T00:00:00Z"}}),
    ];
    let body: String = more.iter().map(|e| format!("{e}\n")).collect();
    let (status, report) = post_ndjson(&app, &admin, &body).await;
    assert_eq!((status, &report["rejected"]), (200, &json!(0)), "{report}");

    let portfolio = app.login(crate::harness::PORTFOLIO).await;
    let payments = crate::writes::unit_id(&app, &admin, "payments").await;
    let o = app
        .ok(&portfolio, CREATE_OBJECTIVE, json!({"u": payments}))
        .await;
    let objective = o["createObjective"]["objective"]["id"].clone();
    let [e, f, w, s1] = [
        item_id(&app, &admin, "FC-E").await,
        item_id(&app, &admin, "FC-F").await,
        item_id(&app, &admin, "FC-W").await,
        item_id(&app, &admin, "FC-S1").await,
    ];

    // A story does not serve objectives, and a failed call links nothing.
    let body = app
        .gql(
            Some(&portfolio),
            LINK,
            json!({"o": objective, "w": [f, s1]}),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    let d = app
        .ok(&portfolio, LINK, json!({"o": objective, "w": [e]}))
        .await;
    assert_eq!(
        keys(&d["linkWorkItems"]["objective"]["linkedWorkItems"]),
        ["FC-E"]
    );
    // Linking twice changes nothing.
    let d = app
        .ok(&portfolio, LINK, json!({"o": objective, "w": [e, f, w]}))
        .await;
    let d2 = app
        .ok(&portfolio, LINK, json!({"o": objective, "w": [f]}))
        .await;
    assert_eq!(
        keys(&d["linkWorkItems"]["objective"]["linkedWorkItems"]),
        ["FC-E", "FC-F", "FC-W"]
    );
    assert_eq!(d, json!({"linkWorkItems": d2["linkWorkItems"]}));

    // Who may link: not a program manager (reads, may not write), not
    // someone who cannot read the objective, and never an unreadable item.
    let program = app.login(crate::harness::PROGRAM).await;
    let body = app
        .gql(Some(&program), LINK, json!({"o": objective, "w": [f]}))
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let lending = crate::writes::unit_id(&app, &admin, "lending").await;
    let other = app
        .ok(
            &admin,
            &CREATE_OBJECTIVE.replace("PAY-OK", "LEN-OK"),
            json!({"u": lending}),
        )
        .await;
    let other = other["createObjective"]["objective"]["id"].clone();
    let body = app
        .gql(Some(&portfolio), LINK, json!({"o": other, "w": [f]}))
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    let team = app.login(TEAM).await;
    let body = app
        .gql(Some(&team), LINK, json!({"o": objective, "w": [f]}))
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");

    // The item rule: checkout's program manager reads the objective but not
    // the wallet's feature.
    let vars = json!({"u": "payments", "at": "2026-04-01T00:00:00Z",
        "i": {"asOf": "2026-04-01T00:00:00Z", "sampleFrom": "2026-03-30T00:00:00Z"}});
    let d = app.ok(&program, OBJECTIVE, vars.clone()).await;
    let seen = &d["unit"]["objectives"][0];
    assert_eq!(seen["key"], "PAY-OK");
    assert_eq!(keys(&seen["linkedWorkItems"]), ["FC-E", "FC-F"]);
    // Delivery counts FC-S1..S4 once though both FC-E and FC-F reach them;
    // FC-W is its own single leaf, not started.
    assert_eq!(
        seen["delivery"],
        json!({"total": 5, "done": 2, "inProgress": 1, "notStarted": 2, "progress": 0.4})
    );
    // Three leaves left at one a day (team-atlas's sample; the wallet has
    // none): three days, April 4, after the period's end.
    assert_eq!(seen["forecast"]["remaining"], 3, "{seen}");
    let exec = app.login(EXEC).await;
    let d = app.ok(&exec, OBJECTIVE, vars).await;
    let seen = &d["unit"]["objectives"][0];
    assert_eq!(keys(&seen["linkedWorkItems"]), ["FC-E", "FC-F", "FC-W"]);
    assert_eq!(
        seen["forecast"],
        json!({"remaining": 3, "p85": "2026-04-04T00:00:00+00:00", "probabilityByTarget": 0.0})
    );

    // The flow of the linked work in March: the leaves below FC-E, FC-F and
    // FC-W, once each. S1 and S2 completed (lead 10 d 10 h and 11 d 10 h,
    // cycle 5 d 10 h each); S3 is in progress at the end, 4 days old.
    const FLOW: &str = "query($u: String!) { unit(key: $u) { objectives {
      flowMetrics(window: {from: \"2026-03-01T00:00:00Z\", to: \"2026-04-01T00:00:00Z\"}) {
        throughput leadTime { count min max p50 } cycleTime { p50 p95 }
        wipAtEnd agingWip { count max } oldestWip { workItem { key } }
        throughputByFlowType { flowType count } } } } }";
    let mut expected = json!({
        "throughput": 2,
        "leadTime": {"count": 2, "min": 900000.0, "max": 986400.0, "p50": 943200.0},
        "cycleTime": {"p50": 468000.0, "p95": 468000.0},
        "wipAtEnd": 1, "agingWip": {"count": 1, "max": 345600.0},
        "oldestWip": [{"workItem": {"key": "FC-S3"}}],
        "throughputByFlowType": [
            {"flowType": "FEATURE", "count": 2}, {"flowType": "DEFECT", "count": 0},
            {"flowType": "RISK", "count": 0}, {"flowType": "DEBT", "count": 0}]
    });
    // The checkout program manager reads FC-S3 (a story of its team); the
    // executive reads the same aggregate but not team-level items.
    let d = app.ok(&program, FLOW, json!({"u": "payments"})).await;
    assert_eq!(d["unit"]["objectives"][0]["flowMetrics"], expected, "{d}");
    expected["oldestWip"] = json!([]);
    let d = app.ok(&exec, FLOW, json!({"u": "payments"})).await;
    assert_eq!(d["unit"]["objectives"][0]["flowMetrics"], expected, "{d}");

    // The item side.
    let d = app
        .ok(
            &exec,
            "{ workItem(key: \"FC-F\") { objectives { key } } }",
            json!({}),
        )
        .await;
    assert_eq!(keys(&d["workItem"]["objectives"]), ["PAY-OK"]);
    // Unlinking, twice, leaves the rest.
    for _ in 0..2 {
        let d = app
            .ok(&portfolio, UNLINK, json!({"o": objective, "w": [e, w]}))
            .await;
        assert_eq!(
            keys(&d["unlinkWorkItems"]["objective"]["linkedWorkItems"]),
            ["FC-F"]
        );
    }
}
both!(objectives_link_work_and_forecast_it);

/// OKR tools feed objectives through the ingest door, and work items name
/// the objectives they serve; the source system's list replaces the links.
async fn objectives_and_links_arrive_by_ingest(app: TestApp) {
    let admin = setup(&app).await;
    let ev = |id: &str, kind: &str, data: Value| {
        format!(
            "{}\n",
            json!({"id": id, "type": kind, "source": "fc", "data": data})
        )
    };
    let objective = |id: &str, title: &str, target: f64| {
        ev(
            id,
            "objective.upserted",
            json!({"key": "PAY-GROW", "unit": "payments", "title": title,
                   "period_start": "2026-01-01T00:00:00Z", "period_end": "2026-06-30T00:00:00Z",
                   "key_results": [
                       {"key": "PAY-GROW-1", "title": "Volume", "start_value": 10.0,
                        "target_value": target},
                       {"key": "PAY-GROW-2", "title": "Churn", "start_value": 8.0,
                        "target_value": 4.0}]}),
        )
    };
    let feature = |id: &str, objectives: Value| {
        ev(
            id,
            "work_item.upserted",
            json!({"external_id": "FC-F", "key": "FC-F", "unit": "payments-checkout",
                   "type": "FEATURE", "title": "F", "state": "Backlog",
                   "created_at": "2026-03-19T00:00:00Z", "objectives": objectives}),
        )
    };
    let body = [
        objective("o1", "Grow", 20.0),
        feature("o2", json!(["PAY-GROW"])),
        // A story does not serve objectives; an unknown key is refused; a
        // key result going nowhere is refused.
        ev(
            "o3",
            "work_item.upserted",
            json!({"external_id": "FC-S1", "key": "FC-S1", "unit": "team-atlas", "type": "STORY",
                  "title": "S1", "state": "Backlog", "parent": "FC-F",
                  "created_at": "2026-03-20T00:00:00Z", "objectives": ["PAY-GROW"]}),
        ),
        feature("o4", json!(["NOPE"])),
        ev(
            "o5",
            "objective.upserted",
            json!({"key": "PAY-BAD", "unit": "payments", "title": "Bad",
                  "period_start": "2026-01-01T00:00:00Z", "period_end": "2026-06-30T00:00:00Z",
                  "key_results": [{"key": "PAY-BAD-1", "title": "x", "start_value": 1.0,
                                   "target_value": 1.0}]}),
        ),
    ]
    .concat();
    let (status, report) = post_ndjson(&app, &admin, &body).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (&report["applied"], &report["rejected"]),
        (&json!(2), &json!(3)),
        "{report}"
    );
    let q = "{ unit(key: \"payments\") { objectives { key title keyResults { key targetValue }
        linkedWorkItems { key } } } workItem(key: \"FC-F\") { objectives { key } } }";
    // The demo's own objectives aside.
    let mine = |d: &Value| -> Value {
        d["unit"]["objectives"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["key"].as_str().is_some_and(|k| k.starts_with("PAY-GROW")))
            .cloned()
            .collect()
    };
    let d = app.ok(&admin, q, json!({})).await;
    assert_eq!(
        mine(&d),
        json!([{"key": "PAY-GROW", "title": "Grow",
                "keyResults": [{"key": "PAY-GROW-1", "targetValue": 20.0},
                               {"key": "PAY-GROW-2", "targetValue": 4.0}],
                "linkedWorkItems": [{"key": "FC-F"}]}])
    );
    assert_eq!(d["workItem"]["objectives"], json!([{"key": "PAY-GROW"}]));
    // Sent again, changed: the objective and its key result update in
    // place; an empty list unlinks; no list leaves the links alone.
    let body = [
        objective("o6", "Grow card payments", 30.0),
        feature("o7", json!([])),
    ]
    .concat();
    let (_, report) = post_ndjson(&app, &admin, &body).await;
    assert_eq!(report["applied"], 2, "{report}");
    let d = app.ok(&admin, q, json!({})).await;
    let o = &mine(&d)[0];
    assert_eq!(o["title"], "Grow card payments");
    assert_eq!(o["keyResults"][0]["targetValue"], 30.0);
    assert_eq!(o["linkedWorkItems"], json!([]));
    let (_, report) = post_ndjson(&app, &admin, &feature("o8", json!(["PAY-GROW"]))).await;
    assert_eq!(report["applied"], 1, "{report}");
    let (_, report) = post_ndjson(&app, &admin, &feature("o9", Value::Null)).await;
    assert_eq!(report["applied"], 1, "{report}");
    let d = app.ok(&admin, q, json!({})).await;
    assert_eq!(d["workItem"]["objectives"], json!([{"key": "PAY-GROW"}]));

    // The objective's side: `work_items` (external ids of the source, or
    // keys) replace its links; its key results are kept.
    let served_by = |id: &str, items: Value| {
        ev(
            id,
            "objective.upserted",
            json!({"key": "PAY-GROW", "unit": "payments", "title": "Grow card payments",
                   "period_start": "2026-01-01T00:00:00Z", "period_end": "2026-06-30T00:00:00Z",
                   "work_items": items}),
        )
    };
    let (_, report) = post_ndjson(&app, &admin, &served_by("o10", json!([]))).await;
    assert_eq!(report["applied"], 1, "{report}");
    let d = app.ok(&admin, q, json!({})).await;
    assert_eq!(mine(&d)[0]["linkedWorkItems"], json!([]));
    assert_eq!(mine(&d)[0]["keyResults"][0]["targetValue"], 30.0);
    let body = [
        served_by("o11", json!(["FC-F"])),
        // A story, and an item that does not exist: refused, nothing written.
        served_by("o12", json!(["FC-F", "FC-S1"])),
        served_by("o13", json!(["NOPE"])),
    ]
    .concat();
    let (_, report) = post_ndjson(&app, &admin, &body).await;
    assert_eq!(
        (&report["applied"], &report["rejected"]),
        (&json!(1), &json!(2)),
        "{report}"
    );
    let d = app.ok(&admin, q, json!({})).await;
    assert_eq!(mine(&d)[0]["linkedWorkItems"], json!([{"key": "FC-F"}]));
}
both!(objectives_and_links_arrive_by_ingest);
