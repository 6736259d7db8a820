//! A seeded, bounded fuzz suite against a real server: documents generated
//! from the schema's own introspection, mutated documents, hostile JSON
//! bodies and query strings, and hostile WebSocket frames.
//!
//! Every answer must come within [`ANSWER_WITHIN`], never be a 5xx other
//! than 503, never carry `INTERNAL` or internal text, and the server must be
//! healthy and idle afterwards. `FUZZ_CASES` (default 1,500 per database)
//! and `FUZZ_SEED` set the run; a failure prints the seed and the case, so
//! any finding replays exactly. docs/bench/fuzz.sh runs a longer one.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::harness::{ADMIN, Backend, EXEC, PROGRAM, TEAM, TestApp};

/// Longest any one answer may take (a debug build on a shared 2-core box).
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// Text that must never reach a client.
const INTERNAL_TEXT: [&str; 9] = [
    "sqlx",
    "sea_orm",
    "SQLSTATE",
    "DbErr",
    "panicked",
    "no such table",
    "syntax error at",
    "RUST_BACKTRACE",
    "/src/",
];

/// splitmix64: small, seedable, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

#[derive(Clone, Debug)]
struct TypeRef {
    name: String,
    list: bool,
    required: bool,
}

fn type_ref(v: &Value) -> TypeRef {
    let mut t = v;
    let mut list = false;
    let required = v["kind"] == "NON_NULL";
    while t["name"].is_null() && !t["ofType"].is_null() {
        list |= t["kind"] == "LIST";
        t = &t["ofType"];
    }
    TypeRef {
        name: t["name"].as_str().unwrap_or("String").to_owned(),
        list,
        required,
    }
}

struct Field {
    name: String,
    args: Vec<(String, TypeRef)>,
    ty: TypeRef,
}

struct Type {
    kind: String,
    fields: Vec<Field>,
    enum_values: Vec<String>,
    input_fields: Vec<(String, TypeRef)>,
}

/// The schema as introspection describes it.
struct Schema {
    types: HashMap<String, Type>,
    query: String,
    mutation: String,
}

const INTROSPECTION: &str = "{ __schema { queryType { name } mutationType { name }
  types { name kind enumValues { name }
    fields { name type { ...T } args { name type { ...T } } }
    inputFields { name type { ...T } } } } }
fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }";

impl Schema {
    fn from(data: &Value) -> Schema {
        let s = &data["__schema"];
        let mut types = HashMap::new();
        for t in s["types"].as_array().unwrap() {
            let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
            let fields = list(&t["fields"])
                .iter()
                .map(|f| Field {
                    name: f["name"].as_str().unwrap().to_owned(),
                    args: list(&f["args"])
                        .iter()
                        .map(|a| (a["name"].as_str().unwrap().to_owned(), type_ref(&a["type"])))
                        .collect(),
                    ty: type_ref(&f["type"]),
                })
                .collect();
            types.insert(
                t["name"].as_str().unwrap().to_owned(),
                Type {
                    kind: t["kind"].as_str().unwrap().to_owned(),
                    fields,
                    enum_values: list(&t["enumValues"])
                        .iter()
                        .map(|e| e["name"].as_str().unwrap().to_owned())
                        .collect(),
                    input_fields: list(&t["inputFields"])
                        .iter()
                        .map(|f| (f["name"].as_str().unwrap().to_owned(), type_ref(&f["type"])))
                        .collect(),
                },
            );
        }
        Schema {
            types,
            query: s["queryType"]["name"].as_str().unwrap().to_owned(),
            mutation: s["mutationType"]["name"].as_str().unwrap().to_owned(),
        }
    }
}

/// Writes documents that mostly validate, from the schema.
struct Generator<'a> {
    schema: &'a Schema,
    rng: Rng,
    /// Ids and keys seen in answers, so that documents reach real rows.
    ids: Vec<String>,
}

const KEYS: [&str; 8] = [
    "org",
    "payments",
    "payments-checkout",
    "team-atlas",
    "team-borealis",
    "PAY-1",
    "nope",
    "",
];

