//! Ingest through GraphQL: `ingestEvents` applies common-data-model events
//! as `POST /ingest` does, and reports each event's result.

use async_graphql::{Context, Object, SimpleObject};

use super::rc;
use crate::error::GqlResult;
use crate::service::ingest::{Raw, Status as IngestStatus, Summary, apply_batch};

/// Most events one `ingestEvents` call takes; send more through `POST /ingest`.
const MAX_INGEST_EVENTS: usize = 1000;

/// The result of one ingested event.
#[derive(SimpleObject)]
pub struct IngestResult {
    /// 1-based position in the list.
    pub line: i32,
    /// The event's `id` as sent; null when none could be read (e.g. the
    /// event is not a JSON object).
    pub id: Option<String>,
    /// Whether the event was applied, skipped as a duplicate, or rejected.
    pub status: IngestStatus,
    /// Why the event was rejected; null unless `status` is `REJECTED`. A
    /// failure on the server's side says so, and the event may be sent again.
    pub reason: Option<String>,
}

/// The result of `ingestEvents`: one result per event, and the counts.
#[derive(SimpleObject)]
pub struct IngestPayload {
    /// One result per event, in the order sent.
    pub results: Vec<IngestResult>,
    /// How many events were applied.
    pub applied: i32,
    /// How many events were skipped because an event with the same `id` had
    /// been applied before.
    pub duplicates: i32,
    /// How many events were rejected; they changed nothing.
    pub rejected: i32,
}

#[derive(Default)]
pub struct IngestMutation;

#[Object]
impl IngestMutation {
    /// Applies common-data-model events (DESIGN §4), each on its own and
    /// idempotently by `id`: a rejected event changes nothing, the others
    /// still apply. API keys (inside their unit, if limited to one) and
    /// admins only; other users get `FORBIDDEN`.
    async fn ingest_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The events, each a JSON object `{id, type, source, data}`; at most 1,000 per call (`BAD_USER_INPUT` beyond), send more through `POST /ingest`."
        )]
        events: Vec<async_graphql::Json<serde_json::Value>>,
    ) -> GqlResult<IngestPayload> {
        let r = rc(ctx)?;
        let scope = r.policy.ingest_scope()?;
        if events.len() > MAX_INGEST_EVENTS {
            return Err(crate::error::ApiError::bad_input(format!(
                "at most {MAX_INGEST_EVENTS} events per call; send more through POST /ingest"
            ))
            .into());
        }
        let batch = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| (i + 1, Raw::Value(e.0)))
            .collect();
        let mut summary = Summary::default();
        let mut results = Vec::new();
        for res in apply_batch(&r.db, scope, &r.services.bus, false, batch).await? {
            summary.add(&res);
            results.push(IngestResult {
                line: i32::try_from(res.line).unwrap_or(i32::MAX),
                id: res.id,
                status: res.status,
                reason: res.reason,
            });
        }
        let n = |v: u64| i32::try_from(v).unwrap_or(i32::MAX);
        Ok(IngestPayload {
            results,
            applied: n(summary.applied),
            duplicates: n(summary.duplicates),
            rejected: n(summary.rejected),
        })
    }
}
