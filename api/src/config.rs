//! Typed configuration from flags and `GEMBA_*` environment variables (DESIGN §6).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

/// Where the data lives.
#[derive(Args, Clone, Debug)]
pub struct DbArgs {
    /// Database URL: `sqlite://gemba.db?mode=rwc` or `postgres://user@host/db`.
    /// Default: an SQLite file `gemba.db` in the working directory.
    #[arg(long, env = "GEMBA_DATABASE_URL")]
    pub database_url: Option<String>,
}

impl DbArgs {
    pub const DEFAULT_SQLITE: &'static str = "sqlite://gemba.db?mode=rwc";

    pub fn url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| Self::DEFAULT_SQLITE.to_owned())
    }

    /// True when no database was configured: the zero-configuration case.
    pub fn is_default(&self) -> bool {
        self.database_url.is_none()
    }
}

/// Settings of the HTTP server.
#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,

    /// Address to listen on.
    #[arg(long, env = "GEMBA_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// HS256 secret for session tokens, at least 32 bytes. Without it (and
    /// only with the default SQLite database) a secret is generated and kept
    /// in `gemba.jwt-secret` beside the database.
    #[arg(long, env = "GEMBA_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Lifetime of a session token, in seconds.
    #[arg(long, env = "GEMBA_TOKEN_TTL_SECONDS", default_value_t = 8 * 3600)]
    pub token_ttl_seconds: u64,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "GEMBA_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Largest accepted body on `/ingest`, in bytes (NDJSON is streamed, so
    /// this bounds a request, not memory).
    #[arg(long, env = "GEMBA_MAX_INGEST_BYTES", default_value_t = 1024 * 1024 * 1024)]
    pub max_ingest_bytes: usize,

    /// Deepest accepted query nesting.
    #[arg(long, env = "GEMBA_MAX_QUERY_DEPTH", default_value_t = 15)]
    pub max_query_depth: usize,

    /// Largest accepted query complexity (one per field, times page sizes).
    #[arg(long, env = "GEMBA_MAX_QUERY_COMPLEXITY", default_value_t = 50_000)]
    pub max_query_complexity: usize,

    /// Most aliases accepted in one document, fragments expanded.
    #[arg(long, env = "GEMBA_MAX_ALIASES", default_value_t = 30)]
    pub max_aliases: usize,

    /// Deepest bracket nesting accepted in a document (selection sets,
    /// arguments, list and object values) and in its variables.
    #[arg(long, env = "GEMBA_MAX_NESTING", default_value_t = 64)]
    pub max_nesting: usize,

    /// Most fields one document may select, fragments expanded.
    #[arg(long, env = "GEMBA_MAX_QUERY_FIELDS", default_value_t = 2000)]
    pub max_query_fields: u64,

    /// Deadline of a GraphQL request over HTTP, in ms: past it the request
    /// answers `TIMEOUT` and its work is cancelled. Also PostgreSQL's
    /// `statement_timeout` for the server's connections.
    #[arg(long, env = "GEMBA_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,

    /// Longest wait for a PostgreSQL connection, in ms: past it a request
    /// answers `UNAVAILABLE` (HTTP 503). On SQLite the request deadline
    /// bounds the wait instead.
    #[arg(long, env = "GEMBA_DB_ACQUIRE_TIMEOUT_MS", default_value_t = 3000)]
    pub db_acquire_timeout_ms: u64,

    /// Connections the server's PostgreSQL pool opens at most (SQLite
    /// keeps 4: one writer at a time). Past a few per core the backends
    /// mostly take turns on the CPU.
    #[arg(long, env = "GEMBA_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// Cost budget of one caller (a token, an API key or an anonymous
    /// address), in complexity points; 0 turns budgets off.
    #[arg(long, env = "GEMBA_BUDGET_POINTS", default_value_t = 500_000)]
    pub budget_points: u64,

    /// Points a caller's budget regains per second.
    #[arg(long, env = "GEMBA_BUDGET_REFILL_PER_SECOND", default_value_t = 25_000)]
    pub budget_refill_per_second: u64,

    /// Longest window a metric covers, in days (5 years by default).
    #[arg(long, env = "GEMBA_MAX_METRIC_WINDOW_DAYS", default_value_t = 1827)]
    pub max_metric_window_days: i64,

    /// Failed logins allowed per email within the window before `RATE_LIMITED`.
    #[arg(long, env = "GEMBA_LOGIN_MAX_FAILURES_PER_EMAIL", default_value_t = 5)]
    pub login_failures_per_email: u32,

    /// Failed logins allowed per client address within the window.
    #[arg(
        long,
        env = "GEMBA_LOGIN_MAX_FAILURES_PER_ADDRESS",
        default_value_t = 20
    )]
    pub login_failures_per_address: u32,

    /// Length of the failed-login window, in seconds.
    #[arg(long, env = "GEMBA_LOGIN_WINDOW_SECONDS", default_value_t = 900)]
    pub login_window_seconds: u64,

    /// How long a WebSocket client has to send `connection_init`, in ms.
    #[arg(long, env = "GEMBA_WS_INIT_TIMEOUT_MS", default_value_t = 3000)]
    pub ws_init_timeout_ms: u64,

    /// How long a replica may serve a caller's identity and grants from
    /// memory, in ms, when no access-change event reached it: the bound on
    /// staleness across replicas if a notification is missed. 0 turns the
    /// authentication cache off (every request reads them).
    #[arg(long, env = "GEMBA_AUTH_CACHE_TTL_MS", default_value_t = 2000)]
    pub auth_cache_ttl_ms: u64,

    /// Most session tokens (and as many API keys) the authentication cache
    /// holds; past it the oldest are forgotten.
    #[arg(long, env = "GEMBA_AUTH_CACHE_CAPACITY", default_value_t = 10_000)]
    pub auth_cache_capacity: usize,

    /// How long a replica may serve the organisation tree and its workflows
    /// from memory, in ms, when no unit change event reached it. 0 reads
    /// them from the database on every request.
    #[arg(long, env = "GEMBA_TREE_CACHE_TTL_MS", default_value_t = 2000)]
    pub tree_cache_ttl_ms: u64,

    /// Browser origins allowed to call the API (CORS), comma-separated, e.g.
    /// `https://dash.example.com`. None by default.
    #[arg(long, env = "GEMBA_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Where flow metrics are computed: `memory` (the flow facts held as
    /// columns in this replica, loaded at start and kept current; the SQL
    /// path answers until loaded and for filters it does not cover) or
    /// `sql` (always in the database).
    #[arg(long, env = "GEMBA_ANALYTICS", default_value = "memory")]
    pub analytics: AnalyticsMode,

    /// Seconds between two full reloads of the in-memory flow facts, a
    /// backstop behind the per-change updates; 0 turns it off. Unset: 900
    /// where no catch-up runs (SQLite, or `GEMBA_ANALYTICS_CATCHUP_MS=0`),
    /// 21600 where one does, since the change logs then bring every
    /// writer's changes and a reload holds two copies of the facts while it
    /// runs.
    #[arg(long, env = "GEMBA_ANALYTICS_RELOAD_SECONDS")]
    pub analytics_reload_seconds: Option<u64>,

    /// Milliseconds between two catch-ups of the in-memory flow facts with
    /// the database (PostgreSQL): each reads the items whose facts changed
    /// since the last, so a replica that missed other replicas'
    /// notifications serves them within about this long. 0 turns it off.
    #[arg(long, env = "GEMBA_ANALYTICS_CATCHUP_MS", default_value_t = 1000)]
    pub analytics_catchup_ms: u64,

    /// Seed the demo organisation when the database is empty.
    #[arg(long)]
    pub demo: bool,
}

