//! Flow metrics from the facts held in memory against the SQL path, the
//! reference: two servers on one database, one computing in memory (the
//! default), one in SQL (`GEMBA_ANALYTICS=sql`), answer every query of a
//! battery with identical numbers, over the hand-computed fixture and over
//! randomized histories with late and out-of-order transitions; a move
//! shows in the next metric read; and across replicas on PostgreSQL, a
//! write through one is in the other's metrics within a second, and still
//! within a few seconds when the other's listener missed the notifications.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gemba::config::{AnalyticsMode, Settings};
use serde_json::{Value, json};

use crate::both;
use crate::harness::{ADMIN, Backend, TestApp};
use crate::ingest::post_ndjson;
use crate::writes::unit_id;

/// Every field of the parts computed in memory, and the others beside.
const Q: &str = "query($u: ID!, $f: MetricFilterInput, $from: DateTime!, $to: DateTime!) {
  flowMetrics(unit: $u, window: {from: $from, to: $to}, filter: $f) {
    throughput
    throughputByFlowType { flowType count share }
    throughputByWeek { week start count }
    leadTime { count mean p50 p85 p95 min max }
    cycleTime { count mean p50 p85 p95 min max }
    flowEfficiency { numerator denominator value }
    wipAtEnd averageWip
    agingWip { count mean p50 p85 p95 min max }
    oldestWip { workItem { key } age }
    littlesLaw { averageWip predictedWip }
    timeInState { state category total perItem { count mean p50 p85 p95 min max } }
    cumulativeFlow { date counts { state count } }
  } }";

/// A drill-down: the children of a unit together (the grouped path).
const CHILDREN: &str =
    "query($k: String!, $f: MetricFilterInput, $from: DateTime!, $to: DateTime!) {
  unit(key: $k) { children { key
    flowMetrics(window: {from: $from, to: $to}, filter: $f) {
      throughput
      throughputByFlowType { flowType count }
      throughputByWeek { week count }
      leadTime { count mean p50 p85 p95 min max }
      cycleTime { count mean p50 p85 p95 min max }
      flowEfficiency { numerator denominator value }
      wipAtEnd averageWip
      agingWip { count mean p50 p85 p95 min max }
      timeInState { state category total perItem { count mean p50 p85 p95 min max } }
      cumulativeFlow { date counts { state count } }
    } } } }";

pub(crate) const TREE: &str =
    "{ organization { id key children { id key children { id key children { id key } } } } }";

/// (id, key) of every unit, the organisation first.
pub(crate) async fn units(app: &TestApp, token: &str) -> Vec<(Value, String)> {
    let data = app.ok(token, TREE, json!({})).await;
    let mut out = Vec::new();
    let mut stack = vec![data["organization"].clone()];
    while let Some(u) = stack.pop() {
        out.push((u["id"].clone(), u["key"].as_str().unwrap().to_owned()));
        if let Some(children) = u["children"].as_array() {
            stack.extend(children.iter().cloned());
        }
    }
    out
}

