//! Every mutation × every role, and bad input that must change nothing.

use serde_json::{Value, json};

use crate::access::item_of;
use crate::both;
use crate::harness::{ADMIN, EXEC, PORTFOLIO, PROGRAM, TEAM, TestApp, code};

pub(crate) async fn unit_id(app: &TestApp, token: &str, key: &str) -> Value {
    app.ok(
        token,
        "query($k: String!) { unit(key: $k) { id } }",
        json!({ "k": key }),
    )
    .await["unit"]["id"]
        .clone()
}

/// `None` = succeeds, `Some(code)` = refused with that code.
fn expect(body: &Value, want: Option<&str>, what: &str) {
    match want {
        None => assert!(body.get("errors").is_none(), "{what}: {body}"),
        Some(c) => assert_eq!(code(body), c, "{what}: {body}"),
    }
}

const ROLES: [&str; 5] = [ADMIN, EXEC, PORTFOLIO, PROGRAM, TEAM];

async fn item_mutations_by_role(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let create = "mutation($u: ID!, $t: WorkItemType!) { createWorkItem(input: {unit: $u, type: $t, title: \"New work\"}) { workItem { key state stateCategory unit { key } transitions { fromState toState } } } }";
    // (unit, type, expected per role)
    let cases: [(&str, &str, [Option<&str>; 5]); 5] = [
        (
            "team-atlas",
            "STORY",
            [None, Some("FORBIDDEN"), None, None, None],
        ),
        (
            "team-borealis",
            "STORY",
            [None, Some("FORBIDDEN"), None, None, Some("FORBIDDEN")],
        ),
        (
            "payments-checkout",
            "FEATURE",
            [None, Some("FORBIDDEN"), None, None, Some("FORBIDDEN")],
        ),
        (
            "payments",
            "EPIC",
            [
                None,
                Some("FORBIDDEN"),
                None,
                Some("FORBIDDEN"),
                Some("FORBIDDEN"),
            ],
        ),
        (
            "team-fjord",
            "STORY",
            [
                None,
                Some("FORBIDDEN"),
                Some("FORBIDDEN"),
                Some("FORBIDDEN"),
                Some("FORBIDDEN"),
            ],
        ),
    ];
    for (i, role) in ROLES.iter().enumerate() {
        let token = app.login(role).await;
        for (unit, ty, want) in &cases {
            let u = unit_id(&app, &token, unit).await;
            let body = app
                .gql(Some(&token), create, json!({ "u": u, "t": ty }))
                .await;
            expect(&body, want[i], &format!("{role} creates {ty} in {unit}"));
            if want[i].is_none() {
                let item = &body["data"]["createWorkItem"]["workItem"];
                assert_eq!(item["state"], "Backlog");
                assert_eq!(item["stateCategory"], "NEW");
                assert_eq!(
                    item["transitions"],
                    json!([{ "fromState": null, "toState": "Backlog" }])
                );
            }
        }
    }

    // Move and update: (unit, type, expected per role). Unreadable = NOT_FOUND,
    // readable but not writable = FORBIDDEN.
    let cases: [(&str, &str, [Option<&str>; 5]); 4] = [
        (
            "team-atlas",
            "STORY",
            [None, Some("NOT_FOUND"), None, None, None],
        ),
        (
            "payments-checkout",
            "FEATURE",
            [None, Some("FORBIDDEN"), None, None, Some("FORBIDDEN")],
        ),
        (
            "team-delta",
            "STORY",
            [
                None,
                Some("NOT_FOUND"),
                None,
                Some("NOT_FOUND"),
                Some("NOT_FOUND"),
            ],
        ),
        (
            "lending",
            "EPIC",
            [
                None,
                Some("FORBIDDEN"),
                Some("NOT_FOUND"),
                Some("NOT_FOUND"),
                Some("NOT_FOUND"),
            ],
        ),
    ];
    let mv = "mutation($id: ID!, $s: String!) { moveWorkItem(input: {workItem: $id, toState: $s}) { workItem { state stateCategory transitions { toState } } } }";
    let up = "mutation($id: ID!) { updateWorkItem(input: {workItem: $id, title: \"Renamed\", estimate: 3}) { workItem { title estimate } } }";
    for (i, role) in ROLES.iter().enumerate() {
        let token = app.login(role).await;
        for (unit, ty, want) in &cases {
            let (_, id, _) = item_of(&app, &admin, unit, ty).await;
            let before = app.ok(&admin, "query($id: ID!) { node(id: $id) { ... on WorkItem { state title transitions { toState } } } }", json!({ "id": id })).await;
            let target = if before["node"]["state"] == "Testing" {
                "In Review"
            } else {
                "Testing"
            };
            let body = app
                .gql(Some(&token), mv, json!({ "id": id, "s": target }))
                .await;
            expect(&body, want[i], &format!("{role} moves {ty} in {unit}"));
            let after = app.ok(&admin, "query($id: ID!) { node(id: $id) { ... on WorkItem { state title transitions { toState } } } }", json!({ "id": id })).await;
            let n_before = before["node"]["transitions"].as_array().unwrap().len();
            let n_after = after["node"]["transitions"].as_array().unwrap().len();
            if want[i].is_none() {
                assert_eq!(after["node"]["state"], target);
                assert_eq!(n_after, n_before + 1, "a move appends one transition");
            } else {
                assert_eq!(
                    after["node"], before["node"],
                    "a refused move writes nothing"
                );
            }
            let body = app.gql(Some(&token), up, json!({ "id": id })).await;
            expect(&body, want[i], &format!("{role} updates {ty} in {unit}"));
            if want[i].is_none() {
                assert_eq!(
                    body["data"]["updateWorkItem"]["workItem"]["title"],
                    "Renamed"
                );
            }
        }
    }
}
both!(item_mutations_by_role);

