//! Root mutation fields: each takes one `input` and returns a payload.

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::boards::{
    Board, BoardColumn, CardPosition, ReorderWorkItemsInput, ReorderWorkItemsPayload,
    SetWipLimitInput, SetWipLimitPayload, SetWipPolicyInput, SetWipPolicyPayload,
};
use super::ids::{self, kind};
use super::rc;
use super::types::{ApiKey, Membership, Unit, User, Viewer, WorkItem};
use crate::domain::{DefectOrigin, FlowType, MappingKind, Role, UnitKind, WorkItemType};
use crate::error::GqlResult;
use crate::events::{ChangeKind, DomainEvent};
use crate::service::ingest::{Raw, Status as IngestStatus, Summary, apply_batch};
use crate::service::integrations;
use crate::service::units::{self, NewUnit};
use crate::service::work_items::{self, ItemChanges, NewItem, Patch};
use crate::service::{api_keys, boards, users};

pub struct Mutation;

/// Most events one `ingestEvents` call takes; send more through `POST /ingest`.
const MAX_INGEST_EVENTS: usize = 1000;

#[derive(InputObject)]
pub struct CreateApiKeyInput {
    pub name: String,
    /// Limit the key to this unit's subtree; anywhere when omitted.
    pub unit: Option<ID>,
}

#[derive(SimpleObject)]
pub struct CreateApiKeyPayload {
    pub api_key: ApiKey,
    /// Send as `Authorization: Bearer <secret>`. Shown only now.
    pub secret: String,
}

#[derive(InputObject)]
pub struct RevokeApiKeyInput {
    pub api_key: ID,
}

#[derive(SimpleObject)]
pub struct RevokeApiKeyPayload {
    pub api_key: ApiKey,
}

/// A configured integration. Its secret is write-only.
#[derive(SimpleObject)]
pub struct Integration {
    pub source: String,
    pub updated_at: DateTime<Utc>,
}

impl From<entity::integration::Model> for Integration {
    fn from(m: entity::integration::Model) -> Self {
        Self {
            source: m.source,
            updated_at: m.updated_at,
        }
    }
}

/// A translation rule from a native value to a Gemba value.
#[derive(SimpleObject)]
pub struct IntegrationMapping {
    pub id: ID,
    pub source: String,
    pub kind: MappingKind,
    pub external: String,
    pub target: String,
}

impl IntegrationMapping {
    pub fn from_model(m: entity::integration_mapping::Model) -> GqlResult<Self> {
        Ok(Self {
            id: ID(m.id.to_string()),
            kind: MappingKind::parse(&m.kind)?,
            source: m.source,
            external: m.external,
            target: m.target,
        })
    }
}

#[derive(InputObject)]
pub struct ConfigureIntegrationInput {
    /// `github`, `gitlab` or `jira`.
    pub source: String,
    /// The webhook secret (GitHub's HMAC key, GitLab's token, Jira's shared secret).
    #[graphql(secret)]
    pub secret: String,
}

#[derive(InputObject)]
pub struct SetIntegrationMappingInput {
    pub source: String,
    pub kind: MappingKind,
    /// The native value: `acme/cards`, `bug`, `closed`, `prod`.
    pub external: String,
    /// Gemba's value: a unit key, a work item type, a state name, an environment.
    pub target: String,
}

#[derive(InputObject)]
pub struct DeleteIntegrationMappingInput {
    pub mapping: ID,
}

/// The result of one ingested event.
#[derive(SimpleObject)]
pub struct IngestResult {
    /// 1-based position in the list.
    pub line: i32,
    pub id: Option<String>,
    pub status: IngestStatus,
    pub reason: Option<String>,
}

#[derive(SimpleObject)]
pub struct IngestPayload {
    pub results: Vec<IngestResult>,
    pub applied: i32,
    pub duplicates: i32,
    pub rejected: i32,
}

#[derive(InputObject)]
pub struct LoginInput {
    pub email: String,
    #[graphql(secret)]
    pub password: String,
}

