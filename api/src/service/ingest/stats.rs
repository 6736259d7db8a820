//! Planner statistics during bulk ingest (PostgreSQL).
//!
//! A backfill grows tables from empty to millions of rows in minutes. The
//! statements that keep derived facts (a change's first deployment, an
//! incident's cause) are planned from statistics, and plans made for
//! near-empty tables scan whole tables per row once they are large.
//! Autovacuum may analyze too late, or be off. So the ingest path runs
//! `ANALYZE` on the tables it writes each time the events this process
//! applied pass a threshold that grows fourfold (20 thousand, 80 thousand,
//! 320 thousand, ...): a handful of times per import, each costing well
//! under a second.

use std::sync::atomic::{AtomicU64, Ordering};

use sea_orm::{ConnectionTrait, DbBackend};

/// Events applied by this process.
static APPLIED: AtomicU64 = AtomicU64::new(0);
/// The count at which the next `ANALYZE` runs.
static NEXT: AtomicU64 = AtomicU64::new(FIRST);
const FIRST: u64 = 20_000;
const GROWTH: u64 = 4;

const TABLES: &str = "work_item, transition, external_ref, change, change_work_item, \
     deployment, deployment_change, release, release_work_item, incident, ingest_log, \
     flow_completion, flow_wip, flow_state, flow_change, delivery_change";

/// Counts `applied` events and, past the threshold, refreshes the
/// statistics of the ingest tables. Failures are logged: statistics are an
/// optimisation, never a reason to fail an import.
pub async fn after_batch(db: &impl ConnectionTrait, applied: u64) {
    if applied == 0 || db.get_database_backend() != DbBackend::Postgres {
        return;
    }
    let total = APPLIED.fetch_add(applied, Ordering::Relaxed) + applied;
    let next = NEXT.load(Ordering::Relaxed);
    if total < next
        || NEXT
            .compare_exchange(
                next,
                next.saturating_mul(GROWTH),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_err()
    {
        return;
    }
    let started = std::time::Instant::now();
    match db.execute_unprepared(&format!("ANALYZE {TABLES}")).await {
        Ok(_) => tracing::info!(
            events = total,
            ms = started.elapsed().as_millis(),
            "refreshed planner statistics of the ingest tables"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot ANALYZE the ingest tables"),
    }
}