/// Waits until `app` answers flow metrics from memory.
pub(crate) async fn loaded(app: &TestApp) {
    for _ in 0..1200 {
        if app.metric("gemba_analytics_loaded").await == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the flow facts were not loaded in 30 s");
}

/// The battery's windows: the fixture's, and longer ones around the
/// generated histories, one ending in the past.
fn windows() -> Vec<(&'static str, &'static str)> {
    vec![
        ("2026-03-01T00:00:00Z", "2026-03-15T00:00:00Z"),
        ("2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z"),
        ("2025-06-01T00:00:00Z", "2027-06-01T00:00:00Z"),
        ("2026-02-10T12:00:00Z", "2026-02-24T06:30:00Z"),
    ]
}

fn filters() -> Vec<Value> {
    vec![
        Value::Null,
        json!({"types": ["STORY", "DEFECT"]}),
        json!({"flowTypes": ["DEFECT"]}),
        json!({"scope": "UNIT_ONLY"}),
        json!({"levels": ["TEAM"]}),
    ]
}

/// Runs the battery on both servers and requires identical answers;
/// returns how many queries ran.
async fn same_both_ways(memory: &TestApp, sql: &TestApp, token: &str) -> usize {
    let units = units(memory, token).await;
    let mut n = 0;
    for (from, to) in windows() {
        for (i, f) in filters().into_iter().enumerate() {
            // Every unit unfiltered; the organisation, a portfolio, a
            // program and teams with each filter.
            let some = if i == 0 { units.len() } else { 6 };
            for (id, key) in units.iter().take(some) {
                let vars = json!({"u": id, "f": f, "from": from, "to": to});
                let a = memory.ok(token, Q, vars.clone()).await;
                let b = sql.ok(token, Q, vars).await;
                assert_eq!(a, b, "{key} {from}..{to} {f}");
                n += 1;
            }
            for (_, key) in units.iter().take(3) {
                let vars = json!({"k": key, "f": f, "from": from, "to": to});
                let a = memory.ok(token, CHILDREN, vars.clone()).await;
                let b = sql.ok(token, CHILDREN, vars).await;
                assert_eq!(a, b, "children of {key} {from}..{to} {f}");
                n += 1;
            }
        }
    }
    n
}

/// splitmix64: small, seedable, the same everywhere.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

pub(crate) const TEAMS: &[&str] = &[
    "team-atlas",
    "team-borealis",
    "team-comet",
    "team-delta",
    "team-fjord",
    "team-iris",
];
const STATES: &[&str] = &[
    "Backlog",
    "In Progress",
    "In Review",
    "Blocked",
    "Testing",
    "Done",
    "Done",
    "Canceled",
];
const TYPES: &[&str] = &["STORY", "DEFECT", "TASK", "DEBT"];

const DAY_MS: u64 = 86_400_000;

/// Random histories in early 2026 as ingest events: each item's creation,
/// its transitions (with ties and instants at odd milliseconds) sent after
/// every creation in a shuffled order, so many arrive before earlier ones,
/// and for some items a late transition, backdated, in a batch of its own.
struct Generated {
    rng: Rng,
    first: Vec<Value>,
    moves: Vec<Value>,
    late: Vec<Value>,
}

impl Generated {
    fn new(seed: u64) -> Self {
        Self {
            rng: Rng(seed),
            first: Vec::new(),
            moves: Vec::new(),
            late: Vec::new(),
        }
    }

    fn at(ms: u64) -> String {
        let base = chrono::DateTime::parse_from_rfc3339("2026-01-05T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        (base + chrono::Duration::milliseconds(ms as i64)).to_rfc3339()
    }

    /// Creates `key` (with `data`'s unit, type and parent) and up to
    /// `most - 1` transitions.
    fn item(&mut self, key: &str, mut data: Value, most: u64) {
        let created = self.rng.below(60 * DAY_MS);
        for field in ["external_id", "key", "title"] {
            data[field] = json!(key);
        }
        data["state"] = json!("Backlog");
        data["created_at"] = json!(Self::at(created));
        self.first.push(
            json!({"id": format!("{key}-c"), "type": "work_item.upserted",
            "source": "rnd", "data": data}),
        );
        let mut t = created;
        for j in 0..self.rng.below(most) {
            // Sometimes the same instant as the previous transition.
            if self.rng.below(6) > 0 {
                t += self.rng.below(9 * DAY_MS) + self.rng.below(1000);
            }
            let state = STATES[self.rng.below(STATES.len() as u64) as usize];
            self.moves.push(
                json!({"id": format!("{key}-m{j}"), "type": "work_item.transitioned",
                "source": "rnd", "data": {"external_id": key, "to_state": state, "at": Self::at(t)}}),
            );
        }
        if self.rng.below(3) == 0 {
            let state = STATES[self.rng.below(STATES.len() as u64) as usize];
            let t = created + self.rng.below(40 * DAY_MS);
            self.late.push(
                json!({"id": format!("{key}-late"), "type": "work_item.transitioned",
                "source": "rnd", "data": {"external_id": key, "to_state": state, "at": Self::at(t)}}),
            );
        }
    }

    /// The creations and shuffled transitions, and the late transitions,
    /// as NDJSON bodies.
    fn finish(mut self) -> (String, String) {
        for i in (1..self.moves.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            self.moves.swap(i, j);
        }
        self.first.extend(self.moves);
        let lines = |v: &[Value]| v.iter().map(|e| format!("{e}\n")).collect::<String>();
        (lines(&self.first), lines(&self.late))
    }
}

/// `items` generated items of random teams and types (see [`Generated`]).
fn histories(seed: u64, items: usize) -> (String, String) {
    let mut g = Generated::new(seed);
    for i in 0..items {
        let unit = TEAMS[g.rng.below(TEAMS.len() as u64) as usize];
        let kind = TYPES[g.rng.below(TYPES.len() as u64) as usize];
        g.item(
            &format!("RND-{seed}-{i}"),
            json!({"unit": unit, "type": kind}),
            7,
        );
    }
    g.finish()
}

pub(crate) async fn a_sql_twin(app: &TestApp) -> TestApp {
    let settings = Settings {
        analytics: AnalyticsMode::Sql,
        ..Settings::default()
    };
    TestApp::serve_on(&app.db_url, app.backend, settings).await
}

async fn memory_and_sql_agree(app: TestApp) {
    let sql = a_sql_twin(&app).await;
    let admin = app.login(ADMIN).await;
    loaded(&app).await;
    let answered = app.metric("gemba_analytics_answers_total").await;

    // The demo organisation and the hand-computed fixture of the metrics
    // tests.
    let (status, report) = post_ndjson(&app, &admin, &crate::metrics::fixture()).await;
    assert_eq!((status, &report["rejected"]), (200, &json!(0)), "{report}");
    let mut n = same_both_ways(&app, &sql, &admin).await;
    // Randomized histories, sent out of order; then late transitions.
    let (histories, late) = histories(7, 120);
    let (status, report) = post_ndjson(&app, &admin, &histories).await;
    assert_eq!((status, &report["rejected"]), (200, &json!(0)), "{report}");
    n += same_both_ways(&app, &sql, &admin).await;
    let (status, report) = post_ndjson(&app, &admin, &late).await;
    assert_eq!((status, &report["rejected"]), (200, &json!(0)), "{report}");
    n += same_both_ways(&app, &sql, &admin).await;

    // The memory server answered every query's completions, WIP, time in
    // state and cumulative flow from memory, the SQL one never.
    let answered = app.metric("gemba_analytics_answers_total").await - answered;
    assert!(answered >= 4 * n as u64, "{answered} parts for {n} queries");
    assert_eq!(sql.metric("gemba_analytics_answers_total").await, 0);
    assert_eq!(sql.metric("gemba_analytics_loaded").await, 0);
}
both!(memory_and_sql_agree);

/// A move through the API is in the next flowMetrics read of the same
/// server, answered from memory: the read applies the changes published
/// before it.
async fn a_move_shows_in_the_next_read(app: TestApp) {
    let admin = app.login(ADMIN).await;
    loaded(&app).await;
    let atlas = unit_id(&app, &admin, "team-atlas").await;
    let now = chrono::Utc::now();
    let vars = json!({"u": atlas, "f": {"scope": "UNIT_ONLY"},
        "from": (now - chrono::Duration::days(1)).to_rfc3339(),
        "to": (now + chrono::Duration::days(1)).to_rfc3339()});
    let m = |v: &Value, f: &str| v["flowMetrics"][f].as_i64().unwrap();
    for round in 0..5 {
        let created = app
            .ok(
                &admin,
                "mutation($u: ID!) { createWorkItem(input: {unit: $u, type: STORY, title: \"fresh\"}) { workItem { id } } }",
                json!({"u": atlas}),
            )
            .await;
        let item = created["createWorkItem"]["workItem"]["id"].clone();
        let before = app.ok(&admin, Q, vars.clone()).await;
        let answered = app.metric("gemba_analytics_answers_total").await;
        for (state, wip, done) in [("In Progress", 1, 0), ("Done", 0, 1)] {
            app.ok(
                &admin,
                "mutation($i: ID!, $s: String!) { moveWorkItem(input: {workItem: $i, toState: $s}) { workItem { state } } }",
                json!({"i": item, "s": state}),
            )
            .await;
            let after = app.ok(&admin, Q, vars.clone()).await;
            assert_eq!(
                m(&after, "wipAtEnd"),
                m(&before, "wipAtEnd") + wip,
                "round {round}, {state}: {after}"
            );
            assert_eq!(
                m(&after, "throughput"),
                m(&before, "throughput") + done,
                "round {round}, {state}: {after}"
            );
        }
        assert!(app.metric("gemba_analytics_answers_total").await >= answered + 4);
    }
}
both!(a_move_shows_in_the_next_read);

/// Generated trees (epics, features under them, stories under those) with
/// random histories (see [`Generated`]). `lines` are (portfolio, program,
/// team) keys: an epic lives in a portfolio, its features in a program
/// below it, stories in a team.
fn trees(seed: u64, epics: usize, lines: &[[String; 3]]) -> (String, String) {
    let mut g = Generated::new(seed);
    for e in 0..epics {
        let [portfolio, program, team] = &lines[g.rng.below(lines.len() as u64) as usize];
        let epic = format!("TR{seed}-E{e}");
        g.item(&epic, json!({"unit": portfolio, "type": "EPIC"}), 6);
        for f in 0..g.rng.below(4) {
            let feature = format!("{epic}F{f}");
            g.item(
                &feature,
                json!({"unit": program, "type": "FEATURE", "parent": epic}),
                6,
            );
            for s in 0..g.rng.below(7) {
                let story = format!("{feature}S{s}");
                g.item(
                    &story,
                    json!({"unit": team, "type": "STORY", "parent": feature}),
                    6,
                );
            }
        }
    }
    g.finish()
}

const PROGRESS: &str = "query($k: String!, $at: DateTime, $i: ForecastInput) {
  workItem(key: $k) {
    delivery(asOf: $at) { total done inProgress notStarted progress }
    forecast(input: $i) {
      remaining sampleDays sampleCompleted trials p50 p85 p95 probabilityByTarget
    }
  } }";

const OBJECTIVES: &str = "query($at: DateTime!) { organization { children { key objectives { key
  delivery { total done inProgress notStarted progress }
  forecast(input: {asOf: $at, trials: 2000, seed: 5}) { remaining p50 p85 p95 probabilityByTarget }
} } } }";

