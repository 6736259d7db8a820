//! `POST /ingest`: events of the common data model (DESIGN §4) as NDJSON
//! (streamed line by line, so a large backfill never sits in memory) or as a
//! JSON array. Authenticated by an API key or an admin's token.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::caller::Caller;
use super::graphql::{Media, error_body, error_response, respond};
use crate::error::{ApiError, ErrorCode};
use crate::service::ingest::report::{Report, Run};
use crate::service::ingest::{BATCH_SIZE, EventResult, Raw, Status};

/// Longest accepted NDJSON line.
const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Most rejected events answered in detail.
const MAX_REPORTED: usize = 10_000;

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

/// The answer of a run: counts for all events, details for rejected ones.
fn report_response(report: Report, status: StatusCode, error: Option<&str>) -> Response {
    let mut body = json!({
        "applied": report.summary.applied,
        "duplicates": report.summary.duplicates,
        "rejected": report.summary.rejected,
        "results": report.rejected,
    });
    if let Some(e) = error {
        body["errors"] = json!([{ "message": e, "extensions": { "code": "PAYLOAD_TOO_LARGE" } }]);
    }
    respond(status, Media::Json, &body)
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
    let run = match Run::begin(
        &state.db,
        scope,
        &state.services.bus,
        params.dry_run,
        MAX_REPORTED,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return error_response(Media::Json, &ApiError::from(e)),
    };
    let mut pending = Pending {
        run,
        batch: Vec::new(),
        fatal: None,
    };
    let end = read(&mut pending, &state, &headers, body).await;
    let (report, rolled_back) = pending.run.finish().await;
    if let Err(e) = rolled_back {
        tracing::error!(error = %e, "cannot roll back a dry run");
    }
    match end {
        End::Refused(response) => response,
        End::BodyTooLarge => report_response(
            report,
            StatusCode::PAYLOAD_TOO_LARGE,
            Some(
                "the body is over the configured limit; the events before this point were processed",
            ),
        ),
        End::Read => match pending.fatal {
            None => report_response(report, StatusCode::OK, None),
            // The fatal error with the counts of what committed before it
            // (every batch is one transaction: resending the body applies
            // the rest, the applied events answering `duplicate`).
            Some(e) => {
                let mut res = error_response(Media::Json, &e);
                let body = json!({
                    "applied": report.summary.applied,
                    "duplicates": report.summary.duplicates,
                    "rejected": report.summary.rejected,
                    "results": report.rejected,
                    "errors": [{ "message": e.message(), "extensions": { "code": e.code().as_str() } }],
                });
                *res.body_mut() = Body::from(body.to_string());
                res
            }
        },
    }
}

/// Events waiting for their batch's transaction.
struct Pending<'a> {
    run: Run<'a>,
    batch: Vec<(usize, Raw)>,
    /// The database went away: the rest of the body is not applied.
    fatal: Option<ApiError>,
}

impl Pending<'_> {
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
        if let Err(e) = self.run.apply(batch).await {
            self.fatal = Some(e);
        }
    }
}

/// How reading the body ended.
enum End {
    /// All of it was read (or the database went away meanwhile).
    Read,
    /// It ran over the body limit: the events before are reported.
    BodyTooLarge,
    /// It was refused as a whole, with this answer.
    Refused(Response),
}

async fn read(pending: &mut Pending<'_>, state: &AppState, headers: &HeaderMap, body: Body) -> End {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match content_type.as_str() {
        "application/json" => {
            let limit = state.services.settings.max_body_bytes.max(16 * 1024 * 1024);
            let bytes = match axum::body::to_bytes(body, limit).await {
                Ok(b) => b,
                Err(_) => {
                    return End::Refused(refused(
                        ErrorCode::PayloadTooLarge,
                        "a JSON array body is limited; send large batches as NDJSON",
                    ));
                }
            };
            let events = match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Array(a)) => a,
                Ok(v @ Value::Object(_)) => vec![v],
                _ => {
                    return End::Refused(refused(
                        ErrorCode::BadUserInput,
                        "the body must be a JSON array of events (or NDJSON)",
                    ));
                }
            };
            for (i, e) in events.into_iter().enumerate() {
                pending.push(i + 1, Raw::Value(e)).await;
            }
            pending.flush().await;
            End::Read
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
                        return End::BodyTooLarge;
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
                        pending.run.report.add(too_long(line));
                    } else {
                        push_line(pending, line, &buf).await;
                    }
                    buf.clear();
                }
            }
            if skipping {
                pending.run.report.add(too_long(line + 1));
            } else if !buf.is_empty() {
                push_line(pending, line + 1, &buf).await;
            }
            pending.flush().await;
            End::Read
        }
        _ => End::Refused(respond(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Media::Json,
            &error_body(
                "send events as application/x-ndjson or application/json",
                ErrorCode::BadUserInput.as_str(),
            ),
        )),
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

async fn push_line(pending: &mut Pending<'_>, line: usize, raw: &[u8]) {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim();
    if !text.is_empty() {
        pending.push(line, Raw::Line(text.to_owned())).await;
    }
}
