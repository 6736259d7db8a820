//! The per-event path: each event checked and applied on its own, in its
//! own transaction or savepoint, by one handler per event type (DESIGN §4).
//! The batch path (`batch/`) hands here every event it cannot plan in
//! memory.

use chrono::{DateTime, Utc};
use entity::{
    change, change_work_item, deployment, deployment_change, external_ref, incident, ingest_log,
    key_result, key_result_measurement, objective, release, release_work_item, transition, unit,
    user, work_item,
};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    DbErr, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, Set, TransactionTrait,
};
use serde_json::{Map, Value};
use std::sync::Mutex;

use super::event::{
    ChangeFields, DeploymentFields, Envelope, Fail, ItemFields, TransitionFields, list, opt_text,
    parse_enum, reject, text, time,
};
use super::log::{claim_conflict, mark_rejected, record_rejection};
use super::outcome::{EventResult, INTERNAL_REASON, Status};
use super::outcomes;
use super::records::{Delivery, by_ref};
use crate::domain::{UnitKind, WorkItemType, validate_unit_key};
use crate::events::{ChangeKind, DomainEvent};
use crate::policy::{IngestScope, UnitPath};
use crate::service::rank;
use crate::service::units::{self, EffectiveWorkflow};
use crate::service::users::is_eligible_assignee;

type Applied = Result<Vec<DomainEvent>, Fail>;

/// Applies events for one caller. `db` is the connection, or for a dry
/// run a transaction the caller rolls back at the end (each event then runs
/// in a savepoint, so later events see earlier ones).
pub(super) struct Ingestor<'a, C> {
    pub(super) db: &'a C,
    pub(super) scope: IngestScope,
    /// Changes applied so far, to publish once their transaction commits.
    pub(super) applied: &'a Mutex<Vec<DomainEvent>>,
    /// Validate without writing: nothing is logged or published, and the
    /// caller rolls `db` back.
    pub(super) dry_run: bool,
}

