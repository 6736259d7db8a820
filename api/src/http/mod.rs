//! HTTP: the axum router, its layers, and serving with graceful shutdown.

mod caller;
mod console;
mod graphql;
mod health;
mod ingest;
mod webhooks;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, header};
use axum::routing::{get, post};
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::db::StatementCounter;
use crate::graphql::guard::Admission;
use crate::graphql::{GembaSchema, Services};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub schema: GembaSchema,
    /// `schema` without the cost budget's extension: runs the operations
    /// whose cost is known, charged before they run (`graphql::budget`).
    pub unmetered: GembaSchema,
    /// What every document passes before `schema` runs it.
    pub admission: Arc<Admission>,
    pub services: Arc<Services>,
    pub statements: StatementCounter,
    pub graphql_requests: Arc<AtomicU64>,
    /// GraphQL requests cancelled at their deadline.
    pub timeouts: Arc<AtomicU64>,
}

impl AppState {
    pub fn new(db: DatabaseConnection, statements: StatementCounter, services: Services) -> Self {
        let schema = crate::graphql::build_schema(&services.settings);
        let unmetered = if services.settings.budget_points > 0 {
            crate::graphql::build_unmetered_schema(&services.settings)
        } else {
            schema.clone()
        };
        let admission = Arc::new(Admission::new(crate::graphql::document_limits(
            &services.settings,
        )));
        Self {
            db,
            schema,
            unmetered,
            admission,
            services: Arc::new(services),
            statements,
            graphql_requests: Arc::new(AtomicU64::new(0)),
            timeouts: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// The whole HTTP surface.
pub fn app(state: AppState) -> Router {
    let max_body = state.services.settings.max_body_bytes;
    let cors = cors_layer(&state.services.settings.cors_origins);
    let max_ingest = state.services.settings.max_ingest_bytes;
    let ingest = Router::new()
        .route("/ingest", post(ingest::ingest))
        .route("/webhooks/github", post(webhooks::github))
        .route("/webhooks/gitlab", post(webhooks::gitlab))
        .route("/webhooks/jira", post(webhooks::jira))
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(max_ingest));
    let router = Router::new()
        .route(
            "/graphql",
            get(graphql::graphql_get).post(graphql::graphql_post),
        )
        .route("/graphql/ws", get(ws::graphql_ws))
        .route("/", get(console::index))
        .route("/assets/{bundle}/{*file}", get(console::asset))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(RequestBodyLimitLayer::new(max_body))
        .merge(ingest)
        .layer(CatchPanicLayer::custom(graphql::panic_response))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state);
    match cors {
        Some(layer) => router.layer(layer),
        None => router,
    }
}

/// CORS for the configured origins only; without any, no CORS headers at all.
fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| match HeaderValue::from_str(o) {
            Ok(v) => Some(v),
            Err(_) => {
                tracing::warn!(origin = %o, "ignoring an invalid CORS origin");
                None
            }
        })
        .collect();
    if list.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(list))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION, header::ACCEPT])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// Serves `app(state)` on `listener` until `shutdown` resolves, then lets
/// requests in flight finish.
///
/// # Errors
/// When the listener fails.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