impl Generator<'_> {
    fn string(&mut self) -> String {
        let s = match self.rng.below(8) {
            0..=3 => (*self.rng.pick(&KEYS)).to_owned(),
            4 => "x".repeat(self.rng.below(3000)),
            5 => "ünïcødé \u{0} \\ \" \n".to_owned(),
            6 => "2026-01-01T00:00:00Z".to_owned(),
            _ => format!("s{}", self.rng.next()),
        };
        serde_json::to_string(&s).unwrap()
    }

    fn value(&mut self, ty: &TypeRef, depth: usize) -> String {
        if ty.list && !self.rng.chance(10) {
            let n = self.rng.below(4);
            let inner = TypeRef {
                list: false,
                ..ty.clone()
            };
            let items: Vec<String> = (0..n).map(|_| self.value(&inner, depth + 1)).collect();
            return format!("[{}]", items.join(", "));
        }
        // Now and then a value of the wrong kind: validation must refuse it.
        if self.rng.chance(8) {
            return self
                .rng
                .pick(&[
                    "null", "1", "\"x\"", "[]", "{}", "true", "-1.5e308", "WRONG",
                ])
                .to_string();
        }
        let kind = self
            .schema
            .types
            .get(&ty.name)
            .map(|t| t.kind.clone())
            .unwrap_or_default();
        match (ty.name.as_str(), kind.as_str()) {
            ("ID", _) if !self.ids.is_empty() && self.rng.chance(80) => {
                let id = self.rng.pick(&self.ids).clone();
                serde_json::to_string(&id).unwrap()
            }
            ("Int", _) => self
                .rng
                .pick(&[
                    "0",
                    "1",
                    "-1",
                    "5",
                    "100",
                    "101",
                    "2147483647",
                    "-2147483648",
                    "3650",
                    "100000",
                ])
                .to_string(),
            ("Float", _) => self.rng.pick(&["0.0", "1.5", "-3", "1e300"]).to_string(),
            ("Boolean", _) => self.rng.pick(&["true", "false"]).to_string(),
            ("DateTime", _) => self
                .rng
                .pick(&[
                    "\"2026-01-01T00:00:00Z\"",
                    "\"2025-06-01T00:00:00Z\"",
                    "\"1970-01-01T00:00:00Z\"",
                    "\"9999-12-31T23:59:59Z\"",
                    "\"yesterday\"",
                ])
                .to_string(),
            ("JSON", _) => self
                .rng
                .pick(&[
                    "{}",
                    "[]",
                    "{a: 1}",
                    "\"x\"",
                    "null",
                    "{type: \"unit.upserted\", id: \"f\", data: {}}",
                ])
                .to_string(),
            (_, "ENUM") => {
                let values = self.schema.types[&ty.name].enum_values.clone();
                if values.is_empty() || self.rng.chance(5) {
                    "NOT_A_VALUE".to_owned()
                } else {
                    self.rng.pick(&values).clone()
                }
            }
            (_, "INPUT_OBJECT") if depth < 4 => {
                let fields = self.schema.types[&ty.name].input_fields.clone();
                let mut parts = Vec::new();
                for (n, t) in &fields {
                    if t.required || self.rng.chance(40) {
                        parts.push(format!("{n}: {}", self.value(t, depth + 1)));
                    }
                }
                format!("{{{}}}", parts.join(", "))
            }
            _ => self.string(),
        }
    }

    fn selection(&mut self, type_name: &str, depth: usize) -> String {
        let Some(t) = self.schema.types.get(type_name) else {
            return "__typename".into();
        };
        if t.fields.is_empty() || depth > 4 {
            return "__typename".into();
        }
        let n = 1 + self.rng.below(4);
        let mut parts = Vec::new();
        for _ in 0..n {
            let f = &t.fields[self.rng.below(t.fields.len())];
            if f.name == "logout" {
                continue;
            }
            let (name, field_args, field_ty) = (f.name.clone(), f.args.clone(), f.ty.clone());
            let mut args = Vec::new();
            for (n, ty) in &field_args {
                if ty.required || self.rng.chance(40) {
                    args.push(format!("{n}: {}", self.value(ty, 0)));
                }
            }
            let mut text = name;
            if !args.is_empty() {
                text.push_str(&format!("({})", args.join(", ")));
            }
            let sub_kind = self
                .schema
                .types
                .get(&field_ty.name)
                .map(|t| t.kind.clone())
                .unwrap_or_default();
            if matches!(sub_kind.as_str(), "OBJECT" | "INTERFACE" | "UNION") {
                let inner = if sub_kind == "OBJECT" {
                    self.selection(&field_ty.name, depth + 1)
                } else {
                    "__typename".into()
                };
                text.push_str(&format!(" {{ {inner} }}"));
            }
            parts.push(text);
        }
        if parts.is_empty() {
            parts.push("__typename".into());
        }
        parts.join(" ")
    }

    fn document(&mut self) -> String {
        if self.rng.chance(25) {
            let m = self.schema.mutation.clone();
            format!("mutation {{ {} }}", self.selection(&m, 0))
        } else {
            let q = self.schema.query.clone();
            format!("{{ {} }}", self.selection(&q, 0))
        }
    }

    /// A document with its text damaged.
    fn mutate(&mut self, doc: &str) -> String {
        let mut chars: Vec<char> = doc.chars().collect();
        for _ in 0..1 + self.rng.below(4) {
            let at = self.rng.below(chars.len() + 1);
            match self.rng.below(5) {
                0 if !chars.is_empty() => {
                    let end = (at + self.rng.below(10)).min(chars.len());
                    chars.drain(at.min(end)..end);
                }
                1 => {
                    let token = *self.rng.pick(&[
                        "{",
                        "}",
                        "[",
                        "]",
                        "(",
                        ")",
                        "...",
                        "...F",
                        "$v",
                        "@skip(if: true)",
                        "@include(if: $x)",
                        "\"",
                        "\"\"\"",
                        "#",
                        ":",
                        "fragment F on Query { __typename }",
                        "query",
                        "subscription",
                        "a: ",
                        "\u{0}",
                        "\u{feff}",
                        "é",
                    ]);
                    for (i, c) in token.chars().enumerate() {
                        chars.insert((at + i).min(chars.len()), c);
                    }
                }
                2 if !chars.is_empty() => {
                    let end = (at + 1 + self.rng.below(30)).min(chars.len());
                    let start = at.min(end);
                    let piece: Vec<char> = chars[start..end].to_vec();
                    for (i, c) in piece.into_iter().enumerate() {
                        chars.insert((end + i).min(chars.len()), c);
                    }
                }
                3 => {
                    let depth = self.rng.below(200);
                    let open = self.rng.pick(&["[", "{", "("]).to_string();
                    for _ in 0..depth {
                        chars.insert(at.min(chars.len()), open.chars().next().unwrap_or('['));
                    }
                }
                _ => chars.truncate(at),
            }
        }
        chars.into_iter().collect()
    }
}

