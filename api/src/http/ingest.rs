//! `POST /ingest`: events of the common data model (DESIGN §4) as NDJSON
//! (streamed line by line, so a large backfill never sits in memory) or as a
//! JSON array. Authenticated by an API key or an admin's token.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use futures::StreamExt;
use sea_orm::{DatabaseTransaction, TransactionTrait};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::caller::Caller;
use super::graphql::{Media, error_body, error_response, respond};
use crate::error::{ApiError, ErrorCode};
use crate::events::EventBus;
use crate::policy::IngestScope;
use crate::service::ingest::{BATCH_SIZE, EventResult, Raw, Status, Summary, apply_batch};
use crate::service::tx::write_transaction;

/// Longest accepted NDJSON line.
const MAX_LINE_BYTES: usize = 1024 * 1024;

#[derive(Deserialize, Default)]
pub struct IngestParams {
    /// Validate every event, write nothing.
    #[serde(default)]
    dry_run: bool,
}

fn refused(code: ErrorCode, message: &str) -> Response {
    let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    respond(status, Media::Json, &error_body(message, code.as_str()))
}

/// Collects results: counts for all, details for rejected events only (a
/// million applied events would otherwise make a million-line answer).
#[derive(Default)]
struct Report {
    summary: Summary,
    rejected: Vec<EventResult>,
}

impl Report {
    fn add(&mut self, r: EventResult) {
        self.summary.add(&r);
        if r.status == Status::Rejected && self.rejected.len() < 10_000 {
            self.rejected.push(r);
        }
    }

    fn into_response(self, status: StatusCode, error: Option<&str>) -> Response {
        let mut body = json!({
            "applied": self.summary.applied,
            "duplicates": self.summary.duplicates,
            "rejected": self.summary.rejected,
            "results": self.rejected,
        });
        if let Some(e) = error {
            body["errors"] =
                json!([{ "message": e, "extensions": { "code": "PAYLOAD_TOO_LARGE" } }]);
        }
        respond(status, Media::Json, &body)
    }
}

pub async fn ingest(
    State(state): State<AppState>,
    Caller(policy): Caller,
    Query(params): Query<IngestParams>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let scope = match policy.ingest_scope() {
        Ok(s) => s,
        Err(e) => return refused(e.code(), &e.message()),
    };
    if params.dry_run {
        let txn = match state.db.begin_with_options(write_transaction()).await {
            Ok(t) => t,
            Err(e) => return error_response(Media::Json, &ApiError::from(e)),
        };
        let response = run(&txn, scope, true, &state, &headers, body).await;
        if let Err(e) = txn.rollback().await {
            tracing::error!(error = %e, "cannot roll back a dry run");
        }
        return response;
    }
    run(&state.db, scope, false, &state, &headers, body).await
}

/// Events waiting for their batch's transaction.
struct Pending<'a, C> {
    db: &'a C,
    scope: IngestScope,
    bus: &'a EventBus,
    dry_run: bool,
    batch: Vec<(usize, Raw)>,
    report: Report,
    /// The database went away: the rest of the body is not applied.
    fatal: Option<ApiError>,
}

