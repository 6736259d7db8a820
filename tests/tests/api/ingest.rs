//! The common data model's door: API keys, `POST /ingest` (NDJSON and JSON),
//! the `ingestEvents` mutation, idempotency, out-of-order history and scope.

use serde_json::{Value, json};

use crate::both;
use crate::harness::{ADMIN, PROGRAM, TEAM, TestApp, code};

const CREATE_KEY: &str = "mutation($n: String!, $u: ID) { createApiKey(input: {name: $n, unit: $u}) { secret apiKey { id prefix unit { key } } } }";

pub(crate) async fn create_key(app: &TestApp, admin: &str, unit: Option<&str>) -> (String, Value) {
    let unit_id = match unit {
        Some(k) => app
            .ok(
                admin,
                "query($k: String!) { unit(key: $k) { id } }",
                json!({ "k": k }),
            )
            .await["unit"]["id"]
            .clone(),
        None => Value::Null,
    };
    let data = app
        .ok(admin, CREATE_KEY, json!({ "n": "jira", "u": unit_id }))
        .await;
    let secret = data["createApiKey"]["secret"].as_str().unwrap().to_owned();
    (secret, data["createApiKey"]["apiKey"]["id"].clone())
}

pub(crate) async fn post_ndjson(app: &TestApp, token: &str, body: &str) -> (u16, Value) {
    let res = app
        .client
        .post(app.url("/ingest"))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn ndjson(events: &[Value]) -> String {
    events.iter().map(|e| format!("{e}\n")).collect()
}

fn backfill() -> Vec<Value> {
    vec![
        json!({"id": "u-1", "type": "unit.upserted", "source": "jira",
               "data": {"key": "team-zephyr", "kind": "TEAM", "name": "Zephyr", "parent": "payments-checkout"}}),
        json!({"id": "f-1", "type": "work_item.upserted", "source": "jira",
               "data": {"external_id": "PAY-3", "key": "PAY-3", "unit": "payments-checkout", "type": "FEATURE",
                        "title": "Card vault", "state": "Backlog", "created_at": "2026-01-02T09:00:00Z"}}),
        json!({"id": "s-1", "type": "work_item.upserted", "source": "jira",
               "data": {"external_id": "PAY-12", "key": "PAY-12", "unit": "team-zephyr", "type": "STORY",
                        "title": "Card tokenisation", "parent": "PAY-3", "state": "Backlog",
                        "created_at": "2026-01-05T10:00:00Z", "url": "https://jira.example/PAY-12"}}),
        // Out of order: Done arrives before In Progress.
        json!({"id": "t-2", "type": "work_item.transitioned", "source": "jira",
               "data": {"external_id": "PAY-12", "to_state": "Done", "at": "2026-01-09T12:00:00Z"}}),
        json!({"id": "t-1", "type": "work_item.transitioned", "source": "jira",
               "data": {"external_id": "PAY-12", "to_state": "In Progress", "at": "2026-01-06T09:00:00Z"}}),
        json!({"id": "c-1", "type": "change.upserted", "source": "jira",
               "data": {"external_id": "pr-501", "unit": "team-zephyr", "repository": "acme/cards",
                        "merged_at": "2026-01-08T15:00:00Z", "opened_at": "2026-01-07T10:00:00Z",
                        "first_commit_at": "2026-01-06T11:00:00Z", "work_items": ["PAY-12"]}}),
        json!({"id": "d-1", "type": "deployment.recorded", "source": "jira",
               "data": {"external_id": "77", "unit": "team-zephyr", "environment": "PRODUCTION",
                        "status": "SUCCESS", "finished_at": "2026-01-09T12:00:00Z", "changes": ["pr-501"]}}),
        json!({"id": "r-1", "type": "release.recorded", "source": "jira",
               "data": {"external_id": "v1", "unit": "team-zephyr", "name": "1.0", "released_at": "2026-01-10T00:00:00Z",
                        "work_items": ["PAY-12"]}}),
        json!({"id": "i-1", "type": "incident.opened", "source": "jira",
               "data": {"external_id": "inc-1", "unit": "team-zephyr", "opened_at": "2026-01-09T13:00:00Z",
                        "severity": "SEV2", "deployment": "77"}}),
        json!({"id": "i-2", "type": "incident.resolved", "source": "jira",
               "data": {"external_id": "inc-1", "resolved_at": "2026-01-09T15:00:00Z"}}),
    ]
}

async fn ndjson_backfill_is_applied_once(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let (key, _) = create_key(&app, &admin, None).await;
    assert!(key.starts_with("gk_"));
    let mut body = ndjson(&backfill());
    // Bad lines: malformed JSON, unknown unit, bad timestamp, transition
    // before creation, unknown state, unknown type. The rest still applies.
    body.push_str("{ not json\n");
    for bad in [
        json!({"id": "b-1", "type": "work_item.upserted", "source": "jira", "data": {"external_id": "X-1", "key": "X-1", "unit": "nowhere", "type": "STORY", "title": "t", "state": "Backlog", "created_at": "2026-01-01T00:00:00Z"}}),
        json!({"id": "b-2", "type": "work_item.transitioned", "source": "jira", "data": {"external_id": "PAY-12", "to_state": "Done", "at": "yesterday"}}),
        json!({"id": "b-3", "type": "work_item.transitioned", "source": "jira", "data": {"external_id": "PAY-12", "to_state": "Done", "at": "2025-01-01T00:00:00Z"}}),
        json!({"id": "b-4", "type": "work_item.transitioned", "source": "jira", "data": {"external_id": "PAY-12", "to_state": "Shipped", "at": "2026-01-10T00:00:00Z"}}),
        json!({"id": "b-5", "type": "sprint.started", "source": "jira", "data": {}}),
    ] {
        body.push_str(&format!("{bad}\n"));
    }
    let (status, report) = post_ndjson(&app, &key, &body).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["applied"], 10, "{report}");
    assert_eq!(report["rejected"], 6, "{report}");
    let rejected = report["results"].as_array().unwrap();
    assert_eq!(rejected[0]["line"], 11);
    assert!(rejected[0]["reason"].as_str().unwrap().contains("JSON"));
    let reasons: Vec<&str> = rejected
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert!(reasons[1].contains("unknown unit"), "{reasons:?}");
    assert!(reasons[2].contains("RFC 3339"), "{reasons:?}");
    assert!(
        reasons[3].contains("before the item's creation"),
        "{reasons:?}"
    );
    assert!(reasons[4].contains("unknown state"), "{reasons:?}");
    assert!(reasons[5].contains("unknown event type"), "{reasons:?}");

    // The item, its history ordered by `at`, current state the latest.
    let q = "{ workItem(key: \"PAY-12\") { state stateCategory unit { key } parent { key } externalRefs { source externalId url } transitions { fromState toState at source } } }";
    let data = app.ok(&admin, q, json!({})).await;
    let item = &data["workItem"];
    assert_eq!(item["state"], "Done");
    assert_eq!(item["unit"]["key"], "team-zephyr");
    assert_eq!(item["parent"]["key"], "PAY-3");
    assert_eq!(
        item["externalRefs"][0]["url"],
        "https://jira.example/PAY-12"
    );
    let states: Vec<(Value, Value)> = item["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["fromState"].clone(), t["toState"].clone()))
        .collect();
    assert_eq!(
        states,
        vec![
            (Value::Null, json!("Backlog")),
            (json!("Backlog"), json!("In Progress")),
            (json!("In Progress"), json!("Done")),
        ]
    );

    // Role-scoped: the program manager sees it, a sibling team member does not.
    let program = app.login(PROGRAM).await;
    assert!(app.ok(&program, q, json!({})).await["workItem"].is_object());
    let team = app.login(TEAM).await;
    assert_eq!(app.ok(&team, q, json!({})).await["workItem"], Value::Null);

    // Delivery records, through GraphQL, scoped like items.
    let dq = "{ unit(key: \"team-zephyr\") {
        changes { totalCount nodes { repository mergedAt workItems { key } } }
        deployments { totalCount nodes { environment status changes { externalId } } }
        releases { totalCount nodes { name workItems { key } } }
        incidents { totalCount nodes { severity resolvedAt deployment { externalId } } }
      }
      workItem(key: \"PAY-12\") { changes { externalId } releases { name } } }";
    let d = app.ok(&admin, dq, json!({})).await;
    let u = &d["unit"];
    assert_eq!(
        u["changes"]["nodes"][0]["workItems"],
        json!([{ "key": "PAY-12" }]),
        "{d}"
    );
    assert_eq!(
        u["deployments"]["nodes"][0],
        json!({ "environment": "PRODUCTION", "status": "SUCCESS", "changes": [{ "externalId": "pr-501" }] })
    );
    assert_eq!(
        u["releases"]["nodes"][0]["workItems"],
        json!([{ "key": "PAY-12" }])
    );
    assert_eq!(u["incidents"]["nodes"][0]["deployment"]["externalId"], "77");
    assert_eq!(
        u["incidents"]["nodes"][0]["resolvedAt"],
        "2026-01-09T15:00:00+00:00"
    );
    assert_eq!(
        d["workItem"]["changes"],
        json!([{ "externalId": "pr-501" }])
    );
    assert_eq!(d["workItem"]["releases"], json!([{ "name": "1.0" }]));
    assert_eq!(
        app.ok(&program, dq, json!({})).await,
        d,
        "the program manager sees the same"
    );
    let seen = app.ok(&team, dq, json!({})).await;
    for conn in ["changes", "deployments", "releases", "incidents"] {
        assert_eq!(
            seen["unit"][conn]["totalCount"], 0,
            "a sibling team sees no {conn}: {seen}"
        );
    }
    let exec = app.login(crate::harness::EXEC).await;
    let seen = app.ok(&exec, dq, json!({})).await;
    assert_eq!(
        seen["unit"]["deployments"]["totalCount"], 0,
        "executives see team records only in aggregates"
    );

    // Replaying the file changes nothing.
    let (_, again) = post_ndjson(&app, &key, &body).await;
    assert_eq!(
        (
            again["applied"].clone(),
            again["duplicates"].clone(),
            again["rejected"].clone()
        ),
        (json!(0), json!(10), json!(6)),
        "{again}"
    );
    let data2 = app.ok(&admin, q, json!({})).await;
    assert_eq!(data, data2);
    assert_eq!(
        app.ok(&admin, dq, json!({})).await,
        d,
        "no delivery record was duplicated"
    );
}
both!(ndjson_backfill_is_applied_once);

async fn keys_are_scoped_and_revocable(app: TestApp) {
    let admin = app.login(ADMIN).await;
    // Only admins manage keys; the secret is never listed.
    let team = app.login(TEAM).await;
    let body = app
        .gql(Some(&team), CREATE_KEY, json!({ "n": "x", "u": null }))
        .await;
    assert_eq!(code(&body), "FORBIDDEN");
    let (key, key_id) = create_key(&app, &admin, Some("team-atlas")).await;
    let listed = app
        .ok(
            &admin,
            "{ apiKeys { id name prefix unit { key } revokedAt } }",
            json!({}),
        )
        .await;
    assert_eq!(listed["apiKeys"][0]["unit"]["key"], "team-atlas");
    assert!(key.starts_with(listed["apiKeys"][0]["prefix"].as_str().unwrap()));
    assert!(
        !listed.to_string().contains(&key),
        "the secret is shown once only"
    );

    let inside = json!({"id": "k-1", "type": "work_item.upserted", "source": "gh", "data": {"external_id": "1", "key": "GH-1", "unit": "team-atlas", "type": "STORY", "title": "inside", "state": "Backlog", "created_at": "2026-01-01T00:00:00Z"}});
    let outside = json!({"id": "k-2", "type": "work_item.upserted", "source": "gh", "data": {"external_id": "2", "key": "GH-2", "unit": "team-borealis", "type": "STORY", "title": "outside", "state": "Backlog", "created_at": "2026-01-01T00:00:00Z"}});
    let (_, report) = post_ndjson(&app, &key, &ndjson(&[inside, outside])).await;
    assert_eq!(report["applied"], 1, "{report}");
    assert_eq!(report["rejected"], 1);
    assert!(
        report["results"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("may not write")
    );
    let gone = app
        .ok(&admin, "{ workItem(key: \"GH-2\") { key } }", json!({}))
        .await;
    assert_eq!(
        gone["workItem"],
        Value::Null,
        "a rejected event writes nothing"
    );

    // The key works for ingestEvents, and for nothing else in GraphQL.
    let mutation = "mutation($e: [JSON!]!) { ingestEvents(events: $e) { applied duplicates rejected results { line id status reason } } }";
    let ev = json!({"id": "k-3", "type": "work_item.transitioned", "source": "gh", "data": {"external_id": "1", "to_state": "In Progress", "at": "2026-01-02T00:00:00Z"}});
    let data = app
        .ok(&key, mutation, json!({ "e": [ev.clone(), ev] }))
        .await;
    assert_eq!(data["ingestEvents"]["applied"], 1);
    assert_eq!(data["ingestEvents"]["duplicates"], 1);
    assert_eq!(data["ingestEvents"]["results"][1]["status"], "DUPLICATE");
    let body = app
        .gql(Some(&key), "{ me { user { id } } }", json!({}))
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED");

    // Non-admin users may not ingest; anonymous callers are refused.
    let (status, _) = post_ndjson(&app, &team, "").await;
    assert_eq!(status, 403);
    let res = app
        .client
        .post(app.url("/ingest"))
        .header("content-type", "application/x-ndjson")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let body = app.gql(Some(&team), mutation, json!({ "e": [] })).await;
    assert_eq!(code(&body), "FORBIDDEN");

    // Revoked: refused at once.
    app.ok(
        &admin,
        "mutation($k: ID!) { revokeApiKey(input: {apiKey: $k}) { apiKey { revokedAt } } }",
        json!({ "k": key_id }),
    )
    .await;
    let (status, _) = post_ndjson(&app, &key, "").await;
    assert_eq!(status, 401);
}
both!(keys_are_scoped_and_revocable);

async fn json_array_and_admin_token(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let events = backfill();
    let res = app
        .client
        .post(app.url("/ingest?dry_run=true"))
        .bearer_auth(&admin)
        .json(&events)
        .send()
        .await
        .unwrap();
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["applied"], 10, "a dry run validates: {report}");
    let none = app
        .ok(&admin, "{ unit(key: \"team-zephyr\") { key } }", json!({}))
        .await;
    assert_eq!(none["unit"], Value::Null, "a dry run writes nothing");
    let res = app
        .client
        .post(app.url("/ingest"))
        .bearer_auth(&admin)
        .json(&events)
        .send()
        .await
        .unwrap();
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["applied"], 10, "{report}");
    let res = app
        .client
        .post(app.url("/ingest"))
        .bearer_auth(&admin)
        .header("content-type", "text/csv")
        .body("a,b")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 415);
}
both!(json_array_and_admin_token);

