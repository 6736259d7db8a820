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

/// Input of `createApiKey`: a new API key for an integration.
#[derive(InputObject)]
pub struct CreateApiKeyInput {
    /// A label to recognise the key by, 1 to 200 characters.
    pub name: String,
    /// Limit the key to this unit's subtree; anywhere when omitted.
    pub unit: Option<ID>,
}

/// The result of `createApiKey`: the new key and its secret.
#[derive(SimpleObject)]
pub struct CreateApiKeyPayload {
    /// The new key as `apiKeys` lists it, without its secret.
    pub api_key: ApiKey,
    /// Send as `Authorization: Bearer <secret>`. Shown only now.
    pub secret: String,
}

/// Input of `revokeApiKey`.
#[derive(InputObject)]
pub struct RevokeApiKeyInput {
    /// Global id of the API key to revoke.
    pub api_key: ID,
}

/// The result of `revokeApiKey`.
#[derive(SimpleObject)]
pub struct RevokeApiKeyPayload {
    /// The key, with `revokedAt` set.
    pub api_key: ApiKey,
}

/// A configured integration. Its secret is write-only.
#[derive(SimpleObject)]
pub struct Integration {
    /// The source system: `github`, `gitlab` or `jira`.
    pub source: String,
    /// When the webhook secret was last set (UTC).
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
    /// The mapping's id, to pass to `deleteIntegrationMapping`. It is not a
    /// global id: `node` does not resolve it.
    pub id: ID,
    /// The source system the rule applies to: `github`, `gitlab` or `jira`.
    pub source: String,
    /// What the rule translates: a unit, an item type, a state or an environment.
    pub kind: MappingKind,
    /// The native value, e.g. `acme/cards`, `bug`, `closed` or `prod`.
    pub external: String,
    /// Gemba's value: a unit key, a work item type, a state name or an environment.
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

/// Input of `configureIntegration`: a source's webhook secret.
#[derive(InputObject)]
pub struct ConfigureIntegrationInput {
    /// The source: `github`, `gitlab` or `jira`.
    pub source: String,
    /// The webhook secret (GitHub's HMAC key, GitLab's token, Jira's shared
    /// secret), 16 to 256 characters.
    #[graphql(secret)]
    pub secret: String,
}

/// Input of `setIntegrationMapping`: one rule translating a source's
/// native value into Gemba's.
#[derive(InputObject)]
pub struct SetIntegrationMappingInput {
    /// The source: `github`, `gitlab` or `jira`.
    pub source: String,
    /// What the rule translates: a unit, an item type, a state or an environment.
    pub kind: MappingKind,
    /// The native value: `acme/cards`, `bug`, `closed`, `prod`.
    pub external: String,
    /// Gemba's value: a unit key, a work item type, a state name, an environment.
    /// An unknown unit key or item type, or an environment not in upper case,
    /// is `BAD_USER_INPUT`.
    pub target: String,
}

/// Input of `deleteIntegrationMapping`.
#[derive(InputObject)]
pub struct DeleteIntegrationMappingInput {
    /// The mapping's `id`, as `integrationMappings` returns it.
    pub mapping: ID,
}

/// The result of one ingested event.
#[derive(SimpleObject)]
pub struct IngestResult {
    /// 1-based position in the list.
    pub line: i32,
    /// The event's `id` as sent; null when none could be read (e.g. the
    /// event is not a JSON object).
    pub id: Option<String>,
    /// Whether the event was applied, skipped as a duplicate, or rejected.
    pub status: IngestStatus,
    /// Why the event was rejected; null unless `status` is `REJECTED`. A
    /// failure on the server's side says so, and the event may be sent again.
    pub reason: Option<String>,
}

/// The result of `ingestEvents`: one result per event, and the counts.
#[derive(SimpleObject)]
pub struct IngestPayload {
    /// One result per event, in the order sent.
    pub results: Vec<IngestResult>,
    /// How many events were applied.
    pub applied: i32,
    /// How many events were skipped because an event with the same `id` had
    /// been applied before.
    pub duplicates: i32,
    /// How many events were rejected; they changed nothing.
    pub rejected: i32,
}

/// Input of `login`: a user's credentials.
#[derive(InputObject)]
pub struct LoginInput {
    /// The user's email address; case does not matter.
    pub email: String,
    /// The user's password.
    #[graphql(secret)]
    pub password: String,
}

/// The result of `login`: a session token and whom it belongs to.
#[derive(SimpleObject)]
pub struct LoginPayload {
    /// Send as `Authorization: Bearer <token>`, or as `token` in the
    /// `connection_init` payload of a subscription socket.
    pub token: String,
    /// When the token stops working (UTC); sign in again after it.
    pub expires_at: DateTime<Utc>,
    /// The signed-in user and their memberships.
    pub viewer: Viewer,
}

/// Input of `createUnit`: a new portfolio, program or team.
#[derive(InputObject)]
pub struct CreateUnitInput {
    /// Global id of the parent unit; the organisation when omitted.
    pub parent: Option<ID>,
    /// The new unit's level: the one just below the parent's (a portfolio
    /// under the organisation, a program under a portfolio, a team under a
    /// program), else `BAD_USER_INPUT`.
    pub kind: UnitKind,
    /// Lowercase `[a-z0-9-]{2,64}`, unique.
    pub key: String,
    /// The display name, 1 to 200 characters.
    pub name: String,
}

/// The result of `createUnit`.
#[derive(SimpleObject)]
pub struct CreateUnitPayload {
    /// The new unit.
    pub unit: Unit,
}

/// Input of `createUser`: a new user who can sign in.
#[derive(InputObject)]
pub struct CreateUserInput {
    /// The sign-in email address, unique whatever its case.
    pub email: String,
    /// The display name, 1 to 200 characters.
    pub name: String,
    /// At least 12 characters.
    #[graphql(secret)]
    pub password: String,
}

/// The result of `createUser`.
#[derive(SimpleObject)]
pub struct CreateUserPayload {
    /// The new user: active, without memberships.
    pub user: User,
}

/// Input of `updateUser`: fields left out stay as they are.
#[derive(InputObject)]
pub struct UpdateUserInput {
    /// Global id of the user to change.
    pub user: ID,
    /// The new display name, 1 to 200 characters.
    pub name: Option<String>,
    /// `false` deactivates the user: their tokens stop working at once.
    pub active: Option<bool>,
}

/// The result of `updateUser`.
#[derive(SimpleObject)]
pub struct UpdateUserPayload {
    /// The user after the change.
    pub user: User,
}

/// Input of `grantMembership`: a role for a user on a unit.
#[derive(InputObject)]
pub struct GrantMembershipInput {
    /// Global id of the user.
    pub user: ID,
    /// Global id of the unit where the role applies, with every unit beneath it.
    pub unit: ID,
    /// The role, which must fit the unit's level: `TEAM_MEMBER` on a team,
    /// `PROGRAM_MANAGER` on a program, `PORTFOLIO_MANAGER` on a portfolio,
    /// `EXECUTIVE` on the organisation or a portfolio, `ADMIN` on the organisation.
    pub role: Role,
}

/// The result of `grantMembership`.
#[derive(SimpleObject)]
pub struct GrantMembershipPayload {
    /// The new membership.
    pub membership: Membership,
}

/// Input of `revokeMembership`.
#[derive(InputObject)]
pub struct RevokeMembershipInput {
    /// Global id of the membership to remove.
    pub membership: ID,
}

/// The result of `revokeMembership`.
#[derive(SimpleObject)]
pub struct RevokeMembershipPayload {
    /// Global id of the membership that was removed.
    pub revoked_membership_id: ID,
}

/// Input of `createWorkItem`: a new work item on a unit's board.
#[derive(InputObject)]
pub struct CreateWorkItemInput {
    /// Global id of the owning unit, which must suit the type: epics on
    /// portfolios, features on programs, stories and tasks on teams, and
    /// defects, risks and debt on teams, programs or portfolios.
    pub unit: ID,
    /// The item's type; it decides which units may own the item and which
    /// items may be its parent.
    #[graphql(name = "type")]
    pub item_type: WorkItemType,
    /// The title, 1 to 500 characters.
    pub title: String,
    /// A free-text description.
    pub description: Option<String>,
    /// Unique key; generated from the unit's key when omitted (`TEAM-ATLAS-7`).
    pub key: Option<String>,
    /// Global id of the parent item: a type that may parent this one (e.g. a
    /// feature for a story), owned by the same unit or one above it.
    pub parent: Option<ID>,
    /// A state of the unit's workflow; its first `NEW` state when omitted.
    pub state: Option<String>,
    /// Derived from the type when omitted.
    pub flow_type: Option<FlowType>,
    /// Where a defect was found; for `DEFECT` items only, else `BAD_USER_INPUT`.
    pub found_in: Option<DefectOrigin>,
    /// A free-text severity label, 1 to 32 characters.
    pub severity: Option<String>,
    /// Global id of the user to assign: an active user with a membership on
    /// the unit, above it or below it (`NOT_FOUND` otherwise).
    pub assignee: Option<ID>,
    /// The size estimate in points, zero or more.
    pub estimate: Option<f64>,
    /// The business value, a number of zero or more.
    pub business_value: Option<f64>,
}

/// The result of `createWorkItem`.
#[derive(SimpleObject)]
pub struct CreateWorkItemPayload {
    /// The new item.
    pub work_item: WorkItem,
}

/// Input of `updateWorkItem`: fields left out stay as they are, and `null`
/// clears a nullable field.
#[derive(InputObject)]
pub struct UpdateWorkItemInput {
    /// Global id of the item to change.
    pub work_item: ID,
    /// The new title, 1 to 500 characters.
    pub title: Option<String>,
    /// The new description; `null` clears it.
    pub description: MaybeUndefined<String>,
    /// Global id of the new parent item, under the same rules as on creation
    /// and never one of the item's own descendants; `null` detaches the item.
    pub parent: MaybeUndefined<ID>,
    /// Global id of the user to assign, under the same rules as on creation;
    /// `null` unassigns the item.
    pub assignee: MaybeUndefined<ID>,
    /// The size estimate in points, zero or more; `null` clears it.
    pub estimate: MaybeUndefined<f64>,
    /// The business value, zero or more; `null` clears it.
    pub business_value: MaybeUndefined<f64>,
    /// The Flow Framework type the item counts as in flow metrics.
    pub flow_type: Option<FlowType>,
    /// Where a defect was found (`DEFECT` items only); `null` clears it.
    pub found_in: MaybeUndefined<DefectOrigin>,
    /// A free-text severity label, 1 to 32 characters; `null` clears it.
    pub severity: MaybeUndefined<String>,
    /// Flag (or unflag) the item as blocked.
    pub blocked: Option<bool>,
}

/// The result of `updateWorkItem`.
#[derive(SimpleObject)]
pub struct UpdateWorkItemPayload {
    /// The item after the change.
    pub work_item: WorkItem,
}

/// Input of `moveWorkItem`: the item and where its card goes.
#[derive(InputObject)]
pub struct MoveWorkItemInput {
    /// Global id of the item to move.
    pub work_item: ID,
    /// A state of the item's workflow (its current one to only reorder).
    pub to_state: String,
    /// Where the card goes in the target column; its end when omitted.
    pub position: Option<CardPosition>,
}

/// The result of `moveWorkItem`.
#[derive(SimpleObject)]
pub struct MoveWorkItemPayload {
    /// The item after the move.
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

/// The write entry points; most take one `input` and return a payload.
/// Every mutation but `login` needs a signed-in caller (`ingestEvents` also
/// accepts an API key), else `UNAUTHENTICATED`.
#[Object]
impl Mutation {
    /// Creates an API key for an integration; its secret is in the payload and
    /// nowhere else, ever. Admins only (`FORBIDDEN` for others).
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The key's name and, optionally, the unit it is limited to.")]
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

