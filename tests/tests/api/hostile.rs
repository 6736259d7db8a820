//! Hostile input: documents nested 100,000 deep on every path a document
//! takes, fragment bombs, deadlines, cost budgets, one status per code, and
//! the WebSocket's close handshake and close codes.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

use crate::harness::{TEAM, TestApp, code};
use crate::writes::unit_id;
use crate::ws::{Got, Ws};
use crate::{both, both_with};

const DEEP: usize = 100_000;

fn deep_list(n: usize) -> String {
    format!("{{ __typename(x: {}1{}) }}", "[".repeat(n), "]".repeat(n))
}

fn deep_object(n: usize) -> String {
    format!(
        "{{ __typename(x: {}1{}) }}",
        "{a: ".repeat(n),
        "}".repeat(n)
    )
}

fn deep_selection(n: usize) -> String {
    format!("{}{}", "{ a ".repeat(n), "}".repeat(n))
}

/// A fragment bomb: each level spreads the one below twice.
fn bomb(levels: usize) -> String {
    let mut text = String::from("fragment F0 on Query { __typename }");
    for i in 1..=levels {
        text.push_str(&format!(
            " fragment F{i} on Query {{ ...F{p} ...F{p} }}",
            p = i - 1
        ));
    }
    text.push_str(&format!(" {{ ...F{levels} }}"));
    text
}

async fn post_raw(app: &TestApp, body: &Value) -> (u16, Value) {
    let res = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .header("accept", "application/graphql-response+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn assert_refused(status: u16, body: &Value, what: &str) {
    assert_eq!(status, 400, "{what}: {body}");
    assert_eq!(code(body), "BAD_USER_INPUT", "{what}: {body}");
}

async fn alive(app: &TestApp) {
    let (status, body) = app.post(None, "{ __typename }", json!({})).await;
    assert_eq!(
        (status, body["data"]["__typename"].as_str()),
        (200, Some("Query")),
        "{body}"
    );
}

async fn deep_documents_are_refused_on_every_path(app: TestApp) {
    // POST: lists, objects and selection sets 100,000 deep.
    for (what, doc) in [
        // About 3,000 deep once aborted the process after parsing.
        ("list of 3,000", deep_list(3_000)),
        ("list", deep_list(DEEP)),
        ("object", deep_object(DEEP)),
        ("selection", deep_selection(DEEP)),
    ] {
        let (status, body) = app.post(None, &doc, json!({})).await;
        assert_refused(status, &body, what);
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("nests"),
            "{body}"
        );
    }
    alive(&app).await;

    // GET: as deep as a URL carries (an encoded bracket is three characters,
    // and a URI is at most 64 KiB).
    let doc = deep_list(5_000);
    let res = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", doc.as_str())])
        .header("accept", "application/graphql-response+json")
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_refused(status, &body, "GET");

    // Variables: deeper than JSON's own limit, and deeper than ours.
    let mut deep_json =
        String::from(r#"{"query":"query($v: JSON) { __typename }","variables":{"v":"#);
    deep_json.push_str(&"[".repeat(DEEP));
    deep_json.push_str(&"]".repeat(DEEP));
    deep_json.push_str("}}");
    let res = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .header("accept", "application/graphql-response+json")
        .body(deep_json)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(code(&body), "BAD_USER_INPUT");
    let mut v = json!(1);
    for _ in 0..100 {
        v = json!([v]);
    }
    let (status, body) = post_raw(
        &app,
        &json!({"query": "query($v: JSON) { __typename }", "variables": {"v": v}}),
    )
    .await;
    assert_refused(status, &body, "variables");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("variables nest"),
        "{body}"
    );

    // Persisted queries: a deep document is neither run nor stored.
    let doc = deep_list(DEEP);
    let hash = format!(
        "{:x}",
        <sha2_digest::Sha256 as sha2_digest::Digest>::digest(doc.as_bytes())
    );
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let (status, body) = post_raw(&app, &json!({"query": doc, "extensions": ext})).await;
    assert_refused(status, &body, "persisted");
    let (_, body) = post_raw(&app, &json!({"extensions": ext})).await;
    assert_eq!(code(&body), "PERSISTED_QUERY_NOT_FOUND", "{body}");

    // The WebSocket: an `error` for the subscription, the socket stays open.
    let team = app.login(TEAM).await;
    let mut ws = Ws::connect(&app, &team).await;
    ws.subscribe("deep", &deep_list(DEEP), json!({})).await;
    let m = ws.message().await;
    assert_eq!(m["type"], "error", "{m}");
    assert_eq!(m["payload"][0]["extensions"]["code"], "BAD_USER_INPUT");
    ws.subscribe("ok", "{ __typename }", json!({})).await;
    let m = ws.message().await;
    assert_eq!(
        (
            m["type"].as_str(),
            m["payload"]["data"]["__typename"].as_str()
        ),
        (Some("next"), Some("Query")),
        "{m}"
    );
    alive(&app).await;
}
both!(deep_documents_are_refused_on_every_path);

