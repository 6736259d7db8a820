//! DataLoaders keep the number of SQL statements of a query independent of
//! its page size.

use serde_json::{Value, json};

use crate::access::item_of;
use crate::both;
use crate::harness::{ADMIN, PROGRAM, TEAM, TestApp};

const QUERY: &str = "query($n: Int!) { organization { workItems(first: $n) { totalCount nodes { key parent { key title } unit { key name } assignee { name } transitions { toState at } } } } }";

async fn statements_for(app: &TestApp, token: &str, n: i64) -> (u64, usize) {
    let before = app.statements().await;
    let data = app.ok(token, QUERY, json!({ "n": n })).await;
    let after = app.statements().await;
    let items = data["organization"]["workItems"]["nodes"]
        .as_array()
        .unwrap()
        .len();
    (after - before, items)
}

async fn statement_count_does_not_grow_with_page_size(app: TestApp) {
    for who in [ADMIN, PROGRAM] {
        let token = app.login(who).await;
        // Warm up, then measure.
        statements_for(&app, &token, 5).await;
        let (small, n_small) = statements_for(&app, &token, 10).await;
        let (large, n_large) = statements_for(&app, &token, 100).await;
        assert_eq!(
            (n_small, n_large),
            (10, 100),
            "{who}: the demo has 100+ readable items"
        );
        assert!(
            large <= small + 1,
            "{who}: 10 items ran {small} statements, 100 items ran {large}"
        );
        assert!(
            large <= 16,
            "{who}: {large} statements for 100 items with parent, unit and transitions"
        );
    }
}
both!(statement_count_does_not_grow_with_page_size);

const PAGE: &str = "query($u: ID!, $f: Int, $a: String, $l: Int, $b: String) { workItems(unit: $u, first: $f, after: $a, last: $l, before: $b) { pageInfo { hasNextPage hasPreviousPage startCursor endCursor } nodes { key parent { key title } } } }";

/// Every page of a unit's items walked `first`/`after` or, backwards,
/// `last`/`before`, `size` at a time: the items (key and parent) in list
/// order.
async fn walk(app: &TestApp, token: &str, unit: &str, size: i64, forward: bool) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let vars = if forward {
            json!({ "u": unit, "f": size, "a": cursor })
        } else {
            json!({ "u": unit, "l": size, "b": cursor })
        };
        let data = app.ok(token, PAGE, vars).await;
        let page = &data["workItems"];
        let nodes = page["nodes"].as_array().unwrap().clone();
        assert!(nodes.len() as i64 <= size, "{page}");
        let info = &page["pageInfo"];
        if forward {
            out.extend(nodes);
            if info["hasNextPage"] != true {
                return out;
            }
            cursor = info["endCursor"].clone();
        } else {
            out.splice(0..0, nodes);
            if info["hasPreviousPage"] != true {
                return out;
            }
            cursor = info["startCursor"].clone();
        }
    }
}

/// A list's items come with their readable parents in one statement; every
/// page shape answers what each item's own lookup answers, and a parent the
/// viewer may not read is null, as everywhere else.
/// Creates a task of `unit` under `parent` (global ids); its key.
async fn task_under(app: &TestApp, token: &str, unit: &str, parent: &str, title: &str) -> Value {
    let created = app
        .ok(
            token,
            "mutation($u: ID!, $p: ID!, $t: String!) { createWorkItem(input: {unit: $u, type: TASK, title: $t, parent: $p}) { workItem { key } } }",
            json!({ "u": unit, "p": parent, "t": title }),
        )
        .await;
    created["createWorkItem"]["workItem"]["key"].clone()
}