    /// Sets or replaces a source's webhook secret, against which its webhook
    /// requests are verified. Admins only; `BAD_USER_INPUT` for an unknown
    /// source or a secret outside 16 to 256 characters.
    async fn configure_integration(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The source and its new secret.")] input: ConfigureIntegrationInput,
    ) -> GqlResult<Integration> {
        let r = rc(ctx)?;
        Ok(
            integrations::configure(r.svc(), &input.source, &input.secret)
                .await?
                .into(),
        )
    }

    /// Creates a mapping, or replaces the target of the one with the same
    /// source, kind and native value. Admins only; `BAD_USER_INPUT` for an
    /// unknown source or a target that does not fit the kind.
    async fn set_integration_mapping(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The rule to set.")] input: SetIntegrationMappingInput,
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

    /// Deletes a mapping and returns it as it was. Admins only; `NOT_FOUND`
    /// for an unknown mapping.
    async fn delete_integration_mapping(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mapping to delete.")] input: DeleteIntegrationMappingInput,
    ) -> GqlResult<IntegrationMapping> {
        let r = rc(ctx)?;
        let id: i64 = input
            .mapping
            .parse()
            .map_err(|_| crate::error::ApiError::bad_input("`mapping` is not a mapping id"))?;
        IntegrationMapping::from_model(integrations::delete_mapping(r.svc(), id).await?)
    }

    /// Revokes an API key: it stops working at once, and revoking it again
    /// changes nothing. Admins only; `NOT_FOUND` for an unknown key.
    async fn revoke_api_key(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The key to revoke.")] input: RevokeApiKeyInput,
    ) -> GqlResult<RevokeApiKeyPayload> {
        let r = rc(ctx)?;
        r.policy.viewer()?;
        let id = ids::expect(&input.api_key, kind::API_KEY, "apiKey")?;
        Ok(RevokeApiKeyPayload {
            api_key: ApiKey(api_keys::revoke(r.svc(), id).await?),
        })
    }

    /// Applies common-data-model events (DESIGN §4), each on its own and
    /// idempotently by `id`: a rejected event changes nothing, the others
    /// still apply. API keys (inside their unit, if limited to one) and
    /// admins only; other users get `FORBIDDEN`.
    async fn ingest_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The events, each a JSON object `{id, type, source, data}`; at most 1,000 per call (`BAD_USER_INPUT` beyond), send more through `POST /ingest`."
        )]
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

