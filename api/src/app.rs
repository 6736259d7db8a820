//! The one wiring of a serving replica: the serving pool, the event bus with
//! its live hub (and on PostgreSQL the replica relay), the services, the
//! schema and the listener. `gemba serve` and the test harness both build
//! the server here, so tests exercise the real application.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::auth::TokenKeys;
use crate::config::{AnalyticsMode, Settings};
use crate::db::{self, PoolOptions};
use crate::events::EventBus;
use crate::graphql::Services;
use crate::http::{AppState, serve};
use crate::service::analytics::Analytics;
use crate::service::live::LiveHub;

/// A replica, built and listening, not yet serving.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Opens the serving pool on `database_url` (migrations are the
    /// caller's business), starts the live hub, and binds `bind`.
    ///
    /// # Errors
    /// When the database cannot be opened or the address cannot be bound.
    pub async fn build(
        database_url: &str,
        keys: TokenKeys,
        settings: Settings,
        bind: SocketAddr,
    ) -> anyhow::Result<Self> {
        let pool = PoolOptions::serving(database_url, &settings);
        let (conn, statements) = db::connect_with(database_url, &pool)
            .await
            .context("cannot open the database")?;
        let bus = EventBus::default();
        let live = LiveHub::start(&conn, &bus);
        let analytics = match settings.analytics {
            // The facts load on a pool of their own: loading never holds a
            // serving connection nor runs under the request deadline.
            AnalyticsMode::Memory => {
                let own = PoolOptions {
                    statement_timeout: None,
                    ..pool
                };
                let (facts_db, _) = db::connect_with(database_url, &own)
                    .await
                    .context("cannot open the database")?;
                Analytics::start(&facts_db, &bus, &settings)
            }
            AnalyticsMode::Sql => Analytics::default(),
        };
        let state = AppState::new(
            conn,
            statements,
            Services::new(keys, settings, bus, live, analytics),
        );
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        Ok(Self { listener, state })
    }

    /// The address the replica listens on (the port chosen for port 0).
    ///
    /// # Errors
    /// When the socket cannot say.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The replica's event bus, to observe what it publishes.
    pub fn bus(&self) -> EventBus {
        self.state.services.bus.clone()
    }

    /// Serves until `shutdown` resolves, then lets requests in flight finish.
    ///
    /// # Errors
    /// When the listener fails.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        serve(self.listener, self.state, shutdown).await
    }
}
