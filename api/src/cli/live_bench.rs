//! `gemba bench live`: many subscribers on one running server and a steady
//! stream of moves; reports event-to-delivery latency and the server's
//! memory. Run it through `docs/bench/live.sh`, which starts the server.
//!
//! Every subscriber is its own WebSocket connection, initialised with the
//! program manager's token and subscribed to `workItemEvents` of the demo's
//! `payments-checkout` program; a team member of `team-atlas` moves stories
//! at a fixed rate. Latency is the delivery instant minus the event's `at`
//! (when the server published it), on the same clock.
//!
//! With `--flow-metrics`, the subscribers are the executive's, subscribed to
//! `flowMetricsUpdates` (30 days) of the organisation, the `payments`
//! portfolio and `team-atlas` in turn, each of which every move touches.
//! A move's latency, per subscriber, is the delivery instant of the first
//! message computed after the move's response came back (its `window.to`
//! is when the server computed it) minus that response's instant: it
//! includes the up-to-a-second coalescing of live metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use chrono::{DateTime, Utc};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The server's `/graphql` URL.
    pub url: String,
    /// The demo logins' password.
    pub password: String,
    pub subscribers: usize,
    /// Moves per second.
    pub rate: f64,
    pub seconds: u64,
    /// The server's process id, to read its memory.
    pub server_pid: Option<u32>,
    /// Subscribe to `flowMetricsUpdates` of the organisation, a portfolio
    /// and a team instead of `workItemEvents` of a program.
    pub flow_metrics: bool,
    /// Events per second posted to `/ingest` while the moves run.
    pub ingest_rate: u32,
}

const ITEM_EVENTS: &str =
    "subscription($u: ID!) { workItemEvents(unit: $u) { kind at workItem { key state } } }";
const FLOW_METRICS: &str = "subscription($u: ID!) { flowMetricsUpdates(unit: $u, lastDays: 30) {
    window { to } throughput wipAtEnd averageWip leadTime { p50 p85 } cycleTime { p50 p85 } } }";

/// What it measured.
#[derive(Debug)]
pub struct Report {
    pub subscribers: usize,
    pub moves: u64,
    pub expected: u64,
    pub delivered: u64,
    pub lagged: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Resident memory of the server at the end, and its peak, in MiB.
    pub server_rss_mib: Option<(f64, f64)>,
    pub connect_seconds: f64,
    /// Events the server applied from the ingest stream.
    pub ingested: u64,
}

async fn gql(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    query: &str,
    vars: Value,
) -> anyhow::Result<Value> {
    let mut req = http
        .post(url)
        .json(&json!({ "query": query, "variables": vars }));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let body: Value = req.send().await?.json().await?;
    if let Some(e) = body.get("errors") {
        bail!("GraphQL errors: {e}");
    }
    Ok(body["data"].clone())
}

