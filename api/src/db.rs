//! Connecting, migrating and bootstrapping the database.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectOptions, Database, DatabaseConnection, EntityTrait,
    QueryFilter, Set, TransactionTrait,
};

use crate::domain::{DEFAULT_WORKFLOW, UnitKind};

/// Counts every SQL statement the server runs (exported on `/metrics`).
#[derive(Clone, Debug, Default)]
pub struct StatementCounter(Arc<AtomicU64>);

impl StatementCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// How a pool waits for the database.
#[derive(Clone, Copy, Debug)]
pub struct PoolOptions {
    /// Longest wait for a connection (opening one included).
    pub acquire_timeout: Duration,
    /// PostgreSQL's `statement_timeout` on every connection, if any.
    pub statement_timeout: Option<Duration>,
    /// Connections a PostgreSQL pool opens at most.
    pub max_connections: u32,
}

impl Default for PoolOptions {
    /// For command-line jobs: patient, and statements unbounded.
    fn default() -> Self {
        Self {
            acquire_timeout: Duration::from_secs(30),
            statement_timeout: None,
            max_connections: 16,
        }
    }
}

impl PoolOptions {
    /// For the server at `url`: on PostgreSQL a request fails fast when the
    /// database is away, and no statement outlives the request deadline. An
    /// embedded SQLite file cannot be away: there, waiting for a connection
    /// is queueing behind other requests, bounded by the deadline alone.
    pub fn serving(url: &str, settings: &crate::config::Settings) -> Self {
        let acquire_timeout = if url.starts_with("sqlite:") {
            // Never shorter than opening the file takes at start-up.
            settings.request_timeout.max(Duration::from_secs(5))
        } else {
            settings.db_acquire_timeout
        };
        Self {
            acquire_timeout,
            statement_timeout: Some(settings.request_timeout),
            max_connections: settings.db_max_connections,
        }
    }
}

/// Opens a pool for `url` with [`PoolOptions::default`].
///
/// # Errors
/// When the database cannot be reached.
pub async fn connect(url: &str) -> anyhow::Result<(DatabaseConnection, StatementCounter)> {
    connect_with(url, &PoolOptions::default()).await
}

/// Rows a SQLite connection's worker thread may hand over before the
/// reader takes them (sqlx's default is 50): the worker sends rows one by
/// one, and a reader of a few thousand rows (an ingest batch's look-ups,
/// the ids of the items it inserted) otherwise stops the worker every 50
/// rows until it catches up.
const ROW_CHANNEL: usize = 4096;

/// Opens a pool for `url` and installs the statement counter.
///
/// # Errors
/// When the database cannot be reached.
pub async fn connect_with(
    url: &str,
    pool: &PoolOptions,
) -> anyhow::Result<(DatabaseConnection, StatementCounter)> {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.sqlx_logging(false)
        .connect_timeout(pool.acquire_timeout)
        .acquire_timeout(pool.acquire_timeout);
    if let Some(t) = pool.statement_timeout {
        opts.statement_timeout(t);
    }
    if url.starts_with("sqlite:") {
        // Every connection of the pool, not only the first: `synchronous`
        // and `busy_timeout` are per connection. WAL lets readers proceed
        // while a writer commits; the busy timeout makes concurrent writers
        // queue instead of failing. A 32 MiB page cache per connection
        // (SQLite's default is 2 MiB): a batch of 5,000 events touches more
        // pages than that, which SQLite then spilled and read back. The
        // write-ahead log is copied back into the database every 10,000
        // pages (40 MiB; SQLite's default is 1,000) rather than at nearly
        // every commit of an ingest batch: a page written by several
        // batches is copied once.
        opts.max_connections(4)
            .min_connections(1)
            .map_sqlx_sqlite_opts(|o| {
                o.pragma("journal_mode", "WAL")
                    .pragma("synchronous", "NORMAL")
                    .pragma("cache_size", "-32768")
                    .pragma("wal_autocheckpoint", "10000")
                    .row_buffer_size(ROW_CHANNEL)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
            });
    } else {
        opts.max_connections(pool.max_connections)
            .min_connections(1);
    }
    let mut db = Database::connect(opts).await?;
    let counter = StatementCounter::default();
    let inner = counter.0.clone();
    db.set_metric_callback(move |info| {
        inner.fetch_add(1, Ordering::Relaxed);
        tracing::trace!(target: "gemba::sql", elapsed = ?info.elapsed, failed = info.failed, sql = %info.statement.sql);
    });
    Ok((db, counter))
}

