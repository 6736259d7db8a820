//! `POST /webhooks/{source}`: vendor deliveries, verified, translated and
//! applied like `POST /ingest` events.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::AppState;
use super::graphql::{Media, error_body, error_response, respond};
use crate::policy::IngestScope;
use crate::service::ingest::{Raw, Status, Summary, apply_batch, record_rejection};
use crate::service::integrations;
use crate::webhooks::{Translation, github, gitlab, jira};

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The configured secret of a source, or the response refusing the delivery.
async fn configured_secret(state: &AppState, source: &str) -> Result<String, Response> {
    match integrations::secret(&state.db, source).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(refuse(
            StatusCode::UNAUTHORIZED,
            &format!("the {source} integration is not configured"),
            "UNAUTHENTICATED",
        )),
        Err(e) => {
            tracing::error!(error = ?e, source, "cannot read an integration");
            Err(refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
                "INTERNAL",
            ))
        }
    }
}

fn refuse(status: StatusCode, message: &str, code: &str) -> Response {
    respond(status, Media::Json, &error_body(message, code))
}

pub async fn github(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let secret = match configured_secret(&state, github::SOURCE).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    if !github::verify(&secret, &body, header(&headers, "x-hub-signature-256")) {
        // The payload is not logged: it is unauthenticated input.
        tracing::warn!(
            source = github::SOURCE,
            delivery = header(&headers, "x-github-delivery").unwrap_or("-"),
            "webhook signature mismatch"
        );
        return refuse(
            StatusCode::UNAUTHORIZED,
            "invalid signature",
            "UNAUTHENTICATED",
        );
    }
    let (Some(event), Some(delivery)) = (
        header(&headers, "x-github-event"),
        header(&headers, "x-github-delivery"),
    ) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "X-GitHub-Event and X-GitHub-Delivery are required",
            "BAD_USER_INPUT",
        );
    };
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the body is not valid JSON",
            "BAD_USER_INPUT",
        );
    };
    let translation = match github::translate(&state.db, event, delivery, &payload).await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = ?e.message(), "webhook translation failed");
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
                "INTERNAL",
            );
        }
    };
    deliver(&state, github::SOURCE, event, delivery, translation).await
}

pub async fn gitlab(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let secret = match configured_secret(&state, gitlab::SOURCE).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    if !gitlab::verify(&secret, header(&headers, "x-gitlab-token")) {
        tracing::warn!(source = gitlab::SOURCE, "webhook token mismatch");
        return refuse(StatusCode::UNAUTHORIZED, "invalid token", "UNAUTHENTICATED");
    }
    let Some(delivery) = header(&headers, "x-gitlab-event-uuid") else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "X-Gitlab-Event-UUID is required",
            "BAD_USER_INPUT",
        );
    };
    let event = header(&headers, "x-gitlab-event").unwrap_or("unknown");
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the body is not valid JSON",
            "BAD_USER_INPUT",
        );
    };
    let translation = match gitlab::translate(&state.db, delivery, &payload).await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = ?e.message(), "webhook translation failed");
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
                "INTERNAL",
            );
        }
    };
    deliver(&state, gitlab::SOURCE, event, delivery, translation).await
}

pub async fn jira(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let secret = match configured_secret(&state, jira::SOURCE).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    // Jira signs like GitHub, under another header name.
    if !github::verify(&secret, &body, header(&headers, "x-hub-signature")) {
        tracing::warn!(source = jira::SOURCE, "webhook signature mismatch");
        return refuse(
            StatusCode::UNAUTHORIZED,
            "invalid signature",
            "UNAUTHENTICATED",
        );
    }
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the body is not valid JSON",
            "BAD_USER_INPUT",
        );
    };
    let event = payload["webhookEvent"]
        .as_str()
        .unwrap_or("unknown")
        .to_owned();
    // Retries of one delivery carry the same identifier.
    let delivery = match header(&headers, "x-atlassian-webhook-identifier") {
        Some(d) => d.to_owned(),
        None => format!(
            "{}-{}-{}",
            event,
            payload["issue"]["id"].as_str().unwrap_or("-"),
            payload["timestamp"]
        ),
    };
    let translation = match jira::translate(&state.db, &delivery, &payload).await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = ?e.message(), "webhook translation failed");
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
                "INTERNAL",
            );
        }
    };
    deliver(&state, jira::SOURCE, &event, &delivery, translation).await
}

/// Applies a translated delivery and answers like `POST /ingest`.
async fn deliver(
    state: &AppState,
    source: &str,
    event: &str,
    delivery: &str,
    translation: Translation,
) -> Response {
    let scope = IngestScope {
        key_id: None,
        unit_root: None,
    };
    match translation {
        Translation::Events(events) => {
            let batch = events
                .into_iter()
                .enumerate()
                .map(|(i, e)| (i + 1, Raw::Value(e)))
                .collect();
            let results =
                match apply_batch(&state.db, scope, &state.services.bus, false, batch).await {
                    Ok(r) => r,
                    Err(e) => return error_response(Media::Json, &e),
                };
            let mut summary = Summary::default();
            for r in &results {
                summary.add(r);
            }
            let rejected: Vec<_> = results
                .into_iter()
                .filter(|r| r.status == Status::Rejected)
                .collect();
            respond(
                StatusCode::OK,
                Media::Json,
                &json!({
                    "applied": summary.applied,
                    "duplicates": summary.duplicates,
                    "rejected": summary.rejected,
                    "results": rejected,
                }),
            )
        }
        Translation::Ignored(why) => {
            respond(StatusCode::OK, Media::Json, &json!({ "ignored": why }))
        }
        Translation::Rejected(reason) => {
            let id = format!("{source}-{delivery}");
            if let Err(e) = record_rejection(&state.db, &id, source, event, &reason, None).await {
                tracing::error!(error = %e, "cannot record a rejected delivery");
            }
            respond(
                StatusCode::OK,
                Media::Json,
                &json!({
                    "applied": 0, "duplicates": 0, "rejected": 1,
                    "results": [{ "line": 1, "id": id, "status": "rejected", "reason": reason }],
                }),
            )
        }
    }
}
