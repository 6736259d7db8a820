//! GraphQL types of value streams (DESIGN §1.4) and the value stream map
//! (§3.6).

use async_graphql::{
    Context, ID, InputObject, MaybeUndefined, Object, PathSegment, QueryPathSegment, SimpleObject,
};
use chrono::{DateTime, Utc};
use entity::value_stream;

use super::args::patch;
use super::ids::{self, kind};
use super::metrics::{Distribution, Ratio, TimeWindowInput};
use super::rc;
use super::units::Unit;
use crate::domain::{CostPeriod, ValueStreamKind};
use crate::error::GqlResult;
use crate::service::metrics::{Window, value_stream_map as vsm};
use crate::service::value_streams::{
    self, Investment, NewValueStream, StageInput, ValueStreamChanges,
};

/// Whether the caller may read a sensitive field (DESIGN §2, rule 3). When
/// not, the `FORBIDDEN` error is reported on this field alone and the field
/// resolves to an explicit `null`: async-graphql would leave a failed field
/// out of `data` altogether.
fn may_read_sensitive(ctx: &Context<'_>) -> GqlResult<bool> {
    let Err(denied) = rc(ctx)?.policy.require_sensitive() else {
        return Ok(true);
    };
    let mut err = async_graphql::Error::from(denied).into_server_error(ctx.item.pos);
    // The field's path, root first.
    let mut node = ctx.path_node.as_ref();
    while let Some(n) = node {
        err.path.push(match n.segment {
            QueryPathSegment::Index(i) => PathSegment::Index(i),
            QueryPathSegment::Name(name) => PathSegment::Field(name.to_owned()),
        });
        node = n.parent;
    }
    err.path.reverse();
    ctx.add_error(err);
    Ok(false)
}

#[derive(Clone)]
pub struct ValueStream(pub value_stream::Model);

/// A value stream: the flow of value to a customer (`OPERATIONAL`) or of
/// changes into the systems that support such flows (`DEVELOPMENT`), owned
/// by a unit and mapped as ordered stages of workflow states. Readable
/// wherever you may read the owning unit's aggregates.
#[Object]
impl ValueStream {
    /// The value stream's opaque global ID.
    pub async fn id(&self) -> ID {
        ids::encode(kind::VALUE_STREAM, self.0.id)
    }

    /// The stream's unique key: 1 to 64 letters, digits, '.', '_' and '-',
    /// starting with a letter or digit.
    async fn key(&self) -> &str {
        &self.0.key
    }

    /// The stream's display name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// `OPERATIONAL` (value to the end customer) or `DEVELOPMENT` (changes
    /// to the systems that support operational streams).
    async fn kind(&self) -> GqlResult<ValueStreamKind> {
        Ok(ValueStreamKind::parse(&self.0.kind)?)
    }

    /// The owning unit; the map covers the items of its subtree.
    async fn unit(&self, ctx: &Context<'_>) -> GqlResult<Unit> {
        super::delivery::owner(ctx, self.0.unit_id).await
    }

    /// Development streams only: the operational streams this one supports
    /// (those you may read), by key.
    async fn supports(&self, ctx: &Context<'_>) -> GqlResult<Vec<ValueStream>> {
        Ok(value_streams::supports_of(rc(ctx)?.svc(), self.0.id)
            .await?
            .into_iter()
            .map(ValueStream)
            .collect())
    }

    /// Operational streams only: the development streams supporting this
    /// one (those you may read), by key.
    async fn supported_by(&self, ctx: &Context<'_>) -> GqlResult<Vec<ValueStream>> {
        Ok(value_streams::supported_by(rc(ctx)?.svc(), self.0.id)
            .await?
            .into_iter()
            .map(ValueStream)
            .collect())
    }

    /// The stream's stages, in order from first to last.
    async fn stages(&self, ctx: &Context<'_>) -> GqlResult<Vec<ValueStreamStage>> {
        Ok(value_streams::stages_of(rc(ctx)?.svc(), self.0.id)
            .await?
            .into_iter()
            .map(|s| ValueStreamStage {
                name: s.model.name,
                position: s.model.position,
                states: s.states,
                value_adding: s.model.value_adding,
            })
            .collect())
    }

    /// Funding allocated for `budgetPeriod`, in the organisation's currency;
    /// null when unset. Executives, portfolio managers and admins only: for
    /// others it is null with `FORBIDDEN` on this field.
    async fn budget(&self, ctx: &Context<'_>) -> GqlResult<Option<f64>> {
        Ok(if may_read_sensitive(ctx)? {
            self.0.budget
        } else {
            None
        })
    }