/// Applies pending migrations and makes sure the organisation (the root
/// unit) and its default workflow exist.
///
/// # Errors
/// When a migration or the bootstrap fails.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    let pending: Vec<String> = Migrator::get_pending_migrations(db)
        .await?
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let facts_pending = pending
        .iter()
        .any(|m| FLOW_FACTS_MIGRATIONS.contains(&m.as_str()));
    let delivery_pending = pending.iter().any(|m| m == DELIVERY_FACTS_MIGRATION);
    Migrator::up(db, None).await?;
    ensure_organisation(db).await?;
    if delivery_pending {
        // Changes and incidents stored before get their delivery facts.
        let txn = db.begin().await?;
        crate::service::facts::delivery::rebuild_all(&txn).await?;
        txn.commit().await?;
    }
    if facts_pending {
        // Items stored before the facts existed get theirs now.
        let txn = db.begin().await?;
        let items = crate::service::facts::flow::rebuild_all(&txn).await?;
        txn.commit().await?;
        if items > 0 {
            tracing::info!(items, "flow facts built");
        }
    }
    Ok(())
}

/// The migrations that introduced per-item flow facts: after either, every
/// item's facts are rebuilt.
const FLOW_FACTS_MIGRATIONS: [&str; 2] = [
    "m20261130_000007_flow_facts",
    "m20261201_000008_flow_states",
];

/// The migration that introduced the delivery facts.
const DELIVERY_FACTS_MIGRATION: &str = "m20261201_000009_delivery_facts";

/// Key of the organisation created on first start.
pub const ORGANISATION_KEY: &str = "org";

