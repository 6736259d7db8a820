// Over 800 lines: the planner, its cache and the writer are still one file;
// they are to be split into `batch/{planner,cache,writer}.rs`.
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

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use entity::{
    change, change_work_item, deployment, deployment_change, external_ref, ingest_log, transition,
    unit, unit_closure, work_item,
};
use sea_orm::sea_query::{Alias, CaseStatement, Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
};

use super::event::Raw;
use super::event::{
    ChangeFields, DeploymentFields, Envelope, Fail, ItemFields, TransitionFields, envelope,
};
use super::handlers::Ingestor;
use super::log::{claim_conflict, mark_rejected};
use super::outcome::{EventResult, Status};
use crate::domain::UnitKind;
use crate::events::{ChangeKind, DomainEvent};
use crate::policy::{IngestScope, UnitPath};
use crate::service::rank;
use crate::service::units::{self, EffectiveWorkflow};

mod unnest;

/// Rows per multi-row `VALUES` statement: well under the bind-parameter
/// limits of both databases for the widest table.
const CHUNK: usize = 1000;
/// Keys per `IN (...)` lookup.
const IN_CHUNK: usize = 5000;
/// Rows per PostgreSQL `UNNEST` statement (one parameter per column).
const ARRAY_CHUNK: usize = 10_000;

/// A row that exists, or the n-th row of its kind queued in this segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Id {
    Row(i64),
    New(usize),
}

/// What the batch knows of a work item.
#[derive(Clone, Debug)]
struct Item {
    id: Id,
    key: String,
    unit_id: i64,
    item_type: String,
    state: String,
    created_at: DateTime<Utc>,
    /// `at` of its latest transition.
    latest_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug)]
struct Owned {
    id: Id,
    unit_id: i64,
}

/// What the batch has read, and what its queued writes will make true.
/// `None` entries record that a lookup found nothing.
#[derive(Default)]
struct Cache {
    units: HashMap<String, Option<i64>>,
    paths: HashMap<i64, UnitPath>,
    workflows: HashMap<i64, Arc<EffectiveWorkflow>>,
    items: Vec<Item>,
    item_rows: HashMap<i64, usize>,
    by_ref: HashMap<(String, String), Option<usize>>,
    by_key: HashMap<String, Option<usize>>,
    changes: HashMap<(String, String), Option<Owned>>,
    deployments: HashMap<(String, String), Option<Owned>>,
    /// The last rank of each board column, (unit, state).
    ranks: HashMap<(i64, String), Option<String>>,
}

/// A queued work item.
struct NewItem {
    key: String,
    title: String,
    description: Option<String>,
    item_type: String,
    flow_type: String,
    state: String,
    category: String,
    unit_id: i64,
    parent_id: Option<i64>,
    estimate: Option<f64>,
    business_value: Option<f64>,
    rank: String,
    found_in: Option<String>,
    severity: Option<String>,
    created_at: DateTime<Utc>,
}

impl NewItem {
    fn model(&self, now: DateTime<Utc>) -> work_item::ActiveModel {
        work_item::ActiveModel {
            key: Set(self.key.clone()),
            title: Set(self.title.clone()),
            description: Set(self.description.clone()),
            item_type: Set(self.item_type.clone()),
            flow_type: Set(self.flow_type.clone()),
            state: Set(self.state.clone()),
            state_category: Set(self.category.clone()),
            unit_id: Set(self.unit_id),
            parent_id: Set(self.parent_id),
            assignee_id: Set(None),
            estimate: Set(self.estimate),
            business_value: Set(self.business_value),
            rank: Set(self.rank.clone()),
            found_in: Set(self.found_in.clone()),
            severity: Set(self.severity.clone()),
            created_at: Set(self.created_at),
            updated_at: Set(now),
            ..Default::default()
        }
    }
}

/// A queued transition.
struct NewTransition {
    item: Id,
    from: Option<String>,
    to: String,
    category: String,
    at: DateTime<Utc>,
    source: String,
}

/// An entity a queued domain event is about.
#[derive(Clone, Copy)]
enum Target {
    Item(Id),
    /// A queued change or deployment, by queue position.
    Change(usize),
    Deployment(usize),
}

/// Writes queued by the current segment.
#[derive(Default)]
struct Pending {
    /// Every event of the segment, to replay should its writes fail.
    events: Vec<(usize, usize, Envelope)>,
    /// Claimed ids to mark rejected, with the reason.
    rejections: Vec<(String, String)>,
    items: Vec<NewItem>,
    /// For each queued item, its index in the cache.
    item_slots: Vec<usize>,
    refs: Vec<(Id, String, String, Option<String>)>,
    transitions: Vec<NewTransition>,
    /// New state, category and rank of items that exist.
    moves: HashMap<i64, (String, String, String)>,
    changes: Vec<change::ActiveModel>,
    change_refs: Vec<(String, String)>,
    change_links: Vec<(usize, Id)>,
    deployments: Vec<deployment::ActiveModel>,
    deployment_refs: Vec<(String, String)>,
    deployment_links: Vec<(usize, Id)>,
    domain: Vec<(ChangeKind, i64, Target)>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// What the fast path makes of an event.
enum Plan {
    /// Checked and queued.
    Queued,
    /// Wrong: nothing queued but its rejection.
    Rejected(String),
    /// Needs a row queued in this segment to exist first.
    Flush,
    /// For the per-event path.
    Slow,
}

fn rejected(reason: impl Into<String>) -> Result<Plan, DbErr> {
    Ok(Plan::Rejected(reason.into()))
}

/// The fast path's view of a checked field: `Err(plan)` ends the planning.
fn checked<T>(r: Result<T, Fail>) -> Result<Result<T, Plan>, DbErr> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(Fail::Reject(reason)) => Ok(Err(Plan::Rejected(reason))),
        Err(Fail::Internal(e)) => Err(e),
    }
}

macro_rules! check {
    ($e:expr) => {
        match checked($e)? {
            Ok(v) => v,
            Err(plan) => return Ok(plan),
        }
    };
}