/// A hostile request body or query string, and its content type.
fn hostile_body(rng: &mut Rng, doc: &str) -> (Vec<u8>, &'static str) {
    let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    let body = match rng.below(15) {
        0 => json!([{ "query": doc }, { "query": doc }]).to_string(),
        1 => json!({ "query": 5 }).to_string(),
        2 => json!({ "query": doc, "variables": [1, 2] }).to_string(),
        3 => json!({ "query": doc, "operationName": {"a": 1} }).to_string(),
        4 => json!({ "query": doc, "extensions": { "persistedQuery": { "version": 2, "sha256Hash": "x" } } }).to_string(),
        5 => json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": "00" } } }).to_string(),
        6 => format!(r#"{{"query": "query($v: JSON) {{ __typename }}", "variables": {{"v": {}}}}}"#, deep(rng.below(300))),
        7 => {
            let mut b = json!({ "query": doc }).to_string().into_bytes();
            b.truncate(rng.below(b.len() + 1));
            return (b, "application/json");
        }
        8 => return (vec![0xff, 0xfe, b'{', 0xc3, 0x28], "application/json"),
        9 => return (json!({ "query": doc }).to_string().into_bytes(), "text/plain"),
        10 => json!({ "query": doc, "variables": { "u": "x".repeat(rng.below(100_000)) } }).to_string(),
        11 => "null".to_owned(),
        12 => json!({ "query": doc, "query2": doc, "variables": null, "extensions": null }).to_string(),
        13 => {
            // A fragment bomb of 20 to 60 levels.
            let levels = 20 + rng.below(41);
            let mut bomb = String::from("fragment F0 on Query { __typename }");
            for i in 1..=levels {
                bomb.push_str(&format!(" fragment F{i} on Query {{ ...F{p} ...F{p} }}", p = i - 1));
            }
            bomb.push_str(&format!(" {{ ...F{levels} }}"));
            json!({ "query": bomb }).to_string()
        }
        _ => format!("{{\"query\": {}}}", serde_json::to_string(&deep(rng.below(5000))).unwrap()),
    };
    (body.into_bytes(), "application/json")
}

/// What one answer must not be.
fn check_answer(case: &str, status: u16, body: &str, took: Duration) {
    assert!(
        status < 500 || status == 503,
        "{case}: HTTP {status}: {body:.300}"
    );
    assert!(took < ANSWER_WITHIN, "{case}: answered in {took:?}");
    assert!(
        !body.contains("\"INTERNAL\""),
        "{case}: INTERNAL: {body:.300}"
    );
    for t in INTERNAL_TEXT {
        assert!(!body.contains(t), "{case}: `{t}` in {body:.300}");
    }
}

/// CPU seconds used by this process's threads named `name`: the runtime
/// the fuzzed server runs on (other tests run in other threads).
fn cpu_seconds(name: &str) -> f64 {
    let mut total = 0.0;
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if head.split_once('(').map(|(_, comm)| comm) != Some(name) {
            continue;
        }
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // utime and stime: fields 14 and 15 of the line, 12 and 13 after `)`.
        total += (ticks(11) + ticks(12)) / 100.0;
    }
    total
}

