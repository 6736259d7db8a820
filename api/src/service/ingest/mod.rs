// Over 800 lines: besides `apply_batch` and the public surface, this file
// still holds the per-event handlers (`impl Ingestor`); they are to move to
// `handlers.rs`, as parsing moved to `event.rs` and the log to `log.rs`.
//! The common data model's one door (DESIGN §4): events from any integration
//! are validated and applied here, each in its own transaction, idempotently
//! by event id.

use chrono::{DateTime, Utc};
use entity::{
    change, change_work_item, deployment, deployment_change, external_ref, incident, ingest_log,
    key_result, key_result_measurement, objective, release, release_work_item, transition, unit,
    user, work_item,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, Set, TransactionTrait,
};
use serde::Serialize;
use serde_json::{Map, Value};

mod batch;
mod event;
mod log;
pub mod report;
mod stats;

use self::event::{
    ChangeFields, DeploymentFields, Envelope, Fail, ItemFields, TransitionFields, list, opt_text,
    parse_enum, reject, text, time,
};
pub use self::log::record_rejection;
use self::log::{claim_conflict, mark_rejected};

use super::facts::flow as facts;
use super::rank;
use super::tx::write_transaction;
use super::units::{self, EffectiveWorkflow};
use super::users::is_eligible_assignee;
use crate::domain::{UnitKind, validate_unit_key};
use crate::error::{ApiError, ErrorCode};
use std::sync::Mutex;

use crate::events::{ChangeKind, DomainEvent, EventBus};
use crate::policy::{IngestScope, UnitPath};

/// What became of one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, async_graphql::Enum)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The event was applied.
    Applied,
    /// An event with the same `id` was applied before, so this one was
    /// skipped and changed nothing.
    Duplicate,
    /// The event was refused and changed nothing; `reason` says why.
    Rejected,
}