#[derive(SimpleObject)]
pub struct LoginPayload {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub viewer: Viewer,
}

#[derive(InputObject)]
pub struct CreateUnitInput {
    /// The parent unit; the organisation when omitted.
    pub parent: Option<ID>,
    pub kind: UnitKind,
    /// Lowercase `[a-z0-9-]{2,64}`, unique.
    pub key: String,
    pub name: String,
}

#[derive(SimpleObject)]
pub struct CreateUnitPayload {
    pub unit: Unit,
}

#[derive(InputObject)]
pub struct CreateUserInput {
    pub email: String,
    pub name: String,
    /// At least 12 characters.
    #[graphql(secret)]
    pub password: String,
}

#[derive(SimpleObject)]
pub struct CreateUserPayload {
    pub user: User,
}

#[derive(InputObject)]
pub struct UpdateUserInput {
    pub user: ID,
    pub name: Option<String>,
    /// `false` deactivates the user: their tokens stop working at once.
    pub active: Option<bool>,
}

#[derive(SimpleObject)]
pub struct UpdateUserPayload {
    pub user: User,
}

#[derive(InputObject)]
pub struct GrantMembershipInput {
    pub user: ID,
    pub unit: ID,
    pub role: Role,
}

#[derive(SimpleObject)]
pub struct GrantMembershipPayload {
    pub membership: Membership,
}

#[derive(InputObject)]
pub struct RevokeMembershipInput {
    pub membership: ID,
}

#[derive(SimpleObject)]
pub struct RevokeMembershipPayload {
    pub revoked_membership_id: ID,
}

#[derive(InputObject)]
pub struct CreateWorkItemInput {
    pub unit: ID,
    #[graphql(name = "type")]
    pub item_type: WorkItemType,
    pub title: String,
    pub description: Option<String>,
    /// Unique key; generated from the unit's key when omitted (`TEAM-ATLAS-7`).
    pub key: Option<String>,
    pub parent: Option<ID>,
    /// A state of the unit's workflow; its first `NEW` state when omitted.
    pub state: Option<String>,
    /// Derived from the type when omitted.
    pub flow_type: Option<FlowType>,
    pub found_in: Option<DefectOrigin>,
    pub severity: Option<String>,
    pub assignee: Option<ID>,
    pub estimate: Option<f64>,
    pub business_value: Option<f64>,
}

#[derive(SimpleObject)]
pub struct CreateWorkItemPayload {
    pub work_item: WorkItem,
}

/// Fields left out stay as they are; `null` clears a nullable field.
#[derive(InputObject)]
pub struct UpdateWorkItemInput {
    pub work_item: ID,
    pub title: Option<String>,
    pub description: MaybeUndefined<String>,
    pub parent: MaybeUndefined<ID>,
    pub assignee: MaybeUndefined<ID>,
    pub estimate: MaybeUndefined<f64>,
    pub business_value: MaybeUndefined<f64>,
    pub flow_type: Option<FlowType>,
    pub found_in: MaybeUndefined<DefectOrigin>,
    pub severity: MaybeUndefined<String>,
    /// Flag (or unflag) the item as blocked.
    pub blocked: Option<bool>,
}

#[derive(SimpleObject)]
pub struct UpdateWorkItemPayload {
    pub work_item: WorkItem,
}

#[derive(InputObject)]
pub struct MoveWorkItemInput {
    pub work_item: ID,
    /// A state of the item's workflow (its current one to only reorder).
    pub to_state: String,
    /// Where the card goes in the target column; its end when omitted.
    pub position: Option<CardPosition>,
}

#[derive(SimpleObject)]
pub struct MoveWorkItemPayload {
    pub work_item: WorkItem,
    /// The move took the column over its WIP limit (a `WARN` board).
    pub wip_limit_exceeded: bool,
    /// The column the item is in, after the move.
    pub column: Option<BoardColumn>,
}

pub(super) fn patch<T>(v: MaybeUndefined<T>) -> Patch<T> {
    match v {
        MaybeUndefined::Undefined => Patch::Keep,
        MaybeUndefined::Null => Patch::Clear,
        MaybeUndefined::Value(v) => Patch::Set(v),
    }
}