async fn a_list_reads_its_parents_with_the_page(app: TestApp) {
    use sea_orm::ConnectionTrait;

    let admin = app.login(ADMIN).await;
    // A task of team-atlas whose parent is a story of the sibling
    // team-borealis, as an integration may land it (the API itself keeps
    // parents on the unit's line): beyond a team-atlas member's reach.
    let (story, _, _) = item_of(&app, &admin, "team-borealis", "STORY").await;
    let (atlas_story, atlas_story_id, atlas) = item_of(&app, &admin, "team-atlas", "STORY").await;
    let task = task_under(&app, &admin, &atlas, &atlas_story_id, "Cross-team task").await;
    assert_ne!(story, atlas_story);
    let db = sea_orm::Database::connect(&app.db_url).await.unwrap();
    db.execute_unprepared(&format!(
        "UPDATE work_item SET parent_id = (SELECT id FROM work_item WHERE key = '{story}') WHERE key = '{}'",
        task.as_str().unwrap()
    ))
    .await
    .unwrap();
    let own = "query($k: String!) { workItem(key: $k) { parent { key title } } }";
    for who in [ADMIN, PROGRAM, TEAM] {
        let token = app.login(who).await;
        let full = json!({ "u": atlas, "f": 100 });
        app.ok(&token, PAGE, full.clone()).await;
        let before = app.statements().await;
        let data = app.ok(&token, PAGE, full).await;
        let ran = app.statements().await - before;
        assert_eq!(
            ran, 1,
            "{who}: a warm page with parents ran {ran} statements"
        );

        let forward = walk(&app, &token, &atlas, 4, true).await;
        let backward = walk(&app, &token, &atlas, 4, false).await;
        assert_eq!(forward, backward, "{who}: both directions list the same");
        let listed = data["workItems"]["nodes"].as_array().unwrap();
        let n = listed.len().min(forward.len());
        assert_eq!(listed[..n], forward[..n], "{who}");
        assert!(
            forward.iter().filter(|i| i["parent"].is_object()).count() >= 3,
            "{who}: the demo's team items have parents"
        );
        for item in &forward {
            let alone = app.ok(&token, own, json!({ "k": item["key"] })).await;
            assert_eq!(item["parent"], alone["workItem"]["parent"], "{who}: {item}");
        }
        let cross = forward.iter().find(|i| i["key"] == task);
        let cross = cross.unwrap_or_else(|| panic!("{who} lists {task}"));
        if who == TEAM {
            assert_eq!(cross["parent"], Value::Null, "{cross}");
        } else {
            assert_eq!(cross["parent"]["key"], story.as_str(), "{cross}");
        }
    }
}
both!(a_list_reads_its_parents_with_the_page);

/// Every scalar field of a work item.
const FIELDS: &str = "key title description type flowType state stateCategory rank blocked estimate businessValue foundIn severity createdAt updatedAt";

