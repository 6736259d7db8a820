//! DESIGN §2 on every read path: each role × lookup by key, `node`, `nodes`,
//! nested `children`, connections and their `totalCount`, aliases and error
//! texts × own / ancestor / sibling / other-portfolio data.

use serde_json::{Value, json};

use crate::both;
use crate::harness::{ADMIN, EXEC, PORTFOLIO, PROGRAM, TEAM, TestApp, code};

/// An item of `unit` of `item_type`, found as admin: (key, global id, unit id).
pub async fn item_of(
    app: &TestApp,
    admin: &str,
    unit: &str,
    item_type: &str,
) -> (String, String, String) {
    let data = app
        .ok(
            admin,
            "query($k: String!, $t: WorkItemType!) { unit(key: $k) { id workItems(first: 1, filter: {types: [$t], scope: UNIT_ONLY}) { nodes { id key } } } }",
            json!({ "k": unit, "t": item_type }),
        )
        .await;
    let node = &data["unit"]["workItems"]["nodes"][0];
    assert!(
        node.is_object(),
        "demo data has a {item_type} in {unit}: {data}"
    );
    (
        node["key"].as_str().unwrap().to_owned(),
        node["id"].as_str().unwrap().to_owned(),
        data["unit"]["id"].as_str().unwrap().to_owned(),
    )
}

/// Data points: (unit key, item type), and which of
/// [admin, exec, portfolio, program, team] may read them.
const MATRIX: &[(&str, &str, [bool; 5])] = &[
    // own team
    ("team-atlas", "STORY", [true, false, true, true, true]),
    ("team-atlas", "DEFECT", [true, false, true, true, true]),
    // ancestors of the team
    (
        "payments-checkout",
        "FEATURE",
        [true, true, true, true, true],
    ),
    ("payments", "EPIC", [true, true, true, true, true]),
    // sibling team, sibling program and its team
    ("team-borealis", "STORY", [true, false, true, true, false]),
    (
        "payments-wallet",
        "FEATURE",
        [true, true, true, false, false],
    ),
    ("team-delta", "STORY", [true, false, true, false, false]),
    // the other portfolio
    ("lending", "EPIC", [true, true, false, false, false]),
    (
        "lending-origination",
        "FEATURE",
        [true, true, false, false, false],
    ),
    ("team-fjord", "STORY", [true, false, false, false, false]),
];

const ROLES: [&str; 5] = [ADMIN, EXEC, PORTFOLIO, PROGRAM, TEAM];

async fn every_read_path_respects_scope(app: TestApp) {
    let mut tokens = Vec::new();
    for r in ROLES {
        tokens.push(app.login(r).await);
    }
    let admin = tokens[0].clone();
    for (unit, ty, allowed) in MATRIX {
        let (key, id, unit_id) = item_of(&app, &admin, unit, ty).await;
        for (i, token) in tokens.iter().enumerate() {
            let who = ROLES[i];
            let may = allowed[i];
            // Lookup by key, node, nodes and an alias, in one document.
            let data = app
                .ok(
                    token,
                    "query($k: String!, $id: ID!) {
                        workItem(key: $k) { key }
                        node(id: $id) { id ... on WorkItem { key } }
                        nodes(ids: [$id, $id]) { id }
                        other: workItem(key: $k) { title }
                    }",
                    json!({ "k": key, "id": id }),
                )
                .await;
            assert_eq!(
                data["workItem"].is_object(),
                may,
                "{who} workItem({key}): {data}"
            );
            assert_eq!(data["node"].is_object(), may, "{who} node({key}): {data}");
            assert_eq!(
                data["nodes"][0].is_object(),
                may,
                "{who} nodes({key}): {data}"
            );
            assert_eq!(data["other"].is_object(), may, "{who} alias({key}): {data}");
            if !may {
                assert_eq!(data["workItem"], Value::Null);
                assert_eq!(data["nodes"], json!([null, null]));
            }
            // The unit's own list and its count.
            let data = app
                .ok(
                    token,
                    "query($u: ID!, $t: WorkItemType!) {
                        workItems(unit: $u, first: 100, filter: {types: [$t], scope: UNIT_ONLY}) { totalCount nodes { key } }
                    }",
                    json!({ "u": unit_id, "t": ty }),
                )
                .await;
            let conn = &data["workItems"];
            let listed = conn["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["key"] == key.as_str());
            if may {
                assert!(
                    conn["totalCount"].as_i64().unwrap() > 0,
                    "{who} count in {unit}: {data}"
                );
            } else {
                assert_eq!(
                    conn["totalCount"], 0,
                    "{who} must not count items of {unit}: {data}"
                );
                assert_eq!(conn["nodes"], json!([]));
            }
            let in_first_page = conn["totalCount"].as_i64().unwrap() <= 100;
            if in_first_page {
                assert_eq!(listed, may, "{who} list of {unit}: {data}");
            }
        }
    }
}
both!(every_read_path_respects_scope);

