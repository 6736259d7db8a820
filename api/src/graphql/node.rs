//! Node lookup (Relay): the `Node` interface and the `node` and `nodes`
//! root fields, which find any object by its global id.

use async_graphql::{Context, ID, Interface, Object};

use super::api_keys::ApiKey;
use super::delivery::{Change, Deployment, Incident, Release};
use super::ids::{self, kind};
use super::outcomes::{KeyResult, Objective};
use super::rc;
use super::units::Unit;
use super::users::{Membership, User};
use super::value_streams::ValueStream;
use super::work_items::{Transition, WorkItem};
use super::workflows::Workflow;
use crate::error::{ApiError, GqlResult};
use crate::service::{api_keys, delivery, outcomes, units, users, value_streams, work_items};

/// An object with a global id (Relay).
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Opaque global id."))]
pub enum Node {
    Unit(Unit),
    WorkItem(WorkItem),
    User(User),
    Membership(Membership),
    Transition(Transition),
    Workflow(Workflow),
    ApiKey(ApiKey),
    Change(Change),
    Deployment(Deployment),
    Release(Release),
    Incident(Incident),
    Objective(Objective),
    KeyResult(KeyResult),
    ValueStream(ValueStream),
}

/// Most ids accepted by `nodes`.
const MAX_NODES: usize = 100;

async fn resolve_node(ctx: &Context<'_>, id: &str) -> GqlResult<Option<Node>> {
    let r = rc(ctx)?;
    let svc = r.svc();
    svc.policy.viewer()?;
    let Some((k, n)) = ids::decode(id) else {
        return Ok(None);
    };
    Ok(match k.as_str() {
        kind::UNIT => r.units.load_one(n).await?.map(|u| Node::Unit(Unit(u))),
        kind::WORK_ITEM => r
            .items
            .load_one(n)
            .await?
            .flatten()
            .map(|i| Node::WorkItem(WorkItem(i))),
        kind::USER => users::find(svc, n).await?.map(|u| Node::User(User(u))),
        kind::MEMBERSHIP => users::find_membership(svc, n)
            .await?
            .map(|m| Node::Membership(Membership(m))),
        kind::TRANSITION => work_items::find_transition(svc, n)
            .await?
            .map(|t| Node::Transition(Transition(t))),
        kind::API_KEY => api_keys::find(svc, n)
            .await?
            .map(|k| Node::ApiKey(ApiKey(k))),
        kind::CHANGE => delivery::find_change(svc, n)
            .await?
            .map(|c| Node::Change(Change(c))),
        kind::DEPLOYMENT => delivery::find_deployment(svc, n)
            .await?
            .map(|d| Node::Deployment(Deployment(d))),
        kind::RELEASE => delivery::find_release(svc, n)
            .await?
            .map(|d| Node::Release(Release(d))),
        kind::INCIDENT => delivery::find_incident(svc, n)
            .await?
            .map(|d| Node::Incident(Incident(d))),
        kind::OBJECTIVE => outcomes::find_objective(svc, n)
            .await?
            .map(|o| Node::Objective(Objective(o))),
        kind::KEY_RESULT => outcomes::find_key_result(svc, n)
            .await?
            .map(|k| Node::KeyResult(KeyResult(k))),
        kind::VALUE_STREAM => value_streams::find(svc, n)
            .await?
            .map(|v| Node::ValueStream(ValueStream(v))),
        kind::WORKFLOW => units::find_workflow(svc, n)
            .await?
            .map(|w| Node::Workflow(Workflow(std::sync::Arc::new(w)))),
        _ => None,
    })
}

#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// Any object by its global id; `null` when it does not exist or you may not read it.
    async fn node(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The object's global id, as found in its `id` field; a malformed id gives `null`."
        )]
        id: ID,
    ) -> GqlResult<Option<Node>> {
        resolve_node(ctx, &id).await
    }

    /// Several objects by global id, in the order asked; `null` for each one
    /// that does not exist or you may not read.
    #[graphql(complexity = "ids.len() * child_complexity + 1")]
    async fn nodes(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global ids of the objects, at most 100 (`BAD_USER_INPUT` beyond).")]
        ids: Vec<ID>,
    ) -> GqlResult<Vec<Option<Node>>> {
        if ids.len() > MAX_NODES {
            return Err(ApiError::bad_input(format!("at most {MAX_NODES} ids per call")).into());
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in &ids {
            out.push(resolve_node(ctx, id).await?);
        }
        Ok(out)
    }
}