/// A page reads its rows by position, from the values' bytes (PostgreSQL)
/// or through the driver (SQLite); a single item is read by column name.
/// Both must give the same fields, for values at the edges of their types:
/// NULLs beside set values, text beyond ASCII, fractions, instants before
/// PostgreSQL's epoch (2000) and with microseconds.
async fn a_page_reads_every_column_as_stored(app: TestApp) {
    use sea_orm::ConnectionTrait;

    let admin = app.login(ADMIN).await;
    let (full, full_id, atlas) = item_of(&app, &admin, "team-atlas", "STORY").await;
    let (bare, _, _) = item_of(&app, &admin, "team-atlas", "DEFECT").await;
    let child = task_under(&app, &admin, &atlas, &full_id, "Child").await;
    let db = sea_orm::Database::connect(&app.db_url).await.unwrap();
    let at = |t: &str| match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => format!("TIMESTAMPTZ '{t}+00'"),
        _ => format!("'{t}+00:00'"),
    };
    db.execute_unprepared(&format!(
        "UPDATE work_item SET description = 'Données — 測試 ✓', estimate = 2.5, \
         business_value = -0.125, found_in = 'PRODUCTION', severity = 'HIGH', blocked = TRUE, \
         created_at = {}, updated_at = {} WHERE key = '{full}'",
        at("1999-12-31 23:59:59.123456"),
        at("2026-12-06 01:02:03.000001"),
    ))
    .await
    .unwrap();
    db.execute_unprepared(&format!(
        "UPDATE work_item SET description = NULL, estimate = NULL, business_value = NULL, \
         found_in = NULL, severity = NULL, blocked = FALSE, created_at = {} WHERE key = '{bare}'",
        at("1970-01-01 00:00:00"),
    ))
    .await
    .unwrap();
    let one = format!("query($k: String!) {{ workItem(key: $k) {{ {FIELDS} }} }}");
    // With `parent` the page and its parents come in one statement; without
    // it, the page alone.
    for selection in [format!("{FIELDS} parent {{ key }}"), FIELDS.to_owned()] {
        let page = format!(
            "query($u: ID!) {{ workItems(unit: $u, first: 100) {{ nodes {{ {selection} }} }} }}"
        );
        let data = app.ok(&admin, &page, json!({ "u": atlas })).await;
        let nodes = data["workItems"]["nodes"].as_array().unwrap();
        for key in [&full, &bare] {
            let mut listed = nodes
                .iter()
                .find(|n| n["key"] == key.as_str())
                .unwrap_or_else(|| panic!("{key} is listed"))
                .clone();
            listed.as_object_mut().unwrap().remove("parent");
            let alone = app.ok(&admin, &one, json!({ "k": key })).await;
            assert_eq!(listed, alone["workItem"], "{selection}");
        }
        let full = nodes.iter().find(|n| n["key"] == full.as_str()).unwrap();
        assert_eq!(full["description"], "Données — 測試 ✓");
        assert_eq!(full["businessValue"], -0.125);
        assert_eq!(full["blocked"], true);
        assert!(
            full["createdAt"]
                .as_str()
                .is_some_and(|t| t.starts_with("1999-12-31T23:59:59.123456")),
            "{full}"
        );
    }
    // A page that asks few fields of its items reads only their columns;
    // its parents still come whole (the story is both an item of the page
    // and the child's parent), through `nodes` and `edges` alike, in one
    // statement.
    let alone = app.ok(&admin, &one, json!({ "k": full })).await;
    for items in ["nodes", "edges { node"] {
        let close = if items == "nodes" { "" } else { "}" };
        let page = format!(
            "query($u: ID!) {{ workItems(unit: $u, first: 100) {{ {items} {{ key state parent {{ {FIELDS} }} }} {close} }} }}"
        );
        app.ok(&admin, &page, json!({ "u": atlas })).await;
        let before = app.statements().await;
        let data = app.ok(&admin, &page, json!({ "u": atlas })).await;
        assert_eq!(app.statements().await - before, 1, "{items}");
        let listed: Vec<Value> = match items {
            "nodes" => data["workItems"]["nodes"].as_array().unwrap().clone(),
            _ => data["workItems"]["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"].clone())
                .collect(),
        };
        let of = |key: &Value| listed.iter().find(|n| &n["key"] == key).cloned().unwrap();
        assert_eq!(of(&child)["parent"], alone["workItem"], "{items}");
        let story = of(&json!(full));
        assert_eq!(story["state"], alone["workItem"]["state"], "{items}");
        assert_eq!(story.as_object().unwrap().len(), 3, "{story}");
    }
}
both!(a_page_reads_every_column_as_stored);

/// What a page may ask of its items and still be resolved in one pass
/// (`graphql::flat`): every plain field of an item and of its unit.
const PLAIN: &str = "__typename id key title description type flowType state stateCategory rank blocked estimate businessValue foundIn severity createdAt updatedAt unit { __typename id key name kind depth createdAt }";