/// An ingest body over the configured limit gets 413.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_ingest_gets_413() {
    let settings = gemba::config::Settings {
        max_ingest_bytes: 8 * 1024,
        ..gemba::config::Settings::default()
    };
    let app = TestApp::spawn_with(crate::harness::Backend::Sqlite, settings)
        .await
        .unwrap();
    let admin = app.login(ADMIN).await;
    let line = json!({"id": "x", "type": "unit.upserted", "source": "s", "data": {"key": "team-x", "kind": "TEAM", "name": "X", "parent": "payments-checkout"}}).to_string();
    let body: String = std::iter::repeat_n(format!("{line}\n"), 200).collect();
    let (status, _) = post_ndjson(&app, &admin, &body).await;
    assert_eq!(status, 413);
    let none = app
        .ok(&admin, "{ unit(key: \"team-x\") { key } }", json!({}))
        .await;
    assert_eq!(none["unit"], Value::Null, "nothing was applied");
}

/// Applied changes, from ingestion and from mutations, reach the event bus
/// after they commit; rejected and duplicate events publish nothing.
async fn changes_are_published(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let mut rx = app.bus.subscribe();
    let events = &backfill()[..3];
    let (_, report) = post_ndjson(&app, &admin, &ndjson(events)).await;
    assert_eq!(report["applied"], 3);
    post_ndjson(&app, &admin, &ndjson(events)).await;
    let item = app
        .ok(&admin, "{ workItem(key: \"PAY-12\") { id } }", json!({}))
        .await;
    let mv = "mutation($id: ID!, $s: String!) { moveWorkItem(input: {workItem: $id, toState: $s}) { workItem { state } } }";
    app.ok(
        &admin,
        mv,
        json!({ "id": item["workItem"]["id"], "s": "In Progress" }),
    )
    .await;
    app.ok(
        &admin,
        mv,
        json!({ "id": item["workItem"]["id"], "s": "In Progress" }),
    )
    .await;
    let mut kinds = Vec::new();
    while let Ok(e) = rx.try_recv() {
        kinds.push(serde_json::to_value(e.kind).unwrap());
    }
    assert_eq!(
        kinds,
        vec![
            json!("UNIT_UPSERTED"),
            json!("WORK_ITEM_CREATED"),
            json!("WORK_ITEM_CREATED"),
            json!("WORK_ITEM_MOVED")
        ],
        "duplicates and a no-op move publish nothing"
    );
}
both!(changes_are_published);