/// The epics and features of the organisation: every item with children.
async fn parents(app: &TestApp, token: &str) -> Vec<String> {
    let org =
        app.ok(token, "{ organization { id } }", json!({})).await["organization"]["id"].clone();
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = app
            .ok(
                token,
                "query($o: ID!, $a: String) { workItems(unit: $o, first: 100, after: $a, filter: {types: [EPIC, FEATURE]}) {
                   nodes { key } pageInfo { hasNextPage endCursor } } }",
                json!({"o": org, "a": after}),
            )
            .await;
        let c = &page["workItems"];
        out.extend(
            c["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["key"].as_str().unwrap().to_owned()),
        );
        if c["pageInfo"]["hasNextPage"] != true {
            return out;
        }
        after = c["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
}

/// Delivery progress and "when" forecasts of every epic and feature at
/// several instants, of every objective, and every unit's "how many", on
/// both servers.
async fn progress_both_ways(memory: &TestApp, sql: &TestApp, token: &str) -> usize {
    let mut n = 0;
    let instants = [
        Some("2026-01-01T00:00:00Z"),
        Some("2026-02-01T00:00:00.123Z"),
        Some("2026-03-10T12:00:00Z"),
        Some("2026-06-01T00:00:00Z"),
        None,
    ];
    let now = chrono::Utc::now().to_rfc3339();
    for key in parents(memory, token).await {
        for at in instants {
            // Without an instant, delivery counts now and the forecast
            // starts from a fixed one (its default, now, moves on between
            // the two reads).
            let input = match at {
                Some(a) => {
                    let a = chrono::DateTime::parse_from_rfc3339(a).unwrap();
                    json!({"asOf": a.to_rfc3339(), "sampleFrom": (a - chrono::Duration::days(60)).to_rfc3339(),
                           "trials": 2000, "seed": 11})
                }
                None => json!({"asOf": now, "trials": 2000, "seed": 11}),
            };
            let vars = json!({"k": key, "at": at, "i": input});
            let a = memory.ok(token, PROGRESS, vars.clone()).await;
            let b = sql.ok(token, PROGRESS, vars).await;
            assert_eq!(a, b, "{key} at {at:?}");
            n += 1;
        }
    }
    let a = memory.ok(token, OBJECTIVES, json!({"at": now})).await;
    let b = sql.ok(token, OBJECTIVES, json!({"at": now})).await;
    assert_eq!(a, b, "objectives");
    // "How many" of every unit, over a sample in the generated histories
    // and one ending now.
    for (_, key) in units(memory, token).await {
        for input in [
            json!({"asOf": "2026-03-10T12:00:00Z", "sampleFrom": "2026-01-01T00:00:00Z", "trials": 2000, "seed": 3}),
            json!({"asOf": now, "trials": 2000, "seed": 3}),
        ] {
            let vars = json!({"k": key, "i": input});
            let a = memory.ok(token, HOW_MANY, vars.clone()).await;
            let b = sql.ok(token, HOW_MANY, vars).await;
            assert_eq!(a, b, "how many of {key} {input}");
            n += 1;
        }
    }
    n
}

const HOW_MANY: &str = "query($k: String!, $i: ForecastInput) { unit(key: $k) {
  throughputForecast(days: 30, input: $i) { days sampleDays sampleCompleted trials p50 p85 p95 }
} }";