impl<C> Ingestor<'_, C>
where
    C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>,
{
    /// Applies one parsed event in its own transaction (a savepoint when
    /// `db` is a transaction).
    pub(super) async fn envelope_event(&self, line: usize, env: &Envelope) -> EventResult {
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
    pub(super) async fn claimed_event(&self, line: usize, env: &Envelope) -> EventResult {
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

    /// `Ok(None)` for a duplicate, `Ok(Some(events))` once applied. The
    /// facts of what the events touched are left to the batch, which
    /// rewrites them once for every event it applied
    /// (`crate::service::facts::flow::refresh_touched_known`): written here too, those of an
    /// item created here were written twice.
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
            "objective.upserted" => self.objective_upserted(txn, &env.source, d).await,
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

    /// Inserts a delivery record, or updates the one that `existing` found
    /// once the caller may write to the unit that owns it.
    async fn upsert<E, A>(
        &self,
        txn: &DatabaseTransaction,
        mut model: A,
        existing: Option<E::Model>,
    ) -> Result<E::Model, Fail>
    where
        E: Delivery,
        A: ActiveModelTrait<Entity = E> + ActiveModelBehavior + Send,
        E::Model: IntoActiveModel<A>,
    {
        Ok(match existing {
            Some(e) => {
                self.check_unit_scope(txn, E::unit_id(&e)).await?;
                model.try_set(E::ID, E::id(&e).into())?;
                model.update(txn).await?
            }
            None => model.insert(txn).await?,
        })
    }

    /// Upserts the delivery record that `source` names `ext`, then replaces
    /// its rows in a link table (`link(record id, target)`) with `targets`.
    async fn upsert_linked<E, A, L, LA>(
        &self,
        txn: &DatabaseTransaction,
        (source, ext): (&str, &str),
        model: A,
        owner_col: L::Column,
        targets: Vec<i64>,
        link: impl Fn(i64, i64) -> LA,
    ) -> Result<E::Model, Fail>
    where
        E: Delivery,
        A: ActiveModelTrait<Entity = E> + ActiveModelBehavior + Send,
        E::Model: IntoActiveModel<A>,
        L: EntityTrait,
        LA: ActiveModelTrait<Entity = L> + Send,
    {
        let existing = by_ref::<E>(txn, source, ext).await?;
        let row = self.upsert(txn, model, existing).await?;
        let id = E::id(&row);
        replace_links(txn, owner_col, id, targets, |t| link(id, t)).await?;
        Ok(row)
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

    /// Writes the item, then the objectives it serves when the event names
    /// them (resolved first, so a bad key writes nothing).
    async fn item_upserted(
        &self,
        txn: &DatabaseTransaction,
        source: &str,
        d: &Map<String, Value>,
    ) -> Applied {
        let f = ItemFields::parse(d)?;
        let objectives = outcomes::objectives_of_item(txn, d, f.item_type, |unit| {
            self.check_unit_scope(txn, unit)
        })
        .await?;
        let events = self.item_written(txn, source, d).await?;
        if let Some(item) = self.item_by_ref(txn, source, f.ext).await? {
            objectives.apply(txn, item.id).await?;
        }
        Ok(events)
    }

    /// Writes the objective, its key results and, when the event names
    /// `work_items`, the epics and features it is served by (each an
    /// external id of the event's source or a key, in a unit the caller may
    /// write to).
    async fn objective_upserted(
        &self,
        txn: &DatabaseTransaction,
        source: &str,
        d: &Map<String, Value>,
    ) -> Applied {
        let f = outcomes::ObjectiveFields::parse(d)?;
        let (unit, _) = self.writable_unit(txn, f.unit).await?;
        let links = match &f.work_items {
            None => None,
            Some(refs) => {
                let mut ids = Vec::with_capacity(refs.len());
                for r in refs {
                    let item = match self.item_by_ref(txn, source, r).await? {
                        Some(item) => item,
                        None => work_item::Entity::find()
                            .filter(work_item::Column::Key.eq(*r))
                            .one(txn)
                            .await?
                            .ok_or_else(|| Fail::Reject(format!("unknown work item {r:?}")))?,
                    };
                    let kind = WorkItemType::parse(&item.item_type).map_err(Fail::from)?;
                    if !matches!(kind, WorkItemType::Epic | WorkItemType::Feature) {
                        return reject(format!(
                            "only epics and features serve objectives, not {r:?} (a {})",
                            kind.as_str()
                        ));
                    }
                    self.check_unit_scope(txn, item.unit_id).await?;
                    ids.push(item.id);
                }
                Some(ids)
            }
        };
        f.apply(txn, unit.id, links, |old| self.check_unit_scope(txn, old))
            .await
    }

    async fn item_written(
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
        let row = self
            .upsert_linked(
                txn,
                (source, ext),
                f.model(unit.id, source),
                change_work_item::Column::ChangeId,
                items,
                |id, w| change_work_item::ActiveModel {
                    change_id: Set(id),
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
            match by_ref::<change::Entity>(txn, source, c).await? {
                Some(ch) if self.may_reference(txn, ch.unit_id, false).await? => {
                    changes.push(ch.id);
                }
                _ => return reject(format!("unknown change {c:?}")),
            }
        }
        let row = self
            .upsert_linked(
                txn,
                (source, ext),
                f.model(unit.id, source),
                deployment_change::Column::DeploymentId,
                changes,
                |id, c| deployment_change::ActiveModel {
                    deployment_id: Set(id),
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
        let model = release::ActiveModel {
            unit_id: Set(unit.id),
            source: Set(source.to_owned()),
            external_id: Set(ext.to_owned()),
            name: Set(name),
            released_at: Set(released_at),
            ..Default::default()
        };
        let row = self
            .upsert_linked(
                txn,
                (source, ext),
                model,
                release_work_item::Column::ReleaseId,
                items,
                |id, w| release_work_item::ActiveModel {
                    release_id: Set(id),
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
            Some(dep) => match by_ref::<deployment::Entity>(txn, source, dep).await? {
                Some(x) if self.may_reference(txn, x.unit_id, false).await? => Some(x.id),
                _ => return reject(format!("unknown deployment {dep:?}")),
            },
            None => None,
        };
        let existing = by_ref::<incident::Entity>(txn, source, ext).await?;
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
        let row = self.upsert(txn, model, existing).await?;
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
        let Some(inc) = by_ref::<incident::Entity>(txn, source, ext).await? else {
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