fn ids_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "id"
                    && let Some(s) = x.as_str()
                    && out.len() < 500
                    && !out.iter().any(|o| o == s)
                {
                    out.push(s.to_owned());
                }
                ids_in(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| ids_in(x, out)),
        _ => {}
    }
}

async fn http_case(app: &TestApp, fz: &mut Generator<'_>, token: Option<&str>, case: &str) {
    let doc = fz.document();
    let kind = fz.rng.below(10);
    let started = Instant::now();
    let mut req = match kind {
        // Generated documents, as they are.
        0..=4 => app
            .client
            .post(app.url("/graphql"))
            .header("content-type", "application/json")
            .body(json!({ "query": doc }).to_string()),
        // Damaged documents.
        5..=6 => {
            let bad = fz.mutate(&doc);
            app.client
                .post(app.url("/graphql"))
                .header("content-type", "application/json")
                .body(json!({ "query": bad }).to_string())
        }
        // Hostile bodies.
        7..=8 => {
            let (body, ct) = hostile_body(&mut fz.rng, &doc);
            app.client
                .post(app.url("/graphql"))
                .header("content-type", ct)
                .body(body)
        }
        // GET, damaged or not.
        _ => {
            let q = if fz.rng.chance(50) {
                fz.mutate(&doc)
            } else {
                doc.clone()
            };
            app.client
                .get(app.url("/graphql"))
                .query(&[("query", q.as_str()), ("variables", "{\"a\": [[1]]}")])
        }
    };
    if fz.rng.chance(50) {
        req = req.header("accept", "application/graphql-response+json");
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = match req.send().await {
        Ok(r) => r,
        // A URL too long for the client never reached the server.
        Err(e) if e.is_builder() => return,
        Err(e) => panic!("{case}: no answer: {e}"),
    };
    let status = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    check_answer(case, status, &text, started.elapsed());
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        ids_in(&v["data"], &mut fz.ids);
    }
}

