//! Workflows: a unit's ordered states, each mapped to a flow-state
//! category. They have no root field: a unit's `workflow` and `node` reach
//! them.

use std::sync::Arc;

use async_graphql::{Context, ID, Object};
use entity::workflow_state;

use super::ids::{self, kind};
use super::rc;
use super::units::Unit;
use crate::domain::StateCategory;
use crate::error::{ApiError, GqlResult};
use crate::service::units::EffectiveWorkflow;

/// An ordered list of states, each mapped to a flow-state category.
#[derive(Clone)]
pub struct Workflow(pub Arc<EffectiveWorkflow>);

/// An ordered list of states, each mapped to a flow-state category. A unit
/// without a workflow of its own uses its nearest ancestor's.
#[Object]
impl Workflow {
    /// Opaque global id, for `node(id:)`.
    pub async fn id(&self) -> ID {
        ids::encode(kind::WORKFLOW, self.0.workflow.id)
    }

    /// Display name of the workflow.
    async fn name(&self) -> &str {
        &self.0.workflow.name
    }

    /// The unit that defines this workflow.
    async fn owner(&self, ctx: &Context<'_>) -> GqlResult<Unit> {
        rc(ctx)?
            .units
            .load_one(self.0.workflow.unit_id)
            .await?
            .map(Unit)
            .ok_or_else(|| ApiError::not_found("unit").into())
    }

    /// States in board order.
    async fn states(&self) -> Vec<WorkflowState> {
        self.0.states.iter().cloned().map(WorkflowState).collect()
    }
}

/// One state (board column) of a workflow.
pub struct WorkflowState(pub workflow_state::Model);

/// One state (board column) of a workflow.
#[Object]
impl WorkflowState {
    /// The state's name, as work items and moves refer to it (e.g. `In
    /// Progress`).
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Flow-state category: decides how time in this state counts in flow
    /// metrics.
    async fn category(&self) -> GqlResult<StateCategory> {
        Ok(StateCategory::parse(&self.0.category)?)
    }

    /// Position in board order; lower comes first.
    async fn position(&self) -> i32 {
        self.0.position
    }

    /// The workflow's WIP limit for this column; null means no limit. A
    /// board may override it (see `BoardColumn.wipLimit`).
    async fn wip_limit(&self) -> Option<i32> {
        self.0.wip_limit
    }
}