/// The result of one event, as the caller sees it.
#[derive(Clone, Debug, Serialize)]
pub struct EventResult {
    /// 1-based line (NDJSON) or position (JSON array) of the event.
    pub line: usize,
    pub id: Option<String>,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Counts over a batch.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Summary {
    pub applied: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

impl Summary {
    pub fn add(&mut self, r: &EventResult) {
        match r.status {
            Status::Applied => self.applied += 1,
            Status::Duplicate => self.duplicates += 1,
            Status::Rejected => self.rejected += 1,
        }
    }
}

type Applied = Result<Vec<DomainEvent>, Fail>;

/// Applies events for one caller. `db` is the connection, or for a dry
/// run a transaction the caller rolls back at the end (each event then runs
/// in a savepoint, so later events see earlier ones).
pub struct Ingestor<'a, C> {
    pub db: &'a C,
    pub scope: IngestScope,
    /// Changes applied so far, to publish once their transaction commits.
    pub applied: &'a Mutex<Vec<DomainEvent>>,
    /// Validate without writing: nothing is logged or published, and the
    /// caller rolls `db` back.
    pub dry_run: bool,
}

/// The reason given for an event not applied because of a failure on our side.
const INTERNAL_REASON: &str = "internal error: nothing was written; send the event again";

impl<C> Ingestor<'_, C>
where
    C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>,
{
    /// Applies one parsed event in its own transaction (a savepoint when
    /// `db` is a transaction).
    async fn envelope_event(&self, line: usize, env: &Envelope) -> EventResult {
        let result = |status, reason| EventResult {
            line,
            id: Some(env.id.clone()),
            status,
            reason,
        };
        match self.apply_logged(env).await {
            Ok(None) => result(Status::Duplicate, None),
            Ok(Some(events)) => {
                if !self.dry_run {
                    self.applied
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend(events);
                }
                result(Status::Applied, None)
            }
            Err(Fail::Reject(reason)) => {
                if !self.dry_run
                    && let Err(e) = self.log_rejection(env, &reason).await
                {
                    tracing::error!(error = %e, "cannot record a rejected event");
                }
                result(Status::Rejected, Some(reason))
            }
            Err(Fail::Internal(e)) => {
                tracing::error!(error = %e, event = %env.id, "ingest failed");
                result(Status::Rejected, Some(INTERNAL_REASON.into()))
            }
        }
    }

    /// Applies a parsed event whose id the caller's transaction has already
    /// claimed as applied, in a savepoint; a rejection or a failure turns the
    /// claim into a rejection, so the event may be sent again.
    async fn claimed_event(&self, line: usize, env: &Envelope) -> EventResult {
        let applied = async {
            let sp = self.db.begin().await?;
            let events = self.apply(&sp, env).await?;
            sp.commit().await?;
            Ok::<_, Fail>(events)
        }
        .await;
        let (status, reason) = match applied {
            Ok(events) => {
                if !self.dry_run {
                    self.applied
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend(events);
                }
                return EventResult {
                    line,
                    id: Some(env.id.clone()),
                    status: Status::Applied,
                    reason: None,
                };
            }
            Err(Fail::Reject(reason)) => (Status::Rejected, reason),
            Err(Fail::Internal(e)) => {
                tracing::error!(error = %e, event = %env.id, "ingest failed");
                (Status::Rejected, INTERNAL_REASON.to_owned())
            }
        };
        if let Err(e) = mark_rejected(self.db, &env.id, &reason).await {
            tracing::error!(error = %e, "cannot record a rejected event");
        }
        EventResult {
            line,
            id: Some(env.id.clone()),
            status,
            reason: Some(reason),
        }
    }

    /// `Ok(None)` for a duplicate, `Ok(Some(events))` once applied.
    async fn apply_logged(&self, env: &Envelope) -> Result<Option<Vec<DomainEvent>>, Fail> {
        let txn = self.db.begin().await?;
        // Claim the id before applying: a concurrent request with the same id
        // waits on this row and then finds it applied. A rejected id may be
        // claimed again.
        let row = ingest_log::ActiveModel {
            event_id: Set(env.id.clone()),
            source: Set(env.source.clone()),
            event_type: Set(env.kind.clone()),
            received_at: Set(Utc::now()),
            outcome: Set("applied".into()),
            reason: Set(None),
            api_key_id: Set(self.scope.key_id),
        };
        let claimed = ingest_log::Entity::insert(row)
            .on_conflict(claim_conflict())
            .exec_without_returning(&txn)
            .await?;
        if claimed == 0 {
            return Ok(None);
        }
        let events = self.apply(&txn, env).await?;
        facts::refresh_touched(&txn, &events).await?;
        txn.commit().await?;
        Ok(Some(events))
    }

    async fn log_rejection(&self, env: &Envelope, reason: &str) -> Result<(), DbErr> {
        record_rejection(
            self.db,
            &env.id,
            &env.source,
            &env.kind,
            reason,
            self.scope.key_id,
        )
        .await
    }

    async fn apply(&self, txn: &DatabaseTransaction, env: &Envelope) -> Applied {
        let d = &env.data;
        match env.kind.as_str() {
            "unit.upserted" => self.unit_upserted(txn, d).await,
            "work_item.upserted" => self.item_upserted(txn, &env.source, d).await,
            "work_item.transitioned" => self.item_transitioned(txn, &env.source, d).await,
            "change.upserted" => self.change_upserted(txn, &env.source, d).await,
            "deployment.recorded" => self.deployment_recorded(txn, &env.source, d).await,
            "release.recorded" => self.release_recorded(txn, &env.source, d).await,
            "incident.opened" => self.incident_opened(txn, &env.source, d).await,
            "incident.resolved" => self.incident_resolved(txn, &env.source, d).await,
            "key_result.measured" => self.key_result_measured(txn, &env.source, d).await,
            other => reject(format!("unknown event type {other:?}")),
        }
    }

    /// A unit by key that the caller may write to.
    async fn writable_unit(
        &self,
        txn: &DatabaseTransaction,
        key: &str,
    ) -> Result<(unit::Model, UnitPath), Fail> {
        let Some(u) = unit::Entity::find()
            .filter(unit::Column::Key.eq(key))
            .one(txn)
            .await?
        else {
            return reject(format!("unknown unit {key:?}"));
        };
        let path = units::path_of(txn, &u).await?;
        if !self.scope.allows(&path) {
            return reject(format!("this API key may not write to unit {key:?}"));
        }
        Ok((u, path))
    }

    async fn check_unit_scope(&self, txn: &DatabaseTransaction, unit_id: i64) -> Result<(), Fail> {
        if self.scope.unit_root.is_none() {
            return Ok(());
        }
        let path = units::path(txn, unit_id).await?;
        if self.scope.allows(&path) {
            Ok(())
        } else {
            reject("this API key may not write to the unit that owns this record")
        }
    }

    async fn unit_upserted(&self, txn: &DatabaseTransaction, d: &Map<String, Value>) -> Applied {
        let key = text(d, "key")?;
        validate_unit_key(key)?;
        let kind = parse_enum("kind", text(d, "kind")?, UnitKind::ALL, UnitKind::as_str)?;
        let name = text(d, "name")?.trim();
        if name.chars().count() > 200 {
            return reject("`data.name` must have at most 200 characters");
        }
        let parent = match opt_text(d, "parent")? {
            Some(p) => self.writable_unit(txn, p).await?.0,
            None => {
                let org = units::organisation(txn).await?;
                if self.scope.unit_root.is_some() {
                    return reject("this API key may not write to the organisation");
                }
                org
            }
        };
        let existing = unit::Entity::find()
            .filter(unit::Column::Key.eq(key))
            .one(txn)
            .await?;
        let u = match existing {
            Some(u) => {
                if u.kind != kind.as_str() || u.parent_id != Some(parent.id) {
                    return reject(format!(
                        "unit {key:?} exists as a {} under another parent: units cannot move or change kind",
                        u.kind
                    ));
                }
                let mut m = u.into_active_model();
                m.name = Set(name.to_owned());
                m.update(txn).await?
            }
            None => {
                let parent_kind = UnitKind::parse(&parent.kind)?;
                if parent_kind.child_kind() != Some(kind) {
                    return reject(format!(
                        "a {} cannot be placed under a {}",
                        kind.as_str(),
                        parent_kind.as_str()
                    ));
                }
                units::insert_unit(txn, &parent, kind, key, name).await?
            }
        };
        Ok(vec![event(ChangeKind::UnitUpserted, u.id, u.id)])
    }

    async fn item_by_ref(
        &self,
        txn: &DatabaseTransaction,
        source: &str,
        ext: &str,
    ) -> Result<Option<work_item::Model>, Fail> {
        let Some(r) = external_ref::Entity::find()
            .filter(external_ref::Column::Source.eq(source))
            .filter(external_ref::Column::ExternalId.eq(ext))
            .one(txn)
            .await?
        else {
            return Ok(None);
        };
        Ok(work_item::Entity::find_by_id(r.work_item_id)
            .one(txn)
            .await?)
    }

    /// Whether a limited key may refer to records of `unit_id`: its subtree,
    /// and for work items also the units above it (the program's features).
    async fn may_reference(
        &self,
        txn: &DatabaseTransaction,
        unit_id: i64,
        line_too: bool,
    ) -> Result<bool, Fail> {
        let Some(root) = self.scope.unit_root else {
            return Ok(true);
        };
        if self.scope.allows(&units::path(txn, unit_id).await?) {
            return Ok(true);
        }
        Ok(line_too && units::path(txn, root).await?.ancestors.contains(&unit_id))
    }

    /// An item named by another record: its external id in this source, else
    /// its key. Items a limited key may not refer to read as unknown.
    async fn referenced_item(
        &self,
        txn: &DatabaseTransaction,
        source: &str,
        reference: &str,
    ) -> Result<work_item::Model, Fail> {
        let found = match self.item_by_ref(txn, source, reference).await? {
            Some(i) => Some(i),
            None => {
                work_item::Entity::find()
                    .filter(work_item::Column::Key.eq(reference))
                    .one(txn)
                    .await?
            }
        };
        match found {
            Some(i) if self.may_reference(txn, i.unit_id, true).await? => Ok(i),
            _ => reject(format!("unknown work item {reference:?}")),
        }
    }

    async fn item_upserted(
        &self,
        txn: &DatabaseTransaction,
        source: &str,
        d: &Map<String, Value>,
    ) -> Applied {
        let f = ItemFields::parse(d)?;
        let (unit, path) = self.writable_unit(txn, f.unit).await?;
        f.check_owner(&path)?;
        let ItemFields {
            ext,
            key,
            item_type,
            title,
            state: state_name,
            created_at,
            found_in,
            severity,
            estimate,
            business_value,
            url,
            ..
        } = f;
        let assignee = match f.assignee {
            Some(email) => match user::Entity::find()
                .filter(user::Column::Email.eq(email.trim().to_lowercase()))
                .one(txn)
                .await?
            {
                Some(u) if is_eligible_assignee(txn, u.id, &path).await? => Some(u.id),
                _ => return reject(format!("unknown assignee {email:?}")),
            },
            None => None,
        };
        let workflow = units::effective_workflow(txn, unit.id).await?;
        let Some(state) = workflow.state(state_name).cloned() else {
            return reject(workflow.unknown_state(state_name).message());
        };
        let existing = self.item_by_ref(txn, source, ext).await?;
        let parent = match f.parent {
            Some(p) => {
                let Some(parent) = self.item_by_ref(txn, source, p).await? else {
                    return reject(format!("unknown parent {p:?}"));
                };
                item_type.check_parent(
                    &parent.item_type,
                    parent.unit_id,
                    path.id,
                    &path.ancestors,
                )?;
                if existing.as_ref().is_some_and(|e| e.id == parent.id) {
                    return reject("an item cannot be its own parent");
                }
                Some(parent.id)
            }
            None => None,
        };
        let key_owner = work_item::Entity::find()
            .filter(work_item::Column::Key.eq(key))
            .one(txn)
            .await?;
        if let Some(owner) = &key_owner
            && existing.as_ref().is_none_or(|e| e.id != owner.id)
        {
            return reject(format!("key {key:?} belongs to another work item"));
        }
        let now = Utc::now();
        match existing {
            None => {
                let rank =
                    rank::after(rank::last_rank(txn, unit.id, &state.name).await?.as_deref());
                let item = work_item::ActiveModel {
                    key: Set(key.to_owned()),
                    title: Set(title),
                    description: Set(f.description.map(str::to_owned)),
                    item_type: Set(item_type.as_str().to_owned()),
                    flow_type: Set(item_type.default_flow_type().as_str().to_owned()),
                    state: Set(state.name.clone()),
                    state_category: Set(state.category.clone()),
                    unit_id: Set(unit.id),
                    parent_id: Set(parent),
                    assignee_id: Set(assignee),
                    estimate: Set(estimate),
                    business_value: Set(business_value),
                    rank: Set(rank),
                    found_in: Set(found_in.map(|f| f.as_str().to_owned())),
                    severity: Set(severity),
                    created_at: Set(created_at),
                    updated_at: Set(now),
                    ..Default::default()
                }
                .insert(txn)
                .await?;
                external_ref::ActiveModel {
                    work_item_id: Set(item.id),
                    source: Set(source.to_owned()),
                    external_id: Set(ext.to_owned()),
                    url: Set(url),
                    ..Default::default()
                }
                .insert(txn)
                .await?;
                transition::ActiveModel {
                    work_item_id: Set(item.id),
                    from_state: Set(None),
                    to_state: Set(state.name),
                    to_category: Set(state.category),
                    at: Set(created_at),
                    actor_id: Set(None),
                    source: Set(Some(source.to_owned())),
                    ..Default::default()
                }
                .insert(txn)
                .await?;
                Ok(vec![event(ChangeKind::WorkItemCreated, unit.id, item.id)])
            }
            Some(item) => {
                self.check_unit_scope(txn, item.unit_id).await?;
                let first_at = transition::Entity::find()
                    .filter(transition::Column::WorkItemId.eq(item.id))
                    .filter(transition::Column::FromState.is_not_null())
                    .order_by_asc(transition::Column::At)
                    .one(txn)
                    .await?
                    .map(|t| t.at);
                if first_at.is_some_and(|f| f < created_at) {
                    return reject("`data.created_at` is after the item's first transition");
                }
                let id = item.id;
                let moved_state = item.state != state.name;
                let mut m = item.into_active_model();
                m.key = Set(key.to_owned());
                m.title = Set(title);
                if let Some(desc) = f.description {
                    m.description = Set(Some(desc.to_owned()));
                }
                m.item_type = Set(item_type.as_str().to_owned());
                m.flow_type = Set(item_type.default_flow_type().as_str().to_owned());
                m.unit_id = Set(unit.id);
                m.parent_id = Set(parent);
                m.assignee_id = Set(assignee);
                m.estimate = Set(estimate);
                m.business_value = Set(business_value);
                m.found_in = Set(found_in.map(|f| f.as_str().to_owned()));
                m.severity = Set(severity);
                m.created_at = Set(created_at);
                m.updated_at = Set(now);
                m.update(txn).await?;
                // The creation transition moves with `created_at`.
                transition::Entity::update_many()
                    .col_expr(
                        transition::Column::At,
                        sea_orm::sea_query::Expr::value(created_at),
                    )
                    .filter(transition::Column::WorkItemId.eq(id))
                    .filter(transition::Column::FromState.is_null())
                    .exec(txn)
                    .await?;
                if let Some(u) = url {
                    external_ref::Entity::update_many()
                        .col_expr(
                            external_ref::Column::Url,
                            sea_orm::sea_query::Expr::value(u),
                        )
                        .filter(external_ref::Column::WorkItemId.eq(id))
                        .filter(external_ref::Column::Source.eq(source))
                        .exec(txn)
                        .await?;
                }
                let mut events = vec![event(ChangeKind::WorkItemUpdated, unit.id, id)];
                if moved_state {
                    insert_transition(
                        txn,
                        id,
                        &workflow,
                        &state.name,
                        std::cmp::max(f.updated_at.unwrap_or(now), created_at),
                        source,
                    )
                    .await?;
                    events.push(event(ChangeKind::WorkItemMoved, unit.id, id));
                }
                Ok(events)
            }
        }
    }

    async fn item_transitioned(
        &self,
        txn: &DatabaseTransaction,
        source: &str,
        d: &Map<String, Value>,
    ) -> Applied {
        let TransitionFields { ext, to_state, at } = TransitionFields::parse(d)?;
        let Some(item) = self.item_by_ref(txn, source, ext).await? else {
            return reject(format!("unknown work item {ext:?}"));
        };
        self.check_unit_scope(txn, item.unit_id).await?;
        if at < item.created_at {
            return reject("the transition is before the item's creation");
        }
        let workflow = units::effective_workflow(txn, item.unit_id).await?;
        if workflow.state(to_state).is_none() {
            return reject(workflow.unknown_state(to_state).message());
        }
        insert_transition(txn, item.id, &workflow, to_state, at, source).await?;
        Ok(vec![event(
            ChangeKind::WorkItemMoved,
            item.unit_id,
            item.id,
        )])
    }

    async fn change_upserted(
        &self,
        txn: &DatabaseTransaction,
        source: &str,
        d: &Map<String, Value>,
    ) -> Applied {
        let f = ChangeFields::parse(d)?;
        let ext = f.ext;
        let (unit, _) = self.writable_unit(txn, f.unit).await?;
        let mut items = Vec::new();
        for r in &f.work_items {
            items.push(self.referenced_item(txn, source, r).await?.id);
        }
        let existing = change::Entity::find()
            .filter(change::Column::Source.eq(source))
            .filter(change::Column::ExternalId.eq(ext))
            .one(txn)
            .await?;
        let model = f.model(unit.id, source);
        if let Some(e) = &existing {
            self.check_unit_scope(txn, e.unit_id).await?;
        }
        let row = save(txn, model, existing.map(|e| e.id), |m, id| m.id = Set(id)).await?;
        replace_links(
            txn,
            change_work_item::Column::ChangeId,
            row.id,
            items,
            |w| change_work_item::ActiveModel {
                change_id: Set(row.id),
                work_item_id: Set(w),
            },
        )
        .await?;
        Ok(vec![event(ChangeKind::ChangeUpserted, unit.id, row.id)])
    }

    async fn deployment_recorded(
        &self,
        txn: &DatabaseTransaction,
        source: &str,
        d: &Map<String, Value>,
    ) -> Applied {
        let f = DeploymentFields::parse(d)?;
        let ext = f.ext;
        let (unit, _) = self.writable_unit(txn, f.unit).await?;
        let mut changes = Vec::new();
        for &c in &f.changes {
            match change::Entity::find()
                .filter(change::Column::Source.eq(source))
                .filter(change::Column::ExternalId.eq(c))
                .one(txn)
                .await?
            {
                Some(ch) if self.may_reference(txn, ch.unit_id, false).await? => {
                    changes.push(ch.id);
                }
                _ => return reject(format!("unknown change {c:?}")),
            }
        }
        let existing = deployment::Entity::find()
            .filter(deployment::Column::Source.eq(source))
            .filter(deployment::Column::ExternalId.eq(ext))
            .one(txn)
            .await?;
        let model = f.model(unit.id, source);
        if let Some(e) = &existing {
            self.check_unit_scope(txn, e.unit_id).await?;
        }
        let row = save(txn, model, existing.map(|e| e.id), |m, id| m.id = Set(id)).await?;
        replace_links(
            txn,
            deployment_change::Column::DeploymentId,
            row.id,
            changes,
            |c| deployment_change::ActiveModel {
                deployment_id: Set(row.id),
                change_id: Set(c),
            },
        )
        .await?;
        Ok(vec![event(ChangeKind::DeploymentRecorded, unit.id, row.id)])
    }

    async fn release_recorded(
        &self,
        txn: &DatabaseTransaction,
        source: &str,
        d: &Map<String, Value>,
    ) -> Applied {
        let ext = text(d, "external_id")?;
        let (unit, _) = self.writable_unit(txn, text(d, "unit")?).await?;
        let name = text(d, "name")?.to_owned();
        let released_at = time(d, "released_at")?;
        let mut items = Vec::new();
        for r in list(d, "work_items")? {
            items.push(self.referenced_item(txn, source, r).await?.id);
        }
        let existing = release::Entity::find()
            .filter(release::Column::Source.eq(source))
            .filter(release::Column::ExternalId.eq(ext))
            .one(txn)
            .await?;
        let model = release::ActiveModel {
            unit_id: Set(unit.id),
            source: Set(source.to_owned()),
            external_id: Set(ext.to_owned()),
            name: Set(name),
            released_at: Set(released_at),
            ..Default::default()
        };
        if let Some(e) = &existing {
            self.check_unit_scope(txn, e.unit_id).await?;
        }
        let row = save(txn, model, existing.map(|e| e.id), |m, id| m.id = Set(id)).await?;
        replace_links(
            txn,
            release_work_item::Column::ReleaseId,
            row.id,
            items,
            |w| release_work_item::ActiveModel {
                release_id: Set(row.id),
                work_item_id: Set(w),
            },
        )
        .await?;
        Ok(vec![event(ChangeKind::ReleaseRecorded, unit.id, row.id)])
    }

    async fn incident_opened(
        &self,
        txn: &DatabaseTransaction,
        source: &str,
        d: &Map<String, Value>,
    ) -> Applied {
        let ext = text(d, "external_id")?;
        let (unit, _) = self.writable_unit(txn, text(d, "unit")?).await?;
        let opened_at = time(d, "opened_at")?;
        let severity = text(d, "severity")?.to_owned();
        let deployment_id = match opt_text(d, "deployment")? {
            Some(dep) => match deployment::Entity::find()
                .filter(deployment::Column::Source.eq(source))
                .filter(deployment::Column::ExternalId.eq(dep))
                .one(txn)
                .await?
            {
                Some(x) if self.may_reference(txn, x.unit_id, false).await? => Some(x.id),
                _ => return reject(format!("unknown deployment {dep:?}")),
            },
            None => None,
        };
        let existing = incident::Entity::find()
            .filter(incident::Column::Source.eq(source))
            .filter(incident::Column::ExternalId.eq(ext))
            .one(txn)
            .await?;
        let resolved_at = existing.as_ref().and_then(|e| e.resolved_at);
        if resolved_at.is_some_and(|r| r < opened_at) {
            return reject("the incident was resolved before this opening time");
        }
        let model = incident::ActiveModel {
            unit_id: Set(unit.id),
            source: Set(source.to_owned()),
            external_id: Set(ext.to_owned()),
            severity: Set(severity),
            opened_at: Set(opened_at),
            resolved_at: Set(resolved_at),
            deployment_id: Set(deployment_id),
            ..Default::default()
        };
        if let Some(e) = &existing {
            self.check_unit_scope(txn, e.unit_id).await?;
        }
        let row = save(txn, model, existing.map(|e| e.id), |m, id| m.id = Set(id)).await?;
        Ok(vec![event(ChangeKind::IncidentOpened, unit.id, row.id)])
    }

    async fn incident_resolved(
        &self,
        txn: &DatabaseTransaction,
        source: &str,
        d: &Map<String, Value>,
    ) -> Applied {
        let ext = text(d, "external_id")?;
        let resolved_at = time(d, "resolved_at")?;
        let Some(inc) = incident::Entity::find()
            .filter(incident::Column::Source.eq(source))
            .filter(incident::Column::ExternalId.eq(ext))
            .one(txn)
            .await?
        else {
            return reject(format!("unknown incident {ext:?}"));
        };
        self.check_unit_scope(txn, inc.unit_id).await?;
        if resolved_at < inc.opened_at {
            return reject("an incident cannot be resolved before it was opened");
        }
        let unit_id = inc.unit_id;
        let mut m = inc.into_active_model();
        m.resolved_at = Set(Some(resolved_at));
        let row = m.update(txn).await?;
        Ok(vec![event(ChangeKind::IncidentResolved, unit_id, row.id)])
    }

    async fn key_result_measured(
        &self,
        txn: &DatabaseTransaction,
        source: &str,
        d: &Map<String, Value>,
    ) -> Applied {
        let key = text(d, "key_result")?;
        let value = match d.get("value") {
            Some(Value::Number(n)) => n.as_f64().filter(|v| v.is_finite()),
            _ => None,
        };
        let Some(value) = value else {
            return reject("`data.value` is required and must be a number");
        };
        let at = time(d, "at")?;
        let Some(kr) = key_result::Entity::find()
            .filter(key_result::Column::Key.eq(key))
            .one(txn)
            .await?
        else {
            return reject(format!("unknown key result {key:?}"));
        };
        let objective = objective::Entity::find_by_id(kr.objective_id)
            .one(txn)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("objective".into()))?;
        self.check_unit_scope(txn, objective.unit_id).await?;
        key_result_measurement::ActiveModel {
            key_result_id: Set(kr.id),
            value: Set(value),
            at: Set(at),
            source: Set(Some(source.to_owned())),
            ..Default::default()
        }
        .insert(txn)
        .await?;
        Ok(vec![event(
            ChangeKind::KeyResultMeasured,
            objective.unit_id,
            kr.id,
        )])
    }
}

