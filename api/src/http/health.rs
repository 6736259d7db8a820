//! `/healthz` (the process is up), `/readyz` (the database answers) and
//! `/metrics` (Prometheus text).

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::AppState;

pub async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.db.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n"),
        Err(e) => {
            tracing::warn!(error = %e, "database not reachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n")
        }
    }
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let body = format!(
        "# HELP gemba_db_statements_total SQL statements executed.\n\
         # TYPE gemba_db_statements_total counter\n\
         gemba_db_statements_total {}\n\
         # HELP gemba_graphql_requests_total GraphQL requests executed.\n\
         # TYPE gemba_graphql_requests_total counter\n\
         gemba_graphql_requests_total {}\n",
        state.statements.get(),
        state.graphql_requests.load(Ordering::Relaxed),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}
