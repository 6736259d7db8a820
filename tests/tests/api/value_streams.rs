//! Value streams (DESIGN §1.4): writing them, who may read and write them and
//! their investment, and the value stream map (§3.6) against a
//! hand-computed fixture.

use serde_json::{Value, json};

use crate::both;
use crate::harness::{ADMIN, EXEC, PORTFOLIO, PROGRAM, TEAM, TestApp, code};
use crate::ingest::post_ndjson;
use crate::writes::unit_id;

const DAY: f64 = 86_400.0;

/// The streams of a list that a test wrote: without the demo's own
/// (`payments-…`, `lending-…`; tests use upper-case keys).
fn written(streams: &Value) -> Value {
    Value::Array(
        streams
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| {
                let key = s["key"].as_str().unwrap_or_default();
                !(key.starts_with("payments-") || key.starts_with("lending-"))
            })
            .cloned()
            .collect(),
    )
}

const FIELDS: &str = "id key name kind unit { key } supports { key } supportedBy { key }
  stages { name position states valueAdding } budget budgetPeriod costPerPeriod costPeriod";

fn create_q() -> String {
    format!(
        "mutation($i: CreateValueStreamInput!) {{ createValueStream(input: $i) {{ valueStream {{ {FIELDS} }} }} }}"
    )
}

fn update_q() -> String {
    format!(
        "mutation($i: UpdateValueStreamInput!) {{ updateValueStream(input: $i) {{ valueStream {{ {FIELDS} }} }} }}"
    )
}

/// Build (value-adding) → Review → Verify, over the default workflow.
fn stages() -> Value {
    json!([
        {"name": "Build", "states": ["In Progress", "Blocked"], "valueAdding": true},
        {"name": "Review", "states": ["In Review"], "valueAdding": false},
        {"name": "Verify", "states": ["Testing"], "valueAdding": false},
    ])
}

fn stream(unit: &Value, key: &str, kind: &str) -> Value {
    json!({"unit": unit, "key": key, "name": format!("Stream {key}"), "kind": kind,
           "stages": stages()})
}

/// `input` with `changes` merged over it.
fn with(mut input: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        input[k] = v.clone();
    }
    input
}

async fn create(app: &TestApp, token: &str, input: Value) -> Value {
    app.ok(token, &create_q(), json!({"i": input})).await["createValueStream"]["valueStream"]
        .clone()
}

fn missing(kind: &str) -> Value {
    json!(gemba::graphql::encode_id(kind, 999_999).to_string())
}

