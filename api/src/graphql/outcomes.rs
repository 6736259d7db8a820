//! GraphQL types of outcomes (DESIGN §1.6): objectives, key results and
//! their measured values.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{key_result, key_result_measurement, objective};

use super::ids::{self, kind};
use super::rc;
use super::types::Unit;
use crate::error::GqlResult;
use crate::service::outcomes;

/// An objective (OKR style) owned by a unit for a period.
#[derive(Clone)]
pub struct Objective(pub objective::Model);

#[Object]
impl Objective {
    pub async fn id(&self) -> ID {
        ids::encode(kind::OBJECTIVE, self.0.id)
    }

    async fn key(&self) -> &str {
        &self.0.key
    }

    async fn title(&self) -> &str {
        &self.0.title
    }

    async fn period_start(&self) -> DateTime<Utc> {
        self.0.period_start
    }

    async fn period_end(&self) -> DateTime<Utc> {
        self.0.period_end
    }

    async fn unit(&self, ctx: &Context<'_>) -> GqlResult<Unit> {
        super::delivery::owner(ctx, self.0.unit_id).await
    }

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
}

/// A key result: a measure moving from a start value towards a target.
#[derive(Clone)]
pub struct KeyResult(pub key_result::Model);

#[Object]
impl KeyResult {
    pub async fn id(&self) -> ID {
        ids::encode(kind::KEY_RESULT, self.0.id)
    }

    /// Named by `key_result.measured` events.
    async fn key(&self) -> &str {
        &self.0.key
    }

    async fn title(&self) -> &str {
        &self.0.title
    }

    async fn start_value(&self) -> f64 {
        self.0.start_value
    }

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

#[Object]
impl Measurement {
    async fn value(&self) -> f64 {
        self.0.value
    }

    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }

    /// The integration that reported it.
    async fn source(&self) -> Option<&str> {
        self.0.source.as_deref()
    }
}

#[derive(InputObject)]
pub struct CreateObjectiveInput {
    pub unit: ID,
    /// Unique; 1 to 64 letters, digits, '.', '_' and '-'.
    pub key: String,
    pub title: String,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
}

#[derive(SimpleObject)]
pub struct CreateObjectivePayload {
    pub objective: Objective,
}

#[derive(InputObject)]
pub struct CreateKeyResultInput {
    pub objective: ID,
    /// Unique; the key `key_result.measured` events name.
    pub key: String,
    pub title: String,
    pub start_value: f64,
    pub target_value: f64,
}

#[derive(SimpleObject)]
pub struct CreateKeyResultPayload {
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