async fn ensure_organisation(db: &DatabaseConnection) -> anyhow::Result<()> {
    use entity::{unit, unit_closure, workflow, workflow_state};
    let exists = unit::Entity::find()
        .filter(unit::Column::Kind.eq(UnitKind::Organization.as_str()))
        .one(db)
        .await?;
    if exists.is_some() {
        return Ok(());
    }
    let txn = db.begin().await?;
    let now = Utc::now();
    let org = unit::ActiveModel {
        key: Set(ORGANISATION_KEY.to_owned()),
        name: Set("Organisation".to_owned()),
        kind: Set(UnitKind::Organization.as_str().to_owned()),
        parent_id: Set(None),
        depth: Set(0),
        next_item_number: Set(1),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    unit_closure::ActiveModel {
        ancestor_id: Set(org.id),
        descendant_id: Set(org.id),
        depth: Set(0),
    }
    .insert(&txn)
    .await?;
    let wf = workflow::ActiveModel {
        unit_id: Set(org.id),
        name: Set("Default".to_owned()),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    let states = DEFAULT_WORKFLOW
        .iter()
        .enumerate()
        .map(|(i, (name, category))| workflow_state::ActiveModel {
            workflow_id: Set(wf.id),
            name: Set((*name).to_owned()),
            category: Set(category.as_str().to_owned()),
            position: Set(i32::try_from(i).unwrap_or(i32::MAX)),
            wip_limit: Set(None),
            ..Default::default()
        });
    workflow_state::Entity::insert_many(states)
        .exec(&txn)
        .await?;
    txn.commit().await?;
    tracing::info!(key = ORGANISATION_KEY, "created the organisation unit");
    Ok(())
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait};

    use super::connect;

    async fn pragma(txn: &DatabaseTransaction, name: &str) -> String {
        let row = txn
            .query_one_raw(sea_orm::Statement::from_string(
                txn.get_database_backend(),
                format!("PRAGMA {name}"),
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<i64>(0)
            .map(|n| n.to_string())
            .or_else(|_| row.try_get_by_index::<String>(0))
            .unwrap()
    }

    /// Every connection of a SQLite pool runs in WAL with `synchronous =
    /// NORMAL`, a 10 s busy timeout, foreign keys, a 32 MiB page cache and
    /// a checkpoint every 10,000 pages, not only the first.
    #[tokio::test]
    async fn every_sqlite_connection_gets_the_pragmas() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("p.db").display());
        let (db, _) = connect(&url).await.unwrap();
        // Four transactions at once hold the pool's four connections.
        let mut open = Vec::new();
        for _ in 0..4 {
            open.push(db.begin().await.unwrap());
        }
        for txn in &open {
            assert_eq!(pragma(txn, "journal_mode").await, "wal");
            assert_eq!(pragma(txn, "synchronous").await, "1", "NORMAL");
            assert_eq!(pragma(txn, "busy_timeout").await, "10000");
            assert_eq!(pragma(txn, "foreign_keys").await, "1");
            assert_eq!(pragma(txn, "cache_size").await, "-32768", "32 MiB");
            assert_eq!(pragma(txn, "wal_autocheckpoint").await, "10000");
        }
    }

    /// The flow facts' line indexes: one per table after the migration,
    /// the four per-column ones back after it is undone (with the one
    /// after it, which changes nothing on SQLite), and again one after it
    /// is redone.
    #[tokio::test]
    async fn the_line_index_migration_goes_down_and_up() {
        use migration::{Migrator, MigratorTrait};

        async fn indexes(db: &sea_orm::DatabaseConnection) -> Vec<String> {
            db.query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT name FROM sqlite_master WHERE type = 'index' \
                 AND tbl_name IN ('flow_completion', 'flow_wip', 'flow_state') \
                 AND name NOT LIKE 'sqlite_%' ORDER BY name",
            ))
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get_by_index::<String>(0).unwrap())
            .collect()
        }
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
        let (db, _) = connect(&url).await.unwrap();
        Migrator::up(&db, None).await.unwrap();
        let line = [
            "idx_flow_completion_at",
            "idx_flow_completion_item",
            "idx_flow_completion_line",
            "idx_flow_state_item",
            "idx_flow_state_line",
            "idx_flow_wip_item",
            "idx_flow_wip_line",
            "idx_flow_wip_to",
        ];
        assert_eq!(indexes(&db).await, line);
        Migrator::down(&db, Some(2)).await.unwrap();
        let mut before = indexes(&db).await;
        before.retain(|n| n.starts_with("idx_flow_state"));
        assert_eq!(
            before,
            [
                "idx_flow_state_item",
                "idx_flow_state_portfolio",
                "idx_flow_state_program",
                "idx_flow_state_team",
                "idx_flow_state_unit",
            ]
        );
        assert_eq!(indexes(&db).await.len(), 5 + 6 + 6);
        Migrator::up(&db, None).await.unwrap();
        assert_eq!(indexes(&db).await, line);
    }

    /// A PostgreSQL pool opens no more than `max_connections`: with both
    /// held, a third caller waits out the acquire timeout.
    #[tokio::test]
    async fn a_postgres_pool_keeps_to_its_size() {
        let Ok(url) = std::env::var("GEMBA_TEST_POSTGRES_URL") else {
            eprintln!("GEMBA_TEST_POSTGRES_URL is not set: skipped");
            return;
        };
        let pool = super::PoolOptions {
            acquire_timeout: std::time::Duration::from_millis(300),
            statement_timeout: None,
            max_connections: 2,
        };
        let (db, _) = super::connect_with(&url, &pool).await.unwrap();
        let held = [db.begin().await.unwrap(), db.begin().await.unwrap()];
        assert!(db.begin().await.is_err(), "a third connection was opened");
        for txn in held {
            txn.rollback().await.unwrap();
        }
        db.begin().await.unwrap();
    }
}
