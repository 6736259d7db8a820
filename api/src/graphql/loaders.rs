//! DataLoaders, one set per request: they carry the caller's policy, so a
//! cached row can never be served to another user.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use entity::{external_ref, transition, unit, user, work_item};
use sea_orm::DatabaseConnection;

use crate::error::ApiError;
use crate::policy::Policy;
use crate::service::directory::UnitDirectory;
use crate::service::metrics::delivery::DeliveryMetrics;
use crate::service::metrics::{FlowMetrics, FlowParts, MetricFilter, Window, siblings};
use crate::service::units::{self, EffectiveWorkflow, effective_workflows};
use crate::service::{Ctx, Reach, users, work_items};

/// A loader's failure, shared by every key of the batch.
#[derive(Clone, Debug)]
pub struct LoadError(pub Arc<ApiError>);

impl From<ApiError> for LoadError {
    fn from(e: ApiError) -> Self {
        Self(Arc::new(e))
    }
}

impl From<sea_orm::DbErr> for LoadError {
    fn from(e: sea_orm::DbErr) -> Self {
        ApiError::from(e).into()
    }
}

impl From<LoadError> for async_graphql::Error {
    fn from(e: LoadError) -> Self {
        use async_graphql::ErrorExtensions;
        if let ApiError::Internal(source) = e.0.as_ref() {
            tracing::error!(error = ?source, "internal error in a loader");
        }
        async_graphql::Error::new(e.0.message())
            .extend_with(|_, ext| ext.set("code", e.0.code().as_str()))
    }
}

pub struct Base {
    pub db: DatabaseConnection,
    pub policy: Arc<Policy>,
    pub units: UnitDirectory,
    pub analytics: crate::service::analytics::Analytics,
}

impl Base {
    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            db: &self.db,
            policy: &self.policy,
            units: &self.units,
            analytics: &self.analytics,
        }
    }
}

/// Units by id. The tree is readable by every authenticated caller; this
/// loader is only reached from objects a root field already authorised.
/// Served from the replica's snapshot of the tree; units it does not know
/// yet are read from the database.
pub struct UnitLoader(pub Arc<Base>);

impl Loader<i64> for UnitLoader {
    /// Shared: the items of a page hand out their unit without copying it.
    type Value = Arc<unit::Model>;
    type Error = LoadError;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, LoadError> {
        let mut out = HashMap::with_capacity(keys.len());
        let mut missing = Vec::new();
        let tree = self.0.units.tree(&self.0.db).await?;
        for k in keys {
            match tree.as_ref().and_then(|t| t.shared_unit(*k)) {
                Some(u) => {
                    out.insert(*k, u);
                }
                None => missing.push(*k),
            }
        }
        if !missing.is_empty() {
            for u in units::find_many_unchecked(&self.0.db, &missing).await? {
                out.insert(u.id, Arc::new(u));
            }
        }
        Ok(out)
    }
}

/// Work items by id: `None` for those the caller may not read (or that do
/// not exist), so that asking again costs no statement.
pub struct ItemLoader(pub Arc<Base>);

impl Loader<i64> for ItemLoader {
    /// Shared: a page's items hand out their parents to every field that
    /// asks, without copying them.
    type Value = Option<Arc<work_item::Model>>;
    type Error = LoadError;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, LoadError> {
        let mut out: HashMap<i64, Self::Value> = keys.iter().map(|k| (*k, None)).collect();
        for item in work_items::find_many(self.0.ctx(), keys).await? {
            out.insert(item.id, Some(Arc::new(item)));
        }
        Ok(out)
    }
}

/// Transition history per item (for items already known readable).
pub struct TransitionLoader(pub Arc<Base>);

impl Loader<i64> for TransitionLoader {
    type Value = Vec<transition::Model>;
    type Error = LoadError;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, LoadError> {
        let mut out: HashMap<i64, Self::Value> = keys.iter().map(|k| (*k, Vec::new())).collect();
        for t in work_items::transitions_of(self.0.ctx(), keys).await? {
            out.entry(t.work_item_id).or_default().push(t);
        }
        Ok(out)
    }
}

/// External references per item (for items already known readable).
pub struct ExternalRefLoader(pub Arc<Base>);