/// A key limited to one team can neither take over nor link to records of
/// other units: they read as unknown.
async fn limited_keys_stay_in_their_subtree(app: TestApp) {
    let admin = app.login(ADMIN).await;
    // Records of team-borealis, written by an unlimited caller.
    let theirs = [
        json!({"id": "o-1", "type": "work_item.upserted", "source": "gh", "data": {"external_id": "9", "key": "GH-9", "unit": "team-borealis", "type": "STORY", "title": "theirs", "state": "Backlog", "created_at": "2026-01-01T00:00:00Z"}}),
        json!({"id": "o-2", "type": "change.upserted", "source": "gh", "data": {"external_id": "pr-9", "unit": "team-borealis", "repository": "acme/b", "merged_at": "2026-01-02T00:00:00Z"}}),
        json!({"id": "o-3", "type": "deployment.recorded", "source": "gh", "data": {"external_id": "dep-9", "unit": "team-borealis", "environment": "PRODUCTION", "status": "SUCCESS", "finished_at": "2026-01-03T00:00:00Z", "changes": ["pr-9"]}}),
    ];
    let (_, r) = post_ndjson(&app, &admin, &ndjson(&theirs)).await;
    assert_eq!(r["applied"], 3, "{r}");
    let (key, _) = create_key(&app, &admin, Some("team-atlas")).await;
    let attempts = [
        // Take over their change by its external id.
        json!({"id": "x-1", "type": "change.upserted", "source": "gh", "data": {"external_id": "pr-9", "unit": "team-atlas", "repository": "acme/a", "merged_at": "2026-01-02T00:00:00Z"}}),
        // Link to their item, their change, their deployment.
        json!({"id": "x-2", "type": "change.upserted", "source": "gh", "data": {"external_id": "pr-1", "unit": "team-atlas", "repository": "acme/a", "merged_at": "2026-01-02T00:00:00Z", "work_items": ["GH-9"]}}),
        json!({"id": "x-3", "type": "deployment.recorded", "source": "gh", "data": {"external_id": "dep-1", "unit": "team-atlas", "environment": "PRODUCTION", "status": "SUCCESS", "finished_at": "2026-01-03T00:00:00Z", "changes": ["pr-9"]}}),
        json!({"id": "x-4", "type": "incident.opened", "source": "gh", "data": {"external_id": "inc-1", "unit": "team-atlas", "opened_at": "2026-01-04T00:00:00Z", "severity": "SEV1", "deployment": "dep-9"}}),
        // Move their item, resolve nothing of theirs.
        json!({"id": "x-5", "type": "work_item.transitioned", "source": "gh", "data": {"external_id": "9", "to_state": "Done", "at": "2026-01-05T00:00:00Z"}}),
    ];
    let (_, r) = post_ndjson(&app, &key, &ndjson(&attempts)).await;
    assert_eq!(r["applied"], 0, "{r}");
    assert_eq!(r["rejected"], 5, "{r}");
    let reasons: Vec<&str> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["reason"].as_str().unwrap())
        .collect();
    assert!(reasons[1].contains("unknown work item"), "{reasons:?}");
    assert!(reasons[2].contains("unknown change"), "{reasons:?}");
    assert!(reasons[3].contains("unknown deployment"), "{reasons:?}");
    let d = app
        .ok(&admin, "{ unit(key: \"team-borealis\") { changes(last: 10) { nodes { source repository } } } workItem(key: \"GH-9\") { state } }", json!({}))
        .await;
    assert_eq!(
        crate::harness::not_seeded(&d["unit"]["changes"]["nodes"]),
        json!([{ "repository": "acme/b" }]),
        "their change is untouched"
    );
    assert_eq!(d["workItem"]["state"], "Backlog");
    // An item of the program above the team may be referenced.
    let (feature, _, _) =
        crate::access::item_of(&app, &admin, "payments-checkout", "FEATURE").await;
    let ok = json!({"id": "x-6", "type": "change.upserted", "source": "gh", "data": {"external_id": "pr-2", "unit": "team-atlas", "repository": "acme/a", "merged_at": "2026-01-02T00:00:00Z", "work_items": [feature]}});
    let (_, r) = post_ndjson(&app, &key, &ndjson(&[ok])).await;
    assert_eq!(r["applied"], 1, "{r}");
}
both!(limited_keys_stay_in_their_subtree);