/// One event of a batch, as received.
pub enum Raw {
    /// An NDJSON line, not parsed yet.
    Line(String),
    /// An element of a JSON array.
    Value(Value),
}

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
    let mut results = match batch::run(&txn, scope, dry_run, &applied, batch).await {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    let touched = std::mem::take(&mut *applied.lock().unwrap_or_else(|p| p.into_inner()));
    if let Err(e) = facts::refresh_touched(&txn, &touched).await {
        return failed(e);
    }
    *applied.lock().unwrap_or_else(|p| p.into_inner()) = touched;
    if let Err(e) = txn.commit().await {
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

fn event(kind: ChangeKind, unit_id: i64, entity_id: i64) -> DomainEvent {
    DomainEvent::new(kind, unit_id, entity_id)
}

/// Replaces the rows of a link table that belong to `owner` with links to `targets`.
async fn replace_links<E, A>(
    txn: &DatabaseTransaction,
    owner_col: E::Column,
    owner: i64,
    mut targets: Vec<i64>,
    link: impl Fn(i64) -> A,
) -> Result<(), DbErr>
where
    E: EntityTrait,
    A: ActiveModelTrait<Entity = E> + Send,
{
    E::delete_many()
        .filter(owner_col.eq(owner))
        .exec(txn)
        .await?;
    targets.sort_unstable();
    targets.dedup();
    if !targets.is_empty() {
        E::insert_many(targets.into_iter().map(link))
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// Inserts a row, or updates the row with `existing` id.
async fn save<A>(
    txn: &DatabaseTransaction,
    mut model: A,
    existing: Option<i64>,
    set_id: impl Fn(&mut A, i64),
) -> Result<<A::Entity as EntityTrait>::Model, DbErr>
where
    A: ActiveModelTrait + sea_orm::ActiveModelBehavior + Send,
    <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
{
    match existing {
        Some(id) => {
            set_id(&mut model, id);
            model.update(txn).await
        }
        None => model.insert(txn).await,
    }
}

/// Inserts a transition at `at`, keeps the next transition's `from_state`
/// consistent, and sets the item's current state to the latest by `at`.
async fn insert_transition(
    txn: &DatabaseTransaction,
    item_id: i64,
    workflow: &EffectiveWorkflow,
    to_state: &str,
    at: DateTime<Utc>,
    source: &str,
) -> Result<(), Fail> {
    let Some(state) = workflow.state(to_state).cloned() else {
        return reject(workflow.unknown_state(to_state).message());
    };
    let before = transition::Entity::find()
        .filter(transition::Column::WorkItemId.eq(item_id))
        .filter(transition::Column::At.lte(at))
        .order_by_desc(transition::Column::At)
        .order_by_desc(transition::Column::Id)
        .one(txn)
        .await?;
    let after = transition::Entity::find()
        .filter(transition::Column::WorkItemId.eq(item_id))
        .filter(transition::Column::At.gt(at))
        .order_by_asc(transition::Column::At)
        .order_by_asc(transition::Column::Id)
        .one(txn)
        .await?;
    transition::ActiveModel {
        work_item_id: Set(item_id),
        from_state: Set(before.map(|b| b.to_state)),
        to_state: Set(state.name.clone()),
        to_category: Set(state.category.clone()),
        at: Set(at),
        actor_id: Set(None),
        source: Set(Some(source.to_owned())),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    match after {
        Some(next) => {
            let mut m = next.into_active_model();
            m.from_state = Set(Some(state.name));
            m.update(txn).await?;
        }
        None => {
            // The new transition is the latest: it is the current state.
            let item = work_item::Entity::find_by_id(item_id)
                .one(txn)
                .await?
                .ok_or_else(|| DbErr::RecordNotFound("work item".into()))?;
            if item.state != state.name {
                let rank = rank::after(
                    rank::last_rank(txn, item.unit_id, &state.name)
                        .await?
                        .as_deref(),
                );
                let mut m = item.into_active_model();
                m.state = Set(state.name);
                m.state_category = Set(state.category);
                m.rank = Set(rank);
                m.updated_at = Set(Utc::now());
                m.update(txn).await?;
            }
        }
    }
    Ok(())
}
