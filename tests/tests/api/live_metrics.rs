//! `flowMetricsUpdates` over `/graphql/ws`: the root field's numbers at
//! once, again after a change of the subtree, coalesced, scoped; and a live
//! hub that does no work while nobody listens.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::both;
use crate::harness::{ADMIN, PROGRAM, TEAM, TestApp};
use crate::ingest::post_ndjson;
use crate::writes::unit_id;
use crate::ws::{Got, Ws};

const FIELDS: &str = "window { from to } throughput wipAtEnd averageWip
    leadTime { count p50 } cycleTime { count mean } throughputByFlowType { flowType count }";

fn updates() -> String {
    format!(
        "subscription($u: ID!, $d: Int!, $f: MetricFilterInput) {{
           flowMetricsUpdates(unit: $u, lastDays: $d, filter: $f) {{ {FIELDS} }} }}"
    )
}

fn root() -> String {
    format!(
        "query($u: ID!, $w: TimeWindowInput!, $f: MetricFilterInput) {{
           flowMetrics(unit: $u, window: $w, filter: $f) {{ {FIELDS} }} }}"
    )
}

const MOVE: &str = "mutation($i: ID!, $s: String!) { moveWorkItem(input: {workItem: $i, toState: $s}) { workItem { state } } }";
const WAIT: Duration = Duration::from_secs(5);

/// The root field over the window a pushed message covers.
async fn root_for(app: &TestApp, token: &str, unit: &Value, pushed: &Value) -> Value {
    app.ok(
        token,
        &root(),
        json!({ "u": unit, "w": pushed["window"], "f": null }),
    )
    .await["flowMetrics"]
        .clone()
}

/// The root field over the last `days` days up to now.
async fn root_now(app: &TestApp, token: &str, unit: &Value, days: i64) -> Value {
    let to = chrono::Utc::now();
    let from = to - chrono::Duration::days(days);
    app.ok(
        token,
        &root(),
        json!({ "u": unit, "w": {"from": from.to_rfc3339(), "to": to.to_rfc3339()}, "f": null }),
    )
    .await["flowMetrics"]
        .clone()
}

/// The next message of subscription `id`, or `None` after `wait`.
async fn pushed(ws: &mut Ws, id: &str, wait: Duration) -> Option<Value> {
    match ws.next(wait).await {
        Got::Msg(m) if m["type"] == "next" && m["id"] == id => {
            assert!(m["payload"]["errors"].is_null(), "{m}");
            Some(m["payload"]["data"]["flowMetricsUpdates"].clone())
        }
        Got::Nothing => None,
        other => panic!("waiting on {id}: {other:?}"),
    }
}

/// `n` new stories of team-atlas, in its backlog: their ids.
async fn atlas_stories(app: &TestApp, token: &str, n: usize) -> Vec<Value> {
    let atlas = unit_id(app, token, "team-atlas").await;
    let mut ids = Vec::new();
    for i in 0..n {
        let data = app
            .ok(
                token,
                "mutation($u: ID!, $t: String!) { createWorkItem(input: {unit: $u, type: STORY, title: $t, state: \"Backlog\"}) { workItem { id } } }",
                json!({ "u": atlas, "t": format!("Live {i}") }),
            )
            .await;
        ids.push(data["createWorkItem"]["workItem"]["id"].clone());
    }
    ids
}