/// Delivery progress walks the tree held in memory and counts exactly what
/// the recursive SQL counts: the demo's epics and objectives, generated
/// trees with out-of-order and late transitions, and after a reparenting
/// and a move.
async fn delivery_from_memory_and_sql_agree(app: TestApp) {
    let sql = a_sql_twin(&app).await;
    let admin = app.login(ADMIN).await;
    loaded(&app).await;
    let answered = app.metric("gemba_analytics_answers_total").await;
    let mut n = progress_both_ways(&app, &sql, &admin).await;

    let tree = app.ok(&admin, TREE, json!({})).await;
    let mut lines = Vec::new();
    for p in tree["organization"]["children"].as_array().unwrap() {
        for g in p["children"].as_array().unwrap() {
            for t in g["children"].as_array().unwrap() {
                lines.push(
                    [&p["key"], &g["key"], &t["key"]].map(|k| k.as_str().unwrap().to_owned()),
                );
            }
        }
    }
    let (trees, late) = trees(3, 12, &lines);
    let (status, report) = post_ndjson(&app, &admin, &trees).await;
    assert_eq!((status, &report["rejected"]), (200, &json!(0)), "{report}");
    let (status, report) = post_ndjson(&app, &admin, &late).await;
    assert_eq!((status, &report["rejected"]), (200, &json!(0)), "{report}");
    n += progress_both_ways(&app, &sql, &admin).await;

    // A story moves to another epic's feature, and is done.
    let id = |key: &str| {
        let key = key.to_owned();
        let app = &app;
        let admin = &admin;
        async move {
            app.ok(
                admin,
                "query($k: String!) { workItem(key: $k) { id } }",
                json!({"k": key}),
            )
            .await["workItem"]["id"]
                .clone()
        }
    };
    let keys = parents(&app, &admin).await;
    let generated: Vec<&String> = keys.iter().filter(|k| k.starts_with("TR3-")).collect();
    let mut moved = false;
    for feature in generated.iter().filter(|k| k.contains('F')) {
        let children = app
            .ok(
                &admin,
                "query($k: String!) { workItem(key: $k) { children(first: 1) { nodes { id } } } }",
                json!({"k": feature}),
            )
            .await;
        let Some(story) = children["workItem"]["children"]["nodes"][0]["id"].as_str() else {
            continue;
        };
        // Another epic's feature of the story's program.
        let epic = &feature[..feature.find('F').unwrap()];
        let mut reparented = false;
        for other in generated
            .iter()
            .filter(|k| k.contains('F') && !k.starts_with(&format!("{epic}F")))
        {
            let r = app
                .gql(
                    Some(&admin),
                    "mutation($i: ID!, $p: ID) { updateWorkItem(input: {workItem: $i, parent: $p}) { workItem { id } } }",
                    json!({"i": story, "p": id(other).await}),
                )
                .await;
            if r.get("errors").is_none() {
                reparented = true;
                break;
            }
        }
        if !reparented {
            continue;
        }
        app.ok(
            &admin,
            "mutation($i: ID!) { moveWorkItem(input: {workItem: $i, toState: \"Done\"}) { workItem { id } } }",
            json!({"i": story}),
        )
        .await;
        moved = true;
        break;
    }
    assert!(moved, "no generated feature has a story");
    n += progress_both_ways(&app, &sql, &admin).await;

    // Every delivery progress and forecast on the memory server counted its
    // leaves and its sample from memory.
    let answered = app.metric("gemba_analytics_answers_total").await - answered;
    assert!(
        answered >= 2 * n as u64,
        "{answered} answers for {n} queries"
    );
    assert_eq!(sql.metric("gemba_analytics_answers_total").await, 0);
}
both!(delivery_from_memory_and_sql_agree);

