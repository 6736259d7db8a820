//! Boards at every level: columns, counts, cards and feedback as each role
//! sees them; moving and reordering cards; WIP limits and policies.

use serde_json::{Value, json};

use crate::both;
use crate::harness::{ADMIN, EXEC, PROGRAM, TEAM, TestApp, code};
use crate::writes::unit_id;

/// A member of team-borealis, Atlas's sibling team in the same program.
pub const SIBLING: &str = "borealis.dev1@gemba.local";

const BOARD: &str = "query($u: ID!) { board(unit: $u) {
    unit { key } wipPolicy cardsVisible
    columns { name category wipLimit count overLimit
      cards(first: 200) { totalCount nodes { key title type flowType state rank blocked ageInState totalAge
        assignee { id } workItem { id }
        children { total done inProgress blocked oldestAge progress } } } } } }";

const MOVE: &str = "mutation($i: ID!, $s: String!, $p: CardPosition) {
    moveWorkItem(input: {workItem: $i, toState: $s, position: $p}) {
      wipLimitExceeded column { name count wipLimit overLimit } workItem { key state rank } } }";

fn column<'a>(board: &'a Value, name: &str) -> &'a Value {
    board["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no column {name} in {board}"))
}

async fn item(app: &TestApp, token: &str, key: &str) -> Value {
    app.ok(
        token,
        "query($k: String!) { workItem(key: $k) { id key state rank blocked transitions { toState } parent { key } } }",
        json!({ "k": key }),
    )
    .await["workItem"]
        .clone()
}

/// A NEW story of team-atlas whose parent feature is owned by the program.
async fn story_with_feature(app: &TestApp, token: &str) -> (Value, String) {
    let atlas = unit_id(app, token, "team-atlas").await;
    let data = app
        .ok(
            token,
            "query($u: ID!) { workItems(unit: $u, first: 100, filter: {types: [STORY], stateCategories: [NEW]}) {
                nodes { id key state parent { key unit { key } } } } }",
            json!({ "u": atlas }),
        )
        .await;
    let story = data["workItems"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["parent"]["unit"]["key"] == "payments-checkout")
        .cloned()
        .expect("the demo has an Atlas story under a Checkout feature");
    let feature = story["parent"]["key"].as_str().unwrap().to_owned();
    (story, feature)
}

