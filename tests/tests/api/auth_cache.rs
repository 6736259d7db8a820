//! The authentication cache: a caller's repeated requests run no
//! authentication statement, and an access change still applies to the
//! next request, on this replica at once and on the others on the relayed
//! event (at worst after the cache's time to live). The tree and its
//! workflows, served from memory too, stay current likewise.

use std::time::{Duration, Instant};

use gemba::config::Settings;
use serde_json::{Value, json};

use crate::access::item_of;
use crate::both;
use crate::harness::{ADMIN, Backend, PROGRAM, TEAM, TestApp, code};
use crate::ingest::{create_key, post_ndjson};

const NESTED: &str = "query($n: Int!) { organization { workItems(first: $n) { nodes { key parent { key title } unit { key name } } } } }";

async fn statements_of(app: &TestApp, token: &str, query: &str, variables: Value) -> u64 {
    let before = app.statements().await;
    app.ok(token, query, variables).await;
    app.statements().await - before
}

async fn repeated_requests_run_no_authentication_statement(app: TestApp) {
    let token = app.login(PROGRAM).await;
    let first = statements_of(&app, &token, "{ __typename }", json!({})).await;
    let second = statements_of(&app, &token, "{ __typename }", json!({})).await;
    assert!(
        first >= 5,
        "a fresh token is checked and its grants loaded: {first} statements"
    );
    assert_eq!(second, 0, "the same token again runs no statement");

    // A nested read: the fresh token pays for authentication, the same
    // token's next request does not.
    let token = app.login(PROGRAM).await;
    let vars = json!({ "n": 50 });
    let first = statements_of(&app, &token, NESTED, vars.clone()).await;
    let second = statements_of(&app, &token, NESTED, vars).await;
    assert!(
        first >= second + 5,
        "first read ran {first} statements, the repeated one {second}"
    );
}
both!(repeated_requests_run_no_authentication_statement);

/// Concurrent first requests of one token authenticate it once: the others
/// wait for that load instead of each running it.
async fn concurrent_misses_load_the_viewer_once(app: TestApp) {
    let probe = app.login(PROGRAM).await;
    let one = statements_of(&app, &probe, "{ __typename }", json!({})).await;
    assert!(one >= 5, "{one} statements for a fresh token");
    let token = app.login(PROGRAM).await;
    let before = app.statements().await;
    let requests = (0..16).map(|_| app.post(Some(&token), "{ __typename }", json!({})));
    for (status, body) in futures::future::join_all(requests).await {
        assert_eq!(status, 200, "{body}");
    }
    let ran = app.statements().await - before;
    assert_eq!(
        ran, one,
        "16 concurrent first requests ran {ran} statements"
    );
}
both!(concurrent_misses_load_the_viewer_once);

