//! GraphQL types of outcomes (DESIGN §1.6): objectives, key results and
//! their measured values.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{key_result, key_result_measurement, objective};

use super::forecasts::{DeliveryProgress, ForecastInput, WhenForecast};
use super::ids::{self, kind};
use super::rc;
use super::units::Unit;
use super::work_items::WorkItem;
use crate::error::GqlResult;
use crate::service::outcomes;

/// An objective (OKR style) owned by a unit for a period.
#[derive(Clone)]
pub struct Objective(pub objective::Model);

/// An objective (OKR style) owned by a unit for a period, measured by its
/// key results. You may read it wherever you may read the owning unit's
/// aggregates.
#[Object]
impl Objective {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode(kind::OBJECTIVE, self.0.id)
    }

    /// The objective's unique, human-readable key.
    async fn key(&self) -> &str {
        &self.0.key
    }

    /// The objective's title.
    async fn title(&self) -> &str {
        &self.0.title
    }

    /// Start of the period the objective covers (UTC).
    async fn period_start(&self) -> DateTime<Utc> {
        self.0.period_start
    }

    /// End of the period the objective covers (UTC).
    async fn period_end(&self) -> DateTime<Utc> {
        self.0.period_end
    }

    /// The unit that owns the objective.
    async fn unit(&self, ctx: &Context<'_>) -> GqlResult<Unit> {
        super::delivery::owner(ctx, self.0.unit_id).await
    }

    /// Its key results, ordered by key.
    async fn key_results(&self, ctx: &Context<'_>) -> GqlResult<Vec<KeyResult>> {
        Ok(outcomes::key_results_of(rc(ctx)?.svc(), self.0.id)
            .await?
            .into_iter()
            .map(KeyResult)
            .collect())
    }

    /// The mean progress of its key results, 0 to 1; `null` without any.
    async fn progress(&self, ctx: &Context<'_>) -> GqlResult<Option<f64>> {
        let svc = rc(ctx)?.svc();
        let krs = outcomes::key_results_of(svc, self.0.id).await?;
        if krs.is_empty() {
            return Ok(None);
        }
        let mut sum = 0.0;
        for kr in &krs {
            let current = outcomes::current_value(svc, kr).await?;
            sum += outcomes::progress(kr, current);
        }
        Ok(Some(sum / krs.len() as f64))
    }

    /// The epics and features linked to the objective that you may read,
    /// by key.
    async fn linked_work_items(&self, ctx: &Context<'_>) -> GqlResult<Vec<WorkItem>> {
        Ok(outcomes::linked_items(rc(ctx)?.svc(), self.0.id)
            .await?
            .into_iter()
            .map(WorkItem::new)
            .collect())
    }

    /// Delivery progress of the linked work (DESIGN §3.7): the leaves below
    /// every linked item, each counted once, done ÷ not canceled, at
    /// `asOf` (default now). Counts every leaf, readable or not.
    async fn delivery(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The instant to count at; default now.")] as_of: Option<DateTime<Utc>>,
    ) -> GqlResult<DeliveryProgress> {
        Ok(outcomes::delivery_of(rc(ctx)?.svc(), &self.0, as_of)
            .await?
            .into())
    }

    /// The flow of the linked work (DESIGN §3.7): throughput, lead and cycle
    /// time, WIP, aging and the rest of §3.1 over the leaves below every
    /// linked item, each counted once, wherever in the organisation they
    /// live. `oldestWip` lists only items you may read.
    #[graphql(complexity = "super::metrics::window_cost(&window) + child_complexity")]
    async fn flow_metrics(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The window `[from, to)` in UTC. `to` must be after `from` and the window at most 1,827 days long (the default limit), else `BAD_USER_INPUT`."
        )]
        window: super::metrics::TimeWindowInput,
    ) -> GqlResult<super::metrics::FlowMetrics> {
        let (window, _, parts) = super::metrics::flow_request(ctx, window, None)?;
        Ok(super::metrics::FlowMetrics(
            outcomes::flow_of(rc(ctx)?.svc(), &self.0, window, parts).await?,
        ))
    }

    /// "When will the linked work be done?" (DESIGN §3.8), with the chance
    /// of finishing by the period's end unless `input.targetDate` names
    /// another date.
    #[graphql(complexity = "super::forecasts::forecast_cost(input.as_ref()) + child_complexity")]
    async fn forecast(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Sample, trials, seed and target date; defaults for all when omitted.")]
        input: Option<ForecastInput>,
    ) -> GqlResult<WhenForecast> {
        let r = rc(ctx)?;
        let max = r.services.settings.max_metric_window_days;
        let input = input.unwrap_or_default().into();
        Ok(outcomes::forecast_of(r.svc(), &self.0, input, max)
            .await?
            .into())
    }
}

