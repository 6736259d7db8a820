//! A batch of events applied set-based, so a backfill costs a few statements
//! per batch rather than a dozen round trips per event.
//!
//! The events a backfill is made of (new work items, their transitions in
//! time order, new changes and deployments) are checked in memory against
//! what the batch has loaded and done so far, and their writes are queued.
//! Anything else (units, updates of records that exist, an out-of-order
//! transition, an assignee to check) takes the per-event path in a savepoint
//! of its own, after the queued writes are flushed, so events still apply in
//! the order they came.
//!
//! Each event stays all-or-nothing: a queued event has passed every check
//! before anything of it is written, and a segment's writes run in one
//! savepoint. If any of them fails (another request claimed the same event
//! id meanwhile, say) the savepoint is rolled back and the segment's events
//! are replayed one by one on the per-event path.
//!
//! `planner.rs` checks and queues, `cache.rs` holds what the batch has read,
//! `queue.rs` what a segment has queued, and `writer.rs` writes it; this
//! file walks the batch, one segment after another.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, TransactionTrait};

use self::cache::Cache;
use self::planner::{Plan, Planner};
use self::queue::{Id, Pending, Target, Written};
use super::event::{Envelope, Raw, envelope};
use super::handlers::Ingestor;
use super::outcome::{EventResult, Status};
use crate::events::{ChangeKind, DomainEvent};
use crate::policy::IngestScope;
use crate::service::facts::flow::Known;

mod cache;
mod planner;
mod queue;
mod unnest;
mod writer;

/// One batch on its way: the planner with its cache and queue, and the
/// per-event path for what the planner hands on.
struct Batcher<'a> {
    txn: &'a DatabaseTransaction,
    dry_run: bool,
    slow: Ingestor<'a, DatabaseTransaction>,
    planner: Planner<'a>,
    /// Ids this batch claimed in the log (the others were applied before).
    claimed: HashSet<String>,
    /// Ids processed so far in this batch, and whether they applied.
    processed: HashMap<String, bool>,
    applied: &'a Mutex<Vec<DomainEvent>>,
    /// The whole histories of the items this batch created, as written,
    /// so that their facts need not be read back (see [`Ran::known`]).
    known: HashMap<i64, Known>,
    timing: Timing,
}

/// What [`run`] did.
pub(super) struct Ran {
    /// One result per event, in the batch's order.
    pub(super) results: Vec<EventResult>,
    /// The items the batch created on this path with every write to them
    /// since, by row id: the per-event path wrote to none of them.
    pub(super) known: HashMap<i64, Known>,
    pub(super) timing: Timing,
}

/// Where a batch's time went, for the debug log of [`super::apply_batch`].
#[derive(Default)]
pub(super) struct Timing {
    /// Claiming the ids in the ingest log.
    pub(super) claim: Duration,
    /// Loading what the events refer to.
    pub(super) prefetch: Duration,
    /// Checking and queueing in memory.
    pub(super) plan: Duration,
    /// Writing the queued rows.
    pub(super) write: Duration,
    /// The per-event path.
    pub(super) slow: Duration,
}

/// Applies `batch` inside `txn`; the caller commits. Results come back in
/// the batch's order, and applied changes are added to `applied`.
/// Lets PostgreSQL use cached plans for the rest of the transaction: the
/// facts written after the batch insert rows whose foreign-key checks
/// would otherwise be planned again row by row.
///
/// # Errors
/// Database errors only.
pub(super) async fn cached_plans(txn: &DatabaseTransaction) -> Result<(), DbErr> {
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        txn.execute_unprepared(&writer::plan_cache_mode("auto"))
            .await?;
    }
    Ok(())
}