fn patch_id(v: MaybeUndefined<ID>, k: &str, field: &str) -> GqlResult<Patch<i64>> {
    Ok(match v {
        MaybeUndefined::Undefined => Patch::Keep,
        MaybeUndefined::Null => Patch::Clear,
        MaybeUndefined::Value(id) => Patch::Set(ids::expect(&id, k, field)?),
    })
}

fn publish(r: &super::RequestCtx, kind: ChangeKind, item: &entity::work_item::Model) {
    r.services
        .bus
        .publish(DomainEvent::new(kind, item.unit_id, item.id));
}

/// Tells open subscriptions of `user_id` to re-check their access.
fn access_changed(r: &super::RequestCtx, user_id: i64) {
    r.services
        .bus
        .publish(DomainEvent::new(ChangeKind::AccessChanged, 0, user_id));
}

#[Object]
impl Mutation {
    /// Admins only. The secret is in the payload and nowhere else, ever.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        input: CreateApiKeyInput,
    ) -> GqlResult<CreateApiKeyPayload> {
        let r = rc(ctx)?;
        r.policy.viewer()?;
        let unit = input
            .unit
            .map(|u| ids::expect(&u, kind::UNIT, "unit"))
            .transpose()?;
        let created = api_keys::create(r.svc(), &input.name, unit).await?;
        Ok(CreateApiKeyPayload {
            api_key: ApiKey(created.key),
            secret: created.secret,
        })
    }

    /// Admins only: sets a source's webhook secret.
    async fn configure_integration(
        &self,
        ctx: &Context<'_>,
        input: ConfigureIntegrationInput,
    ) -> GqlResult<Integration> {
        let r = rc(ctx)?;
        Ok(
            integrations::configure(r.svc(), &input.source, &input.secret)
                .await?
                .into(),
        )
    }

    /// Admins only: creates or replaces a mapping.
    async fn set_integration_mapping(
        &self,
        ctx: &Context<'_>,
        input: SetIntegrationMappingInput,
    ) -> GqlResult<IntegrationMapping> {
        let r = rc(ctx)?;
        let m = integrations::set_mapping(
            r.svc(),
            &input.source,
            input.kind,
            &input.external,
            &input.target,
        )
        .await?;
        IntegrationMapping::from_model(m)
    }

    /// Admins only.
    async fn delete_integration_mapping(
        &self,
        ctx: &Context<'_>,
        input: DeleteIntegrationMappingInput,
    ) -> GqlResult<IntegrationMapping> {
        let r = rc(ctx)?;
        let id: i64 = input
            .mapping
            .parse()
            .map_err(|_| crate::error::ApiError::bad_input("`mapping` is not a mapping id"))?;
        IntegrationMapping::from_model(integrations::delete_mapping(r.svc(), id).await?)
    }

    /// Admins only. The key stops working at once.
    async fn revoke_api_key(
        &self,
        ctx: &Context<'_>,
        input: RevokeApiKeyInput,
    ) -> GqlResult<RevokeApiKeyPayload> {
        let r = rc(ctx)?;
        r.policy.viewer()?;
        let id = ids::expect(&input.api_key, kind::API_KEY, "apiKey")?;
        Ok(RevokeApiKeyPayload {
            api_key: ApiKey(api_keys::revoke(r.svc(), id).await?),
        })
    }

    /// Applies common-data-model events (DESIGN §4), each on its own and
    /// idempotently by `id`. API keys and admins only.
    async fn ingest_events(
        &self,
        ctx: &Context<'_>,
        events: Vec<async_graphql::Json<serde_json::Value>>,
    ) -> GqlResult<IngestPayload> {
        let r = rc(ctx)?;
        let scope = r.policy.ingest_scope()?;
        if events.len() > MAX_INGEST_EVENTS {
            return Err(crate::error::ApiError::bad_input(format!(
                "at most {MAX_INGEST_EVENTS} events per call; send more through POST /ingest"
            ))
            .into());
        }
        let batch = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| (i + 1, Raw::Value(e.0)))
            .collect();
        let mut summary = Summary::default();
        let mut results = Vec::new();
        for res in apply_batch(&r.db, scope, &r.services.bus, false, batch).await? {
            summary.add(&res);
            results.push(IngestResult {
                line: i32::try_from(res.line).unwrap_or(i32::MAX),
                id: res.id,
                status: res.status,
                reason: res.reason,
            });
        }
        let n = |v: u64| i32::try_from(v).unwrap_or(i32::MAX);
        Ok(IngestPayload {
            results,
            applied: n(summary.applied),
            duplicates: n(summary.duplicates),
            rejected: n(summary.rejected),
        })
    }

    /// Exchanges email and password for a session token.
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> GqlResult<LoginPayload> {
        let r = rc(ctx)?;
        let s = &r.services;
        let session = users::login(
            &r.db,
            &s.keys,
            &s.limiter,
            s.settings.token_ttl,
            &input.email,
            input.password,
            r.client_addr,
        )
        .await?;
        let memberships = users::memberships_unchecked(&r.db, session.user.id).await?;
        Ok(LoginPayload {
            token: session.token,
            expires_at: session.expires_at,
            viewer: Viewer {
                user: User(session.user),
                memberships: memberships.into_iter().map(Membership).collect(),
            },
        })
    }

    /// Revokes the token this request was made with.
    async fn logout(&self, ctx: &Context<'_>) -> GqlResult<bool> {
        let r = rc(ctx)?;
        let viewer = r.policy.viewer()?;
        users::logout(&r.db, viewer).await?;
        access_changed(r, viewer.user.id);
        Ok(true)
    }

    async fn create_unit(
        &self,
        ctx: &Context<'_>,
        input: CreateUnitInput,
    ) -> GqlResult<CreateUnitPayload> {
        let r = rc(ctx)?;
        r.policy.viewer()?;
        let parent = input
            .parent
            .map(|p| ids::expect(&p, kind::UNIT, "parent"))
            .transpose()?;
        let unit = units::create(
            r.svc(),
            NewUnit {
                parent,
                kind: input.kind,
                key: input.key,
                name: input.name,
            },
        )
        .await?;
        Ok(CreateUnitPayload { unit: Unit(unit) })
    }

    /// Admins, executives in scope, and a portfolio's managers for the
    /// portfolio's own objectives.
    async fn create_objective(
        &self,
        ctx: &Context<'_>,
        input: super::outcomes::CreateObjectiveInput,
    ) -> GqlResult<super::outcomes::CreateObjectivePayload> {
        super::outcomes::create_objective(ctx, input).await
    }

    /// Who may write the objective: see `createObjective`.
    async fn create_key_result(
        &self,
        ctx: &Context<'_>,
        input: super::outcomes::CreateKeyResultInput,
    ) -> GqlResult<super::outcomes::CreateKeyResultPayload> {
        super::outcomes::create_key_result(ctx, input).await
    }

    /// Admins, and a portfolio's managers for the portfolio's own value
    /// streams. All or nothing.
    async fn create_value_stream(
        &self,
        ctx: &Context<'_>,
        input: super::value_streams::CreateValueStreamInput,
    ) -> GqlResult<super::value_streams::CreateValueStreamPayload> {
        super::value_streams::create_value_stream(ctx, input).await
    }

    /// Who may write the stream: see `createValueStream`. All or nothing.
    async fn update_value_stream(
        &self,
        ctx: &Context<'_>,
        input: super::value_streams::UpdateValueStreamInput,
    ) -> GqlResult<super::value_streams::UpdateValueStreamPayload> {
        super::value_streams::update_value_stream(ctx, input).await
    }

    /// Admins only.
    async fn create_user(
        &self,
        ctx: &Context<'_>,
        input: CreateUserInput,
    ) -> GqlResult<CreateUserPayload> {
        let r = rc(ctx)?;
        let user = users::create(r.svc(), &input.email, &input.name, input.password).await?;
        Ok(CreateUserPayload { user: User(user) })
    }

    /// Admins only: rename, deactivate or reactivate a user.
    async fn update_user(
        &self,
        ctx: &Context<'_>,
        input: UpdateUserInput,
    ) -> GqlResult<UpdateUserPayload> {
        let r = rc(ctx)?;
        r.policy.viewer()?;
        let id = ids::expect(&input.user, kind::USER, "user")?;
        let user = users::update(r.svc(), id, input.name, input.active).await?;
        access_changed(r, user.id);
        Ok(UpdateUserPayload { user: User(user) })
    }

    /// Admins only. The role must fit the unit's level (DESIGN §2).
    async fn grant_membership(
        &self,
        ctx: &Context<'_>,
        input: GrantMembershipInput,
    ) -> GqlResult<GrantMembershipPayload> {
        let r = rc(ctx)?;
        r.policy.viewer()?;
        let user = ids::expect(&input.user, kind::USER, "user")?;
        let unit = ids::expect(&input.unit, kind::UNIT, "unit")?;
        let m = users::grant(r.svc(), user, unit, input.role).await?;
        access_changed(r, m.user_id);
        Ok(GrantMembershipPayload {
            membership: Membership(m),
        })
    }

    /// Admins only. Takes effect on the member's next request.
    async fn revoke_membership(
        &self,
        ctx: &Context<'_>,
        input: RevokeMembershipInput,
    ) -> GqlResult<RevokeMembershipPayload> {
        let r = rc(ctx)?;
        r.policy.viewer()?;
        let id = ids::expect(&input.membership, kind::MEMBERSHIP, "membership")?;
        let m = users::revoke(r.svc(), id).await?;
        access_changed(r, m.user_id);
        Ok(RevokeMembershipPayload {
            revoked_membership_id: ids::encode(kind::MEMBERSHIP, m.id),
        })
    }

    async fn create_work_item(
        &self,
        ctx: &Context<'_>,
        input: CreateWorkItemInput,
    ) -> GqlResult<CreateWorkItemPayload> {
        let r = rc(ctx)?;
        r.policy.viewer()?;
        let item = work_items::create(
            r.svc(),
            NewItem {
                unit: ids::expect(&input.unit, kind::UNIT, "unit")?,
                item_type: Some(input.item_type),
                title: input.title,
                description: input.description,
                key: input.key,
                parent: input
                    .parent
                    .map(|p| ids::expect(&p, kind::WORK_ITEM, "parent"))
                    .transpose()?,
                state: input.state,
                flow_type: input.flow_type,
                found_in: input.found_in,
                severity: input.severity,
                assignee: input
                    .assignee
                    .map(|a| ids::expect(&a, kind::USER, "assignee"))
                    .transpose()?,
                estimate: input.estimate,
                business_value: input.business_value,
            },
        )
        .await?;
        publish(r, ChangeKind::WorkItemCreated, &item);
        Ok(CreateWorkItemPayload {
            work_item: WorkItem(item),
        })
    }

    async fn update_work_item(
        &self,
        ctx: &Context<'_>,
        input: UpdateWorkItemInput,
    ) -> GqlResult<UpdateWorkItemPayload> {
        let r = rc(ctx)?;
        r.policy.viewer()?;
        let id = ids::expect(&input.work_item, kind::WORK_ITEM, "workItem")?;
        let changes = ItemChanges {
            title: input.title,
            description: patch(input.description),
            parent: patch_id(input.parent, kind::WORK_ITEM, "parent")?,
            assignee: patch_id(input.assignee, kind::USER, "assignee")?,
            estimate: patch(input.estimate),
            business_value: patch(input.business_value),
            flow_type: input.flow_type,
            found_in: patch(input.found_in),
            severity: patch(input.severity),
            blocked: input.blocked,
        };
        let item = work_items::update(r.svc(), id, changes).await?;
        publish(r, ChangeKind::WorkItemUpdated, &item);
        Ok(UpdateWorkItemPayload {
            work_item: WorkItem(item),
        })
    }

    /// Moves an item to another state of its workflow, recording a
    /// transition, and places its card at `position` (or the column's end).
    /// Over the column's WIP limit, a `WARN` board moves and says so; a
    /// `BLOCK` board refuses with `CONFLICT`.
    async fn move_work_item(
        &self,
        ctx: &Context<'_>,
        input: MoveWorkItemInput,
    ) -> GqlResult<MoveWorkItemPayload> {
        let r = rc(ctx)?;
        r.policy.viewer()?;
        let id = ids::expect(&input.work_item, kind::WORK_ITEM, "workItem")?;
        let position = input
            .position
            .as_ref()
            .map(CardPosition::parse)
            .transpose()?;
        let done = work_items::move_to(r.svc(), id, &input.to_state, position).await?;
        if done.moved {
            r.services.bus.publish(DomainEvent {
                from_state: Some(done.from_state.clone()),
                ..DomainEvent::new(ChangeKind::WorkItemMoved, done.item.unit_id, done.item.id)
            });
        } else if done.reranked {
            publish(r, ChangeKind::WorkItemRanked, &done.item);
        }
        let unit = units::path(&r.db, done.item.unit_id).await?;
        let column = boards::columns(&r.db, unit.id, None, r.policy.can_read_items_of(&unit))
            .await?
            .into_iter()
            .find(|c| c.name == done.item.state)
            .map(BoardColumn);
        Ok(MoveWorkItemPayload {
            wip_limit_exceeded: done.wip.as_ref().is_some_and(|w| w.exceeded()),
            column,
            work_item: WorkItem(done.item),
        })
    }

    /// Places cards of one column, in the given order, together before or
    /// after another card; only their ranks change.
    async fn reorder_work_items(
        &self,
        ctx: &Context<'_>,
        input: ReorderWorkItemsInput,
    ) -> GqlResult<ReorderWorkItemsPayload> {
        let r = rc(ctx)?;
        r.policy.viewer()?;
        let ids = input
            .work_items
            .iter()
            .map(|i| ids::expect(i, kind::WORK_ITEM, "workItems"))
            .collect::<Result<Vec<_>, _>>()?;
        let position = input.position.parse()?;
        let items = work_items::reorder(r.svc(), &ids, position).await?;
        for item in &items {
            publish(r, ChangeKind::WorkItemRanked, item);
        }
        Ok(ReorderWorkItemsPayload {
            work_items: items.into_iter().map(WorkItem).collect(),
        })
    }

    /// Sets or lifts a column's WIP limit on a unit's board (admins, and
    /// program and portfolio managers in scope).
    async fn set_wip_limit(
        &self,
        ctx: &Context<'_>,
        input: SetWipLimitInput,
    ) -> GqlResult<SetWipLimitPayload> {
        let r = rc(ctx)?;
        r.policy.viewer()?;
        let unit = ids::expect(&input.unit, kind::UNIT, "unit")?;
        let column = boards::set_wip_limit(r.svc(), unit, &input.state, input.wip_limit).await?;
        r.services
            .bus
            .publish(DomainEvent::new(ChangeKind::BoardChanged, unit, unit));
        Ok(SetWipLimitPayload {
            column: BoardColumn(column),
        })
    }

    /// Sets a board's WIP policy (who may: as `setWipLimit`).
    async fn set_wip_policy(
        &self,
        ctx: &Context<'_>,
        input: SetWipPolicyInput,
    ) -> GqlResult<SetWipPolicyPayload> {
        let r = rc(ctx)?;
        r.policy.viewer()?;
        let unit = ids::expect(&input.unit, kind::UNIT, "unit")?;
        let board = boards::set_wip_policy(r.svc(), unit, input.wip_policy).await?;
        r.services
            .bus
            .publish(DomainEvent::new(ChangeKind::BoardChanged, unit, unit));
        Ok(SetWipPolicyPayload {
            board: Board(board),
        })
    }
}