/// A key result: a measure moving from a start value towards a target.
#[derive(Clone)]
pub struct KeyResult(pub key_result::Model);

/// A key result: a measure moving from a start value towards a target. You
/// may read it wherever you may read its objective.
#[Object]
impl KeyResult {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode(kind::KEY_RESULT, self.0.id)
    }

    /// Its unique key, the one `key_result.measured` events name.
    async fn key(&self) -> &str {
        &self.0.key
    }

    /// The key result's title.
    async fn title(&self) -> &str {
        &self.0.title
    }

    /// The value the measure starts from: progress 0.
    async fn start_value(&self) -> f64 {
        self.0.start_value
    }

    /// The value the measure aims for: progress 1. It may lie below the
    /// start value, for a measure meant to fall.
    async fn target_value(&self) -> f64 {
        self.0.target_value
    }

    /// The latest measured value (by `at`), or the start value before any.
    async fn current_value(&self, ctx: &Context<'_>) -> GqlResult<f64> {
        Ok(outcomes::current_value(rc(ctx)?.svc(), &self.0).await?)
    }

    /// (current − start) ÷ (target − start), clamped to 0 to 1.
    async fn progress(&self, ctx: &Context<'_>) -> GqlResult<f64> {
        let current = outcomes::current_value(rc(ctx)?.svc(), &self.0).await?;
        Ok(outcomes::progress(&self.0, current))
    }

    /// Every measured value, oldest first.
    async fn measurements(&self, ctx: &Context<'_>) -> GqlResult<Vec<Measurement>> {
        Ok(outcomes::measurements_of(rc(ctx)?.svc(), self.0.id)
            .await?
            .into_iter()
            .map(Measurement)
            .collect())
    }
}

/// One measured value of a key result.
pub struct Measurement(key_result_measurement::Model);

/// One measured value of a key result.
#[Object]
impl Measurement {
    /// The measured value, in the key result's own unit.
    async fn value(&self) -> f64 {
        self.0.value
    }

    /// When the value was measured (UTC).
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }

    /// The integration that reported it.
    async fn source(&self) -> Option<&str> {
        self.0.source.as_deref()
    }
}

/// Input of `createObjective`: a new objective of a unit for a period.
#[derive(InputObject)]
pub struct CreateObjectiveInput {
    /// The unit that will own the objective; you must be allowed to write
    /// its objectives, else `FORBIDDEN`.
    pub unit: ID,
    /// Unique; 1 to 64 letters, digits, '.', '_' and '-', starting with a
    /// letter or digit.
    pub key: String,
    /// 1 to 500 characters; surrounding whitespace is trimmed.
    pub title: String,
    /// Start of the objective's period (UTC).
    pub period_start: DateTime<Utc>,
    /// End of the objective's period (UTC); must be after `periodStart`.
    pub period_end: DateTime<Utc>,
}

/// Result of `createObjective`.
#[derive(SimpleObject)]
pub struct CreateObjectivePayload {
    /// The objective created.
    pub objective: Objective,
}

/// Input of `createKeyResult`: a new key result of an objective.
#[derive(InputObject)]
pub struct CreateKeyResultInput {
    /// The objective the key result measures; you must be allowed to write
    /// its objectives, else `FORBIDDEN`.
    pub objective: ID,
    /// Unique; the key `key_result.measured` events name. 1 to 64 letters,
    /// digits, '.', '_' and '-', starting with a letter or digit.
    pub key: String,
    /// 1 to 500 characters; surrounding whitespace is trimmed.
    pub title: String,
    /// The measure's value at the start, a finite number: progress 0.
    pub start_value: f64,
    /// The value to reach, a finite number different from `startValue`:
    /// progress 1.
    pub target_value: f64,
}

/// Result of `createKeyResult`.
#[derive(SimpleObject)]
pub struct CreateKeyResultPayload {
    /// The key result created.
    pub key_result: KeyResult,
}

