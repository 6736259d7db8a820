//! Spawns a seeded Gemba server on port 0 against a fresh database.

use std::net::SocketAddr;
use std::time::Duration;

use gemba::app::Application;
use gemba::auth::TokenKeys;
use gemba::config::Settings;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

/// Password of every demo login in tests.
pub const PASSWORD: &str = "demo-password-for-tests";
/// Signing secret of test servers, so tests can forge and tamper tokens.
pub const SECRET: &[u8] = b"test-secret-test-secret-test-secret!!";

pub const ADMIN: &str = "admin@gemba.local";
pub const EXEC: &str = "exec@gemba.local";
pub const PORTFOLIO: &str = "portfolio@gemba.local";
pub const PROGRAM: &str = "program@gemba.local";
pub const TEAM: &str = "team@gemba.local";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub base: String,
    /// The server's event bus, to observe what it publishes.
    pub bus: gemba::events::EventBus,
    pub client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
    /// The database this server uses.
    pub db_url: String,
    pub backend: Backend,
}

fn init_logs() {
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let filter = if filter.is_empty() {
            "info".to_owned()
        } else {
            filter
        };
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

impl TestApp {
    /// A seeded server, or `None` for PostgreSQL when `GEMBA_TEST_POSTGRES_URL` is unset.
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, Settings::default()).await
    }

    pub async fn spawn_with(backend: Backend, settings: Settings) -> Option<TestApp> {
        init_logs();
        let (url, dir, pg) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("gemba.db").display()
                );
                (url, Some(dir), None)
            }
            Backend::Postgres => {
                let admin_url = std::env::var("GEMBA_TEST_POSTGRES_URL").ok()?;
                let name = format!("gemba_test_{}", uuid::Uuid::new_v4().simple());
                let admin = Database::connect(&admin_url).await.unwrap();
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap();
                let _ = admin.close().await;
                let base = admin_url
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_owned())
                    .unwrap_or(admin_url.clone());
                (format!("{base}/{name}"), None, Some((admin_url, name)))
            }
        };
        let (db, _) = gemba::db::connect(&url).await.unwrap();
        gemba::db::migrate(&db).await.unwrap();
        gemba::cli::seed::demo(&db, Some(PASSWORD.to_owned()))
            .await
            .unwrap()
            .expect("a fresh database takes the demo seed");
        let _ = db.close().await;
        let mut app = Self::serve_on(&url, backend, settings).await;
        app._dir = dir;
        app.pg = pg;
        Some(app)
    }

    /// Another server (a replica) on this one's database.
    pub async fn replica(&self) -> TestApp {
        Self::serve_on(&self.db_url, self.backend, Settings::default()).await
    }

    pub async fn serve_on(url: &str, backend: Backend, settings: Settings) -> TestApp {
        let keys = TokenKeys::new(SECRET).unwrap();
        let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let app = Application::build(url, keys, settings, bind).await.unwrap();
        let addr = app.local_addr().unwrap();
        let bus = app.bus();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            app.run(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        TestApp {
            base: format!("http://{addr}"),
            bus,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            shutdown: Some(tx),
            _dir: None,
            pg: None,
            db_url: url.to_owned(),
            backend,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs a GraphQL request and returns (status, body).
    pub async fn post(&self, token: Option<&str>, query: &str, variables: Value) -> (u16, Value) {
        let mut req = self
            .client
            .post(self.url("/graphql"))
            .header("content-type", "application/json")
            .header("accept", "application/graphql-response+json")
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// Runs a GraphQL request and returns its body (any status).
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        self.post(token, query, variables).await.1
    }

    /// Runs a request that must succeed without errors; returns `data`.
    pub async fn ok(&self, token: &str, query: &str, variables: Value) -> Value {
        let body = self.gql(Some(token), query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    pub async fn login(&self, email: &str) -> String {
        let body = self
            .gql(
                None,
                "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { token } }",
                json!({ "e": email, "p": PASSWORD }),
            )
            .await;
        body["data"]["login"]["token"]
            .as_str()
            .unwrap_or_else(|| panic!("login failed for {email}: {body}"))
            .to_owned()
    }

    /// The number of SQL statements the server has run so far.
    pub async fn statements(&self) -> u64 {
        self.metric("gemba_db_statements_total").await
    }

    /// A counter of `/metrics`.
    pub async fn metric(&self, name: &str) -> u64 {
        let text = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some((admin_url, name)) = self.pg.take() {
            // Drop the database from a thread of its own: Drop cannot await.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(admin) = Database::connect(&admin_url).await {
                        let _ = admin
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .await;
                        let _ = admin.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// The `extensions.code` of the first error.
/// The nodes of a delivery connection that a test wrote: without the demo
/// seed's records (`source: "seed"`), and without the `source` field asked
/// only to tell them apart.
pub fn not_seeded(nodes: &Value) -> Value {
    Value::Array(
        nodes
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["source"] != "seed")
            .map(|n| {
                let mut n = n.clone();
                if let Some(o) = n.as_object_mut() {
                    o.remove("source");
                }
                n
            })
            .collect(),
    )
}

pub fn code(body: &Value) -> String {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
        .to_owned()
}

/// Declares a test that runs on SQLite and, when configured, on PostgreSQL.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            use $crate::harness::{Backend, TestApp};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
                super::$name(app).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(app) = TestApp::spawn(Backend::Postgres).await else {
                    eprintln!("GEMBA_TEST_POSTGRES_URL is not set: PostgreSQL variant skipped");
                    return;
                };
                super::$name(app).await;
            }
        }
    };
}

/// [`both!`] for a test whose servers run with other settings than the
/// defaults: `both_with!(name, Settings { .. })`.
#[macro_export]
macro_rules! both_with {
    ($name:ident, $settings:expr) => {
        mod $name {
            use $crate::harness::{Backend, TestApp};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = TestApp::spawn_with(Backend::Sqlite, $settings)
                    .await
                    .unwrap();
                super::$name(app).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(app) = TestApp::spawn_with(Backend::Postgres, $settings).await else {
                    eprintln!("GEMBA_TEST_POSTGRES_URL is not set: PostgreSQL variant skipped");
                    return;
                };
                super::$name(app).await;
            }
        }
    };
}