    /// The period the budget is for, e.g. `FY2027` or `2026-Q4`; null when
    /// unset. Sensitive, as `budget`.
    async fn budget_period(&self, ctx: &Context<'_>) -> GqlResult<Option<&str>> {
        Ok(if may_read_sensitive(ctx)? {
            self.0.budget_period.as_deref()
        } else {
            None
        })
    }

    /// Run-rate cost per `costPeriod`, in the organisation's currency; null
    /// when unset. Sensitive, as `budget`.
    async fn cost_per_period(&self, ctx: &Context<'_>) -> GqlResult<Option<f64>> {
        Ok(if may_read_sensitive(ctx)? {
            self.0.cost_per_period
        } else {
            None
        })
    }

    /// The period `costPerPeriod` is for; null when unset. Sensitive, as
    /// `budget`.
    async fn cost_period(&self, ctx: &Context<'_>) -> GqlResult<Option<CostPeriod>> {
        if !may_read_sensitive(ctx)? {
            return Ok(None);
        }
        Ok(self
            .0
            .cost_period
            .as_deref()
            .map(CostPeriod::parse)
            .transpose()?)
    }

    /// When the stream was created (UTC).
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When the stream was last changed (UTC).
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// One stage of a value stream.
#[derive(SimpleObject)]
pub struct ValueStreamStage {
    /// The stage's name, unique within the stream (ignoring case).
    pub name: String,
    /// The stage's place in the stream: 0 for the first stage.
    pub position: i32,
    /// Workflow states of the owning unit that the stage covers.
    pub states: Vec<String>,
    /// Whether the stage adds value: its `ACTIVE` states' time is process
    /// time; all other time in it is wait time.
    pub value_adding: bool,
}

/// One stage of a value stream, as `createValueStream` and
/// `updateValueStream` take it.
#[derive(InputObject)]
pub struct ValueStreamStageInput {
    /// The stage's name: 1 to 200 characters, unique within the stream
    /// (ignoring case).
    pub name: String,
    /// At least one state of the owning unit's workflow; a state belongs to
    /// at most one stage.
    pub states: Vec<String>,
    /// Whether the stage adds value: time in its `ACTIVE` states counts as
    /// process time, all other time in it as wait time.
    pub value_adding: bool,
}

impl From<ValueStreamStageInput> for StageInput {
    fn from(s: ValueStreamStageInput) -> Self {
        Self {
            name: s.name,
            states: s.states,
            value_adding: s.value_adding,
        }
    }
}

/// Input of `createValueStream`. Admins may create a value stream for any
/// unit, a portfolio's managers for the portfolio itself.
#[derive(InputObject)]
pub struct CreateValueStreamInput {
    /// The owning unit, usually a portfolio.
    pub unit: ID,
    /// The stream's unique key: 1 to 64 letters, digits, '.', '_' and '-',
    /// starting with a letter or digit. It cannot change later.
    pub key: String,
    /// The display name, 1 to 200 characters.
    pub name: String,
    /// `OPERATIONAL` or `DEVELOPMENT`. It cannot change later.
    pub kind: ValueStreamKind,
    /// `DEVELOPMENT` streams only: the operational streams it supports.
    pub supports: Option<Vec<ID>>,
    /// The stream's stages, in order; at least one.
    pub stages: Vec<ValueStreamStageInput>,
    /// Funding allocated for `budgetPeriod`, in the organisation's
    /// currency; at least 0.
    pub budget: Option<f64>,
    /// The period the budget is for, 1 to 32 characters, e.g. `FY2027`.
    pub budget_period: Option<String>,
    /// Run-rate cost per `costPeriod`, in the organisation's currency; at
    /// least 0; requires `costPeriod`.
    pub cost_per_period: Option<f64>,
    /// The period `costPerPeriod` is for; requires `costPerPeriod`.
    pub cost_period: Option<CostPeriod>,
}

/// The result of `createValueStream`.
#[derive(SimpleObject)]
pub struct CreateValueStreamPayload {
    /// The new value stream.
    pub value_stream: ValueStream,
}

/// Input of `updateValueStream`: omitted fields are left alone; `null`
/// clears an investment field. Key and kind do not change.
#[derive(InputObject)]
pub struct UpdateValueStreamInput {
    /// The value stream to change.
    pub value_stream: ID,
    /// The new display name, 1 to 200 characters; null leaves it alone.
    pub name: Option<String>,
    /// Replaces the supported streams (`[]` for none); `DEVELOPMENT` streams
    /// only. Null leaves them alone.
    pub supports: Option<Vec<ID>>,
    /// Replaces the stages, in the order given; null leaves them alone.
    pub stages: Option<Vec<ValueStreamStageInput>>,
    /// The new budget, at least 0; `null` clears it.
    pub budget: MaybeUndefined<f64>,
    /// The new budget period, 1 to 32 characters; `null` clears it.
    pub budget_period: MaybeUndefined<String>,
    /// The new run-rate cost, at least 0; `null` clears it. After the
    /// change, `costPerPeriod` and `costPeriod` must be both set or both empty.
    pub cost_per_period: MaybeUndefined<f64>,
    /// The new cost period; `null` clears it. After the change, it must be
    /// set exactly when `costPerPeriod` is.
    pub cost_period: MaybeUndefined<CostPeriod>,
}

/// The result of `updateValueStream`.
#[derive(SimpleObject)]
pub struct UpdateValueStreamPayload {
    /// The value stream after the change.
    pub value_stream: ValueStream,
}

fn stream_ids(list: Option<Vec<ID>>) -> GqlResult<Option<Vec<i64>>> {
    list.map(|l| {
        l.iter()
            .map(|id| Ok(ids::expect(id, kind::VALUE_STREAM, "supports")?))
            .collect()
    })
    .transpose()
}

pub(super) async fn create_value_stream(
    ctx: &Context<'_>,
    input: CreateValueStreamInput,
) -> GqlResult<CreateValueStreamPayload> {
    let r = rc(ctx)?;
    r.policy.viewer()?;
    let unit_id = ids::expect(&input.unit, kind::UNIT, "unit")?;
    let stream = value_streams::create(
        r.svc(),
        NewValueStream {
            unit_id,
            key: input.key,
            name: input.name,
            kind: input.kind,
            supports: stream_ids(input.supports)?.unwrap_or_default(),
            stages: input.stages.into_iter().map(Into::into).collect(),
            investment: Investment {
                budget: input.budget,
                budget_period: input.budget_period,
                cost_per_period: input.cost_per_period,
                cost_period: input.cost_period,
            },
        },
    )
    .await?;
    Ok(CreateValueStreamPayload {
        value_stream: ValueStream(stream),
    })
}

pub(super) async fn update_value_stream(
    ctx: &Context<'_>,
    input: UpdateValueStreamInput,
) -> GqlResult<UpdateValueStreamPayload> {
    let r = rc(ctx)?;
    r.policy.viewer()?;
    let id = ids::expect(&input.value_stream, kind::VALUE_STREAM, "valueStream")?;
    let stream = value_streams::update(
        r.svc(),
        id,
        ValueStreamChanges {
            name: input.name,
            supports: stream_ids(input.supports)?,
            stages: input
                .stages
                .map(|s| s.into_iter().map(Into::into).collect()),
            budget: patch(input.budget),
            budget_period: patch(input.budget_period),
            cost_per_period: patch(input.cost_per_period),
            cost_period: patch(input.cost_period),
        },
    )
    .await?;
    Ok(UpdateValueStreamPayload {
        value_stream: ValueStream(stream),
    })
}

/// One stage of a value stream map. Durations in seconds, per item that
/// passed through the stage.
#[derive(SimpleObject)]
pub struct ValueStreamStageMetrics {
    /// The stage's name.
    pub name: String,
    /// The stage's place in the stream: 0 for the first stage.
    pub position: i32,
    /// Whether the stage adds value: its `ACTIVE` time is process time.
    pub value_adding: bool,
    /// Items that were in one of the stage's states before completing.
    pub items: i32,
    /// Time in the stage's `ACTIVE` states when the stage is value-adding.
    pub process_time: Distribution,
    /// All other time in the stage's states, every visit summed.
    pub wait_time: Distribution,
    /// %C&A as a share: items never sent back to this stage or an earlier
    /// one after going past it (a later stage or `DONE`) ÷ items that passed
    /// through.
    pub complete_and_accurate: Ratio,
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

pub struct ValueStreamMap {
    stream: value_stream::Model,
    map: vsm::ValueStreamMap,
}

/// The value stream map of a stream over a window: the items of the owning
/// unit's subtree completed in the window that entered at least one of the
/// stream's states, measured from creation to completion. Durations are in
/// seconds; readable wherever you may read the owning unit's aggregates.
#[Object]
impl ValueStreamMap {
    /// The value stream mapped.
    async fn value_stream(&self) -> ValueStream {
        ValueStream(self.stream.clone())
    }

