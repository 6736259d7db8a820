//! Users, memberships and sessions.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use entity::{membership, revoked_token, unit, unit_closure, user};
use sea_orm::sea_query::Query;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, Set,
};

use super::Ctx;
use crate::auth::rate_limit::LoginLimiter;
use crate::auth::{Viewer, password, token::TokenKeys};
use crate::domain::{Role, UnitKind};
use crate::error::{ApiError, ApiResult};
use crate::events::{ChangeKind, DomainEvent, EventBus};
use crate::policy::UnitPath;

/// Normalises and checks an email address.
///
/// # Errors
/// `BAD_USER_INPUT` for something that is not an address.
pub fn normalise_email(email: &str) -> ApiResult<String> {
    let e = email.trim().to_lowercase();
    let valid = e.len() <= 320
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        })
        && !e.chars().any(char::is_whitespace);
    if valid {
        Ok(e)
    } else {
        Err(ApiError::bad_input("email is not a valid address"))
    }
}

/// Creates a user without a policy check: for the CLI and the seed, which
/// act as the operator.
///
/// # Errors
/// `BAD_USER_INPUT` for invalid fields, `CONFLICT` for an email in use.
pub async fn insert_user(
    db: &impl ConnectionTrait,
    email: &str,
    name: &str,
    password_text: String,
) -> ApiResult<user::Model> {
    let email = normalise_email(email)?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::bad_input("name must have 1 to 200 characters"));
    }
    if user::Entity::find()
        .filter(user::Column::Email.eq(&email))
        .one(db)
        .await?
        .is_some()
    {
        return Err(ApiError::Conflict(format!(
            "a user with email {email} already exists"
        )));
    }
    let hash = password::hash(password_text).await?;
    Ok(user::ActiveModel {
        email: Set(email),
        name: Set(name.to_owned()),
        password_hash: Set(hash),
        active: Set(true),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await?)
}

