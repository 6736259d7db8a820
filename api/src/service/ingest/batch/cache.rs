//! What the batch knows: the rows its events refer to, loaded a few
//! statements at a time, and what its queued writes will make true. Every
//! lookup answers from here, loading (and then keeping) what it lacks.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::{change, deployment, external_ref, transition, unit, unit_closure, work_item};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::queue::{Id, Pending, Written, internal};
use crate::domain::UnitKind;
use crate::policy::UnitPath;
use crate::service::ingest::event::Envelope;
use crate::service::ingest::records::Delivery;
use crate::service::rank;
use crate::service::units::{self, EffectiveWorkflow};

/// Keys per `IN (...)` lookup.
const IN_CHUNK: usize = 5000;

/// What the batch knows of a work item.
#[derive(Clone, Debug)]
pub(super) struct Item {
    pub(super) id: Id,
    pub(super) key: String,
    pub(super) unit_id: i64,
    pub(super) item_type: String,
    pub(super) state: String,
    pub(super) created_at: DateTime<Utc>,
    /// `at` of its latest transition.
    pub(super) latest_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Owned {
    pub(super) id: Id,
    pub(super) unit_id: i64,
}

/// What the batch has read, and what its queued writes will make true.
/// `None` entries record that a lookup found nothing.
pub(super) struct Cache<'a> {
    txn: &'a DatabaseTransaction,
    pub(super) units: HashMap<String, Option<i64>>,
    pub(super) paths: HashMap<i64, UnitPath>,
    pub(super) workflows: HashMap<i64, Arc<EffectiveWorkflow>>,
    pub(super) items: Vec<Item>,
    pub(super) item_rows: HashMap<i64, usize>,
    pub(super) by_ref: HashMap<(String, String), Option<usize>>,
    pub(super) by_key: HashMap<String, Option<usize>>,
    pub(super) changes: HashMap<(String, String), Option<Owned>>,
    pub(super) deployments: HashMap<(String, String), Option<Owned>>,
    /// The last rank of each board column, (unit, state).
    pub(super) ranks: HashMap<(i64, String), Option<String>>,
}

impl<'a> Cache<'a> {
    pub(super) fn new(txn: &'a DatabaseTransaction) -> Self {
        Self {
            txn,
            units: HashMap::new(),
            paths: HashMap::new(),
            workflows: HashMap::new(),
            items: Vec::new(),
            item_rows: HashMap::new(),
            by_ref: HashMap::new(),
            by_key: HashMap::new(),
            changes: HashMap::new(),
            deployments: HashMap::new(),
            ranks: HashMap::new(),
        }
    }

    // ---- lookups: from the cache, else loaded (and then cached) ----

    pub(super) async fn unit_id(&mut self, key: &str) -> Result<Option<i64>, DbErr> {
        if !self.units.contains_key(key) {
            self.load_units(&[key]).await?;
        }
        Ok(self.units.get(key).copied().flatten())
    }

    pub(super) async fn path(&mut self, id: i64) -> Result<UnitPath, DbErr> {
        if !self.paths.contains_key(&id) {
            self.load_paths(&[id]).await?;
        }
        self.paths
            .get(&id)
            .cloned()
            .ok_or_else(|| DbErr::RecordNotFound(format!("unit {id}")))
    }

    pub(super) async fn workflow(&mut self, unit_id: i64) -> Result<Arc<EffectiveWorkflow>, DbErr> {
        if !self.workflows.contains_key(&unit_id) {
            self.load_workflows(&[unit_id]).await?;
        }
        self.workflows
            .get(&unit_id)
            .cloned()
            .ok_or_else(|| DbErr::RecordNotFound(format!("workflow of unit {unit_id}")))
    }

    pub(super) async fn item_by_ref(
        &mut self,
        source: &str,
        ext: &str,
    ) -> Result<Option<usize>, DbErr> {
        let k = (source.to_owned(), ext.to_owned());
        if !self.by_ref.contains_key(&k) {
            self.load_items(source, &[ext], &[]).await?;
        }
        Ok(self.by_ref.get(&k).copied().flatten())
    }

    pub(super) async fn item_by_key(&mut self, key: &str) -> Result<Option<usize>, DbErr> {
        if !self.by_key.contains_key(key) {
            self.load_items("", &[], &[key]).await?;
        }
        Ok(self.by_key.get(key).copied().flatten())
    }

    pub(super) async fn change(&mut self, source: &str, ext: &str) -> Result<Option<Owned>, DbErr> {
        let k = (source.to_owned(), ext.to_owned());
        if !self.changes.contains_key(&k) {
            self.load_changes(source, &[ext]).await?;
        }
        Ok(self.changes.get(&k).copied().flatten())
    }

    pub(super) async fn deployment(
        &mut self,
        source: &str,
        ext: &str,
    ) -> Result<Option<Owned>, DbErr> {
        let k = (source.to_owned(), ext.to_owned());
        if !self.deployments.contains_key(&k) {
            self.load_deployments(source, &[ext]).await?;
        }
        Ok(self.deployments.get(&k).copied().flatten())
    }

    /// The rank after the last card of a column, which becomes its last.
    pub(super) async fn next_rank(&mut self, unit_id: i64, state: &str) -> Result<String, DbErr> {
        let k = (unit_id, state.to_owned());
        if !self.ranks.contains_key(&k) {
            self.load_ranks(std::slice::from_ref(&k)).await?;
        }
        let last = self.ranks.get(&k).cloned().flatten();
        let next = rank::after(last.as_deref());
        self.ranks.insert(k, Some(next.clone()));
        Ok(next)
    }

