//! The GraphQL schema: thin resolvers over the service layer.

#[macro_use]
mod connection;
mod api_keys;
mod args;
mod boards;
pub mod budget;
mod delivery;
mod flat;
mod forecasts;
pub mod guard;
pub mod ids;
mod ingest;
mod integrations;
mod loaders;
mod metrics;
mod node;
mod outcomes;
mod subscription;
mod units;
mod users;
mod value_streams;
mod work_items;
mod workflows;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, HashMapCache};
use async_graphql::{Context, MergedObject, Schema};
use sea_orm::DatabaseConnection;

pub use ids::{decode as decode_id, encode as encode_id};
use loaders::{
    Base, DeliveryMetricsLoader, ExternalRefLoader, FlowMetricsLoader, ItemLoader,
    TransitionLoader, UnitLoader, UserLoader, WorkflowLoader,
};
pub use subscription::Subscription;

use crate::auth::rate_limit::LoginLimiter;
use crate::auth::{AuthCache, TokenKeys};
use crate::config::Settings;
use crate::error::{ApiError, GqlResult};
use crate::events::EventBus;
use crate::policy::Policy;
use crate::service::Ctx;
use crate::service::directory::UnitDirectory;
use crate::service::live::LiveHub;

/// The read entry points of the API. Every field needs a signed-in caller
/// (`UNAUTHENTICATED` otherwise) and shows only what your memberships let you read.
#[derive(MergedObject, Default)]
pub struct Query(
    users::UsersQuery,
    node::NodeQuery,
    boards::BoardsQuery,
    metrics::MetricsQuery,
    value_streams::ValueStreamsQuery,
    api_keys::ApiKeysQuery,
    integrations::IntegrationsQuery,
    units::UnitsQuery,
    work_items::WorkItemsQuery,
);

/// The write entry points; most take one `input` and return a payload.
/// Every mutation but `login` needs a signed-in caller (`ingestEvents` also
/// accepts an API key), else `UNAUTHENTICATED`.
#[derive(MergedObject, Default)]
pub struct Mutation(
    api_keys::ApiKeysMutation,
    integrations::IntegrationsMutation,
    ingest::IngestMutation,
    users::UsersMutation,
    units::UnitsMutation,
    outcomes::OutcomesMutation,
    value_streams::ValueStreamsMutation,
    work_items::WorkItemsMutation,
    boards::BoardsMutation,
);

pub type GembaSchema = Schema<Query, Mutation, Subscription>;

/// Process-wide services the resolvers need beyond the database.
#[derive(Debug)]
pub struct Services {
    pub keys: TokenKeys,
    pub limiter: LoginLimiter,
    pub settings: Settings,
    pub bus: EventBus,
    /// Live updates for subscriptions, fed by `bus`.
    pub live: LiveHub,
    /// Each caller's cost budget.
    pub budgets: budget::Budgets,
    /// Who the callers are, kept current by the access-change events.
    pub auth_cache: AuthCache,
    /// The tree and its workflows, kept current by the unit change events.
    pub units: UnitDirectory,
    /// The flow facts held in memory for metrics.
    pub analytics: crate::service::analytics::Analytics,
    /// Lists of work items resolved in one pass ([`flat`]).
    pub flat_lists: std::sync::atomic::AtomicU64,
}