async fn structure_and_people_mutations_by_role(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let checkout = unit_id(&app, &admin, "payments-checkout").await;
    let payments = unit_id(&app, &admin, "payments").await;
    let lending = unit_id(&app, &admin, "lending").await;
    let org = unit_id(&app, &admin, "org").await;
    let create_unit = "mutation($p: ID, $k: UnitKind!, $key: String!) { createUnit(input: {parent: $p, kind: $k, key: $key, name: \"New unit\"}) { unit { key kind parent { key } ancestors { key } } } }";
    // (parent, kind, expected per role)
    let cases: [(&Value, &str, [Option<&str>; 5]); 4] = [
        (
            &checkout,
            "TEAM",
            [None, Some("FORBIDDEN"), None, None, Some("FORBIDDEN")],
        ),
        (
            &payments,
            "PROGRAM",
            [
                None,
                Some("FORBIDDEN"),
                None,
                Some("FORBIDDEN"),
                Some("FORBIDDEN"),
            ],
        ),
        (
            &lending,
            "PROGRAM",
            [
                None,
                Some("FORBIDDEN"),
                Some("FORBIDDEN"),
                Some("FORBIDDEN"),
                Some("FORBIDDEN"),
            ],
        ),
        (
            &org,
            "PORTFOLIO",
            [
                None,
                Some("FORBIDDEN"),
                Some("FORBIDDEN"),
                Some("FORBIDDEN"),
                Some("FORBIDDEN"),
            ],
        ),
    ];
    for (i, role) in ROLES.iter().enumerate() {
        let token = app.login(role).await;
        for (n, (parent, kind, want)) in cases.iter().enumerate() {
            let key = format!("new-{i}-{n}");
            let body = app
                .gql(
                    Some(&token),
                    create_unit,
                    json!({ "p": parent, "k": kind, "key": key }),
                )
                .await;
            expect(&body, want[i], &format!("{role} creates a {kind}"));
            if want[i].is_none() {
                let u = &body["data"]["createUnit"]["unit"];
                assert_eq!(u["kind"], *kind);
                // The closure index is maintained: the new unit lists its ancestors.
                let ancestors = u["ancestors"].as_array().unwrap();
                assert_eq!(ancestors.first().map(|a| &a["key"]), Some(&json!("org")));
                assert_eq!(
                    ancestors.last().map(|a| &a["key"]),
                    Some(&u["parent"]["key"])
                );
            }
        }
        let body = app
            .gql(
                Some(&token),
                "mutation($e: String!) { createUser(input: {email: $e, name: \"N\", password: \"long enough password\"}) { user { id email } } }",
                json!({ "e": format!("new{i}@example.com") }),
            )
            .await;
        expect(
            &body,
            if i == 0 { None } else { Some("FORBIDDEN") },
            &format!("{role} creates a user"),
        );
        let user =
            app.ok(&admin, "{ me { user { id } } }", json!({})).await["me"]["user"]["id"].clone();
        let body = app
            .gql(
                Some(&token),
                "mutation($u: ID!, $n: ID!) { grantMembership(input: {user: $u, unit: $n, role: PROGRAM_MANAGER}) { membership { id } } }",
                json!({ "u": user, "n": checkout }),
            )
            .await;
        expect(
            &body,
            if i == 0 { None } else { Some("FORBIDDEN") },
            &format!("{role} grants"),
        );
        if i == 0 {
            let m = body["data"]["grantMembership"]["membership"]["id"].clone();
            let body = app
                .gql(Some(&token), "mutation($m: ID!) { revokeMembership(input: {membership: $m}) { revokedMembershipId } }", json!({ "m": m }))
                .await;
            expect(&body, None, "admin revokes");
        } else {
            let body = app
                .gql(Some(&token), "mutation($m: ID!) { revokeMembership(input: {membership: $m}) { revokedMembershipId } }", json!({ "m": gemba::graphql::encode_id("Membership", 1).0 }))
                .await;
            expect(&body, Some("FORBIDDEN"), &format!("{role} revokes"));
            let body = app
                .gql(Some(&token), "mutation($u: ID!) { updateUser(input: {user: $u, active: false}) { user { active } } }", json!({ "u": user }))
                .await;
            expect(&body, Some("FORBIDDEN"), &format!("{role} deactivates"));
        }
    }
}
both!(structure_and_people_mutations_by_role);