const CREATE: &str = "mutation($u: ID!) { createWorkItem(input: {unit: $u, type: STORY, title: \"fresh\"}) { workItem { id } } }";
const MOVE: &str = "mutation($i: ID!, $s: String!) { moveWorkItem(input: {workItem: $i, toState: $s}) { workItem { state } } }";

/// The organisation's id and key, a team's id, and a window around the
/// test's start.
struct Units {
    org: Value,
    key: String,
    team: Value,
    from: String,
    to: String,
}

/// What the freshness test compares between servers: the organisation's
/// and a team's flow metrics and the organisation's children's.
async fn around_now(app: &TestApp, token: &str, units: &Units) -> Value {
    let Units {
        org,
        key,
        team,
        from,
        to,
    } = units;
    let mut out = Vec::new();
    for (u, f) in [(org, Value::Null), (team, json!({"scope": "UNIT_ONLY"}))] {
        let vars = json!({"u": u, "f": f, "from": from, "to": to});
        out.push(app.ok(token, Q, vars).await);
    }
    let vars = json!({"k": key, "f": Value::Null, "from": from, "to": to});
    out.push(app.ok(token, CHILDREN, vars).await);
    let vars = json!({"u": org, "from": from, "to": to});
    out.push(app.ok(token, DELIVERY, vars).await);
    Value::Array(out)
}

