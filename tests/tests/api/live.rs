//! Subscriptions over `/graphql/ws`: the protocol's edge cases, role-scoped
//! delivery, access revoked mid-stream, and replicas on one PostgreSQL.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::boards::SIBLING;
use crate::harness::{ADMIN, Backend, EXEC, PROGRAM, TEAM, TestApp};
use crate::writes::unit_id;
use crate::ws::{Got, Ws};
use crate::{both, both_with};

const ITEM_EVENTS: &str = "subscription($u: ID!) { workItemEvents(unit: $u) { kind at workItem { key state unit { key } } } }";
const BOARD_EVENTS: &str = "subscription($u: ID!) { boardEvents(unit: $u) { kind lane { key }
    card { key state children { total done inProgress } } columns { name count overLimit } column { name overLimit } } }";
const MOVE: &str = "mutation($i: ID!, $s: String!) { moveWorkItem(input: {workItem: $i, toState: $s}) { workItem { key state } } }";

const SHORT: Duration = Duration::from_millis(800);
const WAIT: Duration = Duration::from_secs(5);

/// Lets the server register subscriptions sent just before.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// A NEW story of team-atlas under a Checkout feature: (id, key, feature key).
async fn atlas_story(app: &TestApp, token: &str) -> (Value, String, String) {
    let atlas = unit_id(app, token, "team-atlas").await;
    let data = app
        .ok(
            token,
            "query($u: ID!) { workItems(unit: $u, first: 100, filter: {types: [STORY], stateCategories: [NEW]}) {
                nodes { id key parent { key unit { key } } } } }",
            json!({ "u": atlas }),
        )
        .await;
    let s = data["workItems"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["parent"]["unit"]["key"] == "payments-checkout")
        .cloned()
        .unwrap();
    (
        s["id"].clone(),
        s["key"].as_str().unwrap().to_owned(),
        s["parent"]["key"].as_str().unwrap().to_owned(),
    )
}

async fn protocol_edge_cases(app: TestApp) {
    let team = app.login(TEAM).await;
    let atlas = unit_id(&app, &team, "team-atlas").await;
    let borealis = unit_id(&app, &team, "team-borealis").await;

    // No token, a bad token.
    let mut ws = Ws::open(&app).await;
    ws.send(json!({"type": "connection_init"})).await;
    ws.expect_close(4403, WAIT).await;
    let mut ws = Ws::open(&app).await;
    ws.send(json!({"type": "connection_init", "payload": {"token": "nope"}}))
        .await;
    ws.expect_close(4403, WAIT).await;
    // The header form of the payload works too.
    let mut ws = Ws::open(&app).await;
    ws.send(
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {team}")}}),
    )
    .await;
    assert_eq!(ws.message().await["type"], "connection_ack");

    // Subscribe before init.
    let mut ws = Ws::open(&app).await;
    ws.subscribe("1", ITEM_EVENTS, json!({ "u": atlas })).await;
    ws.expect_close(4401, WAIT).await;

    // No init at all: closed after the timeout (3 s by default).
    let mut ws = Ws::open(&app).await;
    let reason = ws.expect_close(4408, Duration::from_secs(6)).await;
    assert!(reason.contains("timeout"), "{reason}");

    // A second init.
    let mut ws = Ws::connect(&app, &team).await;
    ws.send(json!({"type": "connection_init", "payload": {"token": team}}))
        .await;
    ws.expect_close(4429, WAIT).await;

    // A duplicate subscription id.
    let mut ws = Ws::connect(&app, &team).await;
    ws.subscribe("dup", ITEM_EVENTS, json!({ "u": atlas }))
        .await;
    ws.subscribe("dup", ITEM_EVENTS, json!({ "u": atlas }))
        .await;
    ws.expect_close(4409, WAIT).await;

    // Malformed messages.
    let mut ws = Ws::connect(&app, &team).await;
    ws.send_raw(Message::Text("not json".into())).await;
    ws.expect_close(4400, WAIT).await;
    let mut ws = Ws::connect(&app, &team).await;
    ws.send(json!({"type": "subscribe", "payload": {"query": "subscription { x }"}}))
        .await;
    ws.expect_close(4400, WAIT).await;
    let mut ws = Ws::connect(&app, &team).await;
    ws.send(json!({"type": "bogus"})).await;
    ws.expect_close(4400, WAIT).await;

    // Ping, pong; an invalid document is an `error`; outside scope is
    // FORBIDDEN before any event, then `complete`.
    let mut ws = Ws::connect(&app, &team).await;
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.message().await["type"], "pong");
    ws.subscribe("bad", "subscription { nothing }", json!({}))
        .await;
    let m = ws.message().await;
    assert_eq!(m["type"], "error", "{m}");
    assert_eq!(m["id"], "bad");
    assert!(m["payload"][0]["message"].is_string());
    ws.subscribe("other", ITEM_EVENTS, json!({ "u": borealis }))
        .await;
    let m = ws.message().await;
    assert_eq!(m["type"], "next", "{m}");
    assert_eq!(m["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN");
    let m = ws.message().await;
    assert_eq!(m, json!({"type": "complete", "id": "other"}));
    // The id is free again after `complete`.
    ws.subscribe("other", ITEM_EVENTS, json!({ "u": atlas }))
        .await;
    ws.send(json!({"type": "complete", "id": "other"})).await;
    ws.expect_quiet(SHORT).await;

    // Queries work over the socket too: `next`, then `complete`.
    ws.subscribe("q", "{ me { user { email } } }", json!({}))
        .await;
    let m = ws.message().await;
    assert_eq!(m["payload"]["data"]["me"]["user"]["email"], TEAM);
    assert_eq!(ws.message().await, json!({"type": "complete", "id": "q"}));
}
both!(protocol_edge_cases);