/// Bad input gets a stable code, and nothing is written.
async fn bad_input_changes_nothing(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let count_units = || async {
        app.ok(
            &admin,
            "{ organization { descendants { key } } }",
            json!({}),
        )
        .await["organization"]["descendants"]
            .as_array()
            .unwrap()
            .len()
    };
    let count_items = || async {
        app.ok(
            &admin,
            "{ organization { workItems { totalCount } } }",
            json!({}),
        )
        .await["organization"]["workItems"]["totalCount"]
            .as_i64()
            .unwrap()
    };
    let units_before = count_units().await;
    let items_before = count_items().await;
    let checkout = unit_id(&app, &admin, "payments-checkout").await;
    let atlas = unit_id(&app, &admin, "team-atlas").await;
    let fjord = unit_id(&app, &admin, "team-fjord").await;
    let create_unit = "mutation($p: ID, $k: UnitKind!, $key: String!) { createUnit(input: {parent: $p, kind: $k, key: $key, name: \"U\"}) { unit { key } } }";
    for (vars, want) in [
        (
            json!({ "p": checkout, "k": "TEAM", "key": "Bad Key" }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "p": checkout, "k": "TEAM", "key": "x" }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "p": checkout, "k": "TEAM", "key": "team-atlas" }),
            "CONFLICT",
        ),
        (
            json!({ "p": checkout, "k": "PROGRAM", "key": "wrong-level" }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "p": null, "k": "TEAM", "key": "orphan-team" }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "p": "not-an-id", "k": "TEAM", "key": "bad-parent" }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "p": checkout, "k": "SQUAD", "key": "unknown-enum" }),
            "BAD_USER_INPUT",
        ),
    ] {
        let body = app.gql(Some(&admin), create_unit, vars.clone()).await;
        assert_eq!(code(&body), want, "{vars}: {body}");
    }
    let (feature_key, feature, _) = item_of(&app, &admin, "payments-checkout", "FEATURE").await;
    let (_, lending_feature, _) = item_of(&app, &admin, "lending-origination", "FEATURE").await;
    let (_, story, _) = item_of(&app, &admin, "team-atlas", "STORY").await;
    let (_, epic, _) = item_of(&app, &admin, "payments", "EPIC").await;
    let create = "mutation($u: ID!, $t: WorkItemType!, $p: ID, $s: String, $k: String, $f: DefectOrigin) { createWorkItem(input: {unit: $u, type: $t, title: \"T\", parent: $p, state: $s, key: $k, foundIn: $f}) { workItem { key } } }";
    for (vars, want) in [
        (
            json!({ "u": atlas, "t": "STORY", "s": "Doing" }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "u": atlas, "t": "STORY", "k": "bad key!" }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "u": atlas, "t": "STORY", "k": feature_key }),
            "CONFLICT",
        ),
        (
            json!({ "u": atlas, "t": "STORY", "p": epic }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "u": atlas, "t": "STORY", "p": story }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "u": atlas, "t": "STORY", "p": lending_feature }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "u": fjord, "t": "STORY", "p": feature }),
            "BAD_USER_INPUT",
        ),
        (json!({ "u": atlas, "t": "EPIC" }), "BAD_USER_INPUT"),
        (
            json!({ "u": atlas, "t": "STORY", "f": "PRODUCTION" }),
            "BAD_USER_INPUT",
        ),
        (json!({ "u": atlas, "t": "SPIKE" }), "BAD_USER_INPUT"),
        (json!({ "u": checkout, "t": "STORY" }), "BAD_USER_INPUT"),
    ] {
        let body = app.gql(Some(&admin), create, vars.clone()).await;
        assert_eq!(code(&body), want, "{vars}: {body}");
    }
    // A cycle: an item cannot become its own parent.
    let body = app
        .gql(Some(&admin), "mutation($id: ID!) { updateWorkItem(input: {workItem: $id, parent: $id}) { workItem { key } } }", json!({ "id": feature }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    // A state the workflow does not know.
    let body = app
        .gql(Some(&admin), "mutation($id: ID!) { moveWorkItem(input: {workItem: $id, toState: \"done\"}) { workItem { key } } }", json!({ "id": story }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Done"),
        "names the known states: {body}"
    );
    // Oversize and malformed pages.
    for q in [
        "{ organization { workItems(first: 101) { totalCount } } }",
        "{ organization { workItems(last: -1) { totalCount } } }",
        "{ organization { workItems(first: 1, last: 1) { totalCount } } }",
        "{ organization { workItems(after: \"garbage\") { totalCount } } }",
    ] {
        let body = app.gql(Some(&admin), q, json!({})).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{q}: {body}");
    }
    assert_eq!(count_units().await, units_before, "no unit was written");
    assert_eq!(count_items().await, items_before, "no item was written");
}
both!(bad_input_changes_nothing);

/// Filters and cursor pagination over a unit's items.
async fn filters_and_pagination(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let total = |filter: Value| {
        let app = &app;
        let admin = admin.clone();
        async move {
            app.ok(&admin, "query($f: WorkItemFilter) { unit(key: \"payments\") { workItems(filter: $f) { totalCount } } }", json!({ "f": filter }))
                .await["unit"]["workItems"]["totalCount"]
                .as_i64()
                .unwrap()
        }
    };
    let all = total(json!(null)).await;
    let defects = total(json!({ "types": ["DEFECT"] })).await;
    let defect_flow = total(json!({ "flowTypes": ["DEFECT"] })).await;
    let done = total(json!({ "stateCategories": ["DONE"] })).await;
    let not_done =
        total(json!({ "stateCategories": ["NEW", "ACTIVE", "WAITING", "CANCELED"] })).await;
    let own = total(json!({ "scope": "UNIT_ONLY" })).await;
    assert!(defects > 0 && defects < all);
    assert_eq!(defects, defect_flow);
    assert_eq!(done + not_done, all);
    assert!(
        own > 0 && own < all,
        "the portfolio owns only its epics (and raised items)"
    );
    let future = total(json!({ "createdFrom": "2999-01-01T00:00:00Z" })).await;
    assert_eq!(future, 0);
    let past = total(json!({ "createdTo": "2999-01-01T00:00:00Z" })).await;
    assert_eq!(past, all);
    // Title search is case-insensitive and treats % and _ literally.
    let created = app
        .ok(&admin, "mutation($u: ID!) { createWorkItem(input: {unit: $u, type: STORY, title: \"Refund 100% of Zebra_fees\"}) { workItem { key } } }", json!({ "u": unit_id(&app, &admin, "team-atlas").await }))
        .await;
    assert!(
        created["createWorkItem"]["workItem"]["key"]
            .as_str()
            .unwrap()
            .starts_with("TEAM-ATLAS-")
    );
    assert_eq!(total(json!({ "search": "zebra_FEES" })).await, 1);
    assert_eq!(total(json!({ "search": "100%" })).await, 1);
    assert_eq!(total(json!({ "search": "zebra%fees" })).await, 0);

    // Walk all pages forward, then backward; every item appears once.
    let q = "query($a: String, $b: String, $f: Int, $l: Int) { unit(key: \"payments\") { workItems(first: $f, after: $a, last: $l, before: $b) { totalCount edges { cursor node { key } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }";
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = app.ok(&admin, q, json!({ "a": after, "f": 37 })).await;
        let conn = &page["unit"]["workItems"];
        for e in conn["edges"].as_array().unwrap() {
            seen.push(e["node"]["key"].as_str().unwrap().to_owned());
        }
        if !conn["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = conn["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen.len() as i64, all + 1);
    let mut back = Vec::new();
    let mut before = Value::Null;
    loop {
        let page = app.ok(&admin, q, json!({ "b": before, "l": 41 })).await;
        let conn = &page["unit"]["workItems"];
        let keys: Vec<String> = conn["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["key"].as_str().unwrap().to_owned())
            .collect();
        back.splice(0..0, keys);
        if !conn["pageInfo"]["hasPreviousPage"].as_bool().unwrap() {
            break;
        }
        before = conn["pageInfo"]["startCursor"].clone();
    }
    assert_eq!(back, seen);
}
both!(filters_and_pagination);

/// Only people in the item's line (members of its unit, above or below it)
/// can be assigned; anyone else reads as not found.
async fn assignees_come_from_the_units_line(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let team = app.login(TEAM).await;
    let users = app
        .ok(
            &admin,
            "{ unit(key: \"team-fjord\") { workItems(first: 50) { nodes { assignee { id } } } } }",
            json!({}),
        )
        .await;
    let stranger = users["unit"]["workItems"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|n| n["assignee"]["id"].as_str())
        .unwrap()
        .to_owned();
    let me = app.ok(&team, "{ me { user { id } } }", json!({})).await["me"]["user"]["id"].clone();
    let (_, story, _) = item_of(&app, &admin, "team-atlas", "STORY").await;
    let assign = "mutation($id: ID!, $a: ID) { updateWorkItem(input: {workItem: $id, assignee: $a}) { workItem { assignee { email } } } }";
    let body = app
        .gql(Some(&team), assign, json!({ "id": story, "a": stranger }))
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    let missing = app
        .gql(
            Some(&team),
            assign,
            json!({ "id": story, "a": gemba::graphql::encode_id("User", 999_999).0 }),
        )
        .await;
    assert_eq!(
        body["errors"], missing["errors"],
        "a stranger reads like a missing user"
    );
    let ok = app.ok(&team, assign, json!({ "id": story, "a": me })).await;
    assert_eq!(
        ok["updateWorkItem"]["workItem"]["assignee"]["email"],
        crate::harness::TEAM
    );
    let cleared = app
        .ok(&team, assign, json!({ "id": story, "a": null }))
        .await;
    assert_eq!(
        cleared["updateWorkItem"]["workItem"]["assignee"],
        Value::Null
    );
}
both!(assignees_come_from_the_units_line);