/// Where flow metrics are computed (`GEMBA_ANALYTICS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AnalyticsMode {
    /// From the flow facts held in memory, once loaded.
    #[default]
    Memory,
    /// In the database.
    Sql,
}

/// The resolved runtime settings the server needs.
#[derive(Clone, Debug)]
pub struct Settings {
    pub token_ttl: Duration,
    pub max_body_bytes: usize,
    pub max_ingest_bytes: usize,
    pub max_query_depth: usize,
    pub max_query_complexity: usize,
    pub max_aliases: usize,
    pub max_nesting: usize,
    pub max_query_fields: u64,
    /// Deadline of a GraphQL request over HTTP.
    pub request_timeout: Duration,
    /// Longest wait for a pooled database connection.
    pub db_acquire_timeout: Duration,
    /// Size of the server's PostgreSQL pool.
    pub db_max_connections: u32,
    /// Per-caller cost budget (0: off) and its refill per second.
    pub budget_points: u64,
    pub budget_refill_per_second: u64,
    pub max_metric_window_days: i64,
    pub login_failures_per_email: u32,
    pub login_failures_per_address: u32,
    pub login_window: Duration,
    pub cors_origins: Vec<String>,
    /// Time a WebSocket client has to send `connection_init`.
    pub ws_init_timeout: Duration,
    /// Longest life of an authentication cache entry (zero: no cache).
    pub auth_cache_ttl: Duration,
    /// Most entries of the authentication cache.
    pub auth_cache_capacity: usize,
    /// Longest life of the tree's snapshot (zero: no snapshot).
    pub tree_cache_ttl: Duration,
    /// Where flow metrics are computed.
    pub analytics: AnalyticsMode,
    /// Between two full reloads of the in-memory facts; zero: never;
    /// `None`: [`Settings::DEFAULT_RELOAD`] or, where a catch-up runs,
    /// [`Settings::DEFAULT_RELOAD_CAUGHT_UP`].
    pub analytics_reload: Option<Duration>,
    /// Between two catch-ups of the in-memory facts; zero: none.
    pub analytics_catchup: Duration,
}

