//! `/healthz` (the process is up), `/readyz` (the database answers, and the
//! flow facts in memory keep up with it) and `/metrics` (Prometheus text).

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::AppState;
use crate::error::UNAVAILABLE_RETRY_AFTER_SECS;

pub async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

/// Longest `/readyz` waits for the database before it says 503.
const READY_TIMEOUT: Duration = Duration::from_millis(800);

pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let unavailable = (
        StatusCode::SERVICE_UNAVAILABLE,
        [(
            header::RETRY_AFTER,
            UNAVAILABLE_RETRY_AFTER_SECS.to_string(),
        )],
        "database unavailable\n",
    )
        .into_response();
    if state.services.analytics.is_behind() {
        tracing::warn!("the flow facts in memory cannot catch up with the database");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(
                header::RETRY_AFTER,
                UNAVAILABLE_RETRY_AFTER_SECS.to_string(),
            )],
            "flow facts behind the database\n",
        )
            .into_response();
    }
    match tokio::time::timeout(READY_TIMEOUT, state.db.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "database not reachable");
            unavailable
        }
        Err(_) => {
            tracing::warn!("database did not answer within {READY_TIMEOUT:?}");
            unavailable
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
         gemba_graphql_requests_total {}\n\
         # HELP gemba_rate_limited_total Operations refused because the caller's cost budget could not pay.\n\
         # TYPE gemba_rate_limited_total counter\n\
         gemba_rate_limited_total {}\n\
         # HELP gemba_graphql_flat_lists_total Lists of work items resolved in one pass rather than field by field.\n\
         # TYPE gemba_graphql_flat_lists_total counter\n\
         gemba_graphql_flat_lists_total {}\n\
         # HELP gemba_request_timeouts_total GraphQL requests cancelled at their deadline.\n\
         # TYPE gemba_request_timeouts_total counter\n\
         gemba_request_timeouts_total {}\n\
         # HELP gemba_live_events_total Events the live hub read and passed to subscribers (none while nobody subscribes).\n\
         # TYPE gemba_live_events_total counter\n\
         gemba_live_events_total {}\n\
         # HELP gemba_live_missed_total Events the live hub skipped because it fell behind the event bus, each time reported to subscribers.\n\
         # TYPE gemba_live_missed_total counter\n\
         gemba_live_missed_total {}\n\
         # HELP gemba_analytics_loaded Whether flow metrics are answered from the facts in memory.\n\
         # TYPE gemba_analytics_loaded gauge\n\
         gemba_analytics_loaded {}\n\
         # HELP gemba_analytics_bytes Bytes the flow facts in memory take.\n\
         # TYPE gemba_analytics_bytes gauge\n\
         gemba_analytics_bytes {}\n\
         # HELP gemba_analytics_answers_total Flow metric parts answered from memory.\n\
         # TYPE gemba_analytics_answers_total counter\n\
         gemba_analytics_answers_total {}\n\
         # HELP gemba_analytics_caught_up_total Items whose facts in memory were read again because a catch-up with the database found them changed.\n\
         # TYPE gemba_analytics_caught_up_total counter\n\
         gemba_analytics_caught_up_total {}\n\
         # HELP gemba_analytics_recovered_total Times the event bus lost events and the facts in memory were read again from the database's change logs instead of reloaded.\n\
         # TYPE gemba_analytics_recovered_total counter\n\
         gemba_analytics_recovered_total {}\n\
         # HELP gemba_analytics_behind Whether the flow facts in memory have not caught up with the database for too long.\n\
         # TYPE gemba_analytics_behind gauge\n\
         gemba_analytics_behind {}\n",
        state.statements.get(),
        state.graphql_requests.load(Ordering::Relaxed),
        state.services.budgets.refused(),
        state.services.flat_lists.load(Ordering::Relaxed),
        state.timeouts.load(Ordering::Relaxed),
        state.services.live.completed(),
        state.services.live.missed(),
        u8::from(state.services.analytics.is_loaded()),
        state.services.analytics.size().0,
        state.services.analytics.answers(),
        state.services.analytics.caught_up(),
        state.services.analytics.recovered(),
        u8::from(state.services.analytics.is_behind()),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}