async fn boards_by_role(app: TestApp) {
    let team = app.login(TEAM).await;
    let exec = app.login(EXEC).await;
    let program = app.login(PROGRAM).await;
    let sibling = app.login(SIBLING).await;
    let atlas = unit_id(&app, &team, "team-atlas").await;
    let checkout = unit_id(&app, &team, "payments-checkout").await;

    // A team member: every column of the default workflow, counts that add
    // up to the team's items, cards in rank order.
    let board = app.ok(&team, BOARD, json!({ "u": atlas })).await["board"].clone();
    assert_eq!(board["unit"]["key"], "team-atlas");
    assert_eq!(board["wipPolicy"], "WARN");
    assert_eq!(board["cardsVisible"], true);
    let names: Vec<&str> = board["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Backlog",
            "In Progress",
            "In Review",
            "Blocked",
            "Testing",
            "Done",
            "Canceled"
        ]
    );
    let own = app
        .ok(
            &team,
            "query($u: ID!) { workItems(unit: $u, filter: {scope: UNIT_ONLY}) { totalCount } }",
            json!({ "u": atlas }),
        )
        .await["workItems"]["totalCount"]
        .as_i64()
        .unwrap();
    let total: i64 = board["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["count"].as_i64().unwrap())
        .sum();
    assert_eq!(total, own);
    for c in board["columns"].as_array().unwrap() {
        let cards = c["cards"]["nodes"].as_array().unwrap();
        assert_eq!(
            cards.len() as i64,
            c["count"].as_i64().unwrap().min(200),
            "{}",
            c["name"]
        );
        let ranks: Vec<&str> = cards.iter().map(|k| k["rank"].as_str().unwrap()).collect();
        let mut sorted = ranks.clone();
        sorted.sort();
        assert_eq!(ranks, sorted, "cards of {} in rank order", c["name"]);
        for k in cards {
            assert_eq!(k["state"], c["name"]);
            let (age, total) = (
                k["ageInState"].as_f64().unwrap(),
                k["totalAge"].as_f64().unwrap(),
            );
            assert!(age >= 0.0 && total >= age - 1.0, "{k}");
        }
    }
    // Cards in the Blocked column show as blocked.
    for k in column(&board, "Blocked")["cards"]["nodes"]
        .as_array()
        .unwrap()
    {
        assert_eq!(k["blocked"], true);
    }

    // An executive: the same counts, no cards.
    let seen = app.ok(&exec, BOARD, json!({ "u": atlas })).await["board"].clone();
    assert_eq!(seen["cardsVisible"], false);
    for (a, b) in board["columns"]
        .as_array()
        .unwrap()
        .iter()
        .zip(seen["columns"].as_array().unwrap())
    {
        assert_eq!(a["count"], b["count"]);
        assert_eq!(b["cards"]["totalCount"], 0);
        assert_eq!(b["cards"]["nodes"], json!([]));
    }

    // A member of the sibling team: not their board.
    let refused = app.gql(Some(&sibling), BOARD, json!({ "u": atlas })).await;
    assert_eq!(code(&refused), "FORBIDDEN");
    assert!(refused["data"].is_null() || refused["data"]["board"].is_null());

    // The program board: the program's features with their stories' progress,
    // and the stories in one lane per team.
    let pboard = app.ok(&program, BOARD, json!({ "u": checkout })).await["board"].clone();
    let features: Vec<&Value> = pboard["columns"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["cards"]["nodes"].as_array().unwrap())
        .collect();
    assert!(!features.is_empty());
    assert!(features.iter().all(|f| f["type"] == "FEATURE"));
    assert!(
        features
            .iter()
            .any(|f| f["children"]["total"].as_i64().unwrap() > 0)
    );
    for f in &features {
        let c = &f["children"];
        assert!(c["done"].as_i64().unwrap() <= c["total"].as_i64().unwrap());
        assert!(c["inProgress"].as_i64().unwrap() <= c["total"].as_i64().unwrap());
    }
    let lanes = app
        .ok(
            &program,
            "query($u: ID!) { board(unit: $u) { lanes(itemType: STORY) { unit { key }
                columns { name count cards(first: 5) { nodes { type } } } } } }",
            json!({ "u": checkout }),
        )
        .await["board"]["lanes"]
        .clone();
    let lane_keys: Vec<&str> = lanes
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["unit"]["key"].as_str().unwrap())
        .collect();
    assert_eq!(lane_keys, ["team-atlas", "team-borealis", "team-comet"]);
    // A team member on the program board: their own team's lane only (the
    // other lanes are other teams' aggregates).
    let own_lanes = app
        .ok(
            &team,
            "query($u: ID!) { board(unit: $u) { lanes(itemType: STORY) { unit { key } } } }",
            json!({ "u": checkout }),
        )
        .await["board"]["lanes"]
        .clone();
    assert_eq!(own_lanes, json!([{ "unit": { "key": "team-atlas" } }]));
    let atlas_stories = app
        .ok(
            &team,
            "query($u: ID!) { workItems(unit: $u, filter: {types: [STORY], scope: UNIT_ONLY}) { totalCount } }",
            json!({ "u": atlas }),
        )
        .await["workItems"]["totalCount"]
        .as_i64()
        .unwrap();
    let lane_total: i64 = lanes[0]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["count"].as_i64().unwrap())
        .sum();
    assert_eq!(lane_total, atlas_stories);
    for c in lanes[0]["columns"].as_array().unwrap() {
        for k in c["cards"]["nodes"].as_array().unwrap() {
            assert_eq!(k["type"], "STORY");
        }
    }

    // A team member moves a story: the program board shows its feature's
    // progress change.
    let (story, feature) = story_with_feature(&app, &team).await;
    let progress = |b: &Value| {
        b["columns"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["cards"]["nodes"].as_array().unwrap())
            .find(|f| f["key"] == feature.as_str())
            .map(|f| f["children"].clone())
            .unwrap()
    };
    let before = progress(&pboard);
    let moved = app
        .ok(&team, MOVE, json!({ "i": story["id"], "s": "Done" }))
        .await;
    assert_eq!(moved["moveWorkItem"]["workItem"]["state"], "Done");
    let after_board = app.ok(&program, BOARD, json!({ "u": checkout })).await["board"].clone();
    let after = progress(&after_board);
    assert_eq!(
        after["done"].as_i64().unwrap(),
        before["done"].as_i64().unwrap() + 1
    );
    assert_eq!(after["total"], before["total"]);
}
both!(boards_by_role);