    /// Start of the window, inclusive (UTC).
    async fn from(&self) -> DateTime<Utc> {
        self.map.window.from
    }

    /// End of the window, exclusive (UTC).
    async fn to(&self) -> DateTime<Utc> {
        self.map.window.to
    }

    /// Items completed in the window that flowed through the stream
    /// (canceled items never complete).
    async fn items(&self) -> i32 {
        count(self.map.items)
    }

    /// Each stage's metrics, in stream order.
    async fn stages(&self) -> Vec<ValueStreamStageMetrics> {
        self.map
            .stages
            .iter()
            .map(|s| ValueStreamStageMetrics {
                name: s.name.clone(),
                position: s.position,
                value_adding: s.value_adding,
                items: count(s.items),
                process_time: s.process_time.into(),
                wait_time: s.wait_time.into(),
                complete_and_accurate: s.complete_and_accurate.into(),
            })
            .collect()
    }

    /// Total lead time per item, in seconds: completion − creation.
    async fn lead_time(&self) -> Distribution {
        self.map.lead_time.into()
    }

    /// Total process time per item, in seconds, over every stage.
    async fn process_time(&self) -> Distribution {
        self.map.process_time.into()
    }

    /// Total wait time per item, in seconds, over every stage (time in no
    /// stage's states counts only in the lead time).
    async fn wait_time(&self) -> Distribution {
        self.map.wait_time.into()
    }