async fn events_reach_exactly_those_who_may_see_them(app: TestApp) {
    let team = app.login(TEAM).await;
    let program = app.login(PROGRAM).await;
    let exec = app.login(EXEC).await;
    let sibling = app.login(SIBLING).await;
    let atlas = unit_id(&app, &team, "team-atlas").await;
    let checkout = unit_id(&app, &team, "payments-checkout").await;
    let (story, key, feature) = atlas_story(&app, &team).await;

    let mut pm = Ws::connect(&app, &program).await;
    pm.subscribe("items", ITEM_EVENTS, json!({ "u": checkout }))
        .await;
    pm.subscribe("board", BOARD_EVENTS, json!({ "u": checkout }))
        .await;
    let mut sib = Ws::connect(&app, &sibling).await;
    sib.subscribe("items", ITEM_EVENTS, json!({ "u": checkout }))
        .await;
    sib.subscribe("board", BOARD_EVENTS, json!({ "u": checkout }))
        .await;
    let mut ex = Ws::connect(&app, &exec).await;
    ex.subscribe("board", BOARD_EVENTS, json!({ "u": atlas }))
        .await;
    ex.subscribe("items", ITEM_EVENTS, json!({ "u": atlas }))
        .await;
    settle().await;

    let started = Instant::now();
    app.ok(&team, MOVE, json!({ "i": story, "s": "In Progress" }))
        .await;

    // The program manager sees the move, within a second.
    let e = pm
        .next_until("items", WAIT, |p| {
            p["data"]["workItemEvents"]["workItem"]["key"] == key.as_str()
        })
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let e = &e["data"]["workItemEvents"];
    assert_eq!(e["kind"], "MOVED");
    assert_eq!(e["workItem"]["state"], "In Progress");
    assert_eq!(e["workItem"]["unit"]["key"], "team-atlas");
    // ... and on the program board, the Atlas lane's counts and the
    // feature's progress.
    let mut saw_counts = false;
    let mut saw_feature = false;
    while !(saw_counts && saw_feature) {
        let p = pm.next_until("board", WAIT, |_| true).await;
        let b = &p["data"]["boardEvents"];
        match b["kind"].as_str().unwrap() {
            "COUNTS_CHANGED" => {
                assert_eq!(b["lane"]["key"], "team-atlas");
                assert_eq!(b["card"]["key"], key.as_str());
                saw_counts = true;
            }
            "CARD_UPDATED" => {
                assert_eq!(b["card"]["key"], feature.as_str());
                assert!(b["card"]["children"]["inProgress"].as_i64().unwrap() >= 1);
                saw_feature = true;
            }
            other => panic!("unexpected {other}: {b}"),
        }
    }
    // The executive, on the team board: the move as counts, with no card,
    // and no item events at all.
    let p = ex.next_until("board", WAIT, |_| true).await;
    let b = &p["data"]["boardEvents"];
    assert_eq!(b["kind"], "CARD_MOVED");
    assert_eq!(b["card"], Value::Null);
    assert!(
        b["columns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "In Progress")
    );
    // The sibling team's member sees nothing of Atlas's story: on the
    // program board, only the feature's progress (a program aggregate), no
    // Atlas lane, no story.
    let p = sib.next_until("board", WAIT, |_| true).await;
    let b = &p["data"]["boardEvents"];
    assert_eq!(b["kind"], "CARD_UPDATED", "{b}");
    assert_eq!(b["card"]["key"], feature.as_str());
    sib.expect_quiet(SHORT).await;
    ex.expect_quiet(SHORT).await;

    // A feature change is visible to both the manager and the sibling member.
    let feature_id = app
        .ok(
            &team,
            "query($k: String!) { workItem(key: $k) { id } }",
            json!({ "k": feature }),
        )
        .await["workItem"]["id"]
        .clone();
    app.ok(
        &program,
        "mutation($i: ID!) { updateWorkItem(input: {workItem: $i, title: \"Renamed feature\"}) { workItem { key } } }",
        json!({ "i": feature_id }),
    )
    .await;
    for ws in [&mut pm, &mut sib] {
        let e = ws
            .next_until("items", WAIT, |p| {
                p["data"]["workItemEvents"]["workItem"]["key"] == feature.as_str()
            })
            .await;
        assert_eq!(e["data"]["workItemEvents"]["kind"], "UPDATED");
    }

    // The manager's membership is revoked mid-stream: the subscriptions end
    // with FORBIDDEN and no further event arrives.
    let admin = app.login(ADMIN).await;
    let membership = app
        .ok(
            &program,
            "{ me { memberships { id unit { key } } } }",
            json!({}),
        )
        .await["me"]["memberships"][0]["id"]
        .clone();
    app.ok(
        &admin,
        "mutation($m: ID!) { revokeMembership(input: {membership: $m}) { revokedMembershipId } }",
        json!({ "m": membership }),
    )
    .await;
    let mut ended = 0;
    let deadline = Instant::now() + WAIT;
    while ended < 2 && Instant::now() < deadline {
        match pm.next(WAIT).await {
            Got::Msg(m) if m["type"] == "next" => {
                if m["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN" {
                    ended += 1;
                }
            }
            Got::Msg(m) if m["type"] == "complete" => {}
            other => panic!("after the revocation: {other:?}"),
        }
    }
    assert_eq!(ended, 2, "both subscriptions end with FORBIDDEN");
    app.ok(&team, MOVE, json!({ "i": story, "s": "In Review" }))
        .await;
    loop {
        match pm.next(SHORT).await {
            Got::Nothing => break,
            Got::Msg(m) if m["type"] == "complete" => {}
            other => panic!("an event after the revocation: {other:?}"),
        }
    }

    // Logging out closes the sockets of that token.
    let mut mine = Ws::connect(&app, &team).await;
    mine.subscribe("items", ITEM_EVENTS, json!({ "u": atlas }))
        .await;
    settle().await;
    let out = app.gql(Some(&team), "mutation { logout }", json!({})).await;
    assert_eq!(out["data"]["logout"], true, "{out}");
    mine.expect_close(4403, WAIT).await;
}
both!(events_reach_exactly_those_who_may_see_them);

async fn wip_crossings_are_board_events(app: TestApp) {
    let team = app.login(TEAM).await;
    let program = app.login(PROGRAM).await;
    let atlas = unit_id(&app, &team, "team-atlas").await;
    let (story, key, _) = atlas_story(&app, &team).await;
    let testing = app
        .ok(
            &team,
            "query($u: ID!) { board(unit: $u) { columns { name count } } }",
            json!({ "u": atlas }),
        )
        .await["board"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Testing")
        .unwrap()["count"]
        .as_i64()
        .unwrap();
    let mut ws = Ws::connect(&app, &team).await;
    ws.subscribe("b", BOARD_EVENTS, json!({ "u": atlas })).await;
    settle().await;
    // The column is full: one more card takes it over the limit.
    app.ok(
        &program,
        "mutation($u: ID!, $l: Int) { setWipLimit(input: {unit: $u, state: \"Testing\", wipLimit: $l}) { column { name } } }",
        json!({ "u": atlas, "l": testing }),
    )
    .await;
    let p = ws.next_until("b", WAIT, |_| true).await;
    assert_eq!(p["data"]["boardEvents"]["kind"], "BOARD_CHANGED");
    app.ok(&team, MOVE, json!({ "i": story, "s": "Testing" }))
        .await;
    let moved = ws
        .next_until("b", WAIT, |p| {
            p["data"]["boardEvents"]["kind"] == "CARD_MOVED"
        })
        .await;
    assert_eq!(moved["data"]["boardEvents"]["card"]["key"], key.as_str());
    let crossed = ws
        .next_until("b", WAIT, |p| {
            p["data"]["boardEvents"]["kind"] == "WIP_LIMIT_CROSSED"
        })
        .await;
    let c = &crossed["data"]["boardEvents"]["column"];
    assert_eq!(c["name"], "Testing");
    assert_eq!(c["overLimit"], true);
    // Out again: back within the limit.
    app.ok(&team, MOVE, json!({ "i": story, "s": "Done" }))
        .await;
    let back = ws
        .next_until("b", WAIT, |p| {
            p["data"]["boardEvents"]["kind"] == "WIP_LIMIT_CROSSED"
        })
        .await;
    assert_eq!(back["data"]["boardEvents"]["column"]["name"], "Testing");
    assert_eq!(back["data"]["boardEvents"]["column"]["overLimit"], false);
}
both!(wip_crossings_are_board_events);

/// Two servers on one PostgreSQL database deliver each other's events, and
/// a replica whose listening connection dies resumes without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_deliver_each_others_events() {
    let Some(a) = TestApp::spawn(Backend::Postgres).await else {
        eprintln!("GEMBA_TEST_POSTGRES_URL is not set: skipped");
        return;
    };
    let b = a.replica().await;
    let team = a.login(TEAM).await;
    let program = b.login(PROGRAM).await;
    let sibling = b.login(SIBLING).await;
    let checkout = unit_id(&b, &program, "payments-checkout").await;
    let (story, key, _) = atlas_story(&a, &team).await;

    let mut pm = Ws::connect(&b, &program).await;
    pm.subscribe("items", ITEM_EVENTS, json!({ "u": checkout }))
        .await;
    let mut sib = Ws::connect(&b, &sibling).await;
    sib.subscribe("items", ITEM_EVENTS, json!({ "u": checkout }))
        .await;
    settle().await;

    let started = Instant::now();
    a.ok(&team, MOVE, json!({ "i": story, "s": "In Progress" }))
        .await;
    pm.next_until("items", WAIT, |p| {
        p["data"]["workItemEvents"]["workItem"]["key"] == key.as_str()
    })
    .await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "replica B saw A's move after {took:?}"
    );
    sib.expect_quiet(SHORT).await;

    // Cut every LISTEN connection of this database; B reconnects by itself.
    let admin = sea_orm::Database::connect(&a.db_url).await.unwrap();
    use sea_orm::ConnectionTrait;
    admin
        .execute_unprepared(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND query ILIKE 'LISTEN%'",
        )
        .await
        .unwrap();
    let _ = admin.close().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut state = ["In Review", "In Progress"].into_iter().cycle();
    loop {
        a.ok(
            &team,
            MOVE,
            json!({ "i": story, "s": state.next().unwrap() }),
        )
        .await;
        match pm.next(Duration::from_secs(1)).await {
            Got::Msg(m) if m["type"] == "next" => break,
            Got::Nothing if Instant::now() < deadline => continue,
            other => panic!("no event after the listener was cut: {other:?}"),
        }
    }
    drop(b);
    pm.send_raw(Message::Close(None)).await;
}

/// A socket closes when its token expires.
async fn token_expiry_closes_the_socket(app: TestApp) {
    let team = app.login(TEAM).await;
    let atlas = unit_id(&app, &team, "team-atlas").await;
    let mut ws = Ws::connect(&app, &team).await;
    ws.subscribe("items", ITEM_EVENTS, json!({ "u": atlas }))
        .await;
    let started = Instant::now();
    let reason = ws.expect_close(4403, Duration::from_secs(6)).await;
    assert!(reason.contains("expired"), "{reason}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

both_with!(
    token_expiry_closes_the_socket,
    gemba::config::Settings {
        token_ttl: std::time::Duration::from_secs(2),
        ..Default::default()
    }
);

/// Ingested events reach subscribers through the same bus as mutations.
async fn ingested_changes_reach_subscribers(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let program = app.login(PROGRAM).await;
    let sibling = app.login(SIBLING).await;
    let checkout = unit_id(&app, &program, "payments-checkout").await;
    let mut pm = Ws::connect(&app, &program).await;
    pm.subscribe("items", ITEM_EVENTS, json!({ "u": checkout }))
        .await;
    let mut sib = Ws::connect(&app, &sibling).await;
    sib.subscribe("items", ITEM_EVENTS, json!({ "u": checkout }))
        .await;
    settle().await;
    let events = json!([
        {"id": "live-1", "type": "work_item.upserted", "source": "jira",
         "data": {"external_id": "LIVE-1", "key": "LIVE-1", "unit": "team-atlas", "type": "STORY",
                  "title": "Arrives by ingest", "state": "Backlog", "created_at": "2026-11-30T09:00:00Z"}},
        {"id": "live-2", "type": "work_item.transitioned", "source": "jira",
         "data": {"external_id": "LIVE-1", "to_state": "In Progress", "at": "2026-11-30T10:00:00Z"}}
    ]);
    let out = app
        .ok(
            &admin,
            "mutation($e: [JSON!]!) { ingestEvents(events: $e) { applied rejected } }",
            json!({ "e": events }),
        )
        .await;
    assert_eq!(out["ingestEvents"]["applied"], 2, "{out}");
    let created = pm
        .next_until("items", WAIT, |p| {
            p["data"]["workItemEvents"]["workItem"]["key"] == "LIVE-1"
                && p["data"]["workItemEvents"]["kind"] == "CREATED"
        })
        .await;
    assert_eq!(
        created["data"]["workItemEvents"]["workItem"]["unit"]["key"],
        "team-atlas"
    );
    let moved = pm
        .next_until("items", WAIT, |p| {
            p["data"]["workItemEvents"]["workItem"]["key"] == "LIVE-1"
                && p["data"]["workItemEvents"]["kind"] == "MOVED"
        })
        .await;
    assert_eq!(
        moved["data"]["workItemEvents"]["workItem"]["state"],
        "In Progress"
    );
    sib.expect_quiet(SHORT).await;
}
both!(ingested_changes_reach_subscribers);