async fn moving_and_reordering_cards(app: TestApp) {
    let team = app.login(TEAM).await;
    let program = app.login(PROGRAM).await;
    let atlas = unit_id(&app, &team, "team-atlas").await;
    let create = "mutation($u: ID!, $t: String!) { createWorkItem(input: {unit: $u, type: STORY, title: $t}) { workItem { id key rank } } }";
    let mut ids = Vec::new();
    let mut keys = Vec::new();
    for t in ["A", "B", "C"] {
        let w = app.ok(&team, create, json!({ "u": atlas, "t": t })).await["createWorkItem"]
            ["workItem"]
            .clone();
        ids.push(w["id"].clone());
        keys.push(w["key"].as_str().unwrap().to_owned());
    }
    let backlog_ranks = |b: &Value| -> Vec<(String, String)> {
        column(b, "Backlog")["cards"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["key"].as_str().unwrap().to_owned(),
                    k["rank"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let order = |b: &Value| -> Vec<String> {
        backlog_ranks(b)
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| keys.contains(k))
            .collect()
    };
    let before = app.ok(&team, BOARD, json!({ "u": atlas })).await["board"].clone();
    assert_eq!(
        order(&before),
        [keys[0].clone(), keys[1].clone(), keys[2].clone()]
    );

    // C goes before A, in the same column: only C's rank changes.
    let moved = app
        .ok(
            &team,
            MOVE,
            json!({ "i": ids[2], "s": "Backlog", "p": { "before": ids[0] } }),
        )
        .await["moveWorkItem"]
        .clone();
    assert_eq!(moved["wipLimitExceeded"], false);
    let board = app.ok(&team, BOARD, json!({ "u": atlas })).await["board"].clone();
    assert_eq!(
        order(&board),
        [keys[2].clone(), keys[0].clone(), keys[1].clone()]
    );
    let changed: Vec<String> = backlog_ranks(&before)
        .into_iter()
        .filter(|(k, r)| !backlog_ranks(&board).contains(&(k.clone(), r.clone())))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        changed,
        [keys[2].clone()],
        "only the moved card's rank changes"
    );
    // Reordering in place records no transition.
    assert_eq!(
        item(&app, &team, &keys[2]).await["transitions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Bulk: B then A, right after C.
    let re = app
        .ok(
            &team,
            "mutation($w: [ID!]!, $p: CardPosition!) { reorderWorkItems(input: {workItems: $w, position: $p}) { workItems { key } } }",
            json!({ "w": [ids[1], ids[0]], "p": { "after": ids[2] } }),
        )
        .await;
    assert_eq!(
        re["reorderWorkItems"]["workItems"],
        json!([{ "key": keys[1] }, { "key": keys[0] }])
    );
    let board = app.ok(&team, BOARD, json!({ "u": atlas })).await["board"].clone();
    assert_eq!(
        order(&board),
        [keys[2].clone(), keys[1].clone(), keys[0].clone()]
    );

    // A card moved between two others lands between them in the new column.
    app.ok(&team, MOVE, json!({ "i": ids[0], "s": "In Progress" }))
        .await;
    app.ok(&team, MOVE, json!({ "i": ids[1], "s": "In Progress" }))
        .await;
    let m = app
        .ok(
            &team,
            MOVE,
            json!({ "i": ids[2], "s": "In Progress", "p": { "after": ids[0] } }),
        )
        .await["moveWorkItem"]["workItem"]
        .clone();
    let (ra, rb, rc) = (
        item(&app, &team, &keys[0]).await["rank"]
            .as_str()
            .unwrap()
            .to_owned(),
        item(&app, &team, &keys[1]).await["rank"]
            .as_str()
            .unwrap()
            .to_owned(),
        m["rank"].as_str().unwrap().to_owned(),
    );
    assert!(ra < rc && rc < rb, "{ra} < {rc} < {rb}");

    // Bad input changes nothing.
    let b = item(&app, &team, &keys[1]).await;
    for (vars, want) in [
        // A position card in another column.
        (
            json!({ "i": ids[1], "s": "Testing", "p": { "before": ids[0] } }),
            "BAD_USER_INPUT",
        ),
        // Both sides at once.
        (
            json!({ "i": ids[1], "s": "Testing", "p": { "before": ids[0], "after": ids[2] } }),
            "BAD_USER_INPUT",
        ),
        // A state outside the workflow.
        (json!({ "i": ids[1], "s": "Nowhere" }), "BAD_USER_INPUT"),
        // Relative to itself.
        (
            json!({ "i": ids[1], "s": "In Progress", "p": { "before": ids[1] } }),
            "BAD_USER_INPUT",
        ),
    ] {
        let body = app.gql(Some(&team), MOVE, vars.clone()).await;
        assert_eq!(code(&body), want, "{vars}: {body}");
        assert_eq!(
            item(&app, &team, &keys[1]).await,
            b,
            "{vars} wrote something"
        );
    }
    // A position card in another unit.
    let other = app
        .ok(
            &program,
            "mutation($u: ID!) { createWorkItem(input: {unit: $u, type: STORY, title: \"Elsewhere\", state: \"In Progress\"}) { workItem { id } } }",
            json!({ "u": unit_id(&app, &program, "team-borealis").await }),
        )
        .await["createWorkItem"]["workItem"]["id"]
        .clone();
    let body = app
        .gql(
            Some(&team),
            MOVE,
            json!({ "i": ids[1], "s": "In Progress", "p": { "before": other } }),
        )
        .await;
    assert!(
        ["BAD_USER_INPUT", "NOT_FOUND"].contains(&code(&body).as_str()),
        "{body}"
    );
    let body = app
        .gql(
            Some(&team),
            "mutation($w: [ID!]!, $p: CardPosition!) { reorderWorkItems(input: {workItems: $w, position: $p}) { workItems { key } } }",
            json!({ "w": [ids[0], ids[0]], "p": { "after": ids[1] } }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert_eq!(item(&app, &team, &keys[1]).await, b);
}
both!(moving_and_reordering_cards);

async fn wip_limits_and_policies(app: TestApp) {
    let team = app.login(TEAM).await;
    let program = app.login(PROGRAM).await;
    let admin = app.login(ADMIN).await;
    let atlas = unit_id(&app, &team, "team-atlas").await;
    let set_limit = "mutation($u: ID!, $s: String!, $l: Int) { setWipLimit(input: {unit: $u, state: $s, wipLimit: $l}) { column { name wipLimit count overLimit } } }";
    let set_policy = "mutation($u: ID!, $p: WipPolicy!) { setWipPolicy(input: {unit: $u, wipPolicy: $p}) { board { wipPolicy } } }";

    // Who may set limits, and what they may be.
    let body = app
        .gql(
            Some(&team),
            set_limit,
            json!({ "u": atlas, "s": "In Progress", "l": 3 }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN");
    let body = app
        .gql(
            Some(&program),
            set_limit,
            json!({ "u": atlas, "s": "In Progress", "l": -1 }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    let body = app
        .gql(
            Some(&program),
            set_limit,
            json!({ "u": atlas, "s": "Limbo", "l": 3 }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    let wallet = unit_id(&app, &team, "payments-wallet").await;
    let body = app
        .gql(
            Some(&program),
            set_limit,
            json!({ "u": wallet, "s": "In Progress", "l": 3 }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "a program manager outside scope");
    let board = app.ok(&team, BOARD, json!({ "u": atlas })).await["board"].clone();
    assert_eq!(column(&board, "In Progress")["wipLimit"], Value::Null);

    // The limit is the column's current count: one more goes over.
    let n = column(&board, "In Progress")["count"].as_i64().unwrap();
    let col = app
        .ok(
            &program,
            set_limit,
            json!({ "u": atlas, "s": "In Progress", "l": n }),
        )
        .await["setWipLimit"]["column"]
        .clone();
    assert_eq!(col["wipLimit"], n);
    assert_eq!(col["overLimit"], false);

    let create = "mutation($u: ID!, $t: String!) { createWorkItem(input: {unit: $u, type: STORY, title: $t}) { workItem { id key } } }";
    let a = app
        .ok(&team, create, json!({ "u": atlas, "t": "Over" }))
        .await["createWorkItem"]["workItem"]
        .clone();
    let b = app
        .ok(&team, create, json!({ "u": atlas, "t": "Blocked out" }))
        .await["createWorkItem"]["workItem"]
        .clone();

    // WARN: the move happens and says so.
    let moved = app
        .ok(&team, MOVE, json!({ "i": a["id"], "s": "In Progress" }))
        .await["moveWorkItem"]
        .clone();
    assert_eq!(moved["wipLimitExceeded"], true);
    assert_eq!(moved["workItem"]["state"], "In Progress");
    assert_eq!(moved["column"]["count"], n + 1);
    assert_eq!(moved["column"]["overLimit"], true);
    let board = app.ok(&team, BOARD, json!({ "u": atlas })).await["board"].clone();
    assert_eq!(column(&board, "In Progress")["overLimit"], true);

    // BLOCK: refused with CONFLICT, nothing written.
    let p = app
        .ok(&program, set_policy, json!({ "u": atlas, "p": "BLOCK" }))
        .await;
    assert_eq!(p["setWipPolicy"]["board"]["wipPolicy"], "BLOCK");
    let before = item(&app, &team, b["key"].as_str().unwrap()).await;
    let body = app
        .gql(
            Some(&team),
            MOVE,
            json!({ "i": b["id"], "s": "In Progress" }),
        )
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    assert_eq!(item(&app, &team, b["key"].as_str().unwrap()).await, before);
    // Moves to columns without a limit, and out of the full one, still work.
    app.ok(&team, MOVE, json!({ "i": b["id"], "s": "In Review" }))
        .await;
    app.ok(&team, MOVE, json!({ "i": a["id"], "s": "Testing" }))
        .await;

    // Lifting the limit (null) on this board; the admin may too.
    let col = app
        .ok(
            &admin,
            set_limit,
            json!({ "u": atlas, "s": "In Progress", "l": null }),
        )
        .await["setWipLimit"]["column"]
        .clone();
    assert_eq!(col["wipLimit"], Value::Null);
    let moved = app
        .ok(&team, MOVE, json!({ "i": b["id"], "s": "In Progress" }))
        .await["moveWorkItem"]
        .clone();
    assert_eq!(moved["wipLimitExceeded"], false);
    app.ok(&team, MOVE, json!({ "i": a["id"], "s": "In Progress" }))
        .await;

    // Blocked flag: set through updateWorkItem, shown on the card.
    let upd = app
        .ok(
            &team,
            "mutation($i: ID!) { updateWorkItem(input: {workItem: $i, blocked: true}) { workItem { blocked } } }",
            json!({ "i": a["id"] }),
        )
        .await;
    assert_eq!(upd["updateWorkItem"]["workItem"]["blocked"], true);
    let board = app.ok(&team, BOARD, json!({ "u": atlas })).await["board"].clone();
    let card = column(&board, "In Progress")["cards"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == a["key"])
        .cloned()
        .unwrap();
    assert_eq!(card["blocked"], true);
}
both!(wip_limits_and_policies);

/// Hundreds of placements at one spot use up the gap between two cards: the
/// column is re-spaced and every card keeps its order.
async fn repeated_placement_at_one_spot_keeps_order(app: TestApp) {
    let team = app.login(TEAM).await;
    let atlas = unit_id(&app, &team, "team-atlas").await;
    let create = "mutation($u: ID!, $t: String!) { createWorkItem(input: {unit: $u, type: STORY, title: $t, state: \"Testing\"}) { workItem { id key } } }";
    let mut cards = Vec::new();
    for t in ["P", "M", "N", "Q"] {
        let w = app.ok(&team, create, json!({ "u": atlas, "t": t })).await["createWorkItem"]
            ["workItem"]
            .clone();
        cards.push((w["id"].clone(), w["key"].as_str().unwrap().to_owned()));
    }
    let (p, m, n) = (&cards[0], &cards[1], &cards[2]);
    for i in 0..300 {
        let moving = if i % 2 == 0 { m } else { n };
        app.ok(
            &team,
            MOVE,
            json!({ "i": moving.0, "s": "Testing", "p": { "after": p.0 } }),
        )
        .await;
    }
    let board = app.ok(&team, BOARD, json!({ "u": atlas })).await["board"].clone();
    let testing: Vec<(String, String)> = column(&board, "Testing")["cards"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["key"].as_str().unwrap().to_owned(),
                k["rank"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mine: Vec<&str> = testing
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| cards.iter().any(|c| c.1 == *k))
        .collect();
    // The last move put N right after P, the one before it M.
    assert_eq!(mine, [&cards[0].1, &cards[2].1, &cards[1].1, &cards[3].1]);
    for (k, r) in &testing {
        assert!(r.len() <= 48, "{k} has a {}-character rank", r.len());
    }
}
both!(repeated_placement_at_one_spot_keeps_order);

/// Concurrent moves into a `BLOCK` column with one free place: one wins, the
/// others get `CONFLICT`, never an internal error, and the limit holds.
async fn concurrent_moves_respect_a_blocking_limit(app: TestApp) {
    let team = app.login(TEAM).await;
    let program = app.login(PROGRAM).await;
    let atlas = unit_id(&app, &team, "team-atlas").await;
    let create = "mutation($u: ID!, $t: String!) { createWorkItem(input: {unit: $u, type: STORY, title: $t}) { workItem { id } } }";
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(
            app.ok(
                &team,
                create,
                json!({ "u": atlas, "t": format!("Race {i}") }),
            )
            .await["createWorkItem"]["workItem"]["id"]
                .clone(),
        );
    }
    let board = app.ok(&team, BOARD, json!({ "u": atlas })).await["board"].clone();
    let n = column(&board, "In Review")["count"].as_i64().unwrap();
    app.ok(
        &program,
        "mutation($u: ID!, $l: Int) { setWipLimit(input: {unit: $u, state: \"In Review\", wipLimit: $l}) { column { name } } }",
        json!({ "u": atlas, "l": n + 1 }),
    )
    .await;
    app.ok(
        &program,
        "mutation($u: ID!) { setWipPolicy(input: {unit: $u, wipPolicy: BLOCK}) { board { wipPolicy } } }",
        json!({ "u": atlas }),
    )
    .await;
    let moves = ids.iter().map(|id| {
        let (app, team) = (&app, &team);
        async move {
            app.gql(Some(team), MOVE, json!({ "i": id, "s": "In Review" }))
                .await
        }
    });
    let results = futures::future::join_all(moves).await;
    let ok = results.iter().filter(|b| b.get("errors").is_none()).count();
    for b in results.iter().filter(|b| b.get("errors").is_some()) {
        assert_eq!(code(b), "CONFLICT", "{b}");
    }
    assert_eq!(ok, 1, "{results:?}");
    let board = app.ok(&team, BOARD, json!({ "u": atlas })).await["board"].clone();
    assert_eq!(column(&board, "In Review")["count"], n + 1);
}
both!(concurrent_moves_respect_a_blocking_limit);