/// The same event sent twice at once is applied once.
async fn concurrent_duplicates_apply_once(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let (_, r) = post_ndjson(&app, &admin, &ndjson(&backfill()[..3])).await;
    assert_eq!(r["applied"], 3);
    let ev = ndjson(&[
        json!({"id": "same", "type": "work_item.transitioned", "source": "jira", "data": {"external_id": "PAY-12", "to_state": "In Progress", "at": "2026-01-06T09:00:00Z"}}),
    ]);
    let (a, b) = tokio::join!(
        post_ndjson(&app, &admin, &ev),
        post_ndjson(&app, &admin, &ev)
    );
    let applied = a.1["applied"].as_i64().unwrap() + b.1["applied"].as_i64().unwrap();
    let dups = a.1["duplicates"].as_i64().unwrap() + b.1["duplicates"].as_i64().unwrap();
    assert_eq!((applied, dups), (1, 1), "{a:?} {b:?}");
    let t = app
        .ok(
            &admin,
            "{ workItem(key: \"PAY-12\") { transitions { toState } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        t["workItem"]["transitions"].as_array().unwrap().len(),
        2,
        "{t}"
    );
}
both!(concurrent_duplicates_apply_once);

/// One body that mixes what the batch writes set-based (new items, in-order
/// transitions, new changes and deployments) with what takes the per-event
/// path (a unit, an out-of-order transition, an id sent again after its
/// rejection), all in one transaction.
async fn a_batch_mixes_set_based_and_per_event_paths(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let ev = |id: &str, kind: &str, data: Value| json!({"id": id, "type": kind, "source": "jira", "data": data});
    let story = |ext: &str| {
        json!({"external_id": ext, "key": ext, "unit": "team-zephyr", "type": "STORY",
               "title": format!("Story {ext}"), "state": "Backlog", "created_at": "2026-02-01T09:00:00Z"})
    };
    let moved =
        |ext: &str, state: &str, at: &str| json!({"external_id": ext, "to_state": state, "at": at});
    let mut events = vec![
        backfill()[0].clone(),
        ev("s-40", "work_item.upserted", story("PAY-40")),
        ev(
            "m-1",
            "work_item.transitioned",
            moved("PAY-40", "In Progress", "2026-02-02T09:00:00Z"),
        ),
        // Rejected, then the same id sent again, corrected: it applies.
        ev(
            "m-2",
            "work_item.transitioned",
            moved("PAY-40", "Shipped", "2026-02-04T09:00:00Z"),
        ),
        ev(
            "m-2",
            "work_item.transitioned",
            moved("PAY-40", "Done", "2026-02-04T09:00:00Z"),
        ),
        // Applied ids sent again in the same body: duplicates.
        ev(
            "m-2",
            "work_item.transitioned",
            moved("PAY-40", "Done", "2026-02-04T09:00:00Z"),
        ),
        ev(
            "m-1",
            "work_item.transitioned",
            moved("PAY-40", "In Progress", "2026-02-02T09:00:00Z"),
        ),
        // Out of order: between In Progress and Done.
        ev(
            "m-3",
            "work_item.transitioned",
            moved("PAY-40", "In Review", "2026-02-03T09:00:00Z"),
        ),
    ];
    for n in 50..70 {
        let ext = format!("PAY-{n}");
        events.push(ev(&format!("s-{n}"), "work_item.upserted", story(&ext)));
        events.push(ev(
            &format!("m-{n}"),
            "work_item.transitioned",
            moved(&ext, "In Progress", "2026-02-05T09:00:00Z"),
        ));
    }
    events.push(ev(
        "c-9",
        "change.upserted",
        json!({"external_id": "pr-9", "unit": "team-zephyr", "repository": "acme/cards",
               "merged_at": "2026-02-05T12:00:00Z", "work_items": ["PAY-40", "PAY-50", "PAY-50"]}),
    ));
    events.push(ev(
        "d-9",
        "deployment.recorded",
        json!({"external_id": "dep-9", "unit": "team-zephyr", "environment": "PRODUCTION",
               "status": "SUCCESS", "finished_at": "2026-02-06T12:00:00Z", "changes": ["pr-9"]}),
    ));
    let body = ndjson(&events);
    let (status, report) = post_ndjson(&app, &admin, &body).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (
            &report["applied"],
            &report["duplicates"],
            &report["rejected"]
        ),
        (&json!(47), &json!(2), &json!(1)),
        "{report}"
    );
    let lines: Vec<(i64, &str)> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["line"].as_i64().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(lines, vec![(4, "rejected")], "{report}");

    let q = "{ workItem(key: \"PAY-40\") { state stateCategory transitions { fromState toState } changes { externalId workItems { key } } }
               unit(key: \"team-zephyr\") { deployments { nodes { externalId changes { externalId } } } } }";
    let data = app.ok(&admin, q, json!({})).await;
    let item = &data["workItem"];
    assert_eq!(item["state"], "Done", "{data}");
    let chain: Vec<(Value, Value)> = item["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["fromState"].clone(), t["toState"].clone()))
        .collect();
    assert_eq!(
        chain,
        vec![
            (Value::Null, json!("Backlog")),
            (json!("Backlog"), json!("In Progress")),
            (json!("In Progress"), json!("In Review")),
            (json!("In Review"), json!("Done")),
        ]
    );
    assert_eq!(item["changes"][0]["externalId"], "pr-9", "{data}");
    assert_eq!(
        item["changes"][0]["workItems"].as_array().unwrap().len(),
        2,
        "{data}"
    );
    let deployments = &data["unit"]["deployments"]["nodes"];
    assert_eq!(deployments[0]["externalId"], "dep-9", "{data}");
    assert_eq!(deployments[0]["changes"][0]["externalId"], "pr-9", "{data}");
    let q = "{ workItem(key: \"PAY-69\") { state transitions { fromState toState } } }";
    let data = app.ok(&admin, q, json!({})).await;
    assert_eq!(data["workItem"]["state"], "In Progress", "{data}");
    assert_eq!(
        data["workItem"]["transitions"][1]["fromState"], "Backlog",
        "{data}"
    );

    // Sent again, the whole body is acknowledged and changes nothing.
    let (_, again) = post_ndjson(&app, &admin, &body).await;
    assert_eq!(
        (&again["applied"], &again["duplicates"], &again["rejected"]),
        (&json!(0), &json!(50), &json!(0)),
        "{again}"
    );

    // Ids applied before beside new ones: the batch planned as if all were
    // claimed is planned again, and only the new ones apply, once.
    // `s-51` comes back with another item, which must not be created.
    let mixed = vec![
        ev("s-80", "work_item.upserted", story("PAY-80")),
        ev(
            "m-80",
            "work_item.transitioned",
            moved("PAY-80", "In Progress", "2026-02-06T09:00:00Z"),
        ),
        ev("s-51", "work_item.upserted", story("PAY-81")),
        ev(
            "m-51-done",
            "work_item.transitioned",
            moved("PAY-51", "Done", "2026-02-07T09:00:00Z"),
        ),
        ev(
            "m-50",
            "work_item.transitioned",
            moved("PAY-50", "In Progress", "2026-02-05T09:00:00Z"),
        ),
    ];
    let (status, report) = post_ndjson(&app, &admin, &ndjson(&mixed)).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (
            &report["applied"],
            &report["duplicates"],
            &report["rejected"]
        ),
        (&json!(3), &json!(2), &json!(0)),
        "{report}"
    );
    let q = "{ a: workItem(key: \"PAY-50\") { state transitions { toState } }
               b: workItem(key: \"PAY-51\") { state transitions { toState } }
               c: workItem(key: \"PAY-80\") { state transitions { toState } }
               d: workItem(key: \"PAY-81\") { key } }";
    let data = app.ok(&admin, q, json!({})).await;
    let states = |k: &str| {
        let item = &data[k];
        let to: Vec<&str> = item["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["toState"].as_str().unwrap())
            .collect();
        (item["state"].as_str().unwrap().to_owned(), to.join(" > "))
    };
    assert_eq!(
        states("a"),
        ("In Progress".into(), "Backlog > In Progress".into())
    );
    assert_eq!(
        states("b"),
        ("Done".into(), "Backlog > In Progress > Done".into())
    );
    assert_eq!(
        states("c"),
        ("In Progress".into(), "Backlog > In Progress".into())
    );
    assert_eq!(data["d"], Value::Null, "{data}");

    // An id rejected by an earlier request, sent again corrected beside
    // new ids and nothing applied before: every id is claimed, the
    // rejected one included, and each applies once.
    let (_, first) = post_ndjson(
        &app,
        &admin,
        &ndjson(&[ev(
            "m-90",
            "work_item.transitioned",
            moved("PAY-90", "In Progress", "2026-02-08T09:00:00Z"),
        )]),
    )
    .await;
    assert_eq!(first["rejected"], 1, "no such item yet: {first}");
    let retry = vec![
        ev("s-90", "work_item.upserted", story("PAY-90")),
        ev(
            "m-90",
            "work_item.transitioned",
            moved("PAY-90", "In Progress", "2026-02-08T09:00:00Z"),
        ),
    ];
    let (_, report) = post_ndjson(&app, &admin, &ndjson(&retry)).await;
    assert_eq!(
        (
            &report["applied"],
            &report["duplicates"],
            &report["rejected"]
        ),
        (&json!(2), &json!(0), &json!(0)),
        "{report}"
    );
    let (_, again) = post_ndjson(&app, &admin, &ndjson(&retry)).await;
    assert_eq!(again["duplicates"], 2, "{again}");
    let q = "{ workItem(key: \"PAY-90\") { state transitions { toState } } }";
    let data = app.ok(&admin, q, json!({})).await;
    assert_eq!(data["workItem"]["state"], "In Progress", "{data}");
    assert_eq!(
        data["workItem"]["transitions"].as_array().map(Vec::len),
        Some(2),
        "{data}"
    );
}
both!(a_batch_mixes_set_based_and_per_event_paths);

/// Every flow fact row (`flow_completion`, `flow_wip`, `flow_state`) as
/// text, the item named by key, in a stable order.
async fn flow_facts(url: &str) -> Vec<Vec<Option<String>>> {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let db = Database::connect(url).await.unwrap();
    let owner = ["f.unit_id", "f.portfolio_id", "f.program_id", "f.team_id"]
        .iter()
        .map(|c| format!("CAST({c} AS TEXT)"))
        .collect::<Vec<_>>()
        .join(", ");
    let tables = [
        (
            "flow_completion",
            "f.created_ms, f.start_ms, f.completed_ms, f.left_ms, f.active_ms",
        ),
        ("flow_wip", "f.start_ms, f.from_ms, f.to_ms"),
        ("flow_state", "f.state, f.category, f.from_ms, f.to_ms"),
    ];
    let mut rows = Vec::new();
    for (table, columns) in tables {
        let rest = columns
            .split(", ")
            .map(|c| format!("CAST({c} AS TEXT)"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT '{table}', w.key, {owner}, f.level, f.item_type, f.flow_type, {rest} \
             FROM {table} f JOIN work_item w ON w.id = f.work_item_id"
        );
        let n = 8 + columns.split(", ").count();
        for row in db
            .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .unwrap()
        {
            rows.push(
                (0..n)
                    .map(|i| row.try_get_by_index::<Option<String>>(i).unwrap())
                    .collect(),
            );
        }
    }
    let _ = db.close().await;
    rows.sort();
    rows
}

/// Rebuilds every item's flow facts from the stored histories.
async fn rebuild_flow_facts(url: &str) {
    use sea_orm::TransactionTrait;
    let db = sea_orm::Database::connect(url).await.unwrap();
    let txn = db.begin().await.unwrap();
    gemba::service::facts::flow::rebuild_all(&txn)
        .await
        .unwrap();
    txn.commit().await.unwrap();
    let _ = db.close().await;
}

/// The rows of `table` about `key`, without the table's name and key.
fn facts_of<'a>(
    rows: &'a [Vec<Option<String>>],
    table: &str,
    key: &str,
) -> Vec<&'a [Option<String>]> {
    rows.iter()
        .filter(|r| r[0].as_deref() == Some(table) && r[1].as_deref() == Some(key))
        .map(|r| &r[2..])
        .collect()
}

async fn facts_of_a_batch_equal_those_read_back(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let ev = |id: &str, kind: &str, data: Value| json!({"id": id, "type": kind, "source": "jira", "data": data});
    let item = |ext: &str, unit: &str, created: &str| {
        json!({"external_id": ext, "key": ext, "unit": unit, "type": "STORY",
               "title": format!("Story {ext}"), "state": "Backlog", "created_at": created})
    };
    let mut n = 0;
    let mut moved = |ext: &str, state: &str, at: &str| {
        n += 1;
        ev(
            &format!("m-{n}"),
            "work_item.transitioned",
            json!({"external_id": ext, "to_state": state, "at": at}),
        )
    };
    // An item that exists before the batch.
    let before = vec![
        ev(
            "s-old",
            "work_item.upserted",
            item("OLD-1", "team-atlas", "2026-03-01T09:00:00Z"),
        ),
        moved("OLD-1", "In Progress", "2026-03-02T09:00:00Z"),
    ];
    let (status, report) = post_ndjson(&app, &admin, &ndjson(&before)).await;
    assert_eq!((status, &report["applied"]), (200, &json!(2)), "{report}");

    let mut events = vec![
        backfill()[0].clone(),
        // Reopened after done, then done again.
        ev(
            "s-1",
            "work_item.upserted",
            item("NEW-1", "team-zephyr", "2026-03-01T09:00:00Z"),
        ),
        moved("NEW-1", "In Progress", "2026-03-01T09:00:00Z"),
        moved("NEW-1", "Blocked", "2026-03-02T10:30:00.123Z"),
        moved("NEW-1", "In Review", "2026-03-03T11:00:00Z"),
        moved("NEW-1", "Done", "2026-03-04T12:00:00Z"),
        moved("NEW-1", "In Progress", "2026-03-06T08:00:00Z"),
        moved("NEW-1", "Done", "2026-03-07T16:45:00.5Z"),
        // Canceled after work.
        ev(
            "s-2",
            "work_item.upserted",
            item("NEW-2", "team-zephyr", "2026-03-01T10:00:00Z"),
        ),
        moved("NEW-2", "In Progress", "2026-03-02T10:00:00Z"),
        moved("NEW-2", "Canceled", "2026-03-05T10:00:00Z"),
        // Done and moved on at the same instant, then done again in the
        // same state.
        ev(
            "s-3",
            "work_item.upserted",
            item("NEW-3", "team-atlas", "2026-03-01T11:00:00Z"),
        ),
        moved("NEW-3", "In Progress", "2026-03-01T12:00:00Z"),
        moved("NEW-3", "Done", "2026-03-03T12:00:00Z"),
        moved("NEW-3", "In Progress", "2026-03-03T12:00:00Z"),
        moved("NEW-3", "Done", "2026-03-04T12:00:00Z"),
        moved("NEW-3", "Done", "2026-03-05T12:00:00Z"),
        // A late transition: out of order, on the per-event path.
        ev(
            "s-4",
            "work_item.upserted",
            item("NEW-4", "team-zephyr", "2026-03-01T12:00:00Z"),
        ),
        moved("NEW-4", "Done", "2026-03-06T12:00:00Z"),
        moved("NEW-4", "In Progress", "2026-03-02T12:00:00Z"),
        moved("NEW-4", "In Progress", "2026-03-08T12:00:00Z"),
        // Updated after its creation (moved to another unit), on the
        // per-event path, then moved on.
        ev(
            "s-5",
            "work_item.upserted",
            item("NEW-5", "team-zephyr", "2026-03-01T13:00:00Z"),
        ),
        moved("NEW-5", "In Progress", "2026-03-02T13:00:00Z"),
        ev(
            "s-5b",
            "work_item.upserted",
            item("NEW-5", "team-atlas", "2026-03-01T13:00:00Z"),
        ),
        moved("NEW-5", "Done", "2026-03-04T13:00:00Z"),
        // Created without a transition.
        ev(
            "s-6",
            "work_item.upserted",
            item("NEW-6", "team-zephyr", "2026-03-01T14:00:00Z"),
        ),
        // A child of an item of this batch: its parent is written first.
        ev(
            "s-7",
            "work_item.upserted",
            json!({"external_id": "NEW-7", "key": "NEW-7", "unit": "team-zephyr", "type": "TASK",
                   "title": "Task NEW-7", "parent": "NEW-1", "state": "In Progress",
                   "created_at": "2026-03-02T09:00:00Z"}),
        ),
        moved("NEW-7", "Done", "2026-03-03T09:00:00Z"),
        moved("NEW-1", "In Progress", "2026-03-09T09:00:00Z"),
        // The item that existed before the batch moves on.
        moved("OLD-1", "Done", "2026-03-05T09:00:00Z"),
    ];
    // Sent again in the same batch: a duplicate.
    events.push(events[2].clone());
    let body = ndjson(&events);
    let (status, report) = post_ndjson(&app, &admin, &body).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (
            &report["applied"],
            &report["duplicates"],
            &report["rejected"]
        ),
        (&json!(events.len() - 1), &json!(1), &json!(0)),
        "{report}"
    );

    let written = flow_facts(&app.db_url).await;
    // The facts say what the histories say.
    let completions = |key| facts_of(&written, "flow_completion", key);
    assert_eq!(completions("NEW-1").len(), 2, "{written:?}");
    assert_eq!(completions("NEW-2").len(), 0, "{written:?}");
    assert_eq!(completions("NEW-3").len(), 2, "{written:?}");
    assert_eq!(completions("NEW-4").len(), 1, "{written:?}");
    assert_eq!(completions("NEW-5").len(), 1, "{written:?}");
    assert_eq!(completions("OLD-1").len(), 1, "{written:?}");
    assert_eq!(
        facts_of(&written, "flow_state", "NEW-1").len(),
        8,
        "{written:?}"
    );
    assert!(
        facts_of(&written, "flow_state", "NEW-6").len() == 1
            && facts_of(&written, "flow_wip", "NEW-6").is_empty(),
        "{written:?}"
    );
    // NEW-5 left team-zephyr for OLD-1's unit (and went back to Backlog):
    // its facts follow it.
    let old_unit = &facts_of(&written, "flow_state", "OLD-1")[0][0];
    let moved_facts = facts_of(&written, "flow_state", "NEW-5");
    assert_eq!(moved_facts.len(), 4, "{written:?}");
    assert!(moved_facts.iter().all(|r| &r[0] == old_unit), "{written:?}");

    // Rebuilt from the stored histories, the facts are the same, row for row.
    rebuild_flow_facts(&app.db_url).await;
    let rebuilt = flow_facts(&app.db_url).await;
    assert_eq!(written.len(), rebuilt.len());
    for (w, r) in written.iter().zip(&rebuilt) {
        assert_eq!(w, r, "written by the batch, then rebuilt");
    }
    assert_eq!(written, rebuilt);
}
both!(facts_of_a_batch_equal_those_read_back);

/// A transition names an existing work item on both databases (on
/// PostgreSQL checked once per statement and item, migration 16): a
/// statement naming a missing item is refused whole, as an update to one
/// is, and deleting an item deletes its transitions.
async fn transitions_name_existing_work_items(app: TestApp) {
    use sea_orm::{ConnectionTrait, Database, SqlErr, Statement};
    let team = app.login(TEAM).await;
    let unit = crate::writes::unit_id(&app, &team, "team-atlas").await;
    let created = app
        .ok(
            &team,
            "mutation($u: ID!) { createWorkItem(input: {unit: $u, type: STORY, title: \"Checked\"}) { workItem { key } } }",
            json!({ "u": unit }),
        )
        .await;
    let key = created["createWorkItem"]["workItem"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let db = Database::connect(&app.db_url).await.unwrap();
    let backend = db.get_database_backend();
    let one = |sql: String| {
        let db = &db;
        async move {
            db.query_one_raw(Statement::from_string(backend, sql))
                .await
                .unwrap()
                .unwrap()
                .try_get_by_index::<i64>(0)
                .unwrap()
        }
    };
    let item = one(format!("SELECT id FROM work_item WHERE key = '{key}'")).await;
    let count = format!("SELECT COUNT(*) FROM transition WHERE work_item_id = {item}");
    let before = one(count.clone()).await;
    assert!(before >= 1, "a new item has its first transition");
    let missing = one("SELECT MAX(id) + 1000 FROM work_item".to_owned()).await;
    let row = |id: i64| format!("({id}, 'To Do', 'Done', 'DONE', CURRENT_TIMESTAMP, 'test')");
    let insert = "INSERT INTO transition (work_item_id, from_state, to_state, to_category, at, source) VALUES ";
    let refused = |err: sea_orm::DbErr| {
        assert!(
            matches!(
                err.sql_err(),
                Some(SqlErr::ForeignKeyConstraintViolation(_))
            ),
            "{err}"
        );
    };
    refused(
        db.execute_unprepared(&format!("{insert}{}", row(missing)))
            .await
            .unwrap_err(),
    );
    refused(
        db.execute_unprepared(&format!("{insert}{}, {}", row(item), row(missing)))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        one(count.clone()).await,
        before,
        "nothing of the statement written"
    );
    refused(
        db.execute_unprepared(&format!(
            "UPDATE transition SET work_item_id = {missing} WHERE work_item_id = {item}"
        ))
        .await
        .unwrap_err(),
    );
    db.execute_unprepared(&format!("{insert}{}, {}", row(item), row(item)))
        .await
        .unwrap();
    assert_eq!(one(count.clone()).await, before + 2);
    db.execute_unprepared(&format!("DELETE FROM work_item WHERE id = {item}"))
        .await
        .unwrap();
    assert_eq!(one(count).await, 0, "the item's transitions went with it");
}
both!(transitions_name_existing_work_items);

/// An event rejected in a batch and sent again later in the same batch is
/// applied on the per-event path, which writes the facts of what it
/// created: the batch's own refresh must not write them a second time.
async fn a_creation_sent_again_after_its_rejection_has_its_facts_once(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let ev = |id: &str, kind: &str, data: Value| json!({"id": id, "type": kind, "source": "jira", "data": data});
    let item = |unit: &str| {
        json!({"external_id": "AGAIN-1", "key": "AGAIN-1", "unit": unit, "type": "STORY",
               "title": "Story AGAIN-1", "state": "Backlog", "created_at": "2026-03-01T09:00:00Z"})
    };
    let events = vec![
        // Rejected: no such unit.
        ev("again-1", "work_item.upserted", item("no-such-team")),
        // The same id, corrected, later in the same batch.
        ev("again-1", "work_item.upserted", item("team-atlas")),
        ev(
            "again-2",
            "work_item.transitioned",
            json!({"external_id": "AGAIN-1", "to_state": "In Progress", "at": "2026-03-02T09:00:00Z"}),
        ),
        ev(
            "again-3",
            "work_item.transitioned",
            json!({"external_id": "AGAIN-1", "to_state": "Done", "at": "2026-03-03T09:00:00Z"}),
        ),
    ];
    let (status, report) = post_ndjson(&app, &admin, &ndjson(&events)).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (&report["applied"], &report["rejected"]),
        (&json!(3), &json!(1)),
        "{report}"
    );
    let written = flow_facts(&app.db_url).await;
    assert_eq!(
        facts_of(&written, "flow_completion", "AGAIN-1").len(),
        1,
        "{written:?}"
    );
    assert_eq!(
        facts_of(&written, "flow_state", "AGAIN-1").len(),
        3,
        "{written:?}"
    );
    rebuild_flow_facts(&app.db_url).await;
    assert_eq!(
        written,
        flow_facts(&app.db_url).await,
        "written, then rebuilt"
    );
}
both!(a_creation_sent_again_after_its_rejection_has_its_facts_once);