/// The answer's text as sent, so that the order of fields counts too.
async fn raw(app: &TestApp, token: &str, query: &str, variables: Value) -> String {
    let res = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

/// A page whose items' selection is plain is resolved in one pass instead
/// of field by field. The same selection behind a fragment takes the
/// general path; both must answer the same text: values at the edges of
/// their types, aliases, field order, parents readable or not, units, as
/// admin, program manager and team member.
async fn a_plain_page_answers_as_the_general_path(app: TestApp) {
    use sea_orm::ConnectionTrait;

    let admin = app.login(ADMIN).await;
    let (story, _, _) = item_of(&app, &admin, "team-borealis", "STORY").await;
    let (full, full_id, atlas) = item_of(&app, &admin, "team-atlas", "STORY").await;
    let (bare, _, _) = item_of(&app, &admin, "team-atlas", "DEFECT").await;
    let task = task_under(&app, &admin, &atlas, &full_id, "Cross-team task").await;
    task_under(&app, &admin, &atlas, &full_id, "Child").await;
    let db = sea_orm::Database::connect(&app.db_url).await.unwrap();
    db.execute_unprepared(&format!(
        "UPDATE work_item SET description = 'Données — 測試 ✓ \"quoted\"', estimate = 2.5, \
         business_value = -0.125, found_in = 'PRODUCTION', severity = 'HIGH', blocked = TRUE \
         WHERE key = '{full}'"
    ))
    .await
    .unwrap();
    db.execute_unprepared(&format!(
        "UPDATE work_item SET description = NULL, estimate = NULL, business_value = NULL, \
         found_in = NULL, severity = NULL WHERE key = '{bare}'"
    ))
    .await
    .unwrap();
    // A parent beyond a team-atlas member's reach, as an integration may
    // land it.
    db.execute_unprepared(&format!(
        "UPDATE work_item SET parent_id = (SELECT id FROM work_item WHERE key = '{story}') WHERE key = '{}'",
        task.as_str().unwrap()
    ))
    .await
    .unwrap();
    let selection = format!("{PLAIN} named: title again: key parent {{ {PLAIN} alias: state }}");
    let plain = format!(
        "query($u: ID!) {{ workItems(unit: $u, first: 100) {{ nodes {{ {selection} }} }} }}"
    );
    let general = format!(
        "query($u: ID!) {{ workItems(unit: $u, first: 100) {{ nodes {{ ...F }} }} }} fragment F on WorkItem {{ {selection} }}"
    );
    let vars = json!({ "u": atlas });
    let flat = "gemba_graphql_flat_lists_total";
    for who in [ADMIN, PROGRAM, TEAM] {
        let token = app.login(who).await;
        let before = app.metric(flat).await;
        let one_pass = raw(&app, &token, &plain, vars.clone()).await;
        let between = app.metric(flat).await;
        let field_by_field = raw(&app, &token, &general, vars.clone()).await;
        assert_eq!(between - before, 1, "{who}: the plain page took one pass");
        assert_eq!(
            app.metric(flat).await,
            between,
            "{who}: the fragment did not"
        );
        assert_eq!(one_pass, field_by_field, "{who}");

        let data: Value = serde_json::from_str(&one_pass).unwrap();
        let nodes = data["data"]["workItems"]["nodes"].as_array().unwrap();
        let of = |key: &str| nodes.iter().find(|n| n["key"] == key).cloned().unwrap();
        let f = of(&full);
        assert_eq!(f["description"], "Données — 測試 ✓ \"quoted\"", "{who}");
        assert_eq!(
            (f["estimate"].clone(), f["businessValue"].clone()),
            (json!(2.5), json!(-0.125))
        );
        assert_eq!(
            (f["foundIn"].clone(), f["blocked"].clone()),
            (json!("PRODUCTION"), json!(true))
        );
        assert_eq!(f["unit"]["kind"], "TEAM", "{who}");
        let b = of(&bare);
        assert_eq!(
            (
                b["description"].clone(),
                b["estimate"].clone(),
                b["foundIn"].clone()
            ),
            (Value::Null, Value::Null, Value::Null)
        );
        let t = of(task.as_str().unwrap());
        if who == TEAM {
            assert_eq!(t["parent"], Value::Null, "{who}: {t}");
        } else {
            assert_eq!(t["parent"]["key"], story.as_str(), "{who}: {t}");
            assert_eq!(t["parent"]["unit"]["key"], "team-borealis", "{who}: {t}");
        }
        assert!(
            nodes
                .iter()
                .filter(|n| n["parent"]["key"] == full.as_str())
                .count()
                >= 1,
            "{who}: the child lists its parent"
        );
    }
}
both!(a_plain_page_answers_as_the_general_path);
