//! The `gemba` command line: migrate, seed, import (with dry runs and
//! re-runs), user creation, schema export and configuration errors, on
//! SQLite and (with `GEMBA_TEST_POSTGRES_URL`) PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use sea_orm::{ConnectionTrait, Database};

fn gemba(db_url: &str, dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gemba"))
        .args(args)
        .current_dir(dir)
        .env("GEMBA_DATABASE_URL", db_url)
        .env("GEMBA_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const EVENTS: &str = r#"{"id":"cli-1","type":"unit.upserted","source":"csv","data":{"key":"team-cli","kind":"TEAM","name":"CLI","parent":"payments-checkout"}}
{"id":"cli-2","type":"work_item.upserted","source":"csv","data":{"external_id":"C-1","key":"CLI-1","unit":"team-cli","type":"STORY","title":"Imported","state":"Backlog","created_at":"2026-01-05T10:00:00Z"}}
{"id":"cli-3","type":"work_item.transitioned","source":"csv","data":{"external_id":"C-1","to_state":"Done","at":"2026-01-09T12:00:00Z"}}
"#;

fn flow(db_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = gemba(db_url, d, &["migrate"], None);
    assert!(o.status.success(), "{}", text(&o));
    let o = gemba(db_url, d, &["seed", "demo"], None);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("admin@gemba.local"), "{}", text(&o));
    let o = gemba(db_url, d, &["seed", "demo"], None);
    assert!(!o.status.success(), "a second seed is refused");

    let file = d.join("events.ndjson");
    std::fs::write(&file, format!("{EVENTS}{{ broken\n")).unwrap();
    let path = file.to_str().unwrap();
    let o = gemba(db_url, d, &["import", "--dry-run", path], None);
    assert!(!o.status.success(), "a rejected line fails the run");
    assert!(
        text(&o).contains("dry run: 3 applied, 0 duplicates, 1 rejected"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("line 4"), "{}", text(&o));
    let o = gemba(db_url, d, &["import", path], None);
    assert!(
        text(&o).contains("3 applied, 0 duplicates, 1 rejected"),
        "the dry run wrote nothing: {}",
        text(&o)
    );
    let o = gemba(db_url, d, &["import", path], None);
    assert!(
        text(&o).contains("0 applied, 3 duplicates, 1 rejected"),
        "{}",
        text(&o)
    );
    // Standard input, a JSON array.
    let array = r#"[{"id":"cli-4","type":"work_item.transitioned","source":"csv","data":{"external_id":"C-1","to_state":"Canceled","at":"2026-01-10T12:00:00Z"}}]"#;
    let o = gemba(db_url, d, &["import", "-"], Some(array));
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("1 applied, 0 duplicates, 0 rejected"),
        "{}",
        text(&o)
    );

    let o = gemba(
        db_url,
        d,
        &[
            "user",
            "create",
            "--email",
            "ops@example.com",
            "--name",
            "Ops",
            "--password-stdin",
            "--admin",
        ],
        Some("a long enough password\n"),
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = gemba(
        db_url,
        d,
        &[
            "user",
            "create",
            "--email",
            "OPS@example.com",
            "--name",
            "Ops",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    );
    assert!(!o.status.success(), "emails are unique case-insensitively");
    let o = gemba(
        db_url,
        d,
        &[
            "user",
            "create",
            "--email",
            "x@example.com",
            "--name",
            "X",
            "--password-stdin",
        ],
        Some("short\n"),
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("at least 12"), "{}", text(&o));
}

#[test]
fn cli_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("cli.db").display());
    flow(&url);
}

/// Every fact row, without ids, in a stable order.
async fn fact_rows(db: &sea_orm::DatabaseConnection) -> (Vec<String>, Vec<String>) {
    use entity::{flow_completion, flow_wip};
    use sea_orm::EntityTrait;
    let mut c: Vec<String> = flow_completion::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| format!("{:?}", flow_completion::Model { id: 0, ..r }))
        .collect();
    let mut w: Vec<String> = flow_wip::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| format!("{:?}", flow_wip::Model { id: 0, ..r }))
        .collect();
    c.sort();
    w.sort();
    (c, w)
}