/// Grants a role without a policy check (CLI, seed).
///
/// # Errors
/// `BAD_USER_INPUT` when the role does not fit the unit's level, `CONFLICT`
/// when the user already holds it there.
pub async fn insert_membership(
    db: &impl ConnectionTrait,
    user_id: i64,
    unit: &unit::Model,
    role: Role,
) -> ApiResult<membership::Model> {
    let kind = UnitKind::parse(&unit.kind)?;
    if !role.allowed_on(kind) {
        return Err(ApiError::bad_input(format!(
            "{} cannot be granted on a {} unit",
            role.as_str(),
            kind.as_str()
        )));
    }
    let existing = membership::Entity::find()
        .filter(membership::Column::UserId.eq(user_id))
        .filter(membership::Column::UnitId.eq(unit.id))
        .filter(membership::Column::Role.eq(role.as_str()))
        .one(db)
        .await?;
    if existing.is_some() {
        return Err(ApiError::Conflict(
            "the user already holds this role on this unit".into(),
        ));
    }
    Ok(membership::ActiveModel {
        user_id: Set(user_id),
        unit_id: Set(unit.id),
        role: Set(role.as_str().to_owned()),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await?)
}

/// # Errors
/// `FORBIDDEN` unless admin; see [`insert_user`].
pub async fn create(
    ctx: Ctx<'_>,
    email: &str,
    name: &str,
    password_text: String,
) -> ApiResult<user::Model> {
    ctx.policy.require_admin()?;
    insert_user(ctx.db, email, name, password_text).await
}

/// Changes a user's name or active flag. A deactivated user loses access at
/// their next request: the `AccessChanged` event drops the user from every
/// replica's authentication cache (`auth::cache`); their open
/// subscriptions re-check it at once (`AccessChanged` on `bus`).
///
/// # Errors
/// `FORBIDDEN` unless admin, `NOT_FOUND` for an unknown user.
pub async fn update(
    ctx: Ctx<'_>,
    bus: &EventBus,
    id: i64,
    name: Option<String>,
    active: Option<bool>,
) -> ApiResult<user::Model> {
    ctx.policy.require_admin()?;
    let u = user::Entity::find_by_id(id)
        .one(ctx.db)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let mut m = u.into_active_model();
    if let Some(n) = name {
        let n = n.trim().to_owned();
        if n.is_empty() || n.chars().count() > 200 {
            return Err(ApiError::bad_input("name must have 1 to 200 characters"));
        }
        m.name = Set(n);
    }
    if let Some(a) = active {
        m.active = Set(a);
    }
    let updated = m.update(ctx.db).await?;
    access_changed(bus, updated.id);
    Ok(updated)
}

/// Tells open subscriptions of `user_id` to re-check their access.
fn access_changed(bus: &EventBus, user_id: i64) {
    bus.publish(DomainEvent::new(ChangeKind::AccessChanged, 0, user_id));
}

/// A user, when the caller may see it: admins see everyone, others themselves.
///
/// # Errors
/// `UNAUTHENTICATED`; database errors.
pub async fn find(ctx: Ctx<'_>, id: i64) -> ApiResult<Option<user::Model>> {
    let viewer = ctx.policy.viewer()?;
    if !ctx.policy.is_admin() && viewer.user.id != id {
        return Ok(None);
    }
    Ok(user::Entity::find_by_id(id).one(ctx.db).await?)
}

/// Users by id, for fields that name a user (assignee, actor) on data the
/// caller already may read.
///
/// # Errors
/// Database errors only.
pub async fn find_many_unchecked(
    db: &DatabaseConnection,
    ids: &[i64],
) -> ApiResult<Vec<user::Model>> {
    Ok(user::Entity::find()
        .filter(user::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?)
}

/// Memberships of a user, when the caller may see them (admins, or the user).
///
/// # Errors
/// `UNAUTHENTICATED`; database errors.
pub async fn memberships_of(ctx: Ctx<'_>, user_id: i64) -> ApiResult<Vec<membership::Model>> {
    let viewer = ctx.policy.viewer()?;
    if !ctx.policy.is_admin() && viewer.user.id != user_id {
        return Ok(Vec::new());
    }
    memberships_unchecked(ctx.db, user_id).await
}

/// Memberships of a user who has just proven who they are (login).
///
/// # Errors
/// Database errors only.
pub async fn memberships_unchecked(
    db: &DatabaseConnection,
    user_id: i64,
) -> ApiResult<Vec<membership::Model>> {
    Ok(membership::Entity::find()
        .filter(membership::Column::UserId.eq(user_id))
        .order_by_asc(membership::Column::Id)
        .all(db)
        .await?)
}

/// A membership, when the caller may see it.
///
/// # Errors
/// `UNAUTHENTICATED`; database errors.
pub async fn find_membership(ctx: Ctx<'_>, id: i64) -> ApiResult<Option<membership::Model>> {
    let viewer = ctx.policy.viewer()?;
    let m = membership::Entity::find_by_id(id).one(ctx.db).await?;
    Ok(m.filter(|m| ctx.policy.is_admin() || m.user_id == viewer.user.id))
}

/// Grants `user_id` a role on a unit; their open subscriptions re-check
/// their access (`AccessChanged` on `bus`).
///
/// # Errors
/// `FORBIDDEN` unless admin; `NOT_FOUND` for an unknown user or unit; see
/// [`insert_membership`].
pub async fn grant(
    ctx: Ctx<'_>,
    bus: &EventBus,
    user_id: i64,
    unit_id: i64,
    role: Role,
) -> ApiResult<membership::Model> {
    ctx.policy.require_admin()?;
    user::Entity::find_by_id(user_id)
        .one(ctx.db)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let unit = unit::Entity::find_by_id(unit_id)
        .one(ctx.db)
        .await?
        .ok_or_else(|| ApiError::not_found("unit"))?;
    let m = insert_membership(ctx.db, user_id, &unit, role).await?;
    access_changed(bus, m.user_id);
    Ok(m)
}

/// Removes a membership; its member's open subscriptions re-check their
/// access (`AccessChanged` on `bus`).
///
/// # Errors
/// `FORBIDDEN` unless admin; `NOT_FOUND` for an unknown membership.
pub async fn revoke(
    ctx: Ctx<'_>,
    bus: &EventBus,
    membership_id: i64,
) -> ApiResult<membership::Model> {
    ctx.policy.require_admin()?;
    let m = membership::Entity::find_by_id(membership_id)
        .one(ctx.db)
        .await?
        .ok_or_else(|| ApiError::not_found("membership"))?;
    membership::Entity::delete_by_id(m.id).exec(ctx.db).await?;
    access_changed(bus, m.user_id);
    Ok(m)
}

/// A fresh session.
#[derive(Debug)]
pub struct Session {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user: user::Model,
}

/// Checks credentials and issues a token. Unknown emails cost the same as
/// wrong passwords; repeated failures per email or address are refused with
/// `RATE_LIMITED`.
///
/// # Errors
/// `UNAUTHENTICATED` for bad credentials or an inactive user; `RATE_LIMITED`.
pub async fn login(
    db: &DatabaseConnection,
    keys: &TokenKeys,
    limiter: &LoginLimiter,
    ttl: std::time::Duration,
    email: &str,
    password_text: String,
    address: Option<IpAddr>,
) -> ApiResult<Session> {
    let email = email.trim().to_lowercase();
    if !limiter.begin_attempt(&email, address) {
        return Err(ApiError::RateLimited);
    }
    let found = if email.len() <= 320 && password_text.len() <= 1024 {
        user::Entity::find()
            .filter(user::Column::Email.eq(&email))
            .one(db)
            .await?
    } else {
        None
    };
    let ok = password::verify(
        password_text,
        found.as_ref().map(|u| u.password_hash.clone()),
    )
    .await?;
    match found {
        Some(user) if ok && user.active => {
            limiter.record_success(&email, address);
            let (token, info) = keys.issue(user.id, ttl)?;
            Ok(Session {
                token,
                expires_at: info.expires_at,
                user,
            })
        }
        // The attempt was counted as a failure when it began.
        _ => Err(ApiError::InvalidToken("invalid email or password")),
    }
}

/// Revokes the token the caller used; their open subscriptions re-check
/// their access (`AccessChanged` on `bus`).
///
/// # Errors
/// `UNAUTHENTICATED` for anonymous callers.
pub async fn logout(db: &DatabaseConnection, bus: &EventBus, viewer: &Viewer) -> ApiResult<()> {
    let exists = revoked_token::Entity::find_by_id(viewer.token.jti.clone())
        .one(db)
        .await?;
    if exists.is_none() {
        revoked_token::ActiveModel {
            jti: Set(viewer.token.jti.clone()),
            user_id: Set(viewer.user.id),
            expires_at: Set(viewer.token.expires_at),
            revoked_at: Set(Utc::now()),
        }
        .insert(db)
        .await?;
    }
    // Expired revocations are no longer needed: the token is refused anyway.
    revoked_token::Entity::delete_many()
        .filter(revoked_token::Column::ExpiresAt.lt(Utc::now() - chrono::Duration::minutes(5)))
        .exec(db)
        .await?;
    access_changed(bus, viewer.user.id);
    Ok(())
}

/// Whether `user_id` may be assigned work of `unit`: an active user with a
/// membership on the unit, above it or below it. Anyone else reads as not
/// found, so assigning cannot probe the user directory.
pub(crate) async fn is_eligible_assignee(
    db: &impl ConnectionTrait,
    user_id: i64,
    unit: &UnitPath,
) -> ApiResult<bool> {
    let Some(u) = user::Entity::find_by_id(user_id).one(db).await? else {
        return Ok(false);
    };
    if !u.active {
        return Ok(false);
    }
    let mut line = unit.ancestors.clone();
    line.push(unit.id);
    let below = Query::select()
        .column(unit_closure::Column::DescendantId)
        .from(unit_closure::Entity)
        .and_where(unit_closure::Column::AncestorId.eq(unit.id))
        .to_owned();
    let found = membership::Entity::find()
        .filter(membership::Column::UserId.eq(user_id))
        .filter(
            sea_orm::Condition::any()
                .add(membership::Column::UnitId.is_in(line))
                .add(membership::Column::UnitId.in_subquery(below)),
        )
        .one(db)
        .await?;
    Ok(found.is_some())
}