impl Settings {
    pub fn from_args(args: &ServeArgs) -> Self {
        Self {
            token_ttl: Duration::from_secs(args.token_ttl_seconds),
            max_body_bytes: args.max_body_bytes,
            max_ingest_bytes: args.max_ingest_bytes,
            max_query_depth: args.max_query_depth,
            max_query_complexity: args.max_query_complexity,
            max_aliases: args.max_aliases,
            max_nesting: args.max_nesting,
            max_query_fields: args.max_query_fields,
            request_timeout: Duration::from_millis(args.request_timeout_ms),
            db_acquire_timeout: Duration::from_millis(args.db_acquire_timeout_ms),
            db_max_connections: args.db_max_connections.max(1),
            budget_points: args.budget_points,
            budget_refill_per_second: args.budget_refill_per_second,
            max_metric_window_days: args.max_metric_window_days,
            login_failures_per_email: args.login_failures_per_email,
            login_failures_per_address: args.login_failures_per_address,
            login_window: Duration::from_secs(args.login_window_seconds),
            ws_init_timeout: Duration::from_millis(args.ws_init_timeout_ms),
            auth_cache_ttl: Duration::from_millis(args.auth_cache_ttl_ms),
            auth_cache_capacity: args.auth_cache_capacity,
            tree_cache_ttl: Duration::from_millis(args.tree_cache_ttl_ms),
            analytics: args.analytics,
            analytics_reload: args.analytics_reload_seconds.map(Duration::from_secs),
            analytics_catchup: Duration::from_millis(args.analytics_catchup_ms),
            cors_origins: args
                .cors_origins
                .iter()
                .map(|o| o.trim().to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
        }
    }
}

impl Settings {
    /// The full reload's period where nothing else brings other writers'
    /// changes (SQLite: another process importing into the same file).
    pub const DEFAULT_RELOAD: Duration = Duration::from_secs(900);
    /// The full reload's period where the catch-up reads the change logs
    /// every writer leaves: a backstop only. At a million items a reload
    /// holds two copies of the facts for about 17 s (`docs/performance.md`).
    pub const DEFAULT_RELOAD_CAUGHT_UP: Duration = Duration::from_secs(6 * 3600);
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            token_ttl: Duration::from_secs(8 * 3600),
            max_body_bytes: 1024 * 1024,
            max_ingest_bytes: 1024 * 1024 * 1024,
            max_query_depth: 15,
            max_query_complexity: 50_000,
            max_aliases: 30,
            max_nesting: 64,
            max_query_fields: 2000,
            request_timeout: Duration::from_secs(30),
            db_acquire_timeout: Duration::from_secs(3),
            db_max_connections: 16,
            budget_points: 500_000,
            budget_refill_per_second: 25_000,
            max_metric_window_days: 1827,
            login_failures_per_email: 5,
            login_failures_per_address: 20,
            login_window: Duration::from_secs(900),
            cors_origins: Vec::new(),
            ws_init_timeout: Duration::from_secs(3),
            auth_cache_ttl: Duration::from_secs(2),
            auth_cache_capacity: 10_000,
            tree_cache_ttl: Duration::from_secs(2),
            analytics: AnalyticsMode::Memory,
            analytics_reload: None,
            analytics_catchup: Duration::from_secs(1),
        }
    }
}