/// `gemba seed synthetic` writes the tree, the items and their facts as the
/// facts rebuilt from the stored histories; a second run is refused; on
/// PostgreSQL `gemba bench metrics` measures it.
fn synthetic(db_url: &str, pg: bool) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = [
        "seed",
        "synthetic",
        "--portfolios",
        "1",
        "--programs",
        "2",
        "--teams",
        "2",
        "--items",
        "3000",
        "--days",
        "200",
    ];
    let o = gemba(db_url, d, &args, None);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("7 units, 3000 work items"),
        "{}",
        text(&o)
    );
    let o = gemba(db_url, d, &args, None);
    assert!(!o.status.success(), "a second synthetic seed is refused");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let db = Database::connect(db_url).await.unwrap();
        if pg {
            // The seed leaves the rows a running replica catches up from,
            // as every other writer does: one per item, one per delivery
            // record.
            let count = |sql: &'static str| {
                let db = &db;
                async move {
                    let row = db
                        .query_one_raw(sea_orm::Statement::from_string(
                            sea_orm::DbBackend::Postgres,
                            sql,
                        ))
                        .await
                        .unwrap()
                        .unwrap();
                    row.try_get_by_index::<i64>(0).unwrap()
                }
            };
            assert_eq!(count("SELECT count(*) FROM flow_change").await, 3000);
            let records = count(
                "SELECT (SELECT count(*) FROM deployment) + (SELECT count(*) FROM change) \
                 + (SELECT count(*) FROM incident) + (SELECT count(*) FROM release)",
            )
            .await;
            assert!(records > 0);
            assert_eq!(count("SELECT count(*) FROM delivery_change").await, records);
        }
        let written = fact_rows(&db).await;
        assert!(written.0.len() > 1000, "completions: {}", written.0.len());
        assert!(!written.1.is_empty());
        db.execute_unprepared("DELETE FROM flow_completion")
            .await
            .unwrap();
        db.execute_unprepared("DELETE FROM flow_wip").await.unwrap();
        let n = gemba::service::metrics::facts::rebuild_all(&db)
            .await
            .unwrap();
        assert_eq!(n, 3000);
        assert!(fact_rows(&db).await == written, "rebuilt facts differ");
    });
    if pg {
        let o = gemba(db_url, d, &["bench", "metrics", "--runs", "2"], None);
        assert!(o.status.success(), "{}", text(&o));
        for level in ["ORGANIZATION", "PORTFOLIO", "PROGRAM", "TEAM"] {
            assert!(text(&o).contains(level), "{}", text(&o));
        }
        assert!(text(&o).contains("floor"), "{}", text(&o));
    }
}

#[test]
fn synthetic_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("syn.db").display());
    synthetic(&url, false);
}

#[test]
fn synthetic_on_postgres() {
    let Ok(admin_url) = std::env::var("GEMBA_TEST_POSTGRES_URL") else {
        eprintln!("GEMBA_TEST_POSTGRES_URL is not set: PostgreSQL variant skipped");
        return;
    };
    with_postgres(&admin_url, |url| synthetic(url, true));
}

/// Runs `f` against a fresh PostgreSQL database, dropped afterwards.
fn with_postgres(admin_url: &str, f: impl FnOnce(&str) + std::panic::UnwindSafe) {
    let name = format!("gemba_cli_{}", uuid::Uuid::new_v4().simple());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let admin = Database::connect(admin_url).await.unwrap();
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
    });
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b.to_owned())
        .unwrap();
    let url = format!("{base}/{name}");
    let result = std::panic::catch_unwind(|| f(&url));
    rt.block_on(async {
        let admin = Database::connect(admin_url).await.unwrap();
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .unwrap();
    });
    result.unwrap();
}