async fn value_streams_round_trip_and_reject_bad_input(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let portfolio = app.login(PORTFOLIO).await;
    let payments = unit_id(&app, &admin, "payments").await;

    let ops = create(&app, &admin, stream(&payments, "CARD-ORDER", "OPERATIONAL")).await;
    assert_eq!(ops["kind"], "OPERATIONAL");
    assert_eq!(ops["unit"]["key"], "payments");
    let ops2 = create(&app, &admin, stream(&payments, "CARD-BLOCK", "OPERATIONAL")).await;
    let dev = create(
        &app,
        &portfolio,
        with(
            stream(&payments, "PAY-DEV", "DEVELOPMENT"),
            json!({"supports": [ops["id"], ops2["id"], ops["id"]], "budget": 1_200_000.0,
                   "budgetPeriod": "FY2027", "costPerPeriod": 95_000.0, "costPeriod": "MONTH"}),
        ),
    )
    .await;
    assert_eq!(
        dev["supports"],
        json!([{"key": "CARD-BLOCK"}, {"key": "CARD-ORDER"}])
    );
    assert_eq!(
        dev["stages"],
        json!([
            {"name": "Build", "position": 0, "states": ["In Progress", "Blocked"], "valueAdding": true},
            {"name": "Review", "position": 1, "states": ["In Review"], "valueAdding": false},
            {"name": "Verify", "position": 2, "states": ["Testing"], "valueAdding": false},
        ])
    );
    assert_eq!(
        (
            &dev["budget"],
            &dev["budgetPeriod"],
            &dev["costPerPeriod"],
            &dev["costPeriod"]
        ),
        (
            &json!(1_200_000.0),
            &json!("FY2027"),
            &json!(95_000.0),
            &json!("MONTH")
        )
    );
    // Read back by key, by node id and through the unit.
    let q = format!("query($k: String!) {{ valueStream(key: $k) {{ {FIELDS} }} }}");
    let d = app.ok(&admin, &q, json!({"k": "PAY-DEV"})).await;
    assert_eq!(d["valueStream"], dev);
    let d = app
        .ok(
            &admin,
            "query($id: ID!) { node(id: $id) { ... on ValueStream { key supportedBy { key } } } }",
            json!({"id": ops["id"]}),
        )
        .await;
    assert_eq!(
        d["node"],
        json!({"key": "CARD-ORDER", "supportedBy": [{"key": "PAY-DEV"}]})
    );
    let d = app
        .ok(
            &admin,
            "{ unit(key: \"payments\") { valueStreams { key kind } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        written(&d["unit"]["valueStreams"]),
        json!([
            {"key": "CARD-BLOCK", "kind": "OPERATIONAL"},
            {"key": "CARD-ORDER", "kind": "OPERATIONAL"},
            {"key": "PAY-DEV", "kind": "DEVELOPMENT"},
        ])
    );

    // Update: rename, stages replaced in a new order, one supported stream,
    // budget changed, run cost cleared; the rest kept.
    let d = app
        .ok(
            &portfolio,
            &update_q(),
            json!({"i": {"valueStream": dev["id"], "name": "  Payments platform ",
                   "supports": [ops2["id"]], "budget": 1_500_000.0,
                   "costPerPeriod": null, "costPeriod": null,
                   "stages": [
                       {"name": "Plan", "states": ["Backlog"], "valueAdding": false},
                       {"name": "Build", "states": ["In Progress", "In Review", "Testing"], "valueAdding": true},
                   ]}}),
        )
        .await;
    let updated = &d["updateValueStream"]["valueStream"];
    assert_eq!(updated["name"], "Payments platform");
    assert_eq!(updated["key"], "PAY-DEV");
    assert_eq!(updated["kind"], "DEVELOPMENT");
    assert_eq!(updated["supports"], json!([{"key": "CARD-BLOCK"}]));
    assert_eq!(
        updated["stages"],
        json!([
            {"name": "Plan", "position": 0, "states": ["Backlog"], "valueAdding": false},
            {"name": "Build", "position": 1, "states": ["In Progress", "In Review", "Testing"], "valueAdding": true},
        ])
    );
    assert_eq!(updated["budget"], 1_500_000.0);
    assert_eq!(updated["budgetPeriod"], "FY2027");
    assert_eq!(updated["costPerPeriod"], Value::Null);
    assert_eq!(updated["costPeriod"], Value::Null);
    let d = app.ok(&admin, &q, json!({"k": "PAY-DEV"})).await;
    assert_eq!(&d["valueStream"], updated, "stored as returned");

    // Every bad input, with its code; nothing is written.
    let base = stream(&payments, "NEW-VS", "DEVELOPMENT");
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "unknown kind",
            with(base.clone(), json!({"kind": "SUPPORT"})),
            "BAD_USER_INPUT",
        ),
        (
            "no stages",
            with(base.clone(), json!({"stages": []})),
            "BAD_USER_INPUT",
        ),
        (
            "unknown state",
            with(
                base.clone(),
                json!({"stages": [{"name": "Build", "states": ["Doing"], "valueAdding": true}]}),
            ),
            "BAD_USER_INPUT",
        ),
        (
            "state in two stages",
            with(
                base.clone(),
                json!({"stages": [
                {"name": "Build", "states": ["In Progress"], "valueAdding": true},
                {"name": "Rework", "states": ["Blocked", "In Progress"], "valueAdding": false}]}),
            ),
            "BAD_USER_INPUT",
        ),
        (
            "stage names not unique",
            with(
                base.clone(),
                json!({"stages": [
                {"name": "Build", "states": ["In Progress"], "valueAdding": true},
                {"name": "build", "states": ["Testing"], "valueAdding": true}]}),
            ),
            "BAD_USER_INPUT",
        ),
        (
            "stage without states",
            with(
                base.clone(),
                json!({"stages": [{"name": "Build", "states": [], "valueAdding": true}]}),
            ),
            "BAD_USER_INPUT",
        ),
        (
            "blank stage name",
            with(
                base.clone(),
                json!({"stages": [{"name": "  ", "states": ["Testing"], "valueAdding": true}]}),
            ),
            "BAD_USER_INPUT",
        ),
        (
            "operational streams support nothing",
            with(
                base.clone(),
                json!({"kind": "OPERATIONAL", "supports": [ops["id"]]}),
            ),
            "BAD_USER_INPUT",
        ),
        (
            "supports a development stream",
            with(base.clone(), json!({"supports": [dev["id"]]})),
            "BAD_USER_INPUT",
        ),
        (
            "supports an unknown stream",
            with(base.clone(), json!({"supports": [missing("ValueStream")]})),
            "NOT_FOUND",
        ),
        (
            "supports something that is not a stream id",
            with(base.clone(), json!({"supports": [payments]})),
            "BAD_USER_INPUT",
        ),
        (
            "bad key",
            with(base.clone(), json!({"key": "bad key!"})),
            "BAD_USER_INPUT",
        ),
        (
            "key in use",
            with(base.clone(), json!({"key": "CARD-ORDER"})),
            "CONFLICT",
        ),
        (
            "blank name",
            with(base.clone(), json!({"name": " "})),
            "BAD_USER_INPUT",
        ),
        (
            "negative budget",
            with(base.clone(), json!({"budget": -1.0})),
            "BAD_USER_INPUT",
        ),
        (
            "cost without its period",
            with(base.clone(), json!({"costPerPeriod": 10.0})),
            "BAD_USER_INPUT",
        ),
        (
            "unknown cost period",
            with(
                base.clone(),
                json!({"costPerPeriod": 10.0, "costPeriod": "FORTNIGHT"}),
            ),
            "BAD_USER_INPUT",
        ),
        (
            "unknown unit",
            with(base.clone(), json!({"unit": missing("Unit")})),
            "NOT_FOUND",
        ),
    ];
    for (what, input, want) in cases {
        let body = app
            .gql(Some(&admin), &create_q(), json!({"i": input}))
            .await;
        assert_eq!(code(&body), want, "{what}: {body}");
    }
    let d = app.ok(&admin, &q, json!({"k": "NEW-VS"})).await;
    assert_eq!(d["valueStream"], Value::Null, "nothing half written");

    let update_cases: Vec<(&str, Value, &str)> = vec![
        (
            "unknown stream",
            json!({"valueStream": missing("ValueStream"), "name": "X"}),
            "NOT_FOUND",
        ),
        (
            "unknown state",
            json!({"valueStream": dev["id"], "name": "X",
                   "stages": [{"name": "Build", "states": ["Doing"], "valueAdding": true}]}),
            "BAD_USER_INPUT",
        ),
        (
            "bad supports with good stages",
            json!({"valueStream": dev["id"], "name": "X", "stages": stages(),
                   "supports": [dev["id"]]}),
            "BAD_USER_INPUT",
        ),
        (
            "operational streams support nothing",
            json!({"valueStream": ops["id"], "supports": [ops2["id"]]}),
            "BAD_USER_INPUT",
        ),
        (
            "run cost without its period",
            json!({"valueStream": dev["id"], "costPerPeriod": 5.0}),
            "BAD_USER_INPUT",
        ),
        (
            "no stages",
            json!({"valueStream": dev["id"], "stages": []}),
            "BAD_USER_INPUT",
        ),
    ];
    for (what, input, want) in update_cases {
        let body = app
            .gql(Some(&admin), &update_q(), json!({"i": input}))
            .await;
        assert_eq!(code(&body), want, "{what}: {body}");
    }
    let d = app.ok(&admin, &q, json!({"k": "PAY-DEV"})).await;
    assert_eq!(&d["valueStream"], updated, "failed updates change nothing");
}
both!(value_streams_round_trip_and_reject_bad_input);

