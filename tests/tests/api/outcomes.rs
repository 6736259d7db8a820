//! Outcomes (DESIGN §1.6): objectives and key results, who may write and
//! read them, and `key_result.measured` events.

use serde_json::{Value, json};

use crate::both;
use crate::harness::{ADMIN, EXEC, PORTFOLIO, PROGRAM, TEAM, TestApp, code};
use crate::ingest::{create_key, post_ndjson};
use crate::writes::unit_id;

const CREATE_OBJECTIVE: &str = "mutation($u: ID!, $k: String!, $s: DateTime!, $e: DateTime!) {
  createObjective(input: {unit: $u, key: $k, title: \"Grow card payments\", periodStart: $s, periodEnd: $e}) {
    objective { id key unit { key } } } }";
const CREATE_KR: &str = "mutation($o: ID!, $k: String!, $s: Float!, $t: Float!) {
  createKeyResult(input: {objective: $o, key: $k, title: \"Monthly volume\", startValue: $s, targetValue: $t}) {
    keyResult { id key progress currentValue } } }";

fn period(unit: &Value, key: &str) -> Value {
    json!({"u": unit, "k": key, "s": "2026-01-01T00:00:00Z", "e": "2026-04-01T00:00:00Z"})
}

async fn objectives_follow_the_access_model(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let exec = app.login(EXEC).await;
    let portfolio = app.login(PORTFOLIO).await;
    let program = app.login(PROGRAM).await;
    let team = app.login(TEAM).await;
    let payments = unit_id(&app, &admin, "payments").await;
    let lending = unit_id(&app, &admin, "lending").await;
    let checkout = unit_id(&app, &admin, "payments-checkout").await;

    // Writers: the portfolio's own managers, executives in scope, admins.
    let o = app
        .ok(&portfolio, CREATE_OBJECTIVE, period(&payments, "PAY-O1"))
        .await;
    let pay_objective = o["createObjective"]["objective"]["id"].clone();
    assert_eq!(o["createObjective"]["objective"]["unit"]["key"], "payments");
    let o = app
        .ok(&exec, CREATE_OBJECTIVE, period(&lending, "LEN-O1"))
        .await;
    let lending_objective = o["createObjective"]["objective"]["id"].clone();
    for (who, unit, key) in [
        (&portfolio, &lending, "X-1"),
        (&portfolio, &checkout, "X-2"),
        (&program, &checkout, "X-3"),
        (&team, &payments, "X-4"),
    ] {
        let body = app
            .gql(Some(who), CREATE_OBJECTIVE, period(unit, key))
            .await;
        assert_eq!(code(&body), "FORBIDDEN", "{key}: {body}");
    }
    // Bad input, nothing written.
    let body = app
        .gql(Some(&admin), CREATE_OBJECTIVE, period(&payments, "PAY-O1"))
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    let body = app
        .gql(
            Some(&admin),
            CREATE_OBJECTIVE,
            json!({"u": payments, "k": "PAY-O2", "s": "2026-04-01T00:00:00Z", "e": "2026-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    let body = app
        .gql(
            Some(&portfolio),
            CREATE_KR,
            json!({"o": pay_objective, "k": "PAY-KR1", "s": 5.0, "t": 5.0}),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    let body = app
        .gql(
            Some(&program),
            CREATE_KR,
            json!({"o": pay_objective, "k": "PAY-KR1", "s": 0.0, "t": 200.0}),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let body = app
        .gql(
            Some(&program),
            CREATE_KR,
            json!({"o": lending_objective, "k": "PAY-KR1", "s": 0.0, "t": 200.0}),
        )
        .await;
    assert_eq!(
        code(&body),
        "NOT_FOUND",
        "an unreadable objective does not exist: {body}"
    );

    let kr = app
        .ok(
            &portfolio,
            CREATE_KR,
            json!({"o": pay_objective, "k": "PAY-KR1", "s": 0.0, "t": 200.0}),
        )
        .await;
    assert_eq!(kr["createKeyResult"]["keyResult"]["progress"], 0.0);
    assert_eq!(kr["createKeyResult"]["keyResult"]["currentValue"], 0.0);
    app.ok(
        &exec,
        CREATE_KR,
        json!({"o": lending_objective, "k": "LEN-KR1", "s": 10.0, "t": 4.0}),
    )
    .await;

    // Readers: wherever the unit's aggregates are readable.
    let q = "query($k: String!) { unit(key: $k) { objectives { key keyResults { key } } } }";
    for who in [&team, &program, &portfolio, &exec, &admin] {
        let d = app.ok(who, q, json!({"k": "payments"})).await;
        assert_eq!(d["unit"]["objectives"][0]["key"], "PAY-O1", "{d}");
        assert_eq!(
            d["unit"]["objectives"][0]["keyResults"][0]["key"],
            "PAY-KR1"
        );
    }
    for who in [&team, &program, &portfolio] {
        let d = app.ok(who, q, json!({"k": "lending"})).await;
        assert_eq!(d["unit"]["objectives"], json!([]), "{d}");
        let d = app
            .ok(
                who,
                "query($id: ID!) { node(id: $id) { id } }",
                json!({"id": lending_objective}),
            )
            .await;
        assert_eq!(d["node"], Value::Null, "{d}");
    }
    let d = app.ok(&exec, q, json!({"k": "lending"})).await;
    assert_eq!(d["unit"]["objectives"][0]["key"], "LEN-O1", "{d}");
}
both!(objectives_follow_the_access_model);

async fn key_results_are_measured_by_events(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let payments = unit_id(&app, &admin, "payments").await;
    let o = app
        .ok(&admin, CREATE_OBJECTIVE, period(&payments, "PAY-O1"))
        .await;
    let objective = o["createObjective"]["objective"]["id"].clone();
    for (k, s, t) in [("PAY-KR1", 0.0, 200.0), ("PAY-KR2", 10.0, 4.0)] {
        app.ok(
            &admin,
            CREATE_KR,
            json!({"o": objective, "k": k, "s": s, "t": t}),
        )
        .await;
    }
    let measured = |id: &str, kr: &str, value: Value, at: &str| {
        json!({"id": id, "type": "key_result.measured", "source": "bi",
               "data": {"key_result": kr, "value": value, "at": at}})
    };
    let events = [
        measured("m-1", "PAY-KR1", json!(50), "2026-02-01T00:00:00Z"),
        // Earlier, arriving later: history is ordered by `at`.
        measured("m-2", "PAY-KR1", json!(150), "2026-01-15T00:00:00Z"),
        measured("m-3", "PAY-KR2", json!(7.0), "2026-02-01T00:00:00Z"),
        measured("m-4", "NOPE", json!(1), "2026-02-01T00:00:00Z"),
        measured("m-5", "PAY-KR1", json!("lots"), "2026-02-01T00:00:00Z"),
    ];
    let body: String = events.iter().map(|e| format!("{e}\n")).collect();
    let (key, _) = create_key(&app, &admin, Some("payments")).await;
    let (status, report) = post_ndjson(&app, &key, &body).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["applied"], 3, "{report}");
    let reasons: Vec<&str> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert!(reasons[0].contains("unknown key result"), "{reasons:?}");
    assert!(reasons[1].contains("must be a number"), "{reasons:?}");
    // A key limited to another portfolio may not measure this one.
    let (other, _) = create_key(&app, &admin, Some("lending")).await;
    let (_, report) = post_ndjson(
        &app,
        &other,
        &format!(
            "{}\n",
            measured("m-6", "PAY-KR1", json!(1), "2026-03-01T00:00:00Z")
        ),
    )
    .await;
    assert_eq!(report["rejected"], 1, "{report}");
    assert!(
        report["results"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("may not write"),
        "{report}"
    );
    // Sent again: nothing changes.
    let (_, again) = post_ndjson(&app, &key, &body).await;
    assert_eq!(again["applied"], 0, "{again}");
    assert_eq!(again["duplicates"], 3, "{again}");

    let q = "query($id: ID!) { node(id: $id) { ... on Objective { progress keyResults { key currentValue progress measurements { value at source } } } } }";
    let d = app.ok(&admin, q, json!({"id": objective})).await;
    let krs = &d["node"]["keyResults"];
    assert_eq!(krs[0]["currentValue"], 50.0, "{d}");
    assert_eq!(krs[0]["progress"], 0.25, "{d}");
    assert_eq!(krs[0]["measurements"][0]["value"], 150.0, "{d}");
    assert_eq!(krs[0]["measurements"][0]["source"], "bi", "{d}");
    assert_eq!(krs[1]["progress"], 0.5, "{d}");
    assert_eq!(d["node"]["progress"], 0.375, "{d}");
}
both!(key_results_are_measured_by_events);