#[test]
fn cli_on_postgres() {
    let Ok(admin_url) = std::env::var("GEMBA_TEST_POSTGRES_URL") else {
        eprintln!("GEMBA_TEST_POSTGRES_URL is not set: PostgreSQL variant skipped");
        return;
    };
    with_postgres(&admin_url, flow);
}

#[test]
fn schema_command_prints_the_checked_in_sdl() {
    let dir = tempfile::tempdir().unwrap();
    let o = gemba("sqlite::memory:", dir.path(), &["schema"], None);
    let on_disk =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql")).unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), on_disk);
}

#[test]
fn serve_refuses_weak_or_missing_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
    let o = gemba(&url, dir.path(), &["serve", "--bind", "127.0.0.1:0"], None);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("GEMBA_JWT_SECRET is required"),
        "{}",
        text(&o)
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gemba"));
    let o = cmd
        .args(["serve", "--bind", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("GEMBA_DATABASE_URL", &url)
        .env("GEMBA_JWT_SECRET", "too-short")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("at least 32 bytes"), "{}", text(&o));
}

/// Killing an import midway loses nothing that was committed and leaves
/// nothing half applied: re-running the file completes it exactly.
#[test]
fn killed_import_completes_on_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let url = format!("sqlite://{}?mode=rwc", d.join("kill.db").display());
    assert!(gemba(&url, d, &["seed", "demo"], None).status.success());
    let mut events = String::new();
    let n = 60_000;
    for i in 0..n / 3 {
        events.push_str(&format!(
            r#"{{"id":"k-{i}-a","type":"work_item.upserted","source":"kill","data":{{"external_id":"K-{i}","key":"K-{i}","unit":"team-atlas","type":"STORY","title":"Story {i}","state":"Backlog","created_at":"2026-01-05T10:00:00Z"}}}}
{{"id":"k-{i}-b","type":"work_item.transitioned","source":"kill","data":{{"external_id":"K-{i}","to_state":"In Progress","at":"2026-01-06T10:00:00Z"}}}}
{{"id":"k-{i}-c","type":"work_item.transitioned","source":"kill","data":{{"external_id":"K-{i}","to_state":"Done","at":"2026-01-07T10:00:00Z"}}}}
"#
        ));
    }
    let file = d.join("kill.ndjson");
    std::fs::write(&file, events).unwrap();
    let path = file.to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gemba"))
        .args(["import", path])
        .current_dir(d)
        .env("GEMBA_DATABASE_URL", &url)
        .env("GEMBA_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill it once its first batch is committed, with more in flight.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let finished_early = rt.block_on(async {
        use sea_orm::ConnectionTrait;
        let db = sea_orm::Database::connect(&url).await.unwrap();
        loop {
            if child.try_wait().unwrap().is_some() {
                break true;
            }
            let row = db
                .query_one_raw(sea_orm::Statement::from_string(
                    db.get_database_backend(),
                    "SELECT count(*) AS n FROM ingest_log WHERE source = 'kill'",
                ))
                .await
                .unwrap()
                .unwrap();
            if row.try_get::<i64>("", "n").unwrap() > 0 {
                break false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    });
    let _ = child.kill();
    let _ = child.wait();
    let o = gemba(&url, d, &["import", path], None);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let nums: Vec<u64> = out
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(3)
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(
        nums[0] + nums[1],
        n,
        "every event applied exactly once: {out}"
    );
    assert_eq!(nums[2], 0, "{out}");
    if !finished_early {
        assert!(
            nums[0] > 0 && nums[1] > 0,
            "the killed run committed some batches and left the rest: {out}"
        );
    }
    // Every story was applied together with its history: a dry run of the
    // same file finds only duplicates.
    let o = gemba(&url, d, &["import", "--dry-run", path], None);
    assert!(
        text(&o).contains(&format!("0 applied, {n} duplicates, 0 rejected")),
        "{}",
        text(&o)
    );
}
