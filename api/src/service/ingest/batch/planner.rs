//! The fast path's checks: an event of the kinds a backfill is made of is
//! checked in memory against what the batch has loaded and queued, exactly
//! as the per-event path would check it against the database, and its
//! writes are queued. Anything else goes to the per-event path.

use chrono::{DateTime, Utc};
use sea_orm::DbErr;

use super::cache::{Cache, Item, Owned};
use super::queue::{Id, NewItem, NewTransition, Pending, Target};
use crate::events::ChangeKind;
use crate::policy::{IngestScope, UnitPath};
use crate::service::ingest::event::{
    ChangeFields, DeploymentFields, Envelope, Fail, ItemFields, TransitionFields,
};

/// What the fast path makes of an event.
pub(super) enum Plan {
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

/// Plans a segment's events against the cache, into its queue.
pub(super) struct Planner<'a> {
    pub(super) scope: IngestScope,
    pub(super) cache: Cache<'a>,
    pub(super) pending: Pending,
}

impl Planner<'_> {
    pub(super) async fn plan(&mut self, env: &Envelope) -> Result<Plan, DbErr> {
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
        let Some(id) = self.cache.unit_id(key).await? else {
            return Ok(Err(Plan::Rejected(format!("unknown unit {key:?}"))));
        };
        let path = self.cache.path(id).await?;
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
        if f.assignee.is_some() || env.data.contains_key("objectives") {
            return Ok(Plan::Slow);
        }
        let path = match self.writable_unit(f.unit).await? {
            Ok(p) => p,
            Err(plan) => return Ok(plan),
        };
        check!(f.check_owner(&path));
        let workflow = self.cache.workflow(path.id).await?;
        let Some(state) = workflow.state(f.state).cloned() else {
            return rejected(workflow.unknown_state(f.state).message());
        };
        if self.cache.item_by_ref(source, f.ext).await?.is_some() {
            return Ok(Plan::Slow);
        }
        let parent = match f.parent {
            Some(p) => {
                let Some(slot) = self.cache.item_by_ref(source, p).await? else {
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
        if self.cache.item_by_key(f.key).await?.is_some() {
            return rejected(format!("key {:?} belongs to another work item", f.key));
        }
        // Checked: queue it.
        let rank = self.cache.next_rank(path.id, &state.name).await?;
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
        let Some(slot) = self.cache.item_by_ref(source, f.ext).await? else {
            return rejected(format!("unknown work item {:?}", f.ext));
        };
        let unit_id = self.cache.items[slot].unit_id;
        let scope = self.scope;
        if scope.unit_root.is_some() && !scope.allows(&self.cache.path(unit_id).await?) {
            return rejected("this API key may not write to the unit that owns this record");
        }
        if f.at < self.cache.items[slot].created_at {
            return rejected("the transition is before the item's creation");
        }
        let workflow = self.cache.workflow(unit_id).await?;
        let Some(state) = workflow.state(f.to_state).cloned() else {
            return rejected(workflow.unknown_state(f.to_state).message());
        };
        if f.at < self.cache.items[slot].latest_at {
            // Out of order: the neighbours' `from_state` needs the database.
            return Ok(Plan::Slow);
        }
        let moved = self.cache.items[slot].state != state.name;
        let rank = if moved {
            Some(self.cache.next_rank(unit_id, &state.name).await?)
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
        if scope.allows(&self.cache.path(unit_id).await?) {
            return Ok(true);
        }
        Ok(line_too && self.cache.path(root).await?.ancestors.contains(&unit_id))
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
            let slot = match self.cache.item_by_ref(source, r).await? {
                Some(s) => Some(s),
                None => self.cache.item_by_key(r).await?,
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
        if self.cache.change(source, f.ext).await?.is_some() {
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
            let found = self.cache.change(source, c).await?;
            let ok = match found {
                Some(ch) => self.may_reference(ch.unit_id, false).await?,
                None => false,
            };
            match found {
                Some(ch) if ok => changes.push(ch.id),
                _ => return rejected(format!("unknown change {c:?}")),
            }
        }
        if self.cache.deployment(source, f.ext).await?.is_some() {
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
}