/// Counts of a subtree include exactly what the role may read.
async fn subtree_counts_follow_the_role(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let count = |token: String, unit: &'static str, ty: &'static str| {
        let app = &app;
        async move {
            let data = app
                .ok(
                    &token,
                    "query($k: String!, $t: WorkItemType!) { unit(key: $k) { workItems(filter: {types: [$t]}) { totalCount } } }",
                    json!({ "k": unit, "t": ty }),
                )
                .await;
            data["unit"]["workItems"]["totalCount"].as_i64().unwrap()
        }
    };
    let all_stories_org = count(admin.clone(), "org", "STORY").await;
    let atlas = count(admin.clone(), "team-atlas", "STORY").await;
    let checkout = count(admin.clone(), "payments-checkout", "STORY").await;
    let payments = count(admin.clone(), "payments", "STORY").await;
    let features_org = count(admin.clone(), "org", "FEATURE").await;
    assert!(atlas > 0 && checkout > atlas && payments > checkout && all_stories_org > payments);

    let team = app.login(TEAM).await;
    assert_eq!(count(team.clone(), "org", "STORY").await, atlas);
    assert_eq!(count(team.clone(), "payments", "STORY").await, atlas);
    // The team member sees its program's features, not the other program's.
    let checkout_features = count(admin.clone(), "payments-checkout", "FEATURE").await;
    assert_eq!(
        count(team.clone(), "org", "FEATURE").await,
        checkout_features
    );

    let program = app.login(PROGRAM).await;
    assert_eq!(count(program.clone(), "org", "STORY").await, checkout);
    let portfolio = app.login(PORTFOLIO).await;
    assert_eq!(count(portfolio.clone(), "org", "STORY").await, payments);
    let exec = app.login(EXEC).await;
    assert_eq!(
        count(exec.clone(), "org", "STORY").await,
        0,
        "executives read no team items"
    );
    assert_eq!(count(exec, "org", "FEATURE").await, features_org);
}
both!(subtree_counts_follow_the_role);

/// A feature's `children` show a team member only their own team's stories.
async fn nested_children_are_scoped(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let team = app.login(TEAM).await;
    let query = "query($k: String!) { workItem(key: $k) { children(first: 100) { totalCount nodes { key unit { key } parent { key } } } } }";
    // Find a checkout feature with children in more than one team.
    let data = app
        .ok(
            &admin,
            "{ unit(key: \"payments-checkout\") { workItems(first: 100, filter: {types: [FEATURE], scope: UNIT_ONLY}) { nodes { key } } } }",
            json!({}),
        )
        .await;
    let mut checked = false;
    for f in data["unit"]["workItems"]["nodes"].as_array().unwrap() {
        let key = f["key"].as_str().unwrap();
        let all = app.ok(&admin, query, json!({ "k": key })).await;
        let children = all["workItem"]["children"]["nodes"]
            .as_array()
            .unwrap()
            .clone();
        let atlas: Vec<&Value> = children
            .iter()
            .filter(|c| c["unit"]["key"] == "team-atlas")
            .collect();
        if atlas.is_empty() || atlas.len() == children.len() {
            continue;
        }
        let mine = app.ok(&team, query, json!({ "k": key })).await;
        let seen = mine["workItem"]["children"]["nodes"].as_array().unwrap();
        assert_eq!(seen.len(), atlas.len(), "{mine}");
        assert_eq!(mine["workItem"]["children"]["totalCount"], atlas.len());
        assert!(seen.iter().all(|c| c["unit"]["key"] == "team-atlas"));
        assert!(seen.iter().all(|c| c["parent"]["key"] == key));
        checked = true;
        break;
    }
    assert!(
        checked,
        "demo data has a checkout feature with stories in several teams"
    );

    // From a sibling team's story, the parent feature is visible to the
    // program manager but the story itself is not visible to the team member.
    let (story, story_id, _) = item_of(&app, &admin, "team-borealis", "STORY").await;
    let body = app
        .gql(
            Some(&team),
            "query($id: ID!) { node(id: $id) { ... on WorkItem { parent { key } } } }",
            json!({ "id": story_id }),
        )
        .await;
    assert_eq!(body["data"]["node"], Value::Null, "{story}: {body}");
}
both!(nested_children_are_scoped);