    // ---- loading, several keys per statement ----

    /// Loads what the batch's events refer to, a few statements in all.
    pub(super) async fn prefetch(
        &mut self,
        events: &[(usize, usize, Envelope)],
        unit_root: Option<i64>,
    ) -> Result<(), DbErr> {
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
        let mut unit_ids: HashSet<i64> = self.units.values().flatten().copied().collect();
        unit_ids.extend(self.items.iter().map(|i| i.unit_id));
        unit_ids.extend(
            self.changes
                .values()
                .chain(self.deployments.values())
                .flatten()
                .map(|o| o.unit_id),
        );
        unit_ids.extend(unit_root);
        let unit_ids: Vec<i64> = unit_ids.into_iter().collect();
        self.load_paths(&unit_ids).await?;
        self.load_workflows(&unit_ids).await?;
        let columns: Vec<(i64, String)> = self
            .workflows
            .iter()
            .flat_map(|(u, wf)| wf.states.iter().map(|s| (*u, s.name.clone())))
            .collect();
        self.load_ranks(&columns).await
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
                self.units.insert((*k).to_owned(), None);
            }
            for (id, key) in rows {
                self.units.insert(key, Some(id));
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
                self.paths.insert(
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
                self.workflows.insert(unit_id, Arc::new(wf));
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
                .filter(|id| !self.item_rows.contains_key(id))
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
        found.retain(|m| !self.item_rows.contains_key(&m.id));
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
            let slot = self.items.len();
            self.item_rows.insert(m.id, slot);
            self.items.push(Item {
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
            self.by_ref
                .insert((source.to_owned(), (*e).to_owned()), None);
        }
        for (ext, id) in by_ref {
            let slot = self.item_rows.get(&id).copied();
            self.by_ref.insert((source.to_owned(), ext), slot);
        }
        let asked: HashSet<&str> = keys.iter().copied().collect();
        for k in keys {
            self.by_key.insert((*k).to_owned(), None);
        }
        for (slot, item) in self.items.iter().enumerate() {
            if matches!(item.id, Id::Row(_)) && asked.contains(item.key.as_str()) {
                self.by_key.insert(item.key.clone(), Some(slot));
            }
        }
        Ok(())
    }

    async fn load_changes(&mut self, source: &str, exts: &[&str]) -> Result<(), DbErr> {
        load_owned::<change::Entity>(self.txn, &mut self.changes, source, exts).await
    }

    async fn load_deployments(&mut self, source: &str, exts: &[&str]) -> Result<(), DbErr> {
        load_owned::<deployment::Entity>(self.txn, &mut self.deployments, source, exts).await
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
                self.ranks.insert(col.clone(), last);
            }
        }
        Ok(())
    }

    /// Drops what the per-event path may have changed under the cache.
    pub(super) fn forget(&mut self, env: &Envelope) {
        let source = env.source.clone();
        let key = |name| data_str(env, name).map(str::to_owned);
        match env.kind.as_str() {
            "unit.upserted" => self.units.clear(),
            "work_item.upserted" | "work_item.transitioned" => {
                if let Some(ext) = key("external_id") {
                    let slot = self.by_ref.remove(&(source, ext)).flatten();
                    if let Some(slot) = slot {
                        self.by_ref.retain(|_, v| *v != Some(slot));
                        self.by_key.retain(|_, v| *v != Some(slot));
                        self.item_rows.retain(|_, v| *v != slot);
                    }
                }
                if let Some(k) = key("key") {
                    self.by_key.remove(&k);
                }
                self.ranks.clear();
            }
            "change.upserted" => {
                if let Some(ext) = key("external_id") {
                    self.changes.remove(&(source, ext));
                }
            }
            "deployment.recorded" => {
                if let Some(ext) = key("external_id") {
                    self.deployments.remove(&(source, ext));
                }
            }
            _ => {}
        }
    }

    /// Turns the segment's queued rows into written ones.
    pub(super) fn settle(&mut self, pending: &Pending, ids: &Written) {
        for (n, slot) in pending.item_slots.iter().enumerate() {
            let row = ids.items[n];
            self.items[*slot].id = Id::Row(row);
            self.item_rows.insert(row, *slot);
        }
        for owned in self
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
            .deployments
            .values_mut()
            .flatten()
            .filter(|o| matches!(o.id, Id::New(_)))
        {
            if let Id::New(n) = owned.id {
                owned.id = Id::Row(ids.deployments[n]);
            }
        }
    }
}

/// Loads the delivery records of `E` that `source` names by `exts` into
/// `map`, a chunk of keys per statement.
async fn load_owned<E: Delivery>(
    txn: &DatabaseTransaction,
    map: &mut HashMap<(String, String), Option<Owned>>,
    source: &str,
    exts: &[&str],
) -> Result<(), DbErr> {
    for chunk in exts.chunks(IN_CHUNK) {
        let rows: Vec<(i64, i64, String)> = E::find()
            .select_only()
            .column(E::ID)
            .column(E::UNIT_ID)
            .column(E::EXTERNAL_ID)
            .filter(E::SOURCE.eq(source))
            .filter(E::EXTERNAL_ID.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(txn)
            .await?;
        owned_rows(map, source, chunk, rows);
    }
    Ok(())
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