pub(super) async fn run(
    txn: &DatabaseTransaction,
    scope: IngestScope,
    dry_run: bool,
    applied: &Mutex<Vec<DomainEvent>>,
    batch: Vec<(usize, Raw)>,
) -> Result<Ran, DbErr> {
    let mut results = Vec::with_capacity(batch.len());
    let mut events = Vec::with_capacity(batch.len());
    for (line, raw) in batch {
        match parse(line, raw) {
            Ok(env) => {
                events.push((results.len(), line, env));
                results.push(EventResult {
                    line,
                    id: None,
                    status: Status::Rejected,
                    reason: None,
                });
            }
            Err(r) => results.push(r),
        }
    }
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        // The lookups' key lists vary from batch to batch, and the tables
        // grow under a backfill: a generic plan cached while a table was
        // small would keep scanning it whole.
        // The writes switch back to cached plans for their inserts
        // (`writer::write`).
        txn.execute_unprepared(&writer::plan_cache_mode(writer::LOOKUP_PLANS))
            .await?;
    }
    let started = Instant::now();
    let claimed = writer::claim(txn, &events, scope.key_id).await?;
    let claim = started.elapsed();
    let mut b = Batcher {
        txn,
        dry_run,
        slow: Ingestor {
            db: txn,
            scope,
            applied,
            dry_run,
        },
        planner: Planner {
            scope,
            cache: Cache::new(txn),
            pending: Pending::default(),
        },
        claimed,
        processed: HashMap::new(),
        applied,
        known: HashMap::new(),
        timing: Timing {
            claim,
            ..Timing::default()
        },
    };
    let started = Instant::now();
    b.planner.cache.prefetch(&events, scope.unit_root).await?;
    b.timing.prefetch = started.elapsed();
    let started = Instant::now();
    for (slot, line, env) in events {
        b.step(&mut results, slot, line, env).await?;
    }
    b.flush(&mut results).await?;
    let mut timing = b.timing;
    timing.plan = started
        .elapsed()
        .saturating_sub(timing.write)
        .saturating_sub(timing.slow);
    Ok(Ran {
        results,
        known: b.known,
        timing,
    })
}

pub(super) fn parse(line: usize, raw: Raw) -> Result<Envelope, EventResult> {
    let value = match raw {
        Raw::Prepared(p) => return p.0,
        Raw::Value(v) => v,
        Raw::Line(text) => match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                return Err(EventResult {
                    line,
                    id: None,
                    status: Status::Rejected,
                    reason: Some(format!("not valid JSON: {e}")),
                });
            }
        },
    };
    if holds_nul(&value) {
        // PostgreSQL cannot store it: refused here, it would fail the batch.
        return Err(EventResult {
            line,
            id: value
                .get("id")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
            status: Status::Rejected,
            reason: Some("text must not contain the NUL character (U+0000)".into()),
        });
    }
    envelope(value).map_err(|(id, reason)| EventResult {
        line,
        id,
        status: Status::Rejected,
        reason: Some(reason),
    })
}

/// Whether any string or key of `v` holds U+0000.
fn holds_nul(v: &serde_json::Value) -> bool {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::String(s) if s.contains('\0') => return true,
            serde_json::Value::Array(items) => stack.extend(items),
            serde_json::Value::Object(fields) => {
                if fields.keys().any(|k| k.contains('\0')) {
                    return true;
                }
                stack.extend(fields.values());
            }
            _ => {}
        }
    }
    false
}

fn result(line: usize, env: &Envelope, status: Status, reason: Option<String>) -> EventResult {
    EventResult {
        line,
        id: Some(env.id.clone()),
        status,
        reason,
    }
}