    /// Exchanges email and password for a session token. Wrong credentials or
    /// an inactive user give `UNAUTHENTICATED`, and repeated failures for an
    /// email or address `RATE_LIMITED`.
    async fn login(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The email and password to sign in with.")] input: LoginInput,
    ) -> GqlResult<LoginPayload> {
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

    /// Creates a portfolio, program or team; `BAD_USER_INPUT` for a bad key or
    /// level, `CONFLICT` for a key in use. Admins may create any, portfolio
    /// managers programs and teams inside their portfolio, and program
    /// managers teams under their program (`FORBIDDEN` otherwise).
    async fn create_unit(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new unit's parent, kind, key and name.")] input: CreateUnitInput,
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

    /// Creates a user who can sign in. Admins only; `BAD_USER_INPUT` for an
    /// invalid email, name or password, `CONFLICT` for an email in use.
    async fn create_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new user's email, name and password.")] input: CreateUserInput,
    ) -> GqlResult<CreateUserPayload> {
        let r = rc(ctx)?;
        let user = users::create(r.svc(), &input.email, &input.name, input.password).await?;
        Ok(CreateUserPayload { user: User(user) })
    }

    /// Renames, deactivates or reactivates a user. Admins only; `NOT_FOUND`
    /// for an unknown user.
    async fn update_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user and the fields to change.")] input: UpdateUserInput,
    ) -> GqlResult<UpdateUserPayload> {
        let r = rc(ctx)?;
        r.policy.viewer()?;
        let id = ids::expect(&input.user, kind::USER, "user")?;
        let user = users::update(r.svc(), id, input.name, input.active).await?;
        access_changed(r, user.id);
        Ok(UpdateUserPayload { user: User(user) })
    }