async fn value_streams_follow_the_access_model(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let exec = app.login(EXEC).await;
    let portfolio = app.login(PORTFOLIO).await;
    let program = app.login(PROGRAM).await;
    let team = app.login(TEAM).await;
    let payments = unit_id(&app, &admin, "payments").await;
    let lending = unit_id(&app, &admin, "lending").await;
    let checkout = unit_id(&app, &admin, "payments-checkout").await;
    let invest = json!({"budget": 500_000.0, "budgetPeriod": "2026-Q4",
                        "costPerPeriod": 40_000.0, "costPeriod": "MONTH"});

    let pay = create(
        &app,
        &admin,
        with(stream(&payments, "PAY-OPS", "OPERATIONAL"), invest.clone()),
    )
    .await;
    let len = create(
        &app,
        &admin,
        with(stream(&lending, "LEN-OPS", "OPERATIONAL"), invest.clone()),
    )
    .await;

    // Writers: admins, and the portfolio's own managers for the portfolio.
    let d = app
        .ok(
            &portfolio,
            &update_q(),
            json!({"i": {"valueStream": pay["id"], "name": "Card payments"}}),
        )
        .await;
    assert_eq!(
        d["updateValueStream"]["valueStream"]["name"],
        "Card payments"
    );
    create(
        &app,
        &portfolio,
        stream(&payments, "PAY-DEV", "DEVELOPMENT"),
    )
    .await;
    for (who, name, unit) in [
        (&portfolio, "portfolio manager, other portfolio", &lending),
        (&portfolio, "portfolio manager, a program", &checkout),
        (&exec, "executive", &payments),
        (&program, "program manager", &payments),
        (&team, "team member", &payments),
    ] {
        let body = app
            .gql(
                Some(who),
                &create_q(),
                json!({"i": stream(unit, "X-VS", "OPERATIONAL")}),
            )
            .await;
        assert_eq!(code(&body), "FORBIDDEN", "{name} creates: {body}");
    }
    for (who, name) in [(&exec, "executive"), (&program, "program"), (&team, "team")] {
        let body = app
            .gql(
                Some(who),
                &update_q(),
                json!({"i": {"valueStream": pay["id"], "name": "X"}}),
            )
            .await;
        assert_eq!(code(&body), "FORBIDDEN", "{name} updates: {body}");
    }
    // Another portfolio's stream does not exist for its non-readers.
    let body = app
        .gql(
            Some(&portfolio),
            &update_q(),
            json!({"i": {"valueStream": len["id"], "name": "X"}}),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    let body = app
        .gql(
            Some(&portfolio),
            &create_q(),
            json!({"i": with(stream(&payments, "PAY-DEV2", "DEVELOPMENT"), json!({"supports": [len["id"]]}))}),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");

    // Readers: wherever the owning unit's aggregates are readable.
    let q = "query($k: String!) { valueStream(key: $k) { key stages { name } } }";
    let by_id = "query($id: ID!) { node(id: $id) { id } }";
    for (who, name) in [
        (&team, "team"),
        (&program, "program"),
        (&portfolio, "portfolio"),
        (&exec, "executive"),
        (&admin, "admin"),
    ] {
        let d = app.ok(who, q, json!({"k": "PAY-OPS"})).await;
        assert_eq!(d["valueStream"]["key"], "PAY-OPS", "{name}: {d}");
        assert_eq!(d["valueStream"]["stages"][2]["name"], "Verify", "{name}");
        let d = app
            .ok(
                who,
                "{ unit(key: \"payments\") { valueStreams { key } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            written(&d["unit"]["valueStreams"]),
            json!([{"key": "PAY-DEV"}, {"key": "PAY-OPS"}]),
            "{name}"
        );
    }
    for (who, name) in [
        (&team, "team"),
        (&program, "program"),
        (&portfolio, "portfolio"),
    ] {
        let d = app.ok(who, q, json!({"k": "LEN-OPS"})).await;
        assert_eq!(d["valueStream"], Value::Null, "{name}: {d}");
        let d = app.ok(who, by_id, json!({"id": len["id"]})).await;
        assert_eq!(d["node"], Value::Null, "{name}: {d}");
        let d = app
            .ok(
                who,
                "{ unit(key: \"lending\") { valueStreams { key } } }",
                json!({}),
            )
            .await;
        assert_eq!(d["unit"]["valueStreams"], json!([]), "{name}: {d}");
        let body = app
            .gql(
                Some(who),
                "query($v: ID!) { valueStreamMap(valueStream: $v, window: {from: \"2026-03-01T00:00:00Z\", to: \"2026-03-15T00:00:00Z\"}) { items } }",
                json!({"v": len["id"]}),
            )
            .await;
        assert_eq!(code(&body), "NOT_FOUND", "{name}: {body}");
    }
    let d = app.ok(&exec, q, json!({"k": "LEN-OPS"})).await;
    assert_eq!(d["valueStream"]["key"], "LEN-OPS", "{d}");

    // Investment: executives, portfolio managers and admins only; for
    // others the field alone is null with FORBIDDEN.
    let iq = "query($k: String!) { valueStream(key: $k) { key budget budgetPeriod costPerPeriod costPeriod } }";
    for (who, name) in [
        (&exec, "executive"),
        (&portfolio, "portfolio"),
        (&admin, "admin"),
    ] {
        let d = app.ok(who, iq, json!({"k": "PAY-OPS"})).await;
        assert_eq!(
            d["valueStream"],
            json!({"key": "PAY-OPS", "budget": 500_000.0, "budgetPeriod": "2026-Q4",
                   "costPerPeriod": 40_000.0, "costPeriod": "MONTH"}),
            "{name}"
        );
    }
    for (who, name) in [(&team, "team"), (&program, "program")] {
        let body = app
            .gql(
                Some(who),
                "query($k: String!) { valueStream(key: $k) { key name budget } }",
                json!({"k": "PAY-OPS"}),
            )
            .await;
        assert_eq!(
            body["data"]["valueStream"],
            json!({"key": "PAY-OPS", "name": "Card payments", "budget": null}),
            "{name}: {body}"
        );
        let errors = body["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{name}: {body}");
        assert_eq!(code(&body), "FORBIDDEN", "{name}: {body}");
        assert_eq!(
            errors[0]["path"],
            json!(["valueStream", "budget"]),
            "{name}"
        );
        // Inside a list too: null in place, the error at the field's path
        // (the demo's own streams are in the list as well).
        let body = app
            .gql(
                Some(who),
                "{ unit(key: \"payments\") { valueStreams { key budget } } }",
                json!({}),
            )
            .await;
        let streams = body["data"]["unit"]["valueStreams"].as_array().unwrap();
        let at = streams.iter().position(|s| s["key"] == "PAY-OPS").unwrap();
        assert_eq!(
            streams[at],
            json!({"key": "PAY-OPS", "budget": null}),
            "{name}: {body}"
        );
        assert!(
            body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["path"] == json!(["unit", "valueStreams", at, "budget"])),
            "{name}: {body}"
        );
        let body = app.gql(Some(who), iq, json!({"k": "PAY-OPS"})).await;
        assert_eq!(
            body["errors"].as_array().unwrap().len(),
            4,
            "{name}: {body}"
        );
        assert_eq!(body["data"]["valueStream"]["key"], "PAY-OPS", "{name}");
    }
    // A team member reads the map of its portfolio's stream (aggregates of
    // the ancestors), not the items.
    let d = app
        .ok(
            &team,
            "query($v: ID!) { valueStreamMap(valueStream: $v, window: {from: \"2026-03-01T00:00:00Z\", to: \"2026-03-15T00:00:00Z\"}) { items valueStream { key } } }",
            json!({"v": pay["id"]}),
        )
        .await;
    assert_eq!(d["valueStreamMap"]["valueStream"]["key"], "PAY-OPS", "{d}");
}
both!(value_streams_follow_the_access_model);

/// Work of team-atlas (payments) and one item of team-fjord (lending) in
/// March 2026, ingested as events.
fn fixture() -> String {
    let mut events = Vec::new();
    let mut n = 0;
    let mut ev = |kind: &str, data: Value| {
        n += 1;
        events.push(json!({"id": format!("vs-{n}"), "type": kind, "source": "fx", "data": data}));
    };
    let items: &[(&str, &str, &str)] = &[
        ("A", "team-atlas", "2026-03-01T00:00:00Z"),
        ("B", "team-atlas", "2026-03-01T00:00:00Z"),
        ("C", "team-atlas", "2026-03-01T00:00:00Z"),
        ("D", "team-atlas", "2026-03-07T00:00:00Z"),
        ("E", "team-atlas", "2026-03-01T00:00:00Z"),
        ("F", "team-atlas", "2026-03-01T00:00:00Z"),
        ("G", "team-atlas", "2026-03-01T00:00:00Z"),
        ("H", "team-fjord", "2026-03-01T00:00:00Z"),
    ];
    for (key, unit, created) in items {
        ev(
            "work_item.upserted",
            json!({"external_id": format!("VS-{key}"), "key": format!("VS-{key}"), "unit": unit,
                   "type": "STORY", "title": key, "state": "Backlog", "created_at": created}),
        );
    }
    let moves: &[(&str, &str, &str)] = &[
        // A: straight through, one day in each stage.
        ("A", "In Progress", "2026-03-02T00:00:00Z"),
        ("A", "In Review", "2026-03-03T00:00:00Z"),
        ("A", "Testing", "2026-03-04T00:00:00Z"),
        ("A", "Done", "2026-03-05T00:00:00Z"),
        // B: sent back from review to build, blocked for half a day, then
        // through review (re-entered) and verify.
        ("B", "In Progress", "2026-03-02T00:00:00Z"),
        ("B", "In Review", "2026-03-03T00:00:00Z"),
        ("B", "In Progress", "2026-03-03T12:00:00Z"),
        ("B", "Blocked", "2026-03-04T00:00:00Z"),
        ("B", "In Progress", "2026-03-04T12:00:00Z"),
        ("B", "In Review", "2026-03-05T00:00:00Z"),
        ("B", "Testing", "2026-03-06T00:00:00Z"),
        ("B", "Done", "2026-03-07T00:00:00Z"),
        // C: sent back from verify to build, then review and verify again.
        ("C", "In Progress", "2026-03-02T00:00:00Z"),
        ("C", "Testing", "2026-03-04T00:00:00Z"),
        ("C", "In Progress", "2026-03-05T00:00:00Z"),
        ("C", "In Review", "2026-03-06T00:00:00Z"),
        ("C", "Testing", "2026-03-07T00:00:00Z"),
        ("C", "Done", "2026-03-08T00:00:00Z"),
        // D: done, reopened into verify, done again.
        ("D", "In Progress", "2026-03-08T00:00:00Z"),
        ("D", "Testing", "2026-03-09T00:00:00Z"),
        ("D", "Done", "2026-03-10T00:00:00Z"),
        ("D", "Testing", "2026-03-11T00:00:00Z"),
        ("D", "Done", "2026-03-11T12:00:00Z"),
        // E: completed after the window.
        ("E", "In Progress", "2026-03-10T00:00:00Z"),
        ("E", "Done", "2026-03-20T00:00:00Z"),
        // F: canceled after going through two stages.
        ("F", "In Progress", "2026-03-02T00:00:00Z"),
        ("F", "In Review", "2026-03-03T00:00:00Z"),
        ("F", "Canceled", "2026-03-04T00:00:00Z"),
        // G: done in the window without entering any of the stream's states.
        ("G", "Done", "2026-03-02T00:00:00Z"),
        // H: another portfolio's work.
        ("H", "In Progress", "2026-03-02T00:00:00Z"),
        ("H", "Done", "2026-03-03T00:00:00Z"),
    ];
    for (key, state, at) in moves {
        ev(
            "work_item.transitioned",
            json!({"external_id": format!("VS-{key}"), "to_state": state, "at": at}),
        );
    }
    events.iter().map(|e| format!("{e}\n")).collect()
}

const MAP: &str = "query($v: ID!, $from: DateTime!, $to: DateTime!) {
  valueStreamMap(valueStream: $v, window: {from: $from, to: $to}) {
    from to items
    stages { name position valueAdding items
      processTime { count mean p50 min max } waitTime { count mean p50 min max }
      completeAndAccurate { numerator denominator value } }
    leadTime { count mean p50 min max }
    processTime { count mean p50 }
    waitTime { count mean p50 }
    activityRatio { numerator denominator value }
    rolledCompleteAndAccurate
  } }";