impl Batcher<'_> {
    async fn step(
        &mut self,
        results: &mut [EventResult],
        slot: usize,
        line: usize,
        env: Envelope,
    ) -> Result<(), DbErr> {
        let first = match self.processed.get(&env.id) {
            None => self.claimed.contains(&env.id),
            Some(true) => false,
            Some(false) => {
                // Sent again after a rejection in this batch: the per-event
                // path claims it anew, once the rejection is written.
                self.flush(results).await?;
                let r = self.slow_event(line, &env, false).await;
                self.processed
                    .insert(env.id.clone(), r.status == Status::Applied);
                self.planner.cache.forget(&env);
                results[slot] = r;
                return Ok(());
            }
        };
        if !first {
            results[slot] = result(line, &env, Status::Duplicate, None);
            return Ok(());
        }
        loop {
            match self.planner.plan(&env).await? {
                Plan::Queued => {
                    results[slot] = result(line, &env, Status::Applied, None);
                    self.processed.insert(env.id.clone(), true);
                    self.planner.pending.events.push((slot, line, env));
                    return Ok(());
                }
                Plan::Rejected(reason) => {
                    results[slot] = result(line, &env, Status::Rejected, Some(reason.clone()));
                    self.processed.insert(env.id.clone(), false);
                    self.planner
                        .pending
                        .rejections
                        .push((env.id.clone(), reason));
                    self.planner.pending.events.push((slot, line, env));
                    return Ok(());
                }
                Plan::Flush if !self.planner.pending.is_empty() => self.flush(results).await?,
                Plan::Flush | Plan::Slow => {
                    self.flush(results).await?;
                    let r = self.slow_event(line, &env, true).await;
                    self.processed
                        .insert(env.id.clone(), r.status == Status::Applied);
                    self.planner.cache.forget(&env);
                    results[slot] = r;
                    return Ok(());
                }
            }
        }
    }

    /// Writes the segment's queued rows in one savepoint. If that fails, the
    /// segment's events are replayed one by one instead.
    async fn flush(&mut self, results: &mut [EventResult]) -> Result<(), DbErr> {
        if self.planner.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.planner.pending);
        let started = Instant::now();
        let sp = self.txn.begin().await?;
        let written = writer::write(&sp, &pending).await;
        self.timing.write += started.elapsed();
        match written {
            Ok(ids) => {
                let started = Instant::now();
                sp.commit().await?;
                self.timing.write += started.elapsed();
                self.planner.cache.settle(&pending, &ids);
                self.remember(&pending, &ids);
                self.publish(pending, &ids);
            }
            Err(e) => {
                sp.rollback().await?;
                tracing::warn!(error = %e, "batched ingest writes failed; replaying event by event");
                self.planner.cache = Cache::new(self.txn);
                for (slot, line, env) in pending.events {
                    let r = self.slow_event(line, &env, true).await;
                    self.processed
                        .insert(env.id.clone(), r.status == Status::Applied);
                    results[slot] = r;
                }
            }
        }
        Ok(())
    }

    /// Runs an event on the per-event path (`claimed`: its id is claimed
    /// already). The items it wrote to leave [`Batcher::known`]: their facts
    /// will be read back.
    async fn slow_event(&mut self, line: usize, env: &Envelope, claimed: bool) -> EventResult {
        let started = Instant::now();
        let before = self.applied.lock().unwrap_or_else(|p| p.into_inner()).len();
        let r = if claimed {
            self.slow.claimed_event(line, env).await
        } else {
            self.slow.envelope_event(line, env).await
        };
        if !self.known.is_empty() {
            let applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
            for e in applied.iter().skip(before) {
                if matches!(
                    e.kind,
                    ChangeKind::WorkItemCreated
                        | ChangeKind::WorkItemUpdated
                        | ChangeKind::WorkItemMoved
                        | ChangeKind::WorkItemRanked
                ) {
                    self.known.remove(&e.entity_id);
                }
            }
        }
        self.timing.slow += started.elapsed();
        r
    }

    /// Adds the items a written segment created to [`Batcher::known`], and
    /// the transitions it wrote to the histories of those known.
    fn remember(&mut self, pending: &Pending, ids: &Written) {
        if self.dry_run {
            return;
        }
        for (m, row) in pending.items.iter().zip(&ids.items) {
            self.known.insert(
                *row,
                Known {
                    unit_id: m.unit_id,
                    item_type: m.item_type.clone(),
                    flow_type: m.flow_type.clone(),
                    created_at: m.created_at,
                    steps: Vec::new(),
                },
            );
        }
        for t in &pending.transitions {
            let row = match t.item {
                Id::New(n) => ids.items[n],
                Id::Row(r) => r,
            };
            if let Some(k) = self.known.get_mut(&row) {
                k.steps.push((t.at, t.to.clone(), t.category.clone()));
            }
        }
    }

    /// Adds the written segment's changes to those to publish.
    fn publish(&self, pending: Pending, ids: &Written) {
        let resolve_item = |id: Id| match id {
            Id::New(n) => ids.items[n],
            Id::Row(r) => r,
        };
        if self.dry_run {
            return;
        }
        let now = Utc::now();
        let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        applied.extend(pending.domain.into_iter().map(|(kind, unit_id, target)| {
            let entity_id = match target {
                Target::Item(id) => resolve_item(id),
                Target::Change(n) => ids.changes[n],
                Target::Deployment(n) => ids.deployments[n],
            };
            DomainEvent {
                at: now,
                ..DomainEvent::new(kind, unit_id, entity_id)
            }
        }));
    }
}