/// The delivery metrics the freshness test compares.
const DELIVERY: &str = "query($u: ID!, $from: DateTime!, $to: DateTime!) {
  deliveryMetrics(unit: $u, window: {from: $from, to: $to}) {
    deployments deploymentDays leadTimeForChanges { count mean p50 }
    leadTimeBreakdown { coding review deploy } changeFailureRate { numerator }
    timeToRestore { count mean } releases itemsPerRelease } }";

/// A change of team-atlas merged an hour ago, deployed to production now
/// as deployment `name`, and an incident it caused, as NDJSON.
fn deployed(name: &str) -> String {
    let now = chrono::Utc::now();
    let hour = chrono::Duration::hours(1);
    [
        json!({"id": format!("{name}-c"), "type": "change.upserted", "source": "fr",
               "data": {"external_id": format!("{name}-pr"), "unit": "team-atlas",
                        "repository": "acme/fr", "merged_at": (now - hour).to_rfc3339()}}),
        json!({"id": format!("{name}-d"), "type": "deployment.recorded", "source": "fr",
               "data": {"external_id": name, "unit": "team-atlas", "environment": "PRODUCTION",
                        "status": "SUCCESS", "finished_at": now.to_rfc3339(),
                        "changes": [format!("{name}-pr")]}}),
        json!({"id": format!("{name}-i"), "type": "incident.opened", "source": "fr",
               "data": {"external_id": format!("{name}-inc"), "unit": "team-atlas",
                        "opened_at": now.to_rfc3339(), "severity": "SEV3", "deployment": name}}),
    ]
    .iter()
    .map(|e| format!("{e}\n"))
    .collect()
}

