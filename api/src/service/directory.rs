//! The organisation tree and its workflows, served from memory.
//!
//! Units and workflows are few and rarely change, yet nearly every request
//! reads some: the unit a list starts from, the unit of each item, the
//! workflow of a board. Each replica keeps a snapshot of every unit, its
//! ancestors and the workflows with their states, loaded in four statements
//! and dropped:
//!
//! - by a unit created or renamed ([`ChangeKind::UnitUpserted`]), on this
//!   replica before the change's `publish` returns, on the others when the
//!   relay delivers it (a relay that reconnects drops it too);
//! - in any case once older than `GEMBA_TREE_CACHE_TTL_MS` (2 s by
//!   default), the bound for what no event reached (a seed or import run by
//!   another process). In the TTL's last quarter one request reads the
//!   snapshot again while the others go on with it, so under steady traffic
//!   no request waits for a reading and none is served a snapshot older
//!   than the TTL. 0 turns the snapshot off.
//!
//! A unit or workflow the snapshot does not know (created since it was
//! loaded) is read from the database, so a new unit is never missed. Units
//! never move nor change kind, so a unit's ancestors never go stale. The
//! snapshot's `next_item_number` is not to be trusted: the numbering reads
//! the row itself ([`super::units::next_item_number`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use entity::{unit, unit_closure, workflow, workflow_state};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};

use super::units::EffectiveWorkflow;
use crate::domain::UnitKind;
use crate::error::ApiResult;
use crate::events::{ChangeKind, DomainEvent, EventBus};
use crate::policy::UnitPath;

/// One reading of the tree.
#[derive(Debug, Default)]
pub struct Tree {
    /// Shared, so a request hands a unit to every item it owns without
    /// copying it.
    units: HashMap<i64, Arc<unit::Model>>,
    by_key: HashMap<String, i64>,
    /// Strict ancestors of each unit, farthest first.
    ancestors: HashMap<i64, Vec<i64>>,
    /// Each unit and every unit beneath it, by id.
    subtrees: HashMap<i64, Vec<i64>>,
    organisation: Option<i64>,
    /// Workflows by the unit that defines them.
    workflows: HashMap<i64, Arc<EffectiveWorkflow>>,
}

impl Tree {
    async fn load(db: &DatabaseConnection) -> ApiResult<Self> {
        let units = unit::Entity::find().all(db).await?;
        let closure = unit_closure::Entity::find()
            .filter(unit_closure::Column::Depth.gt(0))
            .order_by_desc(unit_closure::Column::Depth)
            .all(db)
            .await?;
        let workflows = workflow::Entity::find().all(db).await?;
        let states = workflow_state::Entity::find()
            .order_by_asc(workflow_state::Column::Position)
            .all(db)
            .await?;
        let mut tree = Tree::default();
        for c in closure {
            tree.ancestors
                .entry(c.descendant_id)
                .or_default()
                .push(c.ancestor_id);
        }
        let mut states_of: HashMap<i64, Vec<workflow_state::Model>> = HashMap::new();
        for s in states {
            states_of.entry(s.workflow_id).or_default().push(s);
        }
        for wf in workflows {
            let states = states_of.remove(&wf.id).unwrap_or_default();
            tree.workflows.insert(
                wf.unit_id,
                Arc::new(EffectiveWorkflow {
                    workflow: wf,
                    states,
                }),
            );
        }
        for (unit, ancestors) in &tree.ancestors {
            for a in ancestors {
                tree.subtrees.entry(*a).or_default().push(*unit);
            }
        }
        for u in units {
            let below = tree.subtrees.entry(u.id).or_default();
            below.push(u.id);
            below.sort_unstable();
            if u.kind == UnitKind::Organization.as_str() {
                tree.organisation = Some(u.id);
            }
            tree.by_key.insert(u.key.clone(), u.id);
            tree.units.insert(u.id, Arc::new(u));
        }
        Ok(tree)
    }

    pub fn unit(&self, id: i64) -> Option<&unit::Model> {
        self.units.get(&id).map(AsRef::as_ref)
    }

    /// The unit, shared with the snapshot.
    pub fn shared_unit(&self, id: i64) -> Option<Arc<unit::Model>> {
        self.units.get(&id).cloned()
    }

    pub fn unit_by_key(&self, key: &str) -> Option<&unit::Model> {
        self.by_key.get(key).and_then(|id| self.unit(*id))
    }

    pub fn organisation(&self) -> Option<&unit::Model> {
        self.organisation.and_then(|id| self.unit(id))
    }

    /// The unit's place in the tree, as the policy needs it.
    pub fn path(&self, id: i64) -> Option<UnitPath> {
        let unit = self.units.get(&id)?;
        Some(UnitPath {
            id,
            kind: UnitKind::parse(&unit.kind).ok()?,
            ancestors: self.ancestors.get(&id).cloned().unwrap_or_default(),
        })
    }