fn internal(e: impl std::fmt::Display) -> DbErr {
    DbErr::Custom(e.to_string())
}

struct Batcher<'a> {
    txn: &'a DatabaseTransaction,
    scope: IngestScope,
    dry_run: bool,
    slow: Ingestor<'a, DatabaseTransaction>,
    cache: Cache,
    pending: Pending,
    /// Ids this batch claimed in the log (the others were applied before).
    claimed: HashSet<String>,
    /// Ids processed so far in this batch, and whether they applied.
    processed: HashMap<String, bool>,
    applied: &'a Mutex<Vec<DomainEvent>>,
}

/// Applies `batch` inside `txn`; the caller commits. Results come back in
/// the batch's order, and applied changes are added to `applied`.
pub(super) async fn run(
    txn: &DatabaseTransaction,
    scope: IngestScope,
    dry_run: bool,
    applied: &Mutex<Vec<DomainEvent>>,
    batch: Vec<(usize, Raw)>,
) -> Result<Vec<EventResult>, DbErr> {
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
        txn.execute_unprepared("SET LOCAL plan_cache_mode = force_custom_plan")
            .await?;
    }
    let mut b = Batcher {
        txn,
        scope,
        dry_run,
        slow: Ingestor {
            db: txn,
            scope,
            applied,
            dry_run,
        },
        cache: Cache::default(),
        pending: Pending::default(),
        claimed: HashSet::new(),
        processed: HashMap::new(),
        applied,
    };
    b.prefetch(&events).await?;
    for (slot, line, env) in events {
        b.step(&mut results, slot, line, env).await?;
    }
    b.flush(&mut results).await?;
    Ok(results)
}

fn parse(line: usize, raw: Raw) -> Result<Envelope, EventResult> {
    let value = match raw {
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

fn data_str<'e>(env: &'e Envelope, name: &str) -> Option<&'e str> {
    env.data.get(name).and_then(serde_json::Value::as_str)
}