/// Reads `app` until it answers `want`; the time it took.
async fn until_same(
    app: &TestApp,
    token: &str,
    units: &Units,
    want: &Value,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let got = around_now(app, token, units).await;
        if &got == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "not the same after {limit:?}:\n{got}\nwanted\n{want}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Two replicas with the facts in memory on one PostgreSQL database: a
/// move or a deployment through A is in B's metrics within a second (the
/// relay); then, with every listener cut and cut again as soon as it is
/// back while A writes (so B misses the notifications), B catches up by
/// itself from the database within a few seconds, to A's numbers and the
/// SQL path's, flow and delivery metrics alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_catch_up_without_notifications() {
    let Some(a) = TestApp::spawn(Backend::Postgres).await else {
        eprintln!("GEMBA_TEST_POSTGRES_URL is not set: PostgreSQL variant skipped");
        return;
    };
    let b = a.replica().await;
    let sql = a_sql_twin(&a).await;
    let admin = a.login(ADMIN).await;
    loaded(&a).await;
    loaded(&b).await;
    let org = a.ok(&admin, "{ organization { id key } }", json!({})).await["organization"].clone();
    let atlas = unit_id(&a, &admin, "team-atlas").await;
    let now = chrono::Utc::now();
    let units = Units {
        org: org["id"].clone(),
        key: org["key"].as_str().unwrap().to_owned(),
        team: atlas.clone(),
        from: (now - chrono::Duration::days(1)).to_rfc3339(),
        to: (now + chrono::Duration::days(1)).to_rfc3339(),
    };
    let create = || async {
        a.ok(&admin, CREATE, json!({"u": atlas})).await["createWorkItem"]["workItem"]["id"].clone()
    };
    let limit = Duration::from_secs(5);

    // Through the relay.
    let first = create().await;
    let want = around_now(&a, &admin, &units).await;
    until_same(&b, &admin, &units, &want, limit).await;
    let mut relayed = Vec::new();
    for state in ["In Progress", "Done"] {
        a.ok(&admin, MOVE, json!({"i": first, "s": state})).await;
        let written = Instant::now();
        let want = around_now(&a, &admin, &units).await;
        until_same(&b, &admin, &units, &want, limit).await;
        relayed.push(written.elapsed());
    }
    let (status, _) = post_ndjson(&a, &admin, &deployed("fr-1")).await;
    assert_eq!(status, 200);
    let written = Instant::now();
    let want = around_now(&a, &admin, &units).await;
    until_same(&b, &admin, &units, &want, limit).await;
    relayed.push(written.elapsed());
    println!(
        "two moves and a deployment through replica A were in replica B's metrics after {relayed:?}"
    );
    for took in &relayed {
        assert!(*took < Duration::from_secs(1), "{relayed:?}");
    }

    // Without notifications: every listener is cut as soon as it listens
    // again, while A writes and until B has caught up.
    let cutting = Arc::new(AtomicBool::new(true));
    let cutter = {
        let (url, cutting) = (a.db_url.clone(), cutting.clone());
        tokio::spawn(async move {
            use sea_orm::ConnectionTrait;
            let db = sea_orm::Database::connect(&url).await.unwrap();
            let mut cut = 0u64;
            while cutting.load(Ordering::SeqCst) {
                let row = db
                    .query_one_raw(sea_orm::Statement::from_string(
                        db.get_database_backend(),
                        "SELECT COUNT(pg_terminate_backend(pid)) AS n FROM pg_stat_activity
                         WHERE datname = current_database() AND pid <> pg_backend_pid()
                           AND query ILIKE 'LISTEN%'",
                    ))
                    .await
                    .unwrap()
                    .unwrap();
                cut += row.try_get::<i64>("", "n").unwrap() as u64;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let _ = db.close().await;
            cut
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let caught_up = b.metric("gemba_analytics_caught_up_total").await;
    let second = create().await;
    let third = create().await;
    for (item, state) in [
        (&second, "In Progress"),
        (&third, "In Progress"),
        (&third, "In Review"),
        (&second, "Done"),
    ] {
        a.ok(&admin, MOVE, json!({"i": item, "s": state})).await;
    }
    let (status, _) = post_ndjson(&a, &admin, &deployed("fr-2")).await;
    assert_eq!(status, 200);
    let written = Instant::now();
    let want = around_now(&a, &admin, &units).await;
    until_same(&b, &admin, &units, &want, limit).await;
    let took = written.elapsed();
    cutting.store(false, Ordering::SeqCst);
    let cut = cutter.await.unwrap();
    println!(
        "with its listener cut {cut} times, replica B caught up with A's writes after {took:?}"
    );
    assert!(took <= limit, "{took:?}");
    assert!(cut >= 1, "no listener was cut");
    // B read the changed items again because the database said so.
    assert!(b.metric("gemba_analytics_caught_up_total").await >= caught_up + 2);
    assert_eq!(b.metric("gemba_analytics_behind").await, 0);
    // The same as the SQL path's.
    assert_eq!(around_now(&sql, &admin, &units).await, want);
    drop(b);
}

/// Changing an item's flow type rewrites its facts: a flow-type filter
/// counts it at once, from memory as in SQL.
async fn a_flow_type_change_shows_in_filtered_metrics(app: TestApp) {
    let sql = a_sql_twin(&app).await;
    let admin = app.login(ADMIN).await;
    loaded(&app).await;
    let atlas = unit_id(&app, &admin, "team-atlas").await;
    let now = chrono::Utc::now();
    let vars = json!({"u": atlas, "f": {"scope": "UNIT_ONLY", "flowTypes": ["DEBT"]},
        "from": (now - chrono::Duration::days(1)).to_rfc3339(),
        "to": (now + chrono::Duration::days(1)).to_rfc3339()});
    let wip = |v: &Value| v["flowMetrics"]["wipAtEnd"].as_i64().unwrap();
    let created = app.ok(&admin, CREATE, json!({"u": atlas})).await;
    let item = created["createWorkItem"]["workItem"]["id"].clone();
    app.ok(&admin, MOVE, json!({"i": item, "s": "In Progress"}))
        .await;
    let before = app.ok(&admin, Q, vars.clone()).await;
    assert_eq!(before, sql.ok(&admin, Q, vars.clone()).await);
    app.ok(
        &admin,
        "mutation($i: ID!) { updateWorkItem(input: {workItem: $i, flowType: DEBT}) { workItem { flowType } } }",
        json!({"i": item}),
    )
    .await;
    let after = app.ok(&admin, Q, vars.clone()).await;
    assert_eq!(wip(&after), wip(&before) + 1, "{after}");
    assert_eq!(after, sql.ok(&admin, Q, vars).await);
}
both!(a_flow_type_change_shows_in_filtered_metrics);

/// One request ingesting more items than the event bus holds: the store's
/// receiver loses events. On PostgreSQL the facts in memory read what they
/// named again from the database's change logs, without a reload, and the
/// next read answers from memory with the SQL path's numbers; on SQLite
/// they are reloaded and answer the same numbers once loaded.
async fn a_large_ingest_keeps_the_numbers(app: TestApp) {
    let sql = a_sql_twin(&app).await;
    let admin = app.login(ADMIN).await;
    loaded(&app).await;
    let org =
        app.ok(&admin, "{ organization { id } }", json!({})).await["organization"]["id"].clone();
    let mut g = Generated::new(23);
    for i in 0..6000 {
        let unit = TEAMS[i % TEAMS.len()];
        g.item(
            &format!("BIG-{i}"),
            json!({"unit": unit, "type": "STORY"}),
            2,
        );
    }
    let (body, _) = g.finish();
    let answered = app.metric("gemba_analytics_answers_total").await;
    let (status, report) = post_ndjson(&app, &admin, &body).await;
    assert_eq!((status, &report["rejected"]), (200, &json!(0)), "{report}");
    let vars = json!({"u": org, "f": Value::Null,
        "from": "2026-01-01T00:00:00Z", "to": "2026-06-01T00:00:00Z"});
    let first = app.ok(&admin, Q, vars.clone()).await;
    let want = sql.ok(&admin, Q, vars.clone()).await;
    assert_eq!(first, want);
    if app.backend == Backend::Postgres {
        assert!(app.metric("gemba_analytics_recovered_total").await >= 1);
        assert_eq!(app.metric("gemba_analytics_loaded").await, 1);
        assert!(app.metric("gemba_analytics_answers_total").await > answered);
    } else {
        loaded(&app).await;
        assert_eq!(app.ok(&admin, Q, vars).await, want);
    }
}
both!(a_large_ingest_keeps_the_numbers);
