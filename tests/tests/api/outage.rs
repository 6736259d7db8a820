//! A database outage, on a PostgreSQL this test starts and stops itself:
//! `/readyz` says 503 within a second, requests answer 503 `UNAVAILABLE`
//! with `Retry-After` within the pool's timeout, ingest writes nothing,
//! subscriptions stay open, and everything recovers when the database does.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{ADMIN, Backend, PASSWORD, TEAM, TestApp, code};
use crate::writes::unit_id;
use crate::ws::Ws;

/// A PostgreSQL cluster of the test's own, in a temporary directory.
struct OwnPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// Run its commands as `postgres` (PostgreSQL refuses to run as root).
    as_postgres: bool,
}

fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl OwnPostgres {
    /// `None` where PostgreSQL's server binaries are not installed.
    fn start() -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .find(|b| b.join("pg_ctl").exists())?;
        let as_postgres = output(Command::new("id").arg("-u")) == "0";
        let dir = tempfile::tempdir().unwrap();
        if as_postgres {
            let uid: u32 = output(Command::new("id").args(["-u", "postgres"]))
                .parse()
                .unwrap();
            let gid: u32 = output(Command::new("id").args(["-g", "postgres"]))
                .parse()
                .unwrap();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = Self {
            dir,
            bin,
            port,
            as_postgres,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        pg.up();
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = cmd.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{} {args:?}: {}",
            program.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn up(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40",
            self.port,
            self.dir.path().display()
        );
        let log = Path::new(&self.dir.path())
            .join("log")
            .display()
            .to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-w",
                "-o",
                &options,
                "start",
            ],
        );
    }

    fn down(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let program = self.bin.join("pg_ctl");
        let data = self.data();
        let args = ["-D", data.as_str(), "-m", "immediate", "stop"];
        let _ = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(program)
                .args(args)
                .output()
        } else {
            Command::new(program).args(args).output()
        };
    }
}

async fn get(app: &TestApp, path: &str) -> (u16, Duration) {
    let started = Instant::now();
    let res = app.client.get(app.url(path)).send().await.unwrap();
    (res.status().as_u16(), started.elapsed())
}

async fn timed_post(
    app: &TestApp,
    token: Option<&str>,
    query: &str,
) -> (u16, Option<String>, Value, Duration) {
    let started = Instant::now();
    let mut req = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .json(&json!({ "query": query }));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (status, retry, body, started.elapsed())
}

const LOGIN: &str = "mutation { login(input: {email: \"team@gemba.local\", password: \"demo-password-for-tests\"}) { token } }";
const ME: &str = "{ me { user { email } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_fails_fast_and_recovers() {
    if std::env::var("GEMBA_TEST_POSTGRES_URL").is_err() {
        eprintln!("GEMBA_TEST_POSTGRES_URL is not set: PostgreSQL outage test skipped");
        return;
    }
    let Some(pg) = OwnPostgres::start() else {
        eprintln!("no PostgreSQL server binaries: outage test skipped");
        return;
    };
    let url = pg.url();
    let (db, _) = gemba::db::connect(&url).await.unwrap();
    gemba::db::migrate(&db).await.unwrap();
    gemba::cli::seed::demo(&db, Some(PASSWORD.to_owned()))
        .await
        .unwrap()
        .unwrap();
    let _ = db.close().await;
    let settings = gemba::config::Settings {
        db_acquire_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let app = TestApp::serve_on(&url, Backend::Postgres, settings).await;
    let team = app.login(TEAM).await;
    let admin = app.login(ADMIN).await;
    let atlas = unit_id(&app, &team, "team-atlas").await;
    let story = app
        .ok(
            &team,
            "query($u: ID!) { workItems(unit: $u, first: 1, filter: {types: [STORY], stateCategories: [NEW]}) { nodes { id key } } }",
            json!({ "u": atlas }),
        )
        .await["workItems"]["nodes"][0]
        .clone();
    let mut ws = Ws::connect(&app, &team).await;
    ws.subscribe(
        "items",
        "subscription($u: ID!) { workItemEvents(unit: $u) { kind workItem { key state } } }",
        json!({ "u": atlas }),
    )
    .await;
    // Lets the server start the subscription before the database goes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get(&app, "/readyz").await.0, 200);

    pg.down();

    let (status, took) = get(&app, "/readyz").await;
    assert_eq!(status, 503);
    assert!(took < Duration::from_secs(1), "/readyz took {took:?}");
    for (what, token, query) in [("a query", Some(team.as_str()), ME), ("login", None, LOGIN)] {
        let (status, retry, body, took) = timed_post(&app, token, query).await;
        assert_eq!(status, 503, "{what}: {body}");
        assert_eq!(code(&body), "UNAVAILABLE", "{what}: {body}");
        assert!(retry.is_some(), "{what}: no Retry-After");
        assert!(took < Duration::from_secs(3), "{what} took {took:?}");
        assert!(
            !body.to_string().to_lowercase().contains("connection"),
            "{what} leaks detail: {body}"
        );
    }
    let event = json!({"id": "outage-1", "type": "unit.upserted", "source": "test",
        "data": {"key": "outage-unit", "kind": "PORTFOLIO", "name": "Outage", "parent": null}});
    let res = app
        .client
        .post(app.url("/ingest"))
        .bearer_auth(&admin)
        .header("content-type", "application/x-ndjson")
        .body(format!("{event}\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 503);
    assert!(res.headers().get("retry-after").is_some());
    // A new WebSocket is told to come back later; the open subscription
    // stays open through the outage.
    let mut fresh = Ws::open(&app).await;
    fresh
        .send(json!({"type": "connection_init", "payload": {"token": team}}))
        .await;
    fresh.expect_close(1013, Duration::from_secs(3)).await;
    ws.expect_quiet(Duration::from_millis(500)).await;

    pg.up();

    let deadline = Instant::now() + Duration::from_secs(15);
    while get(&app, "/readyz").await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "no recovery after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let data = app.ok(&team, ME, json!({})).await;
    assert_eq!(data["me"]["user"]["email"], TEAM);
    // Nothing of the refused ingest was written.
    let data = app
        .ok(&admin, "{ unit(key: \"outage-unit\") { key } }", json!({}))
        .await;
    assert!(data["unit"].is_null(), "{data}");
    // The subscription opened before the outage delivers again.
    app.ok(
        &team,
        "mutation($i: ID!) { moveWorkItem(input: {workItem: $i, toState: \"In Progress\"}) { workItem { key } } }",
        json!({ "i": story["id"] }),
    )
    .await;
    let e = ws
        .next_until("items", Duration::from_secs(5), |p| {
            p["data"]["workItemEvents"]["workItem"]["key"] == story["key"]
        })
        .await;
    assert_eq!(e["data"]["workItemEvents"]["kind"], "MOVED");
}