fn data_list<'e>(env: &'e Envelope, name: &str) -> Vec<&'e str> {
    env.data
        .get(name)
        .and_then(serde_json::Value::as_array)
        .map(|a| a.iter().filter_map(serde_json::Value::as_str).collect())
        .unwrap_or_default()
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
                let r = self.slow.envelope_event(line, &env).await;
                self.processed
                    .insert(env.id.clone(), r.status == Status::Applied);
                self.forget(&env);
                results[slot] = r;
                return Ok(());
            }
        };
        if !first {
            results[slot] = result(line, &env, Status::Duplicate, None);
            return Ok(());
        }
        loop {
            match self.plan(&env).await? {
                Plan::Queued => {
                    results[slot] = result(line, &env, Status::Applied, None);
                    self.processed.insert(env.id.clone(), true);
                    self.pending.events.push((slot, line, env));
                    return Ok(());
                }
                Plan::Rejected(reason) => {
                    results[slot] = result(line, &env, Status::Rejected, Some(reason.clone()));
                    self.processed.insert(env.id.clone(), false);
                    self.pending.rejections.push((env.id.clone(), reason));
                    self.pending.events.push((slot, line, env));
                    return Ok(());
                }
                Plan::Flush if !self.pending.is_empty() => self.flush(results).await?,
                Plan::Flush | Plan::Slow => {
                    self.flush(results).await?;
                    let r = self.slow.claimed_event(line, &env).await;
                    self.processed
                        .insert(env.id.clone(), r.status == Status::Applied);
                    self.forget(&env);
                    results[slot] = r;
                    return Ok(());
                }
            }
        }
    }

    /// Drops what the per-event path may have changed under the cache.
    fn forget(&mut self, env: &Envelope) {
        let source = env.source.clone();
        let key = |name| data_str(env, name).map(str::to_owned);
        match env.kind.as_str() {
            "unit.upserted" => self.cache.units.clear(),
            "work_item.upserted" | "work_item.transitioned" => {
                if let Some(ext) = key("external_id") {
                    let slot = self.cache.by_ref.remove(&(source, ext)).flatten();
                    if let Some(slot) = slot {
                        self.cache.by_ref.retain(|_, v| *v != Some(slot));
                        self.cache.by_key.retain(|_, v| *v != Some(slot));
                        self.cache.item_rows.retain(|_, v| *v != slot);
                    }
                }
                if let Some(k) = key("key") {
                    self.cache.by_key.remove(&k);
                }
                self.cache.ranks.clear();
            }
            "change.upserted" => {
                if let Some(ext) = key("external_id") {
                    self.cache.changes.remove(&(source, ext));
                }
            }
            "deployment.recorded" => {
                if let Some(ext) = key("external_id") {
                    self.cache.deployments.remove(&(source, ext));
                }
            }
            _ => {}
        }
    }

    async fn plan(&mut self, env: &Envelope) -> Result<Plan, DbErr> {
        match env.kind.as_str() {
            "work_item.upserted" => self.plan_item(env).await,
            "work_item.transitioned" => self.plan_transition(env).await,
            "change.upserted" => self.plan_change(env).await,
            "deployment.recorded" => self.plan_deployment(env).await,
            _ => Ok(Plan::Slow),
        }
    }

    /// A unit by key that the caller may write to, as the per-event path
    /// checks it.
    async fn writable_unit(&mut self, key: &str) -> Result<Result<UnitPath, Plan>, DbErr> {
        let Some(id) = self.unit_id(key).await? else {
            return Ok(Err(Plan::Rejected(format!("unknown unit {key:?}"))));
        };
        let path = self.path(id).await?;
        if self.scope.allows(&path) {
            Ok(Ok(path))
        } else {
            Ok(Err(Plan::Rejected(format!(
                "this API key may not write to unit {key:?}"
            ))))
        }
    }

    async fn plan_item(&mut self, env: &Envelope) -> Result<Plan, DbErr> {
        let source = env.source.as_str();
        let f = check!(ItemFields::parse(&env.data));
        if f.assignee.is_some() {
            return Ok(Plan::Slow);
        }
        let path = match self.writable_unit(f.unit).await? {
            Ok(p) => p,
            Err(plan) => return Ok(plan),
        };
        check!(f.check_owner(&path));
        let workflow = self.workflow(path.id).await?;
        let Some(state) = workflow.state(f.state).cloned() else {
            return rejected(workflow.unknown_state(f.state).message());
        };
        if self.item_by_ref(source, f.ext).await?.is_some() {
            return Ok(Plan::Slow);
        }
        let parent = match f.parent {
            Some(p) => {
                let Some(slot) = self.item_by_ref(source, p).await? else {
                    return rejected(format!("unknown parent {p:?}"));
                };
                let parent = &self.cache.items[slot];
                let Id::Row(parent_id) = parent.id else {
                    return Ok(Plan::Flush);
                };
                check!(
                    f.item_type
                        .check_parent(&parent.item_type, parent.unit_id, path.id, &path.ancestors)
                        .map_err(Fail::from)
                );
                Some(parent_id)
            }
            None => None,
        };
        if self.item_by_key(f.key).await?.is_some() {
            return rejected(format!("key {:?} belongs to another work item", f.key));
        }
        // Checked: queue it.
        let rank = self.next_rank(path.id, &state.name).await?;
        let n = self.pending.items.len();
        let id = Id::New(n);
        self.pending.items.push(NewItem {
            key: f.key.to_owned(),
            title: f.title.clone(),
            description: f.description.map(str::to_owned),
            item_type: f.item_type.as_str().to_owned(),
            flow_type: f.item_type.default_flow_type().as_str().to_owned(),
            state: state.name.clone(),
            category: state.category.clone(),
            unit_id: path.id,
            parent_id: parent,
            estimate: f.estimate,
            business_value: f.business_value,
            rank,
            found_in: f.found_in.map(|x| x.as_str().to_owned()),
            severity: f.severity.clone(),
            created_at: f.created_at,
        });
        let slot = self.cache.items.len();
        self.cache.items.push(Item {
            id,
            key: f.key.to_owned(),
            unit_id: path.id,
            item_type: f.item_type.as_str().to_owned(),
            state: state.name.clone(),
            created_at: f.created_at,
            latest_at: f.created_at,
        });
        self.pending.item_slots.push(slot);
        self.cache
            .by_ref
            .insert((source.to_owned(), f.ext.to_owned()), Some(slot));
        self.cache.by_key.insert(f.key.to_owned(), Some(slot));
        self.pending
            .refs
            .push((id, source.to_owned(), f.ext.to_owned(), f.url.clone()));
        self.queue_transition(id, None, &state.name, &state.category, f.created_at, source);
        self.pending
            .domain
            .push((ChangeKind::WorkItemCreated, path.id, Target::Item(id)));
        Ok(Plan::Queued)
    }

    fn queue_transition(
        &mut self,
        item: Id,
        from: Option<String>,
        to: &str,
        category: &str,
        at: DateTime<Utc>,
        source: &str,
    ) {
        self.pending.transitions.push(NewTransition {
            item,
            from,
            to: to.to_owned(),
            category: category.to_owned(),
            at,
            source: source.to_owned(),
        });
    }

    async fn plan_transition(&mut self, env: &Envelope) -> Result<Plan, DbErr> {
        let source = env.source.as_str();
        let f = check!(TransitionFields::parse(&env.data));
        let Some(slot) = self.item_by_ref(source, f.ext).await? else {
            return rejected(format!("unknown work item {:?}", f.ext));
        };
        let unit_id = self.cache.items[slot].unit_id;
        let scope = self.scope;
        if scope.unit_root.is_some() && !scope.allows(&self.path(unit_id).await?) {
            return rejected("this API key may not write to the unit that owns this record");
        }
        if f.at < self.cache.items[slot].created_at {
            return rejected("the transition is before the item's creation");
        }
        let workflow = self.workflow(unit_id).await?;
        let Some(state) = workflow.state(f.to_state).cloned() else {
            return rejected(workflow.unknown_state(f.to_state).message());
        };
        if f.at < self.cache.items[slot].latest_at {
            // Out of order: the neighbours' `from_state` needs the database.
            return Ok(Plan::Slow);
        }
        let moved = self.cache.items[slot].state != state.name;
        let rank = if moved {
            Some(self.next_rank(unit_id, &state.name).await?)
        } else {
            None
        };
        let item = &mut self.cache.items[slot];
        let id = item.id;
        let from = std::mem::replace(&mut item.state, state.name.clone());
        item.latest_at = f.at;
        self.queue_transition(id, Some(from), &state.name, &state.category, f.at, source);
        if let Some(rank) = rank {
            match id {
                Id::New(n) => {
                    let m = &mut self.pending.items[n];
                    m.state.clone_from(&state.name);
                    m.category.clone_from(&state.category);
                    m.rank = rank;
                }
                Id::Row(row) => {
                    self.pending
                        .moves
                        .insert(row, (state.name.clone(), state.category.clone(), rank));
                }
            }
        }
        self.pending
            .domain
            .push((ChangeKind::WorkItemMoved, unit_id, Target::Item(id)));
        Ok(Plan::Queued)
    }

    /// Whether a limited key may refer to records of `unit_id` (see the
    /// per-event path's `may_reference`).
    async fn may_reference(&mut self, unit_id: i64, line_too: bool) -> Result<bool, DbErr> {
        let Some(root) = self.scope.unit_root else {
            return Ok(true);
        };
        let scope = self.scope;
        if scope.allows(&self.path(unit_id).await?) {
            return Ok(true);
        }
        Ok(line_too && self.path(root).await?.ancestors.contains(&unit_id))
    }

    async fn plan_change(&mut self, env: &Envelope) -> Result<Plan, DbErr> {
        let source = env.source.as_str();
        let f = check!(ChangeFields::parse(&env.data));
        let path = match self.writable_unit(f.unit).await? {
            Ok(p) => p,
            Err(plan) => return Ok(plan),
        };
        let mut items = Vec::new();
        for &r in &f.work_items {
            let slot = match self.item_by_ref(source, r).await? {
                Some(s) => Some(s),
                None => self.item_by_key(r).await?,
            };
            let Some(slot) = slot else {
                return rejected(format!("unknown work item {r:?}"));
            };
            let item = &self.cache.items[slot];
            let (id, unit_id) = (item.id, item.unit_id);
            if !self.may_reference(unit_id, true).await? {
                return rejected(format!("unknown work item {r:?}"));
            }
            items.push(id);
        }
        if self.change(source, f.ext).await?.is_some() {
            return Ok(Plan::Slow);
        }
        items.sort_unstable();
        items.dedup();
        let n = self.pending.changes.len();
        self.pending.changes.push(f.model(path.id, source));
        self.pending
            .change_refs
            .push((source.to_owned(), f.ext.to_owned()));
        self.pending
            .change_links
            .extend(items.into_iter().map(|i| (n, i)));
        self.cache.changes.insert(
            (source.to_owned(), f.ext.to_owned()),
            Some(Owned {
                id: Id::New(n),
                unit_id: path.id,
            }),
        );
        self.pending
            .domain
            .push((ChangeKind::ChangeUpserted, path.id, Target::Change(n)));
        Ok(Plan::Queued)
    }

    async fn plan_deployment(&mut self, env: &Envelope) -> Result<Plan, DbErr> {
        let source = env.source.as_str();
        let f = check!(DeploymentFields::parse(&env.data));
        let path = match self.writable_unit(f.unit).await? {
            Ok(p) => p,
            Err(plan) => return Ok(plan),
        };
        let mut changes = Vec::new();
        for &c in &f.changes {
            let found = self.change(source, c).await?;
            let ok = match found {
                Some(ch) => self.may_reference(ch.unit_id, false).await?,
                None => false,
            };
            match found {
                Some(ch) if ok => changes.push(ch.id),
                _ => return rejected(format!("unknown change {c:?}")),
            }
        }
        if self.deployment(source, f.ext).await?.is_some() {
            return Ok(Plan::Slow);
        }
        changes.sort_unstable();
        changes.dedup();
        let n = self.pending.deployments.len();
        self.pending.deployments.push(f.model(path.id, source));
        self.pending
            .deployment_refs
            .push((source.to_owned(), f.ext.to_owned()));
        self.pending
            .deployment_links
            .extend(changes.into_iter().map(|c| (n, c)));
        self.cache.deployments.insert(
            (source.to_owned(), f.ext.to_owned()),
            Some(Owned {
                id: Id::New(n),
                unit_id: path.id,
            }),
        );
        self.pending.domain.push((
            ChangeKind::DeploymentRecorded,
            path.id,
            Target::Deployment(n),
        ));
        Ok(Plan::Queued)
    }

    // ---- lookups: from the cache, else loaded (and then cached) ----

    async fn unit_id(&mut self, key: &str) -> Result<Option<i64>, DbErr> {
        if !self.cache.units.contains_key(key) {
            self.load_units(&[key]).await?;
        }
        Ok(self.cache.units.get(key).copied().flatten())
    }

    async fn path(&mut self, id: i64) -> Result<UnitPath, DbErr> {
        if !self.cache.paths.contains_key(&id) {
            self.load_paths(&[id]).await?;
        }
        self.cache
            .paths
            .get(&id)
            .cloned()
            .ok_or_else(|| DbErr::RecordNotFound(format!("unit {id}")))
    }

    async fn workflow(&mut self, unit_id: i64) -> Result<Arc<EffectiveWorkflow>, DbErr> {
        if !self.cache.workflows.contains_key(&unit_id) {
            self.load_workflows(&[unit_id]).await?;
        }
        self.cache
            .workflows
            .get(&unit_id)
            .cloned()
            .ok_or_else(|| DbErr::RecordNotFound(format!("workflow of unit {unit_id}")))
    }

    async fn item_by_ref(&mut self, source: &str, ext: &str) -> Result<Option<usize>, DbErr> {
        let k = (source.to_owned(), ext.to_owned());
        if !self.cache.by_ref.contains_key(&k) {
            self.load_items(source, &[ext], &[]).await?;
        }
        Ok(self.cache.by_ref.get(&k).copied().flatten())
    }

    async fn item_by_key(&mut self, key: &str) -> Result<Option<usize>, DbErr> {
        if !self.cache.by_key.contains_key(key) {
            self.load_items("", &[], &[key]).await?;
        }
        Ok(self.cache.by_key.get(key).copied().flatten())
    }

    async fn change(&mut self, source: &str, ext: &str) -> Result<Option<Owned>, DbErr> {
        let k = (source.to_owned(), ext.to_owned());
        if !self.cache.changes.contains_key(&k) {
            self.load_changes(source, &[ext]).await?;
        }
        Ok(self.cache.changes.get(&k).copied().flatten())
    }

    async fn deployment(&mut self, source: &str, ext: &str) -> Result<Option<Owned>, DbErr> {
        let k = (source.to_owned(), ext.to_owned());
        if !self.cache.deployments.contains_key(&k) {
            self.load_deployments(source, &[ext]).await?;
        }
        Ok(self.cache.deployments.get(&k).copied().flatten())
    }

    /// The rank after the last card of a column, which becomes its last.
    async fn next_rank(&mut self, unit_id: i64, state: &str) -> Result<String, DbErr> {
        let k = (unit_id, state.to_owned());
        if !self.cache.ranks.contains_key(&k) {
            self.load_ranks(std::slice::from_ref(&k)).await?;
        }
        let last = self.cache.ranks.get(&k).cloned().flatten();
        let next = rank::after(last.as_deref());
        self.cache.ranks.insert(k, Some(next.clone()));
        Ok(next)
    }

    // ---- loading, several keys per statement ----

    /// Loads what the batch's events refer to, a few statements in all.
    async fn prefetch(&mut self, events: &[(usize, usize, Envelope)]) -> Result<(), DbErr> {
        self.claim(events).await?;
        let mut unit_keys = HashSet::new();
        let mut item_keys = HashSet::new();
        let mut refs: HashMap<&str, HashSet<&str>> = HashMap::new();
        let mut change_refs: HashMap<&str, HashSet<&str>> = HashMap::new();
        let mut deployment_refs: HashMap<&str, HashSet<&str>> = HashMap::new();
        for (_, _, e) in events {
            let source = e.source.as_str();
            match e.kind.as_str() {
                "work_item.upserted" => {
                    unit_keys.extend(data_str(e, "unit"));
                    item_keys.extend(data_str(e, "key"));
                    let r = refs.entry(source).or_default();
                    r.extend(data_str(e, "external_id"));
                    r.extend(data_str(e, "parent"));
                }
                "work_item.transitioned" => {
                    refs.entry(source)
                        .or_default()
                        .extend(data_str(e, "external_id"));
                }
                "change.upserted" => {
                    unit_keys.extend(data_str(e, "unit"));
                    let items = data_list(e, "work_items");
                    item_keys.extend(items.iter().copied());
                    refs.entry(source).or_default().extend(items);
                    change_refs
                        .entry(source)
                        .or_default()
                        .extend(data_str(e, "external_id"));
                }
                "deployment.recorded" => {
                    unit_keys.extend(data_str(e, "unit"));
                    change_refs
                        .entry(source)
                        .or_default()
                        .extend(data_list(e, "changes"));
                    deployment_refs
                        .entry(source)
                        .or_default()
                        .extend(data_str(e, "external_id"));
                }
                _ => {}
            }
        }
        let unit_keys: Vec<&str> = unit_keys.into_iter().collect();
        self.load_units(&unit_keys).await?;
        let item_keys: Vec<&str> = item_keys.into_iter().collect();
        self.load_items("", &[], &item_keys).await?;
        for (source, exts) in refs {
            let exts: Vec<&str> = exts.into_iter().collect();
            self.load_items(source, &exts, &[]).await?;
        }
        for (source, exts) in change_refs {
            let exts: Vec<&str> = exts.into_iter().collect();
            self.load_changes(source, &exts).await?;
        }
        for (source, exts) in deployment_refs {
            let exts: Vec<&str> = exts.into_iter().collect();
            self.load_deployments(source, &exts).await?;
        }
        // Everything below needs the units the loaded rows belong to.
        let mut unit_ids: HashSet<i64> = self.cache.units.values().flatten().copied().collect();
        unit_ids.extend(self.cache.items.iter().map(|i| i.unit_id));
        unit_ids.extend(
            self.cache
                .changes
                .values()
                .chain(self.cache.deployments.values())
                .flatten()
                .map(|o| o.unit_id),
        );
        unit_ids.extend(self.scope.unit_root);
        let unit_ids: Vec<i64> = unit_ids.into_iter().collect();
        self.load_paths(&unit_ids).await?;
        self.load_workflows(&unit_ids).await?;
        let columns: Vec<(i64, String)> = self
            .cache
            .workflows
            .iter()
            .flat_map(|(u, wf)| wf.states.iter().map(|s| (*u, s.name.clone())))
            .collect();
        self.load_ranks(&columns).await
    }

    /// Claims the batch's event ids in the log as applied, in id order (so
    /// concurrent batches lock them in the same order). An id applied
    /// before is not claimed: its events are duplicates. A concurrent batch
    /// holding one of the ids makes this wait for its commit.
    async fn claim(&mut self, events: &[(usize, usize, Envelope)]) -> Result<(), DbErr> {
        let mut rows: Vec<(String, String, String)> = events
            .iter()
            .map(|(_, _, e)| (e.id.clone(), e.source.clone(), e.kind.clone()))
            .collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        rows.dedup_by(|a, b| a.0 == b.0);
        let now = Utc::now();
        let key_id = self.scope.key_id;
        let pg = self.txn.get_database_backend() == DbBackend::Postgres;
        for chunk in rows.chunks(if pg { ARRAY_CHUNK } else { CHUNK }) {
            let claimed: Vec<String> = if pg {
                unnest::claim(self.txn, chunk, now, key_id).await?
            } else {
                let mut q = Query::insert();
                q.into_table(ingest_log::Entity).columns(log_columns());
                for (id, source, kind) in chunk {
                    q.values(log_row(id, source, kind, now, key_id))
                        .map_err(internal)?;
                }
                q.on_conflict(claim_conflict())
                    .returning_col(ingest_log::Column::EventId);
                let mut ids = Vec::with_capacity(chunk.len());
                for row in self.txn.query_all(&q).await? {
                    ids.push(row.try_get_by_index(0)?);
                }
                ids
            };
            self.claimed.extend(claimed);
        }
        Ok(())
    }

    async fn load_units(&mut self, keys: &[&str]) -> Result<(), DbErr> {
        for chunk in keys.chunks(IN_CHUNK) {
            let rows: Vec<(i64, String)> = unit::Entity::find()
                .select_only()
                .column(unit::Column::Id)
                .column(unit::Column::Key)
                .filter(unit::Column::Key.is_in(chunk.iter().copied()))
                .into_tuple()
                .all(self.txn)
                .await?;
            for k in chunk {
                self.cache.units.insert((*k).to_owned(), None);
            }
            for (id, key) in rows {
                self.cache.units.insert(key, Some(id));
            }
        }
        Ok(())
    }

    async fn load_paths(&mut self, ids: &[i64]) -> Result<(), DbErr> {
        for chunk in ids.chunks(IN_CHUNK) {
            let kinds: Vec<(i64, String)> = unit::Entity::find()
                .select_only()
                .column(unit::Column::Id)
                .column(unit::Column::Kind)
                .filter(unit::Column::Id.is_in(chunk.iter().copied()))
                .into_tuple()
                .all(self.txn)
                .await?;
            let closure = unit_closure::Entity::find()
                .filter(unit_closure::Column::DescendantId.is_in(chunk.iter().copied()))
                .filter(unit_closure::Column::Depth.gt(0))
                .order_by_desc(unit_closure::Column::Depth)
                .all(self.txn)
                .await?;
            for (id, kind) in kinds {
                let kind = UnitKind::parse(&kind).map_err(|_| internal("unknown unit kind"))?;
                let ancestors = closure
                    .iter()
                    .filter(|c| c.descendant_id == id)
                    .map(|c| c.ancestor_id)
                    .collect();
                self.cache.paths.insert(
                    id,
                    UnitPath {
                        id,
                        kind,
                        ancestors,
                    },
                );
            }
        }
        Ok(())
    }

    async fn load_workflows(&mut self, unit_ids: &[i64]) -> Result<(), DbErr> {
        for chunk in unit_ids.chunks(IN_CHUNK) {
            let found = units::effective_workflows(self.txn, chunk)
                .await
                .map_err(|e| internal(e.message()))?;
            for (unit_id, wf) in found {
                self.cache.workflows.insert(unit_id, Arc::new(wf));
            }
        }
        Ok(())
    }

    /// Loads items by their reference in `source` and by key.
    async fn load_items(
        &mut self,
        source: &str,
        exts: &[&str],
        keys: &[&str],
    ) -> Result<(), DbErr> {
        let mut found: Vec<work_item::Model> = Vec::new();
        let mut by_ref: Vec<(String, i64)> = Vec::new();
        for chunk in exts.chunks(IN_CHUNK) {
            let rows: Vec<(String, i64)> = external_ref::Entity::find()
                .select_only()
                .column(external_ref::Column::ExternalId)
                .column(external_ref::Column::WorkItemId)
                .filter(external_ref::Column::Source.eq(source))
                .filter(external_ref::Column::ExternalId.is_in(chunk.iter().copied()))
                .into_tuple()
                .all(self.txn)
                .await?;
            let ids: Vec<i64> = rows
                .iter()
                .map(|(_, id)| *id)
                .filter(|id| !self.cache.item_rows.contains_key(id))
                .collect();
            if !ids.is_empty() {
                found.extend(
                    work_item::Entity::find()
                        .filter(work_item::Column::Id.is_in(ids))
                        .all(self.txn)
                        .await?,
                );
            }
            by_ref.extend(rows);
        }
        for chunk in keys.chunks(IN_CHUNK) {
            found.extend(
                work_item::Entity::find()
                    .filter(work_item::Column::Key.is_in(chunk.iter().copied()))
                    .all(self.txn)
                    .await?,
            );
        }
        found.retain(|m| !self.cache.item_rows.contains_key(&m.id));
        found.sort_unstable_by_key(|m| m.id);
        found.dedup_by_key(|m| m.id);
        let ids: Vec<i64> = found.iter().map(|m| m.id).collect();
        let mut latest: HashMap<i64, DateTime<Utc>> = HashMap::new();
        for chunk in ids.chunks(IN_CHUNK) {
            let rows: Vec<(i64, DateTime<Utc>)> = transition::Entity::find()
                .select_only()
                .column(transition::Column::WorkItemId)
                .column_as(Expr::col(transition::Column::At).max(), "at")
                .filter(transition::Column::WorkItemId.is_in(chunk.iter().copied()))
                .group_by(transition::Column::WorkItemId)
                .into_tuple()
                .all(self.txn)
                .await?;
            latest.extend(rows);
        }
        for m in found {
            let slot = self.cache.items.len();
            self.cache.item_rows.insert(m.id, slot);
            self.cache.items.push(Item {
                id: Id::Row(m.id),
                latest_at: latest.get(&m.id).copied().unwrap_or(m.created_at),
                key: m.key,
                unit_id: m.unit_id,
                item_type: m.item_type,
                state: m.state,
                created_at: m.created_at,
            });
        }
        for e in exts {
            self.cache
                .by_ref
                .insert((source.to_owned(), (*e).to_owned()), None);
        }
        for (ext, id) in by_ref {
            let slot = self.cache.item_rows.get(&id).copied();
            self.cache.by_ref.insert((source.to_owned(), ext), slot);
        }
        let asked: HashSet<&str> = keys.iter().copied().collect();
        for k in keys {
            self.cache.by_key.insert((*k).to_owned(), None);
        }
        for (slot, item) in self.cache.items.iter().enumerate() {
            if matches!(item.id, Id::Row(_)) && asked.contains(item.key.as_str()) {
                self.cache.by_key.insert(item.key.clone(), Some(slot));
            }
        }
        Ok(())
    }

    async fn load_changes(&mut self, source: &str, exts: &[&str]) -> Result<(), DbErr> {
        for chunk in exts.chunks(IN_CHUNK) {
            let rows: Vec<(i64, i64, String)> = change::Entity::find()
                .select_only()
                .column(change::Column::Id)
                .column(change::Column::UnitId)
                .column(change::Column::ExternalId)
                .filter(change::Column::Source.eq(source))
                .filter(change::Column::ExternalId.is_in(chunk.iter().copied()))
                .into_tuple()
                .all(self.txn)
                .await?;
            owned_rows(&mut self.cache.changes, source, chunk, rows);
        }
        Ok(())
    }

    async fn load_deployments(&mut self, source: &str, exts: &[&str]) -> Result<(), DbErr> {
        for chunk in exts.chunks(IN_CHUNK) {
            let rows: Vec<(i64, i64, String)> = deployment::Entity::find()
                .select_only()
                .column(deployment::Column::Id)
                .column(deployment::Column::UnitId)
                .column(deployment::Column::ExternalId)
                .filter(deployment::Column::Source.eq(source))
                .filter(deployment::Column::ExternalId.is_in(chunk.iter().copied()))
                .into_tuple()
                .all(self.txn)
                .await?;
            owned_rows(&mut self.cache.deployments, source, chunk, rows);
        }
        Ok(())
    }

    /// The last rank of each column, one scalar subquery per column (each an
    /// index lookup), in one statement per chunk.
    async fn load_ranks(&mut self, columns: &[(i64, String)]) -> Result<(), DbErr> {
        for chunk in columns.chunks(200) {
            let mut q = Query::select();
            for (i, (unit_id, state)) in chunk.iter().enumerate() {
                let sub = Query::select()
                    .column(work_item::Column::Rank)
                    .from(work_item::Entity)
                    .and_where(work_item::Column::UnitId.eq(*unit_id))
                    .and_where(work_item::Column::State.eq(state.as_str()))
                    .order_by(work_item::Column::Rank, sea_orm::Order::Desc)
                    .limit(1)
                    .to_owned();
                q.expr_as(Expr::from(sub), Alias::new(format!("r{i}")));
            }
            let Some(row) = self.txn.query_one(&q).await? else {
                continue;
            };
            for (i, col) in chunk.iter().enumerate() {
                let last: Option<String> = row.try_get("", &format!("r{i}"))?;
                self.cache.ranks.insert(col.clone(), last);
            }
        }
        Ok(())
    }

    // ---- writing ----

    /// Writes the segment's queued rows in one savepoint. If that fails, the
    /// segment's events are replayed one by one instead.
    async fn flush(&mut self, results: &mut [EventResult]) -> Result<(), DbErr> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let sp = self.txn.begin().await?;
        match write(&sp, &pending).await {
            Ok(ids) => {
                sp.commit().await?;
                self.settle(pending, &ids);
            }
            Err(e) => {
                sp.rollback().await?;
                tracing::warn!(error = %e, "batched ingest writes failed; replaying event by event");
                self.cache = Cache::default();
                for (slot, line, env) in pending.events {
                    let r = self.slow.claimed_event(line, &env).await;
                    self.processed
                        .insert(env.id.clone(), r.status == Status::Applied);
                    results[slot] = r;
                }
            }
        }
        Ok(())
    }

    /// Turns queued rows into written ones in the cache and publishes.
    fn settle(&mut self, pending: Pending, ids: &Written) {
        let resolve_item = |id: Id| match id {
            Id::New(n) => ids.items[n],
            Id::Row(r) => r,
        };
        for (n, slot) in pending.item_slots.iter().enumerate() {
            let row = ids.items[n];
            self.cache.items[*slot].id = Id::Row(row);
            self.cache.item_rows.insert(row, *slot);
        }
        for owned in self
            .cache
            .changes
            .values_mut()
            .flatten()
            .filter(|o| matches!(o.id, Id::New(_)))
        {
            if let Id::New(n) = owned.id {
                owned.id = Id::Row(ids.changes[n]);
            }
        }
        for owned in self
            .cache
            .deployments
            .values_mut()
            .flatten()
            .filter(|o| matches!(o.id, Id::New(_)))
        {
            if let Id::New(n) = owned.id {
                owned.id = Id::Row(ids.deployments[n]);
            }
        }
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

fn owned_rows(
    map: &mut HashMap<(String, String), Option<Owned>>,
    source: &str,
    asked: &[&str],
    rows: Vec<(i64, i64, String)>,
) {
    for e in asked {
        map.insert((source.to_owned(), (*e).to_owned()), None);
    }
    for (id, unit_id, ext) in rows {
        map.insert(
            (source.to_owned(), ext),
            Some(Owned {
                id: Id::Row(id),
                unit_id,
            }),
        );
    }
}

/// Ids of the rows a segment inserted, by queue position.
struct Written {
    items: Vec<i64>,
    changes: Vec<i64>,
    deployments: Vec<i64>,
}

async fn write(db: &DatabaseTransaction, p: &Pending) -> Result<Written, DbErr> {
    let now = Utc::now();
    let pg = db.get_database_backend() == DbBackend::Postgres;
    let mut items = Vec::with_capacity(p.items.len());
    let rows = if pg { ARRAY_CHUNK } else { CHUNK };
    for chunk in p.items.chunks(rows) {
        let by_key = if pg {
            unnest::items(db, chunk, now).await?
        } else {
            insert_items(db, chunk, now).await?
        };
        for m in chunk {
            items.push(
                *by_key
                    .get(&m.key)
                    .ok_or_else(|| internal("an inserted item was not found"))?,
            );
        }
    }
    let item_id = |id: Id| match id {
        Id::New(n) => items[n],
        Id::Row(r) => r,
    };
    for chunk in p.refs.chunks(rows) {
        let rows: Vec<(i64, &str, &str, Option<&str>)> = chunk
            .iter()
            .map(|(id, source, ext, url)| {
                (item_id(*id), source.as_str(), ext.as_str(), url.as_deref())
            })
            .collect();
        if pg {
            unnest::refs(db, &rows).await?;
        } else {
            external_ref::Entity::insert_many(rows.iter().map(|(id, source, ext, url)| {
                external_ref::ActiveModel {
                    work_item_id: Set(*id),
                    source: Set((*source).to_owned()),
                    external_id: Set((*ext).to_owned()),
                    url: Set(url.map(str::to_owned)),
                    ..Default::default()
                }
            }))
            .exec_without_returning(db)
            .await?;
        }
    }
    for chunk in p.transitions.chunks(rows) {
        let ids: Vec<i64> = chunk.iter().map(|t| item_id(t.item)).collect();
        if pg {
            unnest::transitions(db, chunk, &ids).await?;
        } else {
            transition::Entity::insert_many(chunk.iter().zip(&ids).map(|(t, id)| {
                transition::ActiveModel {
                    work_item_id: Set(*id),
                    from_state: Set(t.from.clone()),
                    to_state: Set(t.to.clone()),
                    to_category: Set(t.category.clone()),
                    at: Set(t.at),
                    actor_id: Set(None),
                    source: Set(Some(t.source.clone())),
                    ..Default::default()
                }
            }))
            .exec_without_returning(db)
            .await?;
        }
    }
    let moves: Vec<(&i64, &(String, String, String))> = p.moves.iter().collect();
    for chunk in moves.chunks(CHUNK) {
        let (mut state, mut category, mut rank) = (
            CaseStatement::new(),
            CaseStatement::new(),
            CaseStatement::new(),
        );
        for (id, (s, c, r)) in chunk {
            state = state.case(work_item::Column::Id.eq(**id), s.as_str());
            category = category.case(work_item::Column::Id.eq(**id), c.as_str());
            rank = rank.case(work_item::Column::Id.eq(**id), r.as_str());
        }
        work_item::Entity::update_many()
            .col_expr(work_item::Column::State, state.into())
            .col_expr(work_item::Column::StateCategory, category.into())
            .col_expr(work_item::Column::Rank, rank.into())
            .col_expr(work_item::Column::UpdatedAt, Expr::value(now))
            .filter(work_item::Column::Id.is_in(chunk.iter().map(|(id, _)| **id)))
            .exec(db)
            .await?;
    }
    let changes = insert_owned::<change::Entity, _>(
        db,
        &p.changes,
        &p.change_refs,
        change::Column::Id,
        change::Column::Source,
        change::Column::ExternalId,
    )
    .await?;
    let links: Vec<change_work_item::ActiveModel> = p
        .change_links
        .iter()
        .map(|(n, item)| change_work_item::ActiveModel {
            change_id: Set(changes[*n]),
            work_item_id: Set(item_id(*item)),
        })
        .collect();
    for chunk in links.chunks(CHUNK) {
        change_work_item::Entity::insert_many(chunk.iter().cloned())
            .exec_without_returning(db)
            .await?;
    }
    let deployments = insert_owned::<deployment::Entity, _>(
        db,
        &p.deployments,
        &p.deployment_refs,
        deployment::Column::Id,
        deployment::Column::Source,
        deployment::Column::ExternalId,
    )
    .await?;
    let links: Vec<deployment_change::ActiveModel> = p
        .deployment_links
        .iter()
        .map(|(n, ch)| deployment_change::ActiveModel {
            deployment_id: Set(deployments[*n]),
            change_id: Set(match ch {
                Id::New(c) => changes[*c],
                Id::Row(r) => *r,
            }),
        })
        .collect();
    for chunk in links.chunks(CHUNK) {
        deployment_change::Entity::insert_many(chunk.iter().cloned())
            .exec_without_returning(db)
            .await?;
    }
    // The batch claimed these ids as applied: turn the claims into
    // rejections (the last reason given for an id wins).
    for (id, reason) in &p.rejections {
        mark_rejected(db, id, reason).await?;
    }
    Ok(Written {
        items,
        changes,
        deployments,
    })
}

fn log_columns() -> [ingest_log::Column; 7] {
    [
        ingest_log::Column::EventId,
        ingest_log::Column::Source,
        ingest_log::Column::EventType,
        ingest_log::Column::ReceivedAt,
        ingest_log::Column::Outcome,
        ingest_log::Column::Reason,
        ingest_log::Column::ApiKeyId,
    ]
}

fn log_row(
    id: &str,
    source: &str,
    kind: &str,
    at: DateTime<Utc>,
    key_id: Option<i64>,
) -> [Expr; 7] {
    [
        Expr::value(id),
        Expr::value(source),
        Expr::value(kind),
        Expr::value(at),
        Expr::value("applied"),
        Expr::value(Option::<String>::None),
        Expr::value(key_id),
    ]
}

/// Inserts items and reads their ids back by key (unique).
async fn insert_items(
    db: &DatabaseTransaction,
    chunk: &[NewItem],
    now: DateTime<Utc>,
) -> Result<HashMap<String, i64>, DbErr> {
    work_item::Entity::insert_many(chunk.iter().map(|m| m.model(now)))
        .exec_without_returning(db)
        .await?;
    let rows: Vec<(i64, String)> = work_item::Entity::find()
        .select_only()
        .column(work_item::Column::Id)
        .column(work_item::Column::Key)
        .filter(work_item::Column::Key.is_in(chunk.iter().map(|m| m.key.clone())))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|(id, k)| (k, id)).collect())
}