/// U+0000 cannot be stored by PostgreSQL: refused at the door on both
/// databases, so that one such string never fails a request or a batch.
async fn nul_characters_are_refused(app: TestApp) {
    let admin = app.login(crate::harness::ADMIN).await;
    let (status, body) = app
        .post(
            Some(&admin),
            "query($k: String!) { workItem(key: $k) { key } }",
            json!({ "k": "PAY-\u{0}1" }),
        )
        .await;
    assert_refused(status, &body, "variable");
    let (status, body) = app
        .post(
            Some(&admin),
            r#"{ workItem(key: "PAY-\u0000") { key } }"#,
            json!({}),
        )
        .await;
    assert_refused(status, &body, "escaped");
    let events = [
        json!({"id": "nul-1", "type": "unit.upserted", "source": "t",
               "data": {"key": "nul-unit", "kind": "PORTFOLIO", "name": "A\u{0}B", "parent": null}}),
        json!({"id": "nul-2", "type": "unit.upserted", "source": "t",
               "data": {"key": "fine-unit", "kind": "PORTFOLIO", "name": "Fine", "parent": null}}),
    ];
    let body: String = events.iter().map(|e| format!("{e}\n")).collect();
    let (status, report) = crate::ingest::post_ndjson(&app, &admin, &body).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["applied"].as_u64(), report["rejected"].as_u64()),
        (Some(1), Some(1)),
        "{report}"
    );
    assert!(
        report["results"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("NUL"),
        "{report}"
    );
}
both!(nul_characters_are_refused);

async fn fragment_bombs_are_refused_before_any_work(app: TestApp) {
    let started = Instant::now();
    let (status, body) = app.post(None, &bomb(40), json!({})).await;
    let took = started.elapsed();
    assert_refused(status, &body, "bomb");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("fields once its fragments are expanded"),
        "{body}"
    );
    assert!(took < Duration::from_secs(1), "refused in {took:?}");
    // A bomb in fragments the operation does not use is refused as well.
    let unused = bomb(40).replace("{ ...F40 }", "{ __typename }");
    let (status, body) = app.post(None, &unused, json!({})).await;
    assert_refused(status, &body, "unused bomb");
    // Cycles.
    let (status, body) = app
        .post(
            None,
            "{ ...A } fragment A on Query { ...B } fragment B on Query { __typename ...A }",
            json!({}),
        )
        .await;
    assert_refused(status, &body, "cycle");
    // Aliases are counted where the fragments are spread.
    let aliases: String = (0..20).map(|i| format!("a{i}: __typename ")).collect();
    let doc = format!(
        "{{ ...F ...G }} fragment F on Query {{ {aliases} }} fragment G on Query {{ ...F }}"
    );
    let (status, body) = app.post(None, &doc, json!({})).await;
    assert_refused(status, &body, "aliases");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("aliases"),
        "{body}"
    );
    // A small, honest use of fragments passes.
    let (status, body) = app.post(None, &bomb(4), json!({})).await;
    assert_eq!(status, 200, "{body}");
    alive(&app).await;
}
both!(fragment_bombs_are_refused_before_any_work);

async fn a_request_past_its_deadline_answers_timeout(app: TestApp) {
    // Logging in hashes a password: far longer than a millisecond.
    let (status, body) = app
        .post(
            None,
            "mutation { login(input: {email: \"team@gemba.local\", password: \"not-the-password\"}) { token } }",
            json!({}),
        )
        .await;
    assert_eq!((status, code(&body)), (504, "TIMEOUT".to_owned()), "{body}");
    assert!(body.get("data").is_none(), "{body}");
    assert!(app.metric("gemba_request_timeouts_total").await >= 1);
}