    /// The unit and every unit beneath it, by id; empty for an unknown
    /// unit.
    pub fn subtree(&self, id: i64) -> &[i64] {
        self.subtrees.get(&id).map_or(&[], Vec::as_slice)
    }

    /// The workflow the unit uses: its own, or its nearest ancestor's.
    pub fn effective_workflow(&self, id: i64) -> Option<Arc<EffectiveWorkflow>> {
        self.units.get(&id)?;
        std::iter::once(&id)
            .chain(self.ancestors.get(&id).into_iter().flatten().rev())
            .find_map(|u| self.workflows.get(u).cloned())
    }
}

/// The replica's snapshot of the tree (see the module's comment).
#[derive(Clone, Debug)]
pub struct UnitDirectory {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ttl: Duration,
    state: Mutex<State>,
    /// One reload at a time; the others wait for it.
    reload: tokio::sync::Mutex<()>,
}

/// The age from which a cached value is read again ahead of its expiry:
/// the last quarter of its time to live.
pub fn renew_after(ttl: Duration) -> Duration {
    ttl - ttl / 4
}

#[derive(Debug, Default)]
struct State {
    tree: Option<(Arc<Tree>, Instant)>,
    /// Advanced by every invalidation: a load that overlapped one is not kept.
    epoch: u64,
}

impl UnitDirectory {
    /// A snapshot kept for `ttl` at most (0: always read the database).
    pub fn new(ttl: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                ttl,
                state: Mutex::new(State::default()),
                reload: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// A directory that the tree's change events on `bus` (local or relayed)
    /// keep current.
    pub fn attached(ttl: Duration, bus: &EventBus) -> Self {
        let dir = Self::new(ttl);
        let observer = dir.clone();
        bus.observe(move |e| observer.on_event(e));
        dir
    }

    /// Drops the snapshot after a change to the tree (or a relay that
    /// reconnected, whose missed events may have been such).
    pub fn on_event(&self, event: &DomainEvent) {
        let stale = match event.kind {
            ChangeKind::UnitUpserted => true,
            ChangeKind::AccessChanged => event.entity_id == 0,
            _ => false,
        };
        if stale {
            let mut state = self.lock();
            state.epoch += 1;
            state.tree = None;
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The current snapshot if it is still fresh, without reading it
    /// again: `None` when missing, expired or turned off.
    pub fn fresh(&self) -> Option<Arc<Tree>> {
        let state = self.lock();
        state
            .tree
            .as_ref()
            .filter(|(_, at)| at.elapsed() < self.inner.ttl)
            .map(|(t, _)| t.clone())
    }

    /// The current snapshot, loaded if missing or expired; `None` when the
    /// snapshot is turned off.
    ///
    /// # Errors
    /// Database errors only.
    pub async fn tree(&self, db: &DatabaseConnection) -> ApiResult<Option<Arc<Tree>>> {
        let ttl = self.inner.ttl;
        if ttl.is_zero() {
            return Ok(None);
        }
        let current = self.lock().tree.clone();
        if let Some((tree, at)) = current {
            let age = at.elapsed();
            if age < renew_after(ttl) {
                return Ok(Some(tree));
            }
            // In its last quarter: one request reads it again, the others
            // go on with it meanwhile.
            if age < ttl {
                let Ok(_reading) = self.inner.reload.try_lock() else {
                    return Ok(Some(tree));
                };
                let renewed = self
                    .lock()
                    .tree
                    .as_ref()
                    .is_some_and(|(t, _)| !Arc::ptr_eq(t, &tree));
                if renewed {
                    return Ok(self.fresh().or(Some(tree)));
                }
                // The current tree is still good if the reading fails.
                return match self.load(db).await {
                    Ok(t) => Ok(t),
                    Err(e) => {
                        tracing::warn!(error = ?e, "reading the organisation tree again failed");
                        Ok(Some(tree))
                    }
                };
            }
        }
        self.read(db).await
    }

    /// Reads the tree unless a reading that finished meanwhile left a fresh one.
    async fn read(&self, db: &DatabaseConnection) -> ApiResult<Option<Arc<Tree>>> {
        let _reloading = self.inner.reload.lock().await;
        if let Some(t) = self.fresh() {
            return Ok(Some(t));
        }
        self.load(db).await
    }

    /// Loads the tree and keeps it unless the tree changed meanwhile; the
    /// caller holds the reload lock.
    async fn load(&self, db: &DatabaseConnection) -> ApiResult<Option<Arc<Tree>>> {
        let epoch = self.lock().epoch;
        let tree = Arc::new(Tree::load(db).await?);
        let mut state = self.lock();
        if state.epoch == epoch {
            state.tree = Some((tree.clone(), Instant::now()));
        }
        Ok(Some(tree))
    }
}