async fn ws_case(app: &TestApp, fz: &mut Generator<'_>, token: &str, case: &str) {
    let url = app.url("/graphql/ws").replace("http://", "ws://");
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let Ok((mut socket, _)) = tokio_tungstenite::connect_async(req).await else {
        panic!("{case}: the WebSocket did not open");
    };
    let init = json!({"type": "connection_init", "payload": {"token": token}}).to_string();
    for _ in 0..1 + fz.rng.below(5) {
        let doc = fz.document();
        let msg = match fz.rng.below(12) {
            0 | 1 => Message::Text(init.clone().into()),
            2..=4 => {
                let q = if fz.rng.chance(40) {
                    fz.mutate(&doc)
                } else {
                    doc.replacen(
                        '{',
                        "subscription { workItemEvents(unit: \"x\") { kind } ",
                        0,
                    )
                };
                let id = fz.rng.below(3).to_string();
                Message::Text(
                    json!({"type": "subscribe", "id": id, "payload": {"query": q}})
                        .to_string()
                        .into(),
                )
            }
            5 => Message::Text(json!({"type": "complete", "id": "0"}).to_string().into()),
            6 => Message::Text(json!({"type": "ping"}).to_string().into()),
            7 => Message::Binary(vec![1, 2, 3].into()),
            8 => Message::Text(fz.mutate(&init).into()),
            9 => Message::Text(
                json!({"type": "subscribe", "id": 5, "payload": null})
                    .to_string()
                    .into(),
            ),
            10 => Message::Ping(vec![0; fz.rng.below(200)].into()),
            _ => Message::Text("x".repeat(fz.rng.below(400_000)).into()),
        };
        if socket.send(msg).await.is_err() {
            break;
        }
    }
    // Read until the server closes or goes quiet; every message must be sane.
    let started = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_millis(300), socket.next()).await {
            Err(_) | Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(Message::Text(t)))) => {
                check_answer(case, 200, t.as_str(), started.elapsed());
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                if let Some(f) = frame {
                    let code = u16::from(f.code);
                    assert!(
                        matches!(code, 1000 | 1002 | 1007 | 1009 | 1013 | 4400..=4499),
                        "{case}: closed with {code}"
                    );
                }
                break;
            }
            Ok(Some(Ok(_))) => {}
        }
        assert!(
            started.elapsed() < ANSWER_WITHIN,
            "{case}: endless messages"
        );
    }
    let _ = socket.close(None).await;
}

async fn fuzz(backend: Backend, threads: &str) {
    let settings = gemba::config::Settings {
        // Coverage, not budgets: the fuzzer would spend them in seconds.
        budget_points: 0,
        login_failures_per_email: 1000,
        login_failures_per_address: 100_000,
        ..Default::default()
    };
    let Some(app) = TestApp::spawn_with(backend, settings).await else {
        return;
    };
    let cases: usize = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6e6b_6261);
    let mut tokens = vec![None];
    for who in [TEAM, PROGRAM, EXEC, ADMIN] {
        tokens.push(Some(app.login(who).await));
    }
    let admin = tokens[4].clone().unwrap_or_default();
    let introspection = app.ok(&admin, INTROSPECTION, json!({})).await;
    let schema = Schema::from(&introspection);
    let mut fz = Generator {
        schema: &schema,
        rng: Rng(seed),
        ids: Vec::new(),
    };
    let started = Instant::now();
    for i in 0..cases {
        let case = format!("{backend:?} seed {seed} case {i}");
        let token = fz.rng.pick(&tokens).clone();
        if fz.rng.chance(8) {
            let t = token.clone().unwrap_or_else(|| admin.clone());
            ws_case(&app, &mut fz, &t, &case).await;
        } else {
            http_case(&app, &mut fz, token.as_deref(), &case).await;
        }
    }
    eprintln!(
        "fuzz {backend:?}: {cases} cases in {:?}, {} ids reached",
        started.elapsed(),
        fz.ids.len()
    );
    // Healthy, and idle a second after the last answer.
    let (status, body) = app.post(None, "{ __typename }", json!({})).await;
    assert_eq!(
        (status, body["data"]["__typename"].as_str()),
        (200, Some("Query"))
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_seconds(threads);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let busy = cpu_seconds(threads) - before;
    assert!(
        busy < 0.25,
        "the server used {busy} s of CPU in the idle second"
    );
}

/// Runs the suite on a runtime of its own, whose threads are named so that
/// their CPU time can be told from other tests'.
fn run(backend: Backend, threads: &str) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(threads)
        .enable_all()
        .build()
        .unwrap()
        .block_on(fuzz(backend, threads));
}

#[test]
fn fuzz_sqlite() {
    run(Backend::Sqlite, "fuzz-sqlite");
}

#[test]
fn fuzz_postgres() {
    run(Backend::Postgres, "fuzz-postgres");
}