/// Inserts rows identified by (source, external id) and reads their ids back.
async fn insert_owned<E, A>(
    db: &DatabaseTransaction,
    rows: &[A],
    refs: &[(String, String)],
    id_col: E::Column,
    source_col: E::Column,
    ext_col: E::Column,
) -> Result<Vec<i64>, DbErr>
where
    E: EntityTrait,
    A: sea_orm::ActiveModelTrait<Entity = E> + Clone + Send,
{
    let mut ids = Vec::with_capacity(rows.len());
    for (chunk, chunk_refs) in rows.chunks(CHUNK).zip(refs.chunks(CHUNK)) {
        E::insert_many(chunk.iter().cloned())
            .exec_without_returning(db)
            .await?;
        let mut by_ref: HashMap<(String, String), i64> = HashMap::new();
        let mut sources: Vec<&str> = chunk_refs.iter().map(|(s, _)| s.as_str()).collect();
        sources.sort_unstable();
        sources.dedup();
        for source in sources {
            let exts = chunk_refs
                .iter()
                .filter(|(s, _)| s == source)
                .map(|(_, e)| e.clone());
            let found: Vec<(i64, String)> = E::find()
                .select_only()
                .column(id_col)
                .column(ext_col)
                .filter(source_col.eq(source))
                .filter(ext_col.is_in(exts))
                .into_tuple()
                .all(db)
                .await?;
            by_ref.extend(
                found
                    .into_iter()
                    .map(|(id, ext)| ((source.to_owned(), ext), id)),
            );
        }
        for r in chunk_refs {
            ids.push(
                *by_ref
                    .get(r)
                    .ok_or_else(|| internal("an inserted row was not found"))?,
            );
        }
    }
    Ok(ids)
}