async fn live_flow_metrics_follow_the_subtree(app: TestApp) {
    let team = app.login(TEAM).await;
    let program = app.login(PROGRAM).await;
    let checkout = unit_id(&app, &program, "payments-checkout").await;
    let borealis = unit_id(&app, &program, "team-borealis").await;
    let fresh = atlas_stories(&app, &team, 1).await;
    let busy = atlas_stories(&app, &team, 12).await;

    let mut ws = Ws::connect(&app, &program).await;
    ws.subscribe("m", &updates(), json!({ "u": checkout, "d": 30 }))
        .await;
    ws.subscribe("other", &updates(), json!({ "u": borealis, "d": 30 }))
        .await;
    // At once: the numbers of the root field for the same window.
    let mut first = None;
    let mut other_first = false;
    while first.is_none() || !other_first {
        match ws.next(WAIT).await {
            Got::Msg(m) if m["type"] == "next" && m["id"] == "m" => {
                first = Some(m["payload"]["data"]["flowMetricsUpdates"].clone());
            }
            Got::Msg(m) if m["type"] == "next" && m["id"] == "other" => {
                assert!(m["payload"]["errors"].is_null(), "{m}");
                other_first = true;
            }
            other => panic!("no first message: {other:?}"),
        }
    }
    let first = first.unwrap();
    assert_eq!(first, root_for(&app, &program, &checkout, &first).await);
    let (from, to) = (
        chrono::DateTime::parse_from_rfc3339(first["window"]["from"].as_str().unwrap()).unwrap(),
        chrono::DateTime::parse_from_rfc3339(first["window"]["to"].as_str().unwrap()).unwrap(),
    );
    assert_eq!(to - from, chrono::Duration::days(30));
    assert!((chrono::Utc::now() - to.to_utc()).num_seconds() < 5, "{to}");
    ws.expect_quiet(Duration::from_millis(1200)).await;

    // A story of team-atlas starts: pushed within 1.5 s, as the root field
    // counts it.
    let started = Instant::now();
    app.ok(&team, MOVE, json!({ "i": fresh[0], "s": "In Progress" }))
        .await;
    let after = pushed(&mut ws, "m", Duration::from_millis(1500))
        .await
        .unwrap_or_else(|| panic!("nothing within 1.5 s of the move"));
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert_eq!(
        after["wipAtEnd"].as_i64().unwrap(),
        first["wipAtEnd"].as_i64().unwrap() + 1,
        "{first} then {after}"
    );
    assert_eq!(after, root_for(&app, &program, &checkout, &after).await);
    // Team Borealis's subscription saw nothing of Atlas's move.
    ws.expect_quiet(Duration::from_millis(1200)).await;

    // A burst of moves: at most one message a second, the last one after
    // the last move and equal to the root field.
    let burst = Instant::now();
    let mut done = 0;
    for (n, story) in busy.iter().enumerate() {
        let to = if n % 3 == 2 { "Done" } else { "In Review" };
        done += usize::from(to == "Done");
        app.ok(&team, MOVE, json!({ "i": story, "s": to })).await;
    }
    app.ok(&team, MOVE, json!({ "i": fresh[0], "s": "Done" }))
        .await;
    let took = burst.elapsed();
    let mut got = Vec::new();
    while let Some(m) = pushed(&mut ws, "m", Duration::from_millis(2500)).await {
        got.push(m);
    }
    assert!(!got.is_empty(), "no message after the burst");
    let most = took.as_secs() as usize + 2;
    assert!(
        got.len() <= most,
        "{} messages for a burst of {took:?}",
        got.len()
    );
    // Each message's window ends when it was computed: a second apart at
    // least (the client read them only after the burst).
    let to = |m: &Value| {
        chrono::DateTime::parse_from_rfc3339(m["window"]["to"].as_str().unwrap()).unwrap()
    };
    for pair in got.windows(2) {
        let gap = to(&pair[1]) - to(&pair[0]);
        assert!(
            gap >= chrono::Duration::seconds(1),
            "two messages {gap:?} apart"
        );
    }
    let last = got.last().unwrap();
    assert_eq!(*last, root_for(&app, &program, &checkout, last).await);
    let now = root_now(&app, &program, &checkout, 30).await;
    assert_eq!(last["wipAtEnd"], now["wipAtEnd"], "{last} {now}");
    assert_eq!(last["throughput"], now["throughput"], "{last} {now}");
    assert_eq!(
        last["throughput"].as_i64().unwrap(),
        after["throughput"].as_i64().unwrap() + done as i64 + 1,
        "the stories done in the burst, and the first one"
    );
}
both!(live_flow_metrics_follow_the_subtree);