    /// Grants a user a role on a unit. Admins only; `BAD_USER_INPUT` when the
    /// role does not fit the unit's level, `CONFLICT` when the user already holds it there.
    async fn grant_membership(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user, the unit and the role.")] input: GrantMembershipInput,
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

    /// Removes a membership; it takes effect on the member's next request.
    /// Admins only; `NOT_FOUND` for an unknown membership.
    async fn revoke_membership(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The membership to remove.")] input: RevokeMembershipInput,
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

    /// Creates a work item in its initial (or given) state, recording its
    /// first transition. `FORBIDDEN` unless you may write the unit's items,
    /// `BAD_USER_INPUT` for invalid fields, levels or states, `CONFLICT` for a
    /// key in use or a full column on a `BLOCK` board.
    async fn create_work_item(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new item's unit, type, title and optional fields.")]
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

    /// Changes a work item's fields, not its state (see `moveWorkItem`).
    /// `NOT_FOUND` for an item you may not read, `FORBIDDEN` for one you may
    /// read but not write, `BAD_USER_INPUT` for invalid values.
    async fn update_work_item(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The item and the fields to change.")] input: UpdateWorkItemInput,
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
        #[graphql(desc = "The item, the state to move it to and its place in the column.")]
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
        #[graphql(desc = "The cards, in order, and where they go.")] input: ReorderWorkItemsInput,
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
        #[graphql(desc = "The board's unit, the column and its new limit.")]
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
        #[graphql(desc = "The board's unit and its new policy.")] input: SetWipPolicyInput,
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