both_with!(
    a_request_past_its_deadline_answers_timeout,
    gemba::config::Settings {
        request_timeout: std::time::Duration::from_millis(1),
        ..Default::default()
    }
);

async fn cost_budgets(app: TestApp) {
    let team = app.login(TEAM).await;
    let other = app.login(crate::harness::PROGRAM).await;
    let org = unit_id(&app, &team, "org").await;
    // Each read of 100 items with their children costs about 100 × 100.
    let costly = "query($u: ID!) { workItems(unit: $u, first: 10) { nodes { key children(first: 10) { nodes { key } } } } }";
    let mut refused = None;
    for _ in 0..40 {
        let res = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(&team)
            .header("content-type", "application/json")
            .json(&json!({"query": costly, "variables": {"u": org}}))
            .send()
            .await
            .unwrap();
        if res.status().as_u16() == 429 {
            let retry = res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let body: Value = res.json().await.unwrap();
            refused = Some((retry, body));
            break;
        }
        let body: Value = res.json().await.unwrap();
        assert!(body.get("errors").is_none(), "{body}");
    }
    let (retry, body) = refused.expect("the budget of 2,000 points ran out");
    assert_eq!(code(&body), "RATE_LIMITED", "{body}");
    let ext = &body["errors"][0]["extensions"];
    assert!(retry.is_some_and(|r| r >= 1), "Retry-After: {retry:?}");
    assert_eq!(ext["retryAfter"].as_u64(), retry, "{body}");
    assert!(ext["remaining"].as_u64().unwrap() < 2_000, "{body}");
    assert!(ext["cost"].as_u64().unwrap() > ext["remaining"].as_u64().unwrap());
    assert!(body.get("data").is_none(), "{body}");
    // Another token has its own budget.
    app.ok(&other, costly, json!({"u": org})).await;
    assert!(app.metric("gemba_rate_limited_total").await >= 1);
    // The same code, the same status, whatever the operation: a login over
    // its attempt limit is 429 too.
    let mut last = (0, Value::Null);
    for _ in 0..8 {
        last = app
            .post(
                None,
                "mutation { login(input: {email: \"team@gemba.local\", password: \"wrong-password\"}) { token } }",
                json!({}),
            )
            .await;
    }
    assert_eq!(
        (last.0, code(&last.1)),
        (429, "RATE_LIMITED".to_owned()),
        "{}",
        last.1
    );
}

both_with!(
    cost_budgets,
    gemba::config::Settings {
        budget_points: 2_000,
        budget_refill_per_second: 100,
        ..Default::default()
    }
);

/// The refusal's (cost, remaining) of `body`.
fn charged(body: &Value) -> (u64, u64) {
    let ext = &body["errors"][0]["extensions"];
    (
        ext["cost"].as_u64().unwrap_or_else(|| panic!("{body}")),
        ext["remaining"]
            .as_u64()
            .unwrap_or_else(|| panic!("{body}")),
    )
}

async fn an_operation_seen_before_is_charged_what_it_cost_the_first_time(app: TestApp) {
    // Without refill, a budget's remaining points are exact.
    let team = app.login(TEAM).await;
    let other = app.login(crate::harness::PROGRAM).await;
    // Looked up with a third token: the two above start with full budgets.
    let exec = app.login(crate::harness::EXEC).await;
    let org = unit_id(&app, &exec, "org").await;
    let read = "query($u: ID!, $n: Int!) { workItems(unit: $u, first: $n) { nodes { key children(first: 50) { nodes { key } } } } }";
    // Too costly for the budget: refused the first time (by the
    // extension, which remembers the cost) and the second (charged from
    // memory), the same way.
    let (status, first) = app
        .post(Some(&team), read, json!({"u": org, "n": 100}))
        .await;
    assert_eq!(
        (status, code(&first)),
        (429, "RATE_LIMITED".to_owned()),
        "{first}"
    );
    let (status, again) = app
        .post(Some(&team), read, json!({"u": org, "n": 100}))
        .await;
    assert_eq!(
        (status, code(&again)),
        (429, "RATE_LIMITED".to_owned()),
        "{again}"
    );
    let (costly, remaining) = charged(&first);
    assert_eq!(remaining, 2_000, "{first}");
    assert_eq!(charged(&again), (costly, 2_000), "{again}");
    // The same document with other variables is another operation, with
    // its own cost; every run of it spends exactly that cost.
    let mut runs = 0;
    let refused = loop {
        let (status, body) = app
            .post(Some(&other), read, json!({"u": org, "n": 2}))
            .await;
        if status == 429 {
            break body;
        }
        assert!(body.get("errors").is_none(), "{body}");
        runs += 1;
        assert!(runs < 200, "the budget never ran out");
    };
    let (cost, remaining) = charged(&refused);
    assert!(cost < costly, "{refused}");
    assert_eq!(runs, 2_000 / cost, "{refused}");
    assert_eq!(remaining, 2_000 - runs * cost, "{refused}");
}