/// Errors about invisible items read exactly like errors about missing ones.
async fn invisible_equals_missing_in_errors(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let team = app.login(TEAM).await;
    let (_, hidden, _) = item_of(&app, &admin, "team-fjord", "STORY").await;
    let missing = gemba::graphql::encode_id("WorkItem", 987_654_321).0;
    let mutate = "mutation($id: ID!) { moveWorkItem(input: {workItem: $id, toState: \"Done\"}) { workItem { key } } }";
    let a = app.gql(Some(&team), mutate, json!({ "id": hidden })).await;
    let b = app.gql(Some(&team), mutate, json!({ "id": missing })).await;
    assert_eq!(code(&a), "NOT_FOUND");
    assert_eq!(a["errors"][0]["message"], b["errors"][0]["message"]);
    assert_eq!(a["errors"][0]["extensions"], b["errors"][0]["extensions"]);
    let update = "mutation($id: ID!) { updateWorkItem(input: {workItem: $id, title: \"x\"}) { workItem { key } } }";
    let a = app.gql(Some(&team), update, json!({ "id": hidden })).await;
    let b = app.gql(Some(&team), update, json!({ "id": missing })).await;
    assert_eq!(code(&a), "NOT_FOUND");
    assert_eq!(a["errors"], b["errors"]);
    // As a parent of a new item, too.
    let create = "mutation($u: ID!, $p: ID!) { createWorkItem(input: {unit: $u, type: TASK, title: \"t\", parent: $p}) { workItem { key } } }";
    let atlas = app
        .ok(&team, "{ unit(key: \"team-atlas\") { id } }", json!({}))
        .await["unit"]["id"]
        .clone();
    let a = app
        .gql(Some(&team), create, json!({ "u": atlas, "p": hidden }))
        .await;
    let b = app
        .gql(Some(&team), create, json!({ "u": atlas, "p": missing }))
        .await;
    assert_eq!(code(&a), "NOT_FOUND");
    assert_eq!(a["errors"], b["errors"]);
}
both!(invisible_equals_missing_in_errors);

/// The organisation tree is visible to everyone signed in; nothing is to anonymous callers.
async fn tree_is_public_to_members_only(app: TestApp) {
    let team = app.login(TEAM).await;
    let data = app
        .ok(&team, "{ unit(key: \"team-fjord\") { key kind parent { key } ancestors { key } } organization { children { key } } }", json!({}))
        .await;
    assert_eq!(data["unit"]["kind"], "TEAM");
    assert_eq!(data["unit"]["parent"]["key"], "lending-origination");
    assert_eq!(
        data["unit"]["ancestors"],
        json!([{"key": "org"}, {"key": "lending"}, {"key": "lending-origination"}])
    );
    assert_eq!(
        data["organization"]["children"],
        json!([{"key": "lending"}, {"key": "payments"}])
    );

    for q in [
        "{ me { user { email } } }",
        "{ unit(key: \"team-atlas\") { key } }",
        "{ workItem(key: \"X-1\") { key } }",
        "{ node(id: \"VW5pdDox\") { id } }",
    ] {
        let body = app.gql(None, q, json!({})).await;
        assert_eq!(code(&body), "UNAUTHENTICATED", "{q}: {body}");
    }
}
both!(tree_is_public_to_members_only);

/// Granting and revoking a membership applies on the next request.
async fn membership_changes_apply_at_once(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let team = app.login(TEAM).await;
    let (key, _, _) = item_of(&app, &admin, "team-borealis", "STORY").await;
    let read = |t: String| {
        let app = &app;
        let key = key.clone();
        async move {
            app.ok(
                &t,
                "query($k: String!) { workItem(key: $k) { key } }",
                json!({ "k": key }),
            )
            .await["workItem"]
                .is_object()
        }
    };
    assert!(!read(team.clone()).await);
    let ids = app
        .ok(&admin, "{ unit(key: \"team-borealis\") { id } }", json!({}))
        .await;
    let me = app.ok(&team, "{ me { user { id } } }", json!({})).await;
    let granted = app
        .ok(
            &admin,
            "mutation($u: ID!, $n: ID!) { grantMembership(input: {user: $u, unit: $n, role: TEAM_MEMBER}) { membership { id role unit { key } } } }",
            json!({ "u": me["me"]["user"]["id"], "n": ids["unit"]["id"] }),
        )
        .await;
    assert_eq!(
        granted["grantMembership"]["membership"]["unit"]["key"],
        "team-borealis"
    );
    assert!(
        read(team.clone()).await,
        "the grant applies to the same token's next request"
    );
    let m = granted["grantMembership"]["membership"]["id"].clone();
    app.ok(
        &admin,
        "mutation($m: ID!) { revokeMembership(input: {membership: $m}) { revokedMembershipId } }",
        json!({ "m": m }),
    )
    .await;
    assert!(!read(team.clone()).await, "the revocation applies at once");
}
both!(membership_changes_apply_at_once);