pub(super) async fn create_objective(
    ctx: &Context<'_>,
    input: CreateObjectiveInput,
) -> GqlResult<CreateObjectivePayload> {
    let r = rc(ctx)?;
    r.policy.viewer()?;
    let unit_id = ids::expect(&input.unit, kind::UNIT, "unit")?;
    let o = outcomes::create_objective(
        r.svc(),
        outcomes::NewObjective {
            unit_id,
            key: input.key,
            title: input.title,
            period_start: input.period_start,
            period_end: input.period_end,
        },
    )
    .await?;
    Ok(CreateObjectivePayload {
        objective: Objective(o),
    })
}

pub(super) async fn create_key_result(
    ctx: &Context<'_>,
    input: CreateKeyResultInput,
) -> GqlResult<CreateKeyResultPayload> {
    let r = rc(ctx)?;
    r.policy.viewer()?;
    let objective_id = ids::expect(&input.objective, kind::OBJECTIVE, "objective")?;
    let kr = outcomes::create_key_result(
        r.svc(),
        outcomes::NewKeyResult {
            objective_id,
            key: input.key,
            title: input.title,
            start_value: input.start_value,
            target_value: input.target_value,
        },
    )
    .await?;
    Ok(CreateKeyResultPayload {
        key_result: KeyResult(kr),
    })
}

/// Input of `linkWorkItems` and `unlinkWorkItems`.
#[derive(InputObject)]
pub struct LinkWorkItemsInput {
    /// The objective; you must be allowed to write its objectives, else
    /// `FORBIDDEN` (`NOT_FOUND` where you may not read it).
    pub objective: ID,
    /// 1 to 100 epics or features you may read; another type is
    /// `BAD_USER_INPUT`, an item you may not read `NOT_FOUND`.
    pub work_items: Vec<ID>,
}

/// Result of `linkWorkItems` and `unlinkWorkItems`.
#[derive(SimpleObject)]
pub struct LinkWorkItemsPayload {
    /// The objective, with its links as they now are.
    pub objective: Objective,
}

pub(super) async fn link_work_items(
    ctx: &Context<'_>,
    input: LinkWorkItemsInput,
    link: bool,
) -> GqlResult<LinkWorkItemsPayload> {
    let r = rc(ctx)?;
    r.policy.viewer()?;
    let objective_id = ids::expect(&input.objective, kind::OBJECTIVE, "objective")?;
    let items = input
        .work_items
        .iter()
        .map(|id| ids::expect(id, kind::WORK_ITEM, "workItems"))
        .collect::<Result<Vec<_>, _>>()?;
    let o = outcomes::link_work_items(r.svc(), objective_id, &items, link).await?;
    Ok(LinkWorkItemsPayload {
        objective: Objective(o),
    })
}

#[derive(Default)]
pub struct OutcomesMutation;

#[Object]
impl OutcomesMutation {
    /// Creates an objective owned by a unit; `CONFLICT` for a key in use.
    /// Admins, executives in scope, and a portfolio's managers for the
    /// portfolio's own objectives may (`FORBIDDEN` otherwise).
    async fn create_objective(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The objective's unit, key, title and period.")]
        input: super::outcomes::CreateObjectiveInput,
    ) -> GqlResult<super::outcomes::CreateObjectivePayload> {
        super::outcomes::create_objective(ctx, input).await
    }

    /// Adds a key result to an objective; `CONFLICT` for a key in use. Who may
    /// write the objective: see `createObjective`.
    async fn create_key_result(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The objective, and the key result's key, title, start and target values."
        )]
        input: super::outcomes::CreateKeyResultInput,
    ) -> GqlResult<super::outcomes::CreateKeyResultPayload> {
        super::outcomes::create_key_result(ctx, input).await
    }

    /// Links epics and features to an objective they serve (DESIGN §3.7);
    /// linking an item already linked changes nothing. Who may: whoever may
    /// write the objective (see `createObjective`) and read the items.
    async fn link_work_items(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The objective and the epics or features to link.")]
        input: super::outcomes::LinkWorkItemsInput,
    ) -> GqlResult<super::outcomes::LinkWorkItemsPayload> {
        super::outcomes::link_work_items(ctx, input, true).await
    }

    /// Removes links between an objective and epics or features; removing a
    /// link that does not exist changes nothing. Who may: as
    /// `linkWorkItems`.
    async fn unlink_work_items(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The objective and the epics or features to unlink.")]
        input: super::outcomes::LinkWorkItemsInput,
    ) -> GqlResult<super::outcomes::LinkWorkItemsPayload> {
        super::outcomes::link_work_items(ctx, input, false).await
    }
}