/// Past its time to live an entry is read again from the database.
async fn entries_expire(app: TestApp) {
    let token = app.login(TEAM).await;
    statements_of(&app, &token, "{ __typename }", json!({})).await;
    assert_eq!(
        statements_of(&app, &token, "{ __typename }", json!({})).await,
        0
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(statements_of(&app, &token, "{ __typename }", json!({})).await >= 3);
}
crate::both_with!(
    entries_expire,
    gemba::config::Settings {
        auth_cache_ttl: std::time::Duration::from_millis(300),
        ..gemba::config::Settings::default()
    }
);

/// A token found in the cache is still refused once it expires (past the
/// verification's leeway of 5 s), and a token altered in any byte is
/// verified afresh and refused while the original is cached.
async fn a_cached_token_expires_and_an_altered_one_is_refused(app: TestApp) {
    let token = app.login(TEAM).await;
    let (status, body) = app.post(Some(&token), "{ __typename }", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        statements_of(&app, &token, "{ __typename }", json!({})).await,
        0,
        "the token is cached"
    );
    let (payload, signature) = token.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let altered = format!("{payload}.{flipped}{}", &signature[1..]);
    let (status, body) = app.post(Some(&altered), "{ __typename }", json!({})).await;
    assert_eq!(
        (status, code(&body)),
        (401, "UNAUTHENTICATED".into()),
        "{body}"
    );
    tokio::time::sleep(Duration::from_millis(7_200)).await;
    let (status, body) = app.post(Some(&token), "{ __typename }", json!({})).await;
    assert_eq!(
        (status, code(&body)),
        (401, "UNAUTHENTICATED".into()),
        "{body}"
    );
}
crate::both_with!(
    a_cached_token_expires_and_an_altered_one_is_refused,
    gemba::config::Settings {
        auth_cache_ttl: std::time::Duration::from_secs(60),
        token_ttl: std::time::Duration::from_secs(1),
        ..gemba::config::Settings::default()
    }
);

/// With the cache turned off every request authenticates afresh.
async fn a_zero_ttl_turns_the_cache_off(app: TestApp) {
    let token = app.login(TEAM).await;
    statements_of(&app, &token, "{ __typename }", json!({})).await;
    assert!(statements_of(&app, &token, "{ __typename }", json!({})).await >= 3);
}
crate::both_with!(
    a_zero_ttl_turns_the_cache_off,
    gemba::config::Settings {
        auth_cache_ttl: std::time::Duration::ZERO,
        ..gemba::config::Settings::default()
    }
);

/// Whether `token` may read the Borealis story `key` (members of the team
/// may); `Err(401)` when the token is refused.
async fn sees_borealis_items(app: &TestApp, token: &str, key: &str) -> Result<bool, u16> {
    let (status, body) = app
        .post(
            Some(token),
            "query($k: String!) { workItem(key: $k) { key } }",
            json!({ "k": key }),
        )
        .await;
    if status == 401 {
        return Err(status);
    }
    assert!(body.get("errors").is_none(), "unexpected errors: {body}");
    Ok(body["data"]["workItem"].is_object())
}

async fn id_of(app: &TestApp, token: &str, query: &str, path: &[&str]) -> Value {
    let mut v = app.ok(token, query, json!({})).await;
    for p in path {
        v = v[*p].clone();
    }
    v
}

/// Polls `check` on `app` until it holds, for at most `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(
            started.elapsed() < within,
            "{what}: not seen within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every access change applies to the next request of a token whose
/// identity is cached, on the replica that made it.
async fn access_changes_apply_to_the_next_cached_request(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let team = app.login(TEAM).await;
    let (story, _, borealis) = item_of(&app, &admin, "team-borealis", "STORY").await;
    let me = id_of(&app, &team, "{ me { user { id } } }", &["me", "user", "id"]).await;
    // Warm: the second request is served from the cache.
    assert_eq!(sees_borealis_items(&app, &team, &story).await, Ok(false));
    assert_eq!(sees_borealis_items(&app, &team, &story).await, Ok(false));

    let granted = app
        .ok(
            &admin,
            "mutation($u: ID!, $n: ID!) { grantMembership(input: {user: $u, unit: $n, role: TEAM_MEMBER}) { membership { id } } }",
            json!({ "u": me, "n": borealis }),
        )
        .await;
    assert_eq!(sees_borealis_items(&app, &team, &story).await, Ok(true));
    assert_eq!(sees_borealis_items(&app, &team, &story).await, Ok(true));
    app.ok(
        &admin,
        "mutation($m: ID!) { revokeMembership(input: {membership: $m}) { revokedMembershipId } }",
        json!({ "m": granted["grantMembership"]["membership"]["id"] }),
    )
    .await;
    assert_eq!(sees_borealis_items(&app, &team, &story).await, Ok(false));

    app.ok(
        &admin,
        "mutation($u: ID!) { updateUser(input: {user: $u, active: false}) { user { active } } }",
        json!({ "u": me }),
    )
    .await;
    assert_eq!(sees_borealis_items(&app, &team, &story).await, Err(401));
    app.ok(
        &admin,
        "mutation($u: ID!) { updateUser(input: {user: $u, active: true}) { user { active } } }",
        json!({ "u": me }),
    )
    .await;
    assert_eq!(sees_borealis_items(&app, &team, &story).await, Ok(false));

    app.ok(&team, "mutation { logout }", json!({})).await;
    assert_eq!(sees_borealis_items(&app, &team, &story).await, Err(401));

    // An API key works until it is revoked, then not at the next request.
    let (secret, key_id) = create_key(&app, &admin, None).await;
    for _ in 0..2 {
        let (status, body) = post_ndjson(&app, &secret, "").await;
        assert_ne!(status, 401, "{body}");
    }
    app.ok(
        &admin,
        "mutation($k: ID!) { revokeApiKey(input: {apiKey: $k}) { apiKey { id } } }",
        json!({ "k": key_id }),
    )
    .await;
    let (status, body) = post_ndjson(&app, &secret, "").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
}
both!(access_changes_apply_to_the_next_cached_request);

/// A replica whose cache would keep entries a minute still applies access
/// changes made on another replica within moments: the relayed event
/// forgets them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_changes_reach_other_replicas_through_the_relay() {
    let Some(a) = TestApp::spawn(Backend::Postgres).await else {
        eprintln!("GEMBA_TEST_POSTGRES_URL is not set: skipped");
        return;
    };
    let slow = Settings {
        auth_cache_ttl: Duration::from_secs(60),
        ..Settings::default()
    };
    let b = TestApp::serve_on(&a.db_url, Backend::Postgres, slow).await;
    let admin = a.login(ADMIN).await;
    let team = a.login(TEAM).await;
    let (story, _, borealis) = item_of(&a, &admin, "team-borealis", "STORY").await;
    let me = id_of(&a, &team, "{ me { user { id } } }", &["me", "user", "id"]).await;
    assert_eq!(sees_borealis_items(&b, &team, &story).await, Ok(false));
    let within = Duration::from_secs(2);

    let granted = a
        .ok(
            &admin,
            "mutation($u: ID!, $n: ID!) { grantMembership(input: {user: $u, unit: $n, role: TEAM_MEMBER}) { membership { id } } }",
            json!({ "u": me, "n": borealis }),
        )
        .await;
    eventually(within, "a grant on A, on B", || async {
        sees_borealis_items(&b, &team, &story).await == Ok(true)
    })
    .await;
    a.ok(
        &admin,
        "mutation($m: ID!) { revokeMembership(input: {membership: $m}) { revokedMembershipId } }",
        json!({ "m": granted["grantMembership"]["membership"]["id"] }),
    )
    .await;
    eventually(within, "a revocation on A, on B", || async {
        sees_borealis_items(&b, &team, &story).await == Ok(false)
    })
    .await;

    a.ok(
        &admin,
        "mutation($u: ID!) { updateUser(input: {user: $u, active: false}) { user { active } } }",
        json!({ "u": me }),
    )
    .await;
    eventually(within, "a deactivation on A, on B", || async {
        sees_borealis_items(&b, &team, &story).await == Err(401)
    })
    .await;
    a.ok(
        &admin,
        "mutation($u: ID!) { updateUser(input: {user: $u, active: true}) { user { active } } }",
        json!({ "u": me }),
    )
    .await;
    eventually(within, "a reactivation on A, on B", || async {
        sees_borealis_items(&b, &team, &story).await == Ok(false)
    })
    .await;

    a.ok(&team, "mutation { logout }", json!({})).await;
    eventually(within, "a logout on A, on B", || async {
        sees_borealis_items(&b, &team, &story).await == Err(401)
    })
    .await;
}