impl<C> Pending<'_, C>
where
    C: TransactionTrait<Transaction = DatabaseTransaction> + sea_orm::ConnectionTrait,
{
    async fn push(&mut self, line: usize, raw: Raw) {
        self.batch.push((line, raw));
        if self.batch.len() >= BATCH_SIZE {
            self.flush().await;
        }
    }

    async fn flush(&mut self) {
        if self.batch.is_empty() || self.fatal.is_some() {
            self.batch.clear();
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        match apply_batch(self.db, self.scope, self.bus, self.dry_run, batch).await {
            Ok(results) => {
                for r in results {
                    self.report.add(r);
                }
            }
            Err(e) => self.fatal = Some(e),
        }
    }

    /// The report, or the fatal error with the counts of what committed
    /// before it (every batch is one transaction: resending the body
    /// applies the rest, the applied events answering `duplicate`).
    fn finish(self) -> Response {
        match self.fatal {
            None => self.report.into_response(StatusCode::OK, None),
            Some(e) => {
                let mut res = error_response(Media::Json, &e);
                let summary = &self.report.summary;
                let body = json!({
                    "applied": summary.applied,
                    "duplicates": summary.duplicates,
                    "rejected": summary.rejected,
                    "results": self.report.rejected,
                    "errors": [{ "message": e.message(), "extensions": { "code": e.code().as_str() } }],
                });
                *res.body_mut() = Body::from(body.to_string());
                res
            }
        }
    }
}

async fn run<C>(
    db: &C,
    scope: IngestScope,
    dry_run: bool,
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Response
where
    C: TransactionTrait<Transaction = DatabaseTransaction> + sea_orm::ConnectionTrait,
{
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let mut pending = Pending {
        db,
        scope,
        bus: &state.services.bus,
        dry_run,
        batch: Vec::new(),
        report: Report::default(),
        fatal: None,
    };
    match content_type.as_str() {
        "application/json" => {
            let limit = state.services.settings.max_body_bytes.max(16 * 1024 * 1024);
            let bytes = match axum::body::to_bytes(body, limit).await {
                Ok(b) => b,
                Err(_) => {
                    return refused(
                        ErrorCode::PayloadTooLarge,
                        "a JSON array body is limited; send large batches as NDJSON",
                    );
                }
            };
            let events = match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Array(a)) => a,
                Ok(v @ Value::Object(_)) => vec![v],
                _ => {
                    return refused(
                        ErrorCode::BadUserInput,
                        "the body must be a JSON array of events (or NDJSON)",
                    );
                }
            };
            for (i, e) in events.into_iter().enumerate() {
                pending.push(i + 1, Raw::Value(e)).await;
            }
            pending.flush().await;
            pending.finish()
        }
        "application/x-ndjson" | "application/jsonl" | "application/jsonlines" | "text/plain" => {
            let mut stream = body.into_data_stream();
            let mut buf: Vec<u8> = Vec::new();
            let mut line = 0usize;
            let mut skipping = false;
            while let Some(chunk) = stream.next().await {
                if pending.fatal.is_some() {
                    break;
                }
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(_) => {
                        pending.flush().await;
                        return pending.report.into_response(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            Some("the body is over the configured limit; the events before this point were processed"),
                        );
                    }
                };
                for part in chunk.split_inclusive(|b| *b == b'\n') {
                    let complete = part.last() == Some(&b'\n');
                    if !skipping {
                        buf.extend_from_slice(part);
                    }
                    if !complete {
                        if buf.len() > MAX_LINE_BYTES {
                            skipping = true;
                            buf.clear();
                        }
                        continue;
                    }
                    line += 1;
                    if skipping {
                        skipping = false;
                        pending.report.add(too_long(line));
                    } else {
                        push_line(&mut pending, line, &buf).await;
                    }
                    buf.clear();
                }
            }
            if skipping {
                pending.report.add(too_long(line + 1));
            } else if !buf.is_empty() {
                push_line(&mut pending, line + 1, &buf).await;
            }
            pending.flush().await;
            pending.finish()
        }
        _ => respond(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Media::Json,
            &error_body(
                "send events as application/x-ndjson or application/json",
                ErrorCode::BadUserInput.as_str(),
            ),
        ),
    }
}

fn too_long(line: usize) -> EventResult {
    EventResult {
        line,
        id: None,
        status: Status::Rejected,
        reason: Some(format!("the line is longer than {MAX_LINE_BYTES} bytes")),
    }
}

async fn push_line<C>(pending: &mut Pending<'_, C>, line: usize, raw: &[u8])
where
    C: TransactionTrait<Transaction = DatabaseTransaction> + sea_orm::ConnectionTrait,
{
    let text = String::from_utf8_lossy(raw);
    let text = text.trim();
    if !text.is_empty() {
        pending.push(line, Raw::Line(text.to_owned())).await;
    }
}