impl Loader<i64> for ExternalRefLoader {
    type Value = Vec<external_ref::Model>;
    type Error = LoadError;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, LoadError> {
        let mut out: HashMap<i64, Self::Value> = keys.iter().map(|k| (*k, Vec::new())).collect();
        for r in work_items::external_refs_of(self.0.ctx(), keys).await? {
            out.entry(r.work_item_id).or_default().push(r);
        }
        Ok(out)
    }
}

/// Users named by readable data (assignees, actors, members, the viewer
/// of a fresh login).
pub struct UserLoader(pub Arc<Base>);

impl Loader<i64> for UserLoader {
    type Value = user::Model;
    type Error = LoadError;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, user::Model>, LoadError> {
        Ok(users::find_many_unchecked(&self.0.db, keys)
            .await?
            .into_iter()
            .map(|u| (u.id, u))
            .collect())
    }
}

/// The effective workflow of each unit, from the replica's snapshot of the
/// tree when it knows the unit.
pub struct WorkflowLoader(pub Arc<Base>);

impl Loader<i64> for WorkflowLoader {
    type Value = Arc<EffectiveWorkflow>;
    type Error = LoadError;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, LoadError> {
        self.0.policy.viewer()?;
        let mut out = HashMap::with_capacity(keys.len());
        let mut missing = Vec::new();
        let tree = self.0.units.tree(&self.0.db).await?;
        for k in keys {
            match tree.as_ref().and_then(|t| t.effective_workflow(*k)) {
                Some(w) => {
                    out.insert(*k, w);
                }
                None => missing.push(*k),
            }
        }
        if !missing.is_empty() {
            for (k, w) in effective_workflows(&self.0.db, &missing).await? {
                out.insert(k, Arc::new(w));
            }
        }
        Ok(out)
    }
}

/// One unit's flow metrics over a window, for `Unit.flowMetrics`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub unit: i64,
    pub window: Window,
    pub filter: MetricFilter,
    pub parts: FlowParts,
}

/// Flow metrics of the units a request drills into: the keys of one batch
/// that share a window, filter and parts are computed together (one grouped
/// statement per part for sibling units). Each key answers on its own:
/// `FORBIDDEN` for one unit leaves the others standing.
pub struct FlowMetricsLoader(pub Arc<Base>);

impl Loader<FlowKey> for FlowMetricsLoader {
    type Value = Result<FlowMetrics, LoadError>;
    type Error = LoadError;

    async fn load(&self, keys: &[FlowKey]) -> Result<HashMap<FlowKey, Self::Value>, LoadError> {
        let mut batches: HashMap<(Window, MetricFilter, FlowParts), Vec<i64>> = HashMap::new();
        for k in keys {
            batches
                .entry((k.window, k.filter.clone(), k.parts))
                .or_default()
                .push(k.unit);
        }
        let mut out = HashMap::new();
        for ((window, filter, parts), units) in batches {
            let results =
                siblings::flow_metrics_of_many(self.0.ctx(), &units, window, &filter, parts)
                    .await?;
            for (unit, result) in results {
                let key = FlowKey {
                    unit,
                    window,
                    filter: filter.clone(),
                    parts,
                };
                out.insert(key, result.map_err(LoadError::from));
            }
        }
        Ok(out)
    }
}

/// One unit's delivery metrics over a window, for `Unit.deliveryMetrics`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DeliveryKey {
    pub unit: i64,
    pub window: Window,
    pub reach: Reach,
}

/// Delivery metrics of the units a request drills into: the keys of one
/// batch that share a window and reach are computed together (the
/// statements of one unit, grouped by unit). Each key answers on its own:
/// `FORBIDDEN` for one unit leaves the others standing.
pub struct DeliveryMetricsLoader(pub Arc<Base>);

impl Loader<DeliveryKey> for DeliveryMetricsLoader {
    type Value = Result<DeliveryMetrics, LoadError>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[DeliveryKey],
    ) -> Result<HashMap<DeliveryKey, Self::Value>, LoadError> {
        let mut batches: HashMap<(Window, Reach), Vec<i64>> = HashMap::new();
        for k in keys {
            batches.entry((k.window, k.reach)).or_default().push(k.unit);
        }
        let mut out = HashMap::new();
        for ((window, reach), units) in batches {
            let results =
                siblings::delivery_metrics_of_many(self.0.ctx(), &units, window, reach).await?;
            for (unit, result) in results {
                let key = DeliveryKey {
                    unit,
                    window,
                    reach,
                };
                out.insert(key, result.map_err(LoadError::from));
            }
        }
        Ok(out)
    }
}