/// Without a relay (two servers on one SQLite file), the time to live
/// bounds how long another server serves a revoked token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_time_to_live_bounds_staleness_without_a_relay() {
    let a = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let ttl = Duration::from_millis(300);
    let b = TestApp::serve_on(
        &a.db_url,
        Backend::Sqlite,
        Settings {
            auth_cache_ttl: ttl,
            ..Settings::default()
        },
    )
    .await;
    let team = a.login(TEAM).await;
    let (status, _) = b.post(Some(&team), "{ __typename }", json!({})).await;
    assert_eq!(status, 200);
    a.ok(&team, "mutation { logout }", json!({})).await;
    let started = Instant::now();
    eventually(ttl * 3, "a logout on A, on B", || async {
        b.post(Some(&team), "{ __typename }", json!({})).await.0 == 401
    })
    .await;
    assert!(started.elapsed() < ttl * 3);
}

const UNIT_NAME: &str =
    "query($k: String!) { unit(key: $k) { name parent { key } workflow { name } } }";

/// Renames `key` (a team under `parent`) through `POST /ingest`.
async fn rename(app: &TestApp, admin: &str, key: &str, parent: &str, name: &str) {
    let event = json!({"id": format!("rename-{name}"), "type": "unit.upserted", "source": "test",
        "data": {"key": key, "kind": "TEAM", "name": name, "parent": parent}});
    let (status, body) = post_ndjson(app, admin, &format!("{event}\n")).await;
    assert_eq!(status, 200, "{body}");
}