both_with!(
    an_operation_seen_before_is_charged_what_it_cost_the_first_time,
    gemba::config::Settings {
        budget_points: 2_000,
        budget_refill_per_second: 0,
        ..Default::default()
    }
);

async fn websocket_close_handshake_and_codes(app: TestApp) {
    let team = app.login(TEAM).await;
    // A client's close frame is echoed (RFC 6455 §5.5.1).
    let mut ws = Ws::connect(&app, &team).await;
    ws.send_raw(Message::Close(Some(
        tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        },
    )))
    .await;
    match ws.next(Duration::from_secs(3)).await {
        Got::Closed(1000, _) => {}
        other => panic!("the close frame was not echoed: {other:?}"),
    }
    // A text frame that is not UTF-8: 1007.
    let mut ws = Ws::connect(&app, &team).await;
    let header = FrameHeader {
        opcode: OpCode::Data(Data::Text),
        is_final: true,
        ..Default::default()
    };
    ws.send_raw(Message::Frame(Frame::from_payload(
        header,
        vec![0xff, 0xfe, 0xfd].into(),
    )))
    .await;
    ws.expect_close(1007, Duration::from_secs(3)).await;
    // A message over the size limit: 1009.
    let mut ws = Ws::connect(&app, &team).await;
    let big = json!({"type": "ping", "payload": {"x": "x".repeat(300 * 1024)}});
    ws.send(big).await;
    ws.expect_close(1009, Duration::from_secs(3)).await;
    alive(&app).await;
}
both!(websocket_close_handshake_and_codes);

/// Twenty-four five-year flow metrics of the whole organisation: seconds of
/// database work, yet within every limit (complexity about 47,000).
fn slow_query() -> String {
    let fields: String = (0..24)
        .map(|i| {
            format!(
                "m{i}: flowMetrics(unit: $u, window: {{from: \"2021-12-03T00:00:00Z\", to: \"2026-12-03T00:00:00Z\"}}) \
                 {{ throughput timeInState {{ state total }} cumulativeFlow {{ date counts {{ state count }} }} }} "
            )
        })
        .collect();
    format!("query($u: ID!) {{ {fields} }}")
}

/// Statements the server completes in `watch`, starting a second from now.
/// A statement already running when its request is dropped is not counted
/// (nobody awaits it); [`drains`] covers those on PostgreSQL.
async fn statements_a_second_later(app: &TestApp, watch: Duration) -> u64 {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = app.statements().await;
    tokio::time::sleep(watch).await;
    app.statements().await - before
}

/// Sends a GraphQL POST on a socket of its own and closes it after
/// `after`, whatever the server has answered by then.
async fn leave_after(app: &TestApp, token: &str, body: &Value, after: Duration) {
    use tokio::io::AsyncWriteExt;
    let addr = app.url("").trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let body = body.to_string();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(body.as_bytes()).await.unwrap();
    tokio::time::sleep(after).await;
    drop(socket);
}