    /// Σ process time ÷ Σ lead time over the items, both in seconds; its
    /// `value` is null when the lead times sum to 0, as with no items.
    async fn activity_ratio(&self) -> Ratio {
        self.map.activity_ratio.into()
    }

    /// Rolled %C&A: the product of the stages' %C&A (stages no item passed
    /// through are left out); null when no item passed through any stage.
    async fn rolled_complete_and_accurate(&self) -> Option<f64> {
        self.map.rolled_complete_and_accurate
    }
}

pub(super) async fn value_stream_map(
    ctx: &Context<'_>,
    value_stream: ID,
    window: TimeWindowInput,
) -> GqlResult<ValueStreamMap> {
    let r = rc(ctx)?;
    r.policy.viewer()?;
    let id = ids::expect(&value_stream, kind::VALUE_STREAM, "valueStream")?;
    let window = Window::new(
        window.from,
        window.to,
        r.services.settings.max_metric_window_days,
    )?;
    let (stream, map) = value_streams::value_stream_map(r.svc(), id, window).await?;
    Ok(ValueStreamMap { stream, map })
}

#[derive(Default)]
pub struct ValueStreamsQuery;

#[Object]
impl ValueStreamsQuery {
    /// A value stream by key; `null` when it does not exist or you may not
    /// read it (you may where you may read its unit's aggregates).
    async fn value_stream(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The value stream's unique key.")] key: String,
    ) -> GqlResult<Option<ValueStream>> {
        Ok(value_streams::find_by_key(rc(ctx)?.svc(), &key)
            .await?
            .map(ValueStream))
    }

    /// The value stream map (DESIGN §3.6) of a stream over `[from, to)`:
    /// per stage, items, process and wait time and %C&A, and the totals,
    /// over the items of the owning unit's subtree completed in the window.
    /// `NOT_FOUND` for a stream you may not read.
    #[graphql(complexity = "super::metrics::window_cost(&window) + child_complexity")]
    async fn value_stream_map(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the value stream (its `id` field).")] value_stream: ID,
        #[graphql(
            desc = "The window `[from, to)` in UTC. `to` must be after `from` and the window at most 1,827 days long (the default limit), else `BAD_USER_INPUT`."
        )]
        window: super::metrics::TimeWindowInput,
    ) -> GqlResult<ValueStreamMap> {
        super::value_streams::value_stream_map(ctx, value_stream, window).await
    }
}

#[derive(Default)]
pub struct ValueStreamsMutation;

#[Object]
impl ValueStreamsMutation {
    /// Creates a value stream with its ordered stages, all or nothing;
    /// `CONFLICT` for a key in use. Admins, and a portfolio's managers for
    /// the portfolio's own value streams (`FORBIDDEN` otherwise).
    async fn create_value_stream(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new value stream: its unit, key, name, kind and stages.")]
        input: super::value_streams::CreateValueStreamInput,
    ) -> GqlResult<super::value_streams::CreateValueStreamPayload> {
        super::value_streams::create_value_stream(ctx, input).await
    }

    /// Changes a value stream's name, supported streams, stages or investment,
    /// all or nothing. Who may write the stream: see `createValueStream`.
    async fn update_value_stream(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The stream to change and the fields to change; the others stay as they are."
        )]
        input: super::value_streams::UpdateValueStreamInput,
    ) -> GqlResult<super::value_streams::UpdateValueStreamPayload> {
        super::value_streams::update_value_stream(ctx, input).await
    }
}