/// The tree is served from memory, yet a unit created or renamed shows at
/// the next request.
async fn the_tree_from_memory_stays_current(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let token = app.login(PROGRAM).await;
    let vars = json!({ "n": 50 });
    // Warm the caller and the tree, then count.
    statements_of(&app, &token, NESTED, vars.clone()).await;
    let warm = statements_of(&app, &token, NESTED, vars).await;
    assert_eq!(
        warm, 1,
        "a warm nested read runs one statement: the page with its parents"
    );

    let before = app
        .ok(&admin, UNIT_NAME, json!({ "k": "team-atlas" }))
        .await;
    let parent = before["unit"]["parent"]["key"].as_str().unwrap().to_owned();
    let workflow = before["unit"]["workflow"]["name"].clone();
    rename(&app, &admin, "team-atlas", &parent, "Atlas Prime").await;
    let after = app
        .ok(&admin, UNIT_NAME, json!({ "k": "team-atlas" }))
        .await;
    assert_eq!(after["unit"]["name"], "Atlas Prime");
    assert_eq!(after["unit"]["workflow"]["name"], workflow);

    let created = app
        .ok(
            &admin,
            "mutation($p: ID!) { createUnit(input: {parent: $p, kind: TEAM, key: \"team-nova\", name: \"Nova\"}) { unit { id } } }",
            json!({ "p": id_of(&app, &admin, &format!("{{ unit(key: \"{parent}\") {{ id }} }}"), &["unit", "id"]).await }),
        )
        .await;
    assert!(created["createUnit"]["unit"]["id"].is_string());
    let nova = app.ok(&admin, UNIT_NAME, json!({ "k": "team-nova" })).await;
    assert_eq!(nova["unit"]["name"], "Nova");
    assert_eq!(nova["unit"]["parent"]["key"], parent.as_str());
    assert_eq!(nova["unit"]["workflow"]["name"], workflow);

    // A list of the parent's subtree, its units taken from the snapshot,
    // has the new team's item at once.
    let item = app
        .ok(
            &admin,
            "mutation($u: ID!) { createWorkItem(input: {unit: $u, type: STORY, title: \"Nova's first\"}) { workItem { key } } }",
            json!({ "u": created["createUnit"]["unit"]["id"] }),
        )
        .await["createWorkItem"]["workItem"]["key"]
        .clone();
    let listed = app
        .ok(
            &admin,
            "query($k: String!) { unit(key: $k) { id } }",
            json!({ "k": parent }),
        )
        .await["unit"]["id"]
        .clone();
    let page = app
        .ok(
            &admin,
            "query($u: ID!) { workItems(unit: $u, last: 5) { nodes { key unit { key } } } }",
            json!({ "u": listed }),
        )
        .await;
    let nodes = page["workItems"]["nodes"].as_array().unwrap();
    assert!(
        nodes
            .iter()
            .any(|n| n["key"] == item && n["unit"]["key"] == "team-nova"),
        "{page}"
    );
}
both!(the_tree_from_memory_stays_current);

/// With the tree's snapshot turned off, items still name their unit (read
/// by the unit loader), exactly as a replica with the snapshot answers.
async fn items_name_their_unit_with_the_tree_off(app: TestApp) {
    let vars = json!({ "n": 50 });
    let token = app.login(PROGRAM).await;
    let off = app.ok(&token, NESTED, vars.clone()).await;
    let nodes = off["organization"]["workItems"]["nodes"]
        .as_array()
        .unwrap();
    assert!(
        nodes.len() > 1 && nodes.iter().all(|n| n["unit"]["key"].is_string()),
        "{off}"
    );
    let with_tree = app.replica().await;
    let token = with_tree.login(PROGRAM).await;
    assert_eq!(with_tree.ok(&token, NESTED, vars).await, off);
}
crate::both_with!(
    items_name_their_unit_with_the_tree_off,
    gemba::config::Settings {
        tree_cache_ttl: std::time::Duration::ZERO,
        ..gemba::config::Settings::default()
    }
);

/// A unit renamed on one replica shows on another within moments, though
/// that replica would keep its snapshot a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_reaches_other_replicas_through_the_relay() {
    let Some(a) = TestApp::spawn(Backend::Postgres).await else {
        eprintln!("GEMBA_TEST_POSTGRES_URL is not set: skipped");
        return;
    };
    let slow = Settings {
        tree_cache_ttl: Duration::from_secs(60),
        ..Settings::default()
    };
    let b = TestApp::serve_on(&a.db_url, Backend::Postgres, slow).await;
    let admin = a.login(ADMIN).await;
    let before = b.ok(&admin, UNIT_NAME, json!({ "k": "team-atlas" })).await;
    let parent = before["unit"]["parent"]["key"].as_str().unwrap().to_owned();
    rename(&a, &admin, "team-atlas", &parent, "Atlas Prime").await;
    eventually(Duration::from_secs(2), "a rename on A, on B", || async {
        b.ok(&admin, UNIT_NAME, json!({ "k": "team-atlas" })).await["unit"]["name"] == "Atlas Prime"
    })
    .await;
}

/// A change no event reports (another process writing the database)
/// shows once the snapshot's time to live (2 s here) has passed: requests
/// past it go on with the old snapshot while it is read again behind them,
/// never longer than twice the time to live.
async fn a_change_no_event_reports_shows_after_the_ttl(app: TestApp) {
    use sea_orm::ConnectionTrait;

    let admin = app.login(ADMIN).await;
    let before = app
        .ok(&admin, UNIT_NAME, json!({ "k": "team-atlas" }))
        .await;
    assert_ne!(before["unit"]["name"], "Atlas Quiet");
    let db = sea_orm::Database::connect(&app.db_url).await.unwrap();
    db.execute_unprepared("UPDATE unit SET name = 'Atlas Quiet' WHERE key = 'team-atlas'")
        .await
        .unwrap();
    // 2 s to live, at most 2 s more behind the requests, and slack.
    eventually(Duration::from_secs(5), "a silent rename", || async {
        app.ok(&admin, UNIT_NAME, json!({ "k": "team-atlas" }))
            .await["unit"]["name"]
            == "Atlas Quiet"
    })
    .await;
}
both!(a_change_no_event_reports_shows_after_the_ttl);