async fn live_flow_metrics_are_refused_as_subscriptions_are(app: TestApp) {
    let team = app.login(TEAM).await;
    let atlas = unit_id(&app, &team, "team-atlas").await;
    let borealis = unit_id(&app, &team, "team-borealis").await;
    let mut ws = Ws::connect(&app, &team).await;

    // A sibling team's metrics: FORBIDDEN before any message, then complete.
    ws.subscribe("sib", &updates(), json!({ "u": borealis, "d": 30 }))
        .await;
    let m = ws.message().await;
    assert_eq!(m["type"], "next", "{m}");
    assert_eq!(m["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN");
    assert!(m["payload"]["data"].is_null(), "{m}");
    assert_eq!(ws.message().await, json!({"type": "complete", "id": "sib"}));

    // Bad windows.
    for days in [0, -3, 1828] {
        ws.subscribe("bad", &updates(), json!({ "u": atlas, "d": days }))
            .await;
        let m = ws.message().await;
        assert_eq!(
            m["payload"]["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "lastDays {days}: {m}"
        );
        assert_eq!(ws.message().await, json!({"type": "complete", "id": "bad"}));
    }
    // A malformed document is an `error`.
    ws.subscribe(
        "doc",
        "subscription($u: ID!) { flowMetricsUpdates(unit: $u) { throughput } }",
        json!({ "u": atlas }),
    )
    .await;
    let m = ws.message().await;
    assert_eq!(m["type"], "error", "{m}");

    // One's own team works, and follows the team.
    ws.subscribe(
        "own",
        &updates(),
        json!({ "u": atlas, "d": 30, "f": {"types": ["STORY"]} }),
    )
    .await;
    let m = pushed(&mut ws, "own", WAIT).await.unwrap();
    assert!(m["throughput"].is_number(), "{m}");

    // Access revoked mid-stream: the subscription ends with FORBIDDEN.
    let admin = app.login(ADMIN).await;
    let membership = app
        .ok(&team, "{ me { memberships { id } } }", json!({}))
        .await["me"]["memberships"][0]["id"]
        .clone();
    app.ok(
        &admin,
        "mutation($m: ID!) { revokeMembership(input: {membership: $m}) { revokedMembershipId } }",
        json!({ "m": membership }),
    )
    .await;
    let m = ws.message().await;
    assert_eq!(m["id"], "own", "{m}");
    assert_eq!(
        m["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{m}"
    );
    assert_eq!(ws.message().await, json!({"type": "complete", "id": "own"}));
}
both!(live_flow_metrics_are_refused_as_subscriptions_are);

/// `n` NDJSON events creating stories of team-atlas in progress.
fn stories(prefix: &str, n: usize, state: &str) -> String {
    (0..n)
        .map(|i| {
            let key = format!("{prefix}-{i}");
            format!(
                "{}\n",
                json!({"id": key, "type": "work_item.upserted", "source": "bulk",
                       "data": {"external_id": key, "key": key, "unit": "team-atlas", "type": "STORY",
                                "title": "Bulk", "state": state, "created_at": "2026-11-30T09:00:00Z"}})
            )
        })
        .collect()
}

/// More events than the bus holds, in one request: with nobody listening,
/// the hub reads none of them (and so cannot fall behind); with a
/// subscriber, the last state reaches it all the same.
async fn a_quiet_hub_costs_nothing(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let (status, report) = post_ndjson(&app, &admin, &stories("QUIET", 5000, "Backlog")).await;
    assert_eq!(
        (status, &report["applied"]),
        (200, &json!(5000)),
        "{report}"
    );
    assert_eq!(app.metric("gemba_live_events_total").await, 0);
    assert_eq!(app.metric("gemba_live_missed_total").await, 0);

    let atlas = unit_id(&app, &admin, "team-atlas").await;
    let mut ws = Ws::connect(&app, &admin).await;
    ws.subscribe("m", &updates(), json!({ "u": atlas, "d": 30 }))
        .await;
    let first = pushed(&mut ws, "m", WAIT).await.unwrap();
    let (status, report) = post_ndjson(&app, &admin, &stories("BUSY", 5000, "In Progress")).await;
    assert_eq!(
        (status, &report["applied"]),
        (200, &json!(5000)),
        "{report}"
    );
    let want = first["wipAtEnd"].as_i64().unwrap() + 5000;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = pushed(&mut ws, "m", Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("no message with the ingested stories"));
        if m["wipAtEnd"].as_i64() == Some(want) {
            break;
        }
        assert!(Instant::now() < deadline, "still {m}");
    }
    // The hub did read events for the subscriber.
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.metric("gemba_live_events_total").await == 0 {
        assert!(Instant::now() < deadline, "the hub read no event");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
both!(a_quiet_hub_costs_nothing);