/// On PostgreSQL: the statements left running in the database by a dropped
/// request (sqlx cannot cancel one in flight) end within `within`.
async fn drains(app: &TestApp, within: Duration) {
    use sea_orm::{ConnectionTrait, Statement};
    if app.backend != crate::harness::Backend::Postgres {
        return;
    }
    let db = sea_orm::Database::connect(&app.db_url).await.unwrap();
    let started = Instant::now();
    loop {
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT count(*) AS n FROM pg_stat_activity \
                 WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()",
            ))
            .await
            .unwrap()
            .unwrap();
        if row.try_get::<i64>("", "n").unwrap() == 0 {
            break;
        }
        assert!(
            started.elapsed() < within,
            "statements still running {within:?} after their request was dropped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = db.close().await;
}

/// A slow query whose client leaves, or whose deadline passes, stops: no
/// statement of it starts a second later, and on PostgreSQL those in flight
/// when it was dropped end.
async fn slow_work_stops_when_its_client_leaves(app: TestApp) {
    let admin = app.login(crate::harness::ADMIN).await;
    let org = unit_id(&app, &admin, "org").await;
    let query = slow_query();
    let vars = json!({ "u": org });
    // Run to the end, the query takes longer than the window watched below,
    // so work that went on would be seen. (Its fields may wait for one
    // another's pooled connections; whatever they answer, the time is what
    // matters here.)
    let started = Instant::now();
    let (status, _) = app.post(Some(&admin), &query, vars.clone()).await;
    let full = started.elapsed();
    assert_eq!(status, 200);
    assert!(
        full > Duration::from_millis(1800),
        "the slow query took only {full:?}"
    );
    // Watched from 1.3 s after the request until before it would have ended.
    let watch = full
        .saturating_sub(Duration::from_millis(1400))
        .clamp(Duration::from_millis(300), Duration::from_millis(1500));

    // The client gives up after 300 ms: it closes its socket.
    leave_after(
        &app,
        &admin,
        &json!({ "query": query, "variables": vars }),
        Duration::from_millis(300),
    )
    .await;
    let after_leaving = statements_a_second_later(&app, watch).await;
    assert_eq!(after_leaving, 0, "statements ran after the client left");
    drains(&app, Duration::from_secs(10)).await;

    // The deadline passes (a second server on the same database, which
    // accepts the first one's tokens). The execution's time varies with the
    // machine's load, so the deadline sits far below it: a few fields'
    // statements, not the whole query, fit in it.
    let settings = gemba::config::Settings {
        request_timeout: Duration::from_millis(25),
        ..Default::default()
    };
    let strict = TestApp::serve_on(&app.db_url, app.backend, settings).await;
    let (status, body) = strict.post(Some(&admin), &query, vars).await;
    // The request's deadline (504, no data), or on PostgreSQL the same
    // deadline as `statement_timeout` ending statements first: their fields
    // answer TIMEOUT beside the rest.
    let timed_out = body["errors"]
        .as_array()
        .is_some_and(|e| e.iter().any(|e| e["extensions"]["code"] == "TIMEOUT"));
    assert!(timed_out, "{status}: {}", body["errors"]);
    match status {
        504 => assert!(body.get("data").is_none(), "{body:.300}"),
        200 => assert_eq!(strict.backend, crate::harness::Backend::Postgres),
        other => panic!("HTTP {other}: {body:.300}"),
    }
    let after_deadline = statements_a_second_later(&strict, watch).await;
    assert_eq!(after_deadline, 0, "statements ran after the deadline");
    drains(&strict, Duration::from_secs(10)).await;
}
both!(slow_work_stops_when_its_client_leaves);

/// An operation's cost is counted on the document with its fragments
/// expanded: a fragment spread twice costs twice.
async fn cost_counts_expanded_fragments(app: TestApp) {
    let admin = app.login(crate::harness::ADMIN).await;
    let org = unit_id(&app, &admin, "org").await;
    let fragment = "fragment F on Query { workItems(unit: $u, first: 100) { nodes { key } } }";
    let once = format!("query($u: ID!) {{ ...F }} {fragment}");
    app.ok(&admin, &once, json!({ "u": org })).await;
    let twice = format!("query($u: ID!) {{ ...F ...G }} fragment G on Query {{ ...F }} {fragment}");
    let body = app.gql(Some(&admin), &twice, json!({ "u": org })).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("complex"),
        "{body}"
    );
}
both_with!(
    cost_counts_expanded_fragments,
    gemba::config::Settings {
        max_query_complexity: 300,
        ..Default::default()
    }
);
