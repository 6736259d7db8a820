//! `POST /webhooks/{source}`: vendor deliveries, verified, translated and
//! applied like `POST /ingest` events.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};

use super::AppState;
use super::graphql::{Media, respond};
use crate::error::{ApiError, ApiResult};
use crate::policy::IngestScope;
use crate::service::ingest::{Raw, Status, Summary, apply_batch, record_rejection};
use crate::service::integrations;
use crate::webhooks::{Translation, github, gitlab, jira};

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// What differs between vendors: how a delivery proves it knows the shared
/// secret, how it is named, and how its payload becomes events. Everything
/// else is [`receive`].
trait Vendor {
    const SOURCE: &'static str;
    /// What a delivery failing [`Vendor::verify`] is told.
    const UNVERIFIED: &'static str = "invalid signature";

    fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool;

    /// The delivery's event and its identifier (retries share it).
    ///
    /// # Errors
    /// The message of a `BAD_USER_INPUT` refusal.
    fn names(headers: &HeaderMap, payload: &Value) -> Result<(String, String), &'static str>;

    async fn translate(
        db: &DatabaseConnection,
        event: &str,
        delivery: &str,
        payload: &Value,
    ) -> ApiResult<Translation>;
}

struct GitHub;

impl Vendor for GitHub {
    const SOURCE: &'static str = github::SOURCE;

    fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
        github::verify(secret, body, header(headers, "x-hub-signature-256"))
    }

    fn names(headers: &HeaderMap, _: &Value) -> Result<(String, String), &'static str> {
        match (
            header(headers, "x-github-event"),
            header(headers, "x-github-delivery"),
        ) {
            (Some(e), Some(d)) => Ok((e.to_owned(), d.to_owned())),
            _ => Err("X-GitHub-Event and X-GitHub-Delivery are required"),
        }
    }

    async fn translate(
        db: &DatabaseConnection,
        event: &str,
        delivery: &str,
        payload: &Value,
    ) -> ApiResult<Translation> {
        github::translate(db, event, delivery, payload).await
    }
}

struct GitLab;

impl Vendor for GitLab {
    const SOURCE: &'static str = gitlab::SOURCE;
    const UNVERIFIED: &'static str = "invalid token";

    fn verify(secret: &str, headers: &HeaderMap, _: &[u8]) -> bool {
        gitlab::verify(secret, header(headers, "x-gitlab-token"))
    }

    fn names(headers: &HeaderMap, _: &Value) -> Result<(String, String), &'static str> {
        let delivery =
            header(headers, "x-gitlab-event-uuid").ok_or("X-Gitlab-Event-UUID is required")?;
        let event = header(headers, "x-gitlab-event").unwrap_or("unknown");
        Ok((event.to_owned(), delivery.to_owned()))
    }

    async fn translate(
        db: &DatabaseConnection,
        _: &str,
        delivery: &str,
        payload: &Value,
    ) -> ApiResult<Translation> {
        gitlab::translate(db, delivery, payload).await
    }
}

struct Jira;

impl Vendor for Jira {
    const SOURCE: &'static str = jira::SOURCE;

    /// Jira signs like GitHub, under another header name.
    fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
        github::verify(secret, body, header(headers, "x-hub-signature"))
    }

    fn names(headers: &HeaderMap, payload: &Value) -> Result<(String, String), &'static str> {
        let event = payload["webhookEvent"]
            .as_str()
            .unwrap_or("unknown")
            .to_owned();
        // Retries of one delivery carry the same identifier.
        let delivery = match header(headers, "x-atlassian-webhook-identifier") {
            Some(d) => d.to_owned(),
            None => format!(
                "{}-{}-{}",
                event,
                payload["issue"]["id"].as_str().unwrap_or("-"),
                payload["timestamp"]
            ),
        };
        Ok((event, delivery))
    }

    async fn translate(
        db: &DatabaseConnection,
        _: &str,
        delivery: &str,
        payload: &Value,
    ) -> ApiResult<Translation> {
        jira::translate(db, delivery, payload).await
    }
}

pub async fn github(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    receive::<GitHub>(&state, &headers, &body).await
}

pub async fn gitlab(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    receive::<GitLab>(&state, &headers, &body).await
}

pub async fn jira(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    receive::<Jira>(&state, &headers, &body).await
}

/// The one receive path: the source's secret, the delivery's proof, its
/// payload and names, the translation into events, and their delivery.
async fn receive<V: Vendor>(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Response {
    let secret = match integrations::secret(&state.db, V::SOURCE).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return ApiError::InvalidToken("this integration is not configured").into_response();
        }
        Err(e) => return e.into_response(),
    };
    if !V::verify(&secret, headers, body) {
        // The payload is not logged: it is unauthenticated input.
        tracing::warn!(source = V::SOURCE, "webhook verification failed");
        return ApiError::InvalidToken(V::UNVERIFIED).into_response();
    }
    let Ok(payload) = serde_json::from_slice::<Value>(body) else {
        return ApiError::bad_input("the body is not valid JSON").into_response();
    };
    let (event, delivery) = match V::names(headers, &payload) {
        Ok(n) => n,
        Err(msg) => return ApiError::bad_input(msg).into_response(),
    };
    match V::translate(&state.db, &event, &delivery, &payload).await {
        Ok(translation) => deliver(state, V::SOURCE, &event, &delivery, translation).await,
        Err(e) => e.into_response(),
    }
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
                .map(|(i, e)| (i + 1, Raw::Value(e.into_value())))
                .collect();
            let results =
                match apply_batch(&state.db, scope, &state.services.bus, false, batch).await {
                    Ok(r) => r,
                    Err(e) => return e.into_response(),
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