fn close(v: &Value, want: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - want).abs() < 1e-6)
}

/// Asserts `mean` and `p50` (in days) of a distribution of `count` values.
fn dist(d: &Value, count: i64, mean_days: f64, p50_days: f64, what: &str) {
    assert_eq!(d["count"], count, "{what}: {d}");
    assert!(close(&d["mean"], mean_days * DAY), "{what}.mean: {d}");
    assert!(close(&d["p50"], p50_days * DAY), "{what}.p50: {d}");
}

async fn value_stream_map_matches_the_hand_computed_fixture(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let (status, report) = post_ndjson(&app, &admin, &fixture()).await;
    assert_eq!((status, &report["rejected"]), (200, &json!(0)), "{report}");
    let payments = unit_id(&app, &admin, "payments").await;
    let vs = create(&app, &admin, stream(&payments, "PAY-VSM", "OPERATIONAL")).await;
    let window = |from: &str, to: &str| json!({"v": vs["id"], "from": from, "to": to});

    let d = app
        .ok(
            &admin,
            MAP,
            window("2026-03-01T00:00:00Z", "2026-03-15T00:00:00Z"),
        )
        .await;
    let m = &d["valueStreamMap"];
    // A, B, C and D completed in the window and flowed through the stream;
    // E completed after it, F was canceled, G never entered a stream state
    // and H belongs to lending.
    assert_eq!(m["items"], 4, "{m}");
    let s = m["stages"].as_array().unwrap();
    assert_eq!(s.len(), 3);
    assert_eq!(
        (&s[0]["name"], &s[0]["position"], &s[0]["valueAdding"]),
        (&json!("Build"), &json!(0), &json!(true))
    );

    // Build (value-adding): In Progress is process time, Blocked is wait.
    // Process: A 1 d; B 1 + 0.5 + 0.5 = 2 d (three visits); C 2 + 1 = 3 d;
    // D 1 d → mean 7/4 = 1.75 d, median of [1, 1, 2, 3] = 1.5 d.
    // Wait: B 0.5 d blocked, others 0 → mean 0.125 d, median 0.
    // %C&A: B (back from review) and C (back from verify) returned to
    // build after going past it → 2 of 4.
    assert_eq!(s[0]["items"], 4);
    dist(&s[0]["processTime"], 4, 1.75, 1.5, "build process");
    assert!(close(&s[0]["processTime"]["min"], DAY));
    assert!(close(&s[0]["processTime"]["max"], 3.0 * DAY));
    dist(&s[0]["waitTime"], 4, 0.125, 0.0, "build wait");
    assert_eq!(
        s[0]["completeAndAccurate"],
        json!({"numerator": 2.0, "denominator": 4.0, "value": 0.5})
    );

    // Review (not value-adding): all of it is wait time.
    // A 1 d; B 0.5 + 1 = 1.5 d (re-entered); C 1 d → mean 3.5/3 d, median 1 d.
    // %C&A: B was sent back *from* review, which is not review's failure,
    // and nothing went back to review or build after passing it → 3 of 3.
    assert_eq!(s[1]["items"], 3);
    dist(&s[1]["processTime"], 3, 0.0, 0.0, "review process");
    dist(&s[1]["waitTime"], 3, 3.5 / 3.0, 1.0, "review wait");
    assert_eq!(
        s[1]["completeAndAccurate"],
        json!({"numerator": 3.0, "denominator": 3.0, "value": 1.0})
    );

    // Verify (Testing is ACTIVE, but the stage is not value-adding: wait).
    // A 1 d; B 1 d; C 1 + 1 = 2 d; D 1 + 0.5 = 1.5 d (reopened) →
    // mean 5.5/4 = 1.375 d, median of [1, 1, 1.5, 2] = 1.25 d.
    // %C&A: D was reopened after done and went back into verify → 3 of 4.
    assert_eq!(s[2]["items"], 4);
    dist(&s[2]["processTime"], 4, 0.0, 0.0, "verify process");
    dist(&s[2]["waitTime"], 4, 1.375, 1.25, "verify wait");
    assert_eq!(
        s[2]["completeAndAccurate"],
        json!({"numerator": 3.0, "denominator": 4.0, "value": 0.75})
    );

    // Lead time (completion − creation): A 4 d, B 6 d, C 7 d, D 4.5 d →
    // mean 21.5/4 = 5.375 d, median (4.5 + 6)/2 = 5.25 d.
    dist(&m["leadTime"], 4, 5.375, 5.25, "lead time");
    assert!(close(&m["leadTime"]["min"], 4.0 * DAY));
    assert!(close(&m["leadTime"]["max"], 7.0 * DAY));
    // Process per item: A 1, B 2, C 3, D 1 → Σ 7 d.
    dist(&m["processTime"], 4, 1.75, 1.5, "process time");
    // Wait per item: A 1 + 1, B 0.5 + 1.5 + 1, C 1 + 2, D 1.5 →
    // [2, 3, 3, 1.5]: mean 2.375 d, median 2.5 d.
    dist(&m["waitTime"], 4, 2.375, 2.5, "wait time");
    // Activity ratio: 7 d of process ÷ 21.5 d of lead time.
    let ar = &m["activityRatio"];
    assert!(close(&ar["numerator"], 7.0 * DAY), "{ar}");
    assert!(close(&ar["denominator"], 21.5 * DAY), "{ar}");
    assert!(close(&ar["value"], 7.0 / 21.5), "{ar}");
    // Rolled %C&A: 0.5 × 1 × 0.75.
    assert!(close(&m["rolledCompleteAndAccurate"], 0.375), "{m}");

    // An empty window: zero counts, null distributions and rates.
    let d = app
        .ok(
            &admin,
            MAP,
            window("2026-04-01T00:00:00Z", "2026-04-15T00:00:00Z"),
        )
        .await;
    let m = &d["valueStreamMap"];
    assert_eq!(m["items"], 0, "{m}");
    for stage in m["stages"].as_array().unwrap() {
        assert_eq!(stage["items"], 0);
        assert_eq!(
            stage["processTime"],
            json!({"count": 0, "mean": null, "p50": null, "min": null, "max": null})
        );
        assert_eq!(stage["waitTime"]["count"], 0);
        assert_eq!(
            stage["completeAndAccurate"],
            json!({"numerator": 0.0, "denominator": 0.0, "value": null})
        );
    }
    assert_eq!(
        m["leadTime"],
        json!({"count": 0, "mean": null, "p50": null, "min": null, "max": null})
    );
    assert_eq!(
        m["activityRatio"],
        json!({"numerator": 0.0, "denominator": 0.0, "value": null})
    );
    assert_eq!(m["rolledCompleteAndAccurate"], Value::Null);

    // The window is validated as flowMetrics' is.
    let body = app
        .gql(
            Some(&admin),
            MAP,
            window("2026-03-15T00:00:00Z", "2026-03-01T00:00:00Z"),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    let body = app
        .gql(
            Some(&admin),
            MAP,
            json!({"v": missing("ValueStream"), "from": "2026-03-01T00:00:00Z", "to": "2026-03-15T00:00:00Z"}),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
}
both!(value_stream_map_matches_the_hand_computed_fixture);
