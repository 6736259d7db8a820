//! The common data model's one door (DESIGN §4): events from any integration
//! are validated and applied here, each all-or-nothing, idempotently by
//! event id.
//!
//! The door is [`apply_batch`]; behind it, calls go one way:
//! `batch/` (the set-based path) and `handlers.rs` (the per-event path) use
//! `event.rs` (the event format), `log.rs` (the ingest log), `records.rs`
//! (the delivery records both paths look up) and `outcome.rs` (what became
//! of each event).

use std::sync::Mutex;
use std::time::Instant;

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, TransactionTrait};

mod batch;
mod event;
mod handlers;
mod log;
mod outcome;
mod outcomes;
mod records;
pub mod report;
mod stats;

pub use self::event::{Event, EventType, Raw};
pub use self::log::record_rejection;
pub use self::outcome::{EventResult, Status, Summary};

use self::outcome::INTERNAL_REASON;
use super::facts::flow as facts;
use super::tx::write_transaction;
use crate::error::{ApiError, ErrorCode};
use crate::events::EventBus;
use crate::policy::IngestScope;

/// Events per transaction in [`apply_batch`].
pub const BATCH_SIZE: usize = 5000;

/// Applies a batch of events in one transaction, each event all-or-nothing
/// (a rejected event changes nothing, the others still apply), mostly with
/// multi-row statements (see [`batch`]); the batch commits once. Changes are
/// published after the commit. With `dry_run`, nothing is published and the
/// caller rolls back `db`.
pub async fn apply_batch<C>(
    db: &C,
    scope: IngestScope,
    bus: &EventBus,
    dry_run: bool,
    batch: Vec<(usize, Raw)>,
) -> Result<Vec<EventResult>, ApiError>
where
    C: TransactionTrait<Transaction = DatabaseTransaction> + ConnectionTrait,
{
    let lines: Vec<usize> = batch.iter().map(|(line, _)| *line).collect();
    // The database away (or past the deadline) fails the whole request, so
    // the client retries it; any other failure rejects the batch's events.
    let failed = |e: DbErr| {
        let err = ApiError::from(e);
        if matches!(err.code(), ErrorCode::Unavailable | ErrorCode::Timeout) {
            return Err(err);
        }
        tracing::error!(error = ?err, "ingest batch failed");
        Ok(lines
            .iter()
            .map(|&line| EventResult {
                line,
                id: None,
                status: Status::Rejected,
                reason: Some(INTERNAL_REASON.into()),
            })
            .collect::<Vec<_>>())
    };
    let txn = match db.begin_with_options(write_transaction()).await {
        Ok(t) => t,
        Err(e) => return failed(e),
    };
    let applied = Mutex::new(Vec::new());
    let started = Instant::now();
    let ran = match batch::run(&txn, scope, dry_run, &applied, batch).await {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    let (mut results, timing) = (ran.results, ran.timing);
    let touched = std::mem::take(&mut *applied.lock().unwrap_or_else(|p| p.into_inner()));
    let facts_started = Instant::now();
    if let Err(e) = batch::cached_plans(&txn).await {
        return failed(e);
    }
    if let Err(e) = facts::refresh_touched_known(&txn, &touched, &ran.known).await {
        return failed(e);
    }
    let facts_time = facts_started.elapsed();
    *applied.lock().unwrap_or_else(|p| p.into_inner()) = touched;
    let commit_started = Instant::now();
    let committed = txn.commit().await;
    tracing::debug!(
        target: "gemba::ingest::timing",
        events = lines.len(),
        claim_us = timing.claim.as_micros(),
        prefetch_us = timing.prefetch.as_micros(),
        plan_us = timing.plan.as_micros(),
        write_us = timing.write.as_micros(),
        slow_us = timing.slow.as_micros(),
        facts_us = facts_time.as_micros(),
        commit_us = commit_started.elapsed().as_micros(),
        total_us = started.elapsed().as_micros(),
        "ingest batch"
    );
    if let Err(e) = committed {
        let err = ApiError::from(e);
        if matches!(err.code(), ErrorCode::Unavailable | ErrorCode::Timeout) {
            return Err(err);
        }
        tracing::error!(error = ?err, "ingest batch commit failed");
        for r in &mut results {
            if r.status == Status::Applied {
                r.status = Status::Rejected;
                r.reason = Some(INTERNAL_REASON.into());
            }
        }
        return Ok(results);
    }
    for e in applied.into_inner().unwrap_or_else(|p| p.into_inner()) {
        bus.publish(e);
    }
    if !dry_run {
        let n = results
            .iter()
            .filter(|r| r.status == Status::Applied)
            .count();
        stats::after_batch(db, n as u64).await;
    }
    Ok(results)
}