impl Services {
    /// The services of one replica: the login limiter and the cost budgets
    /// are sized by `settings`.
    pub fn new(
        keys: TokenKeys,
        settings: Settings,
        bus: EventBus,
        live: LiveHub,
        analytics: crate::service::analytics::Analytics,
    ) -> Self {
        Self {
            keys,
            limiter: LoginLimiter::new(
                settings.login_failures_per_email,
                settings.login_failures_per_address,
                settings.login_window,
            ),
            budgets: budget::Budgets::new(
                settings.budget_points,
                settings.budget_refill_per_second,
            ),
            units: UnitDirectory::attached(settings.tree_cache_ttl, &bus),
            auth_cache: AuthCache::attached(
                settings.auth_cache_ttl,
                settings.auth_cache_capacity,
                &bus,
            ),
            settings,
            bus,
            live,
            analytics,
            flat_lists: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

/// Everything one request's resolvers share: the caller's policy and a fresh
/// set of DataLoaders.
pub struct RequestCtx {
    pub db: DatabaseConnection,
    pub policy: Arc<Policy>,
    pub services: Arc<Services>,
    pub client_addr: Option<IpAddr>,
    pub units: DataLoader<UnitLoader, HashMapCache>,
    pub items: DataLoader<ItemLoader, HashMapCache>,
    pub transitions: DataLoader<TransitionLoader, HashMapCache>,
    pub external_refs: DataLoader<ExternalRefLoader, HashMapCache>,
    pub users: DataLoader<UserLoader, HashMapCache>,
    pub workflows: DataLoader<WorkflowLoader, HashMapCache>,
    pub flow_metrics: DataLoader<FlowMetricsLoader, HashMapCache>,
    pub delivery_metrics: DataLoader<DeliveryMetricsLoader, HashMapCache>,
    /// Where the cost budget remembers this operation's cost, when the
    /// operation can be run again without the extension (`budget.rs`).
    pub cost_key: Option<u64>,
}

impl RequestCtx {
    pub fn new(
        db: DatabaseConnection,
        policy: Policy,
        services: Arc<Services>,
        client_addr: Option<IpAddr>,
    ) -> Self {
        let policy = Arc::new(policy);
        let base = Arc::new(Base {
            db: db.clone(),
            policy: policy.clone(),
            units: services.units.clone(),
            analytics: services.analytics.clone(),
        });
        Self {
            units: DataLoader::with_cache(
                UnitLoader(base.clone()),
                tokio::spawn,
                HashMapCache::default(),
            ),
            items: DataLoader::with_cache(
                ItemLoader(base.clone()),
                tokio::spawn,
                HashMapCache::default(),
            ),
            transitions: DataLoader::with_cache(
                TransitionLoader(base.clone()),
                tokio::spawn,
                HashMapCache::default(),
            ),
            external_refs: DataLoader::with_cache(
                ExternalRefLoader(base.clone()),
                tokio::spawn,
                HashMapCache::default(),
            ),
            users: DataLoader::with_cache(
                UserLoader(base.clone()),
                tokio::spawn,
                HashMapCache::default(),
            ),
            workflows: DataLoader::with_cache(
                WorkflowLoader(base.clone()),
                tokio::spawn,
                HashMapCache::default(),
            ),
            flow_metrics: DataLoader::with_cache(
                FlowMetricsLoader(base.clone()),
                tokio::spawn,
                HashMapCache::default(),
            ),
            delivery_metrics: DataLoader::with_cache(
                DeliveryMetricsLoader(base),
                tokio::spawn,
                HashMapCache::default(),
            ),
            db,
            policy,
            services,
            client_addr,
            cost_key: None,
        }
    }

    /// Forgets what the loaders have cached, so that a long-lived request
    /// (a subscription) reads fresh rows for each event.
    pub fn clear_caches(&self) {
        self.units.clear::<i64>();
        self.items.clear::<i64>();
        self.transitions.clear::<i64>();
        self.external_refs.clear::<i64>();
        self.users.clear::<i64>();
        self.workflows.clear::<i64>();
        self.flow_metrics.clear::<loaders::FlowKey>();
        self.delivery_metrics.clear::<loaders::DeliveryKey>();
    }

    pub fn svc(&self) -> Ctx<'_> {
        Ctx {
            db: &self.db,
            policy: &self.policy,
            units: &self.services.units,
            analytics: &self.services.analytics,
        }
    }
}

/// Moves a field's work to the heap. async-graphql boxes the future of
/// every field it resolves, and that future is as large as the largest of
/// its type's fields: one field that queries (a page of children, a
/// forecast) would make each `key` or `title` of its type allocate and copy
/// kilobytes. The bodies of such fields go through this, leaving a pointer
/// in their type's future.
pub(crate) fn on_heap<'a, T>(
    work: impl Future<Output = GqlResult<T>> + Send + 'a,
) -> Pin<Box<impl Future<Output = GqlResult<T>> + Send + 'a>> {
    Box::pin(work)
}

pub(crate) fn rc<'a>(ctx: &Context<'a>) -> GqlResult<&'a RequestCtx> {
    ctx.data::<RequestCtx>()
        .map_err(|_| ApiError::internal(anyhow::anyhow!("request context missing")).into())
}

/// The document limits of `settings`.
pub fn document_limits(settings: &Settings) -> guard::DocumentLimits {
    guard::DocumentLimits {
        max_nesting: settings.max_nesting,
        max_fields: settings.max_query_fields,
        max_aliases: settings.max_aliases as u64,
    }
}

/// Builds the schema with the configured depth and complexity limits and
/// cost budgets. Documents reach it through [`guard::Admission`], which
/// applies the document limits and resolves persisted queries.
pub fn build_schema(settings: &Settings) -> GembaSchema {
    // Every extension puts each resolved field through its chain; with
    // budgets off there is nothing to charge, so none is registered. Pages
    // resolved in one pass ([`flat`]) skip that chain: an extension that
    // hooks `resolve` would have to turn them off.
    if settings.budget_points > 0 {
        schema_builder(settings)
            .extension(budget::CostBudget)
            .finish()
    } else {
        schema_builder(settings).finish()
    }
}

/// The schema without the cost budget's extension, for operations whose
/// cost is known and charged before they run (`budget.rs`).
pub fn build_unmetered_schema(settings: &Settings) -> GembaSchema {
    schema_builder(settings).finish()
}

fn schema_builder(
    settings: &Settings,
) -> async_graphql::SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(Query::default(), Mutation::default(), Subscription)
        .limit_depth(settings.max_query_depth)
        .limit_complexity(settings.max_query_complexity)
        .limit_recursive_depth(settings.max_nesting)
        .limit_directives(16)
}

/// The SDL of the schema, as checked in at `schema.graphql`.
pub fn sdl() -> String {
    build_schema(&Settings::default()).sdl()
}