async fn login(http: &reqwest::Client, url: &str, email: &str, pw: &str) -> anyhow::Result<String> {
    let d = gql(
        http,
        url,
        None,
        "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { token } }",
        json!({ "e": email, "p": pw }),
    )
    .await?;
    d["login"]["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("login of {email} failed"))
}

async fn unit_id(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    key: &str,
) -> anyhow::Result<Value> {
    let d = gql(
        http,
        url,
        Some(token),
        "query($k: String!) { unit(key: $k) { id } }",
        json!({ "k": key }),
    )
    .await?;
    Ok(d["unit"]["id"].clone())
}

/// The `at` of a `next` message, read without parsing the whole message.
fn event_at(text: &str) -> Option<DateTime<Utc>> {
    let start = text.find("\"at\":\"")? + 6;
    let end = start + text[start..].find('"')?;
    DateTime::parse_from_rfc3339(&text[start..end])
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

struct Shared {
    latencies: Mutex<Vec<u32>>,
    delivered: AtomicU64,
    lagged: AtomicU64,
    /// Live metrics: each subscriber's messages, as (computed at, delivered
    /// at), in order.
    pushes: Mutex<Vec<Pushes>>,
}

/// One subscriber's live metrics messages: (computed at, delivered at).
type Pushes = Vec<(DateTime<Utc>, DateTime<Utc>)>;

/// `window.to` of a live metrics message: when the server computed it.
fn computed_at(text: &str) -> Option<DateTime<Utc>> {
    let v: Value = serde_json::from_str(text).ok()?;
    let to = v["payload"]["data"]["flowMetricsUpdates"]["window"]["to"].as_str()?;
    DateTime::parse_from_rfc3339(to)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// One subscriber: connects, subscribes, then records latencies until
/// `stop`.
async fn subscriber(
    ws_url: String,
    token: String,
    unit: Value,
    flow_metrics: bool,
    shared: Arc<Shared>,
    ready: tokio::sync::mpsc::Sender<anyhow::Result<()>>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let setup = async {
        let mut req = ws_url.as_str().into_client_request()?;
        req.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("graphql-transport-ws"),
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(req).await?;
        socket
            .send(Message::Text(
                json!({"type": "connection_init", "payload": {"token": token}})
                    .to_string()
                    .into(),
            ))
            .await?;
        match socket.next().await {
            Some(Ok(Message::Text(t))) if t.contains("connection_ack") => {}
            other => bail!("no connection_ack: {other:?}"),
        }
        socket
            .send(Message::Text(
                json!({"type": "subscribe", "id": "1", "payload": {
                    "query": if flow_metrics { FLOW_METRICS } else { ITEM_EVENTS },
                    "variables": {"u": unit}
                }})
                .to_string()
                .into(),
            ))
            .await?;
        Ok(socket)
    };
    let mut socket = match setup.await {
        Ok(s) => {
            let _ = ready.send(Ok(())).await;
            s
        }
        Err(e) => {
            let _ = ready.send(Err(e)).await;
            return;
        }
    };
    let mut local = Vec::new();
    let mut pushes = Vec::new();
    let mut stop = stop;
    loop {
        tokio::select! {
            msg = socket.next() => {
                let Some(Ok(msg)) = msg else { break };
                let Message::Text(text) = msg else { continue };
                if text.contains("\"type\":\"ping\"") {
                    let _ = socket.send(Message::Text(json!({"type": "pong"}).to_string().into())).await;
                    continue;
                }
                if text.contains("\"LAGGED\"") {
                    shared.lagged.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if flow_metrics {
                    if let Some(at) = computed_at(text.as_str()) {
                        pushes.push((at, Utc::now()));
                    }
                    continue;
                }
                if let Some(at) = event_at(text.as_str()) {
                    let ms = (Utc::now() - at).num_microseconds().unwrap_or(0).max(0) / 100;
                    local.push(u32::try_from(ms).unwrap_or(u32::MAX));
                    shared.delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ = stop.changed() => break,
        }
    }
    shared.latencies.lock().await.extend(local);
    if flow_metrics {
        shared.pushes.lock().await.push(pushes);
    }
    let _ = socket.close(None).await;
}

/// For each move and each subscriber: the first of the subscriber's
/// messages computed after the move: when it was delivered. Returns the latencies
/// (in tenths of a millisecond) and how many (move, subscriber) pairs got a
/// message.
fn move_latencies(moved_at: &[DateTime<Utc>], pushes: &[Pushes]) -> (Vec<u32>, u64) {
    let mut out = Vec::new();
    for mine in pushes {
        for moved in moved_at {
            let i = mine.partition_point(|(computed, _)| computed <= moved);
            if let Some((_, delivered)) = mine.get(i) {
                let tenths = (*delivered - *moved).num_microseconds().unwrap_or(0).max(0) / 100;
                out.push(u32::try_from(tenths).unwrap_or(u32::MAX));
            }
        }
    }
    let delivered = out.len() as u64;
    (out, delivered)
}

fn rss_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
    };
    Some((kb("VmRSS:")? / 1024.0, kb("VmHWM:")? / 1024.0))
}

/// Runs the benchmark.
///
/// # Errors
/// When the server cannot be reached or a subscriber cannot connect.
pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    let http = reqwest::Client::new();
    let url = opts.url.as_str();
    let watcher_email = if opts.flow_metrics {
        "exec@gemba.local"
    } else {
        "program@gemba.local"
    };
    let watcher = login(&http, url, watcher_email, &opts.password).await?;
    let mover = login(&http, url, "team@gemba.local", &opts.password).await?;
    let watched_keys: &[&str] = if opts.flow_metrics {
        &["org", "payments", "team-atlas"]
    } else {
        &["payments-checkout"]
    };
    let mut watched = Vec::new();
    for key in watched_keys {
        watched.push(unit_id(&http, url, &watcher, key).await?);
    }
    let atlas = unit_id(&http, url, &mover, "team-atlas").await?;
    let stories = gql(
        &http,
        url,
        Some(&mover),
        "query($u: ID!) { workItems(unit: $u, first: 20, filter: {types: [STORY], scope: UNIT_ONLY}) { nodes { id } } }",
        json!({ "u": atlas }),
    )
    .await?["workItems"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if stories.is_empty() {
        bail!("team-atlas has no stories to move");
    }

    let ws_url = format!(
        "{}/ws",
        url.replacen("http://", "ws://", 1).trim_end_matches('/')
    );
    let shared = Arc::new(Shared {
        latencies: Mutex::new(Vec::new()),
        delivered: AtomicU64::new(0),
        lagged: AtomicU64::new(0),
        pushes: Mutex::new(Vec::new()),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(opts.subscribers.max(1));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(opts.subscribers);
    for i in 0..opts.subscribers {
        tasks.push(tokio::spawn(subscriber(
            ws_url.clone(),
            watcher.clone(),
            watched[i % watched.len()].clone(),
            opts.flow_metrics,
            shared.clone(),
            ready_tx.clone(),
            stop_rx.clone(),
        )));
        // Connect in waves, as a crowd of browsers would.
        if i % 250 == 249 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    drop(ready_tx);
    for _ in 0..opts.subscribers {
        match ready_rx.recv().await {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(e.context("a subscriber could not connect")),
            None => bail!("subscribers vanished"),
        }
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        subscribers = opts.subscribers,
        seconds = connect_seconds,
        "all subscribed"
    );
    // Let the subscriptions register before the first move.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let ingest = if opts.ingest_rate > 0 {
        // The admin may ingest.
        let token = login(&http, url, "admin@gemba.local", &opts.password).await?;
        Some(tokio::spawn(ingest_stream(
            http.clone(),
            url.replacen("/graphql", "/ingest", 1),
            token,
            opts.ingest_rate,
            stop_rx.clone(),
        )))
    } else {
        None
    };

    let states = ["In Progress", "In Review", "Testing", "Backlog"];
    let interval = Duration::from_secs_f64(1.0 / opts.rate.max(0.01));
    let mut ticker = tokio::time::interval(interval);
    let total = (opts.rate * opts.seconds as f64).round() as u64;
    let mut moves = 0u64;
    let mut moved_at = Vec::new();
    let mut step = 0usize;
    while moves < total {
        ticker.tick().await;
        let story = &stories[step % stories.len()]["id"];
        let state = states[(step / stories.len()) % states.len()];
        step += 1;
        let r = gql(
            &http,
            url,
            Some(&mover),
            "mutation($i: ID!, $s: String!) { moveWorkItem(input: {workItem: $i, toState: $s}) { workItem { state } } }",
            json!({ "i": story, "s": state }),
        )
        .await;
        match r {
            Ok(_) => {
                moves += 1;
                moved_at.push(Utc::now());
            }
            Err(e) => tracing::warn!(error = %e, "a move failed"),
        }
    }
    // Deliveries in flight.
    let expected = moves * opts.subscribers as u64;
    let drain = Instant::now();
    let wait = if opts.flow_metrics {
        // The last change's message comes within a second or so.
        Duration::from_secs(3)
    } else {
        Duration::from_secs(10)
    };
    while (opts.flow_metrics || shared.delivered.load(Ordering::Relaxed) < expected)
        && drain.elapsed() < wait
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let server_rss_mib = opts.server_pid.and_then(rss_mib);
    let _ = stop_tx.send(true);
    let ingested = match ingest {
        Some(task) => task.await??,
        None => 0,
    };
    for t in tasks {
        let _ = t.await;
    }
    if opts.flow_metrics {
        let pushes = std::mem::take(&mut *shared.pushes.lock().await);
        let (lat, delivered) = move_latencies(&moved_at, &pushes);
        shared.latencies.lock().await.extend(lat);
        shared.delivered.store(delivered, Ordering::Relaxed);
    }
    let mut lat = std::mem::take(&mut *shared.latencies.lock().await);
    lat.sort_unstable();
    let pick = |q: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() - 1) as f64 * q).round() as usize;
        f64::from(lat[i.min(lat.len() - 1)]) / 10.0
    };
    Ok(Report {
        subscribers: opts.subscribers,
        moves,
        expected,
        delivered: shared.delivered.load(Ordering::Relaxed),
        lagged: shared.lagged.load(Ordering::Relaxed),
        p50_ms: pick(0.50),
        p95_ms: pick(0.95),
        p99_ms: pick(0.99),
        max_ms: pick(1.0),
        server_rss_mib,
        connect_seconds,
        ingested,
    })
}

/// Posts `rate` events a second to `/ingest` until told to stop: new
/// stories of team-atlas, each created then moved along, as NDJSON batches
/// of one second's events. Returns the events applied.
async fn ingest_stream(
    http: reqwest::Client,
    url: String,
    token: String,
    rate: u32,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<u64> {
    let run = Utc::now().timestamp_millis();
    let states = ["In Progress", "In Review", "Testing", "Done"];
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let (mut n, mut applied) = (0u64, 0u64);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return Ok(applied),
        }
        let mut body = String::new();
        for _ in 0..rate {
            // Five events per story: its creation and four moves.
            let (story, step) = (n / 5, n % 5);
            let key = format!("LIVE-{run}-{story}");
            let now = Utc::now().to_rfc3339();
            let event = if step == 0 {
                json!({"id": format!("{key}-c"), "type": "work_item.upserted", "source": "live-bench",
                       "data": {"external_id": key, "key": key, "title": key, "unit": "team-atlas",
                                "type": "STORY", "state": "Backlog", "created_at": now}})
            } else {
                json!({"id": format!("{key}-m{step}"), "type": "work_item.transitioned",
                       "source": "live-bench",
                       "data": {"external_id": key, "to_state": states[(step - 1) as usize], "at": now}})
            };
            body.push_str(&event.to_string());
            body.push('\n');
            n += 1;
        }
        let report: Value = http
            .post(&url)
            .bearer_auth(&token)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        applied += report["applied"].as_u64().unwrap_or(0);
    }
}

/// The report as Markdown.
pub fn table(r: &Report, opts: &Options) -> String {
    let rss = r.server_rss_mib.map_or("n/a".to_owned(), |(now, peak)| {
        format!("{now:.0} MiB (peak {peak:.0} MiB)")
    });
    let ingested = if opts.ingest_rate > 0 {
        format!(
            "{} events ingested beside the moves ({} a second asked).\n",
            r.ingested, opts.ingest_rate
        )
    } else {
        String::new()
    };
    ingested
        + &format!(
            "| subscribers | moves/s | moves | deliveries (expected) | lagged | p50 | p95 | p99 | max | server RSS |\n\
         |---|---|---|---|---|---|---|---|---|---|\n\
         | {} | {} | {} | {} ({}) | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {} |\n\n\
         {} connections opened and subscribed to {} in {:.1} s.\n",
            r.subscribers,
            opts.rate,
            r.moves,
            r.delivered,
            r.expected,
            r.lagged,
            r.p50_ms,
            r.p95_ms,
            r.p99_ms,
            r.max_ms,
            rss,
            r.subscribers,
            if opts.flow_metrics {
                "flowMetricsUpdates of org, payments and team-atlas (a third each)"
            } else {
                "workItemEvents of payments-checkout"
            },
            r.connect_seconds
        )
}
