//! Users and their memberships: the `User`, `Membership` and `Viewer`
//! types, `me`, signing in and out, and the admin mutations on users and
//! roles.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{membership, user};

use super::ids::{self, kind};
use super::rc;
use super::units::Unit;
use crate::domain::Role;
use crate::error::{ApiError, GqlResult};
use crate::service::users;

/// A person.
#[derive(Clone)]
pub struct User(pub user::Model);

/// A person who can sign in. Users appear where data you may read names them
/// (assignees, actors, members); `node(id:)` finds only yourself unless you
/// are an admin.
#[Object]
impl User {
    /// Opaque global id, for `node(id:)` and for arguments that take a user.
    pub async fn id(&self) -> ID {
        ids::encode(kind::USER, self.0.id)
    }

    /// Email address, stored lower-cased; unique regardless of case.
    async fn email(&self) -> &str {
        &self.0.email
    }

    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// False once an admin has deactivated the account; the user then loses
    /// access at their next request.
    async fn active(&self) -> bool {
        self.0.active
    }

    /// Roles held. Visible to admins and to the user; empty for anyone else.
    async fn memberships(&self, ctx: &Context<'_>) -> GqlResult<Vec<Membership>> {
        let r = rc(ctx)?;
        Ok(users::memberships_of(r.svc(), self.0.id)
            .await?
            .into_iter()
            .map(Membership)
            .collect())
    }
}

/// A role held by a user on a unit.
#[derive(Clone)]
pub struct Membership(pub membership::Model);

/// A role held by a user on a unit. Visible to admins and to the user who
/// holds it.
#[Object]
impl Membership {
    /// Opaque global id, for `node(id:)` and for revoking the membership.
    pub async fn id(&self) -> ID {
        ids::encode(kind::MEMBERSHIP, self.0.id)
    }

    /// What the membership allows.
    async fn role(&self) -> GqlResult<Role> {
        Ok(Role::parse(&self.0.role)?)
    }

    /// When the role was granted (UTC, RFC 3339).
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// The user who holds the role.
    async fn user(&self, ctx: &Context<'_>) -> GqlResult<User> {
        rc(ctx)?
            .users
            .load_one(self.0.user_id)
            .await?
            .map(User)
            .ok_or_else(|| ApiError::not_found("user").into())
    }

    /// The unit the role is held on. The role's scope is this unit and every
    /// unit beneath it.
    async fn unit(&self, ctx: &Context<'_>) -> GqlResult<Unit> {
        rc(ctx)?
            .units
            .load_one(self.0.unit_id)
            .await?
            .map(Unit)
            .ok_or_else(|| ApiError::not_found("unit").into())
    }
}

/// The caller: who they are and the roles they hold.
#[derive(SimpleObject)]
pub struct Viewer {
    /// The signed-in user.
    pub user: User,
    /// The caller's roles and where they hold them.
    pub memberships: Vec<Membership>,
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

#[derive(Default)]
pub struct UsersQuery;

#[Object]
impl UsersQuery {
    /// The caller: who they are and the roles they hold, and where.
    async fn me(&self, ctx: &Context<'_>) -> GqlResult<Viewer> {
        let r = rc(ctx)?;
        let viewer = r.policy.viewer()?;
        let memberships = users::memberships_of(r.svc(), viewer.user.id).await?;
        Ok(Viewer {
            user: User(viewer.user.clone()),
            memberships: memberships.into_iter().map(Membership).collect(),
        })
    }
}

#[derive(Default)]
pub struct UsersMutation;

#[Object]
impl UsersMutation {
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
        users::logout(&r.db, &r.services.bus, viewer).await?;
        Ok(true)
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
        let user = users::update(r.svc(), &r.services.bus, id, input.name, input.active).await?;
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
        let m = users::grant(r.svc(), &r.services.bus, user, unit, input.role).await?;
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
        let m = users::revoke(r.svc(), &r.services.bus, id).await?;
        Ok(RevokeMembershipPayload {
            revoked_membership_id: ids::encode(kind::MEMBERSHIP, m.id),
        })
    }
}
