//! API keys for integrations: shown once, stored as a SHA-256 digest, and
//! optionally limited to one unit's subtree.

use chrono::Utc;
use entity::{api_key, unit};
use rand::RngCore;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, Set,
};
use sha2::{Digest, Sha256};

use super::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::events::{ChangeKind, DomainEvent, EventBus};

/// Every key starts with this, so logs and scanners can recognise one.
pub const PREFIX: &str = "gk_";

/// How a secret is stored and looked up.
pub(crate) fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new key: the stored row and the secret, which is never stored.
#[derive(Debug)]
pub struct NewKey {
    pub key: api_key::Model,
    pub secret: String,
}

/// # Errors
/// `FORBIDDEN` unless admin; `BAD_USER_INPUT` for a blank name; `NOT_FOUND`
/// for an unknown unit.
pub async fn create(ctx: Ctx<'_>, name: &str, unit_id: Option<i64>) -> ApiResult<NewKey> {
    ctx.policy.require_admin()?;
    let creator = ctx.policy.viewer()?.user.id;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::bad_input("name must have 1 to 200 characters"));
    }
    if let Some(u) = unit_id {
        unit::Entity::find_by_id(u)
            .one(ctx.db)
            .await?
            .ok_or_else(|| ApiError::not_found("unit"))?;
    }
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!(
        "{PREFIX}{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let key = api_key::ActiveModel {
        name: Set(name.to_owned()),
        prefix: Set(secret.chars().take(10).collect()),
        secret_hash: Set(digest(&secret)),
        unit_id: Set(unit_id),
        created_by: Set(creator),
        created_at: Set(Utc::now()),
        revoked_at: Set(None),
        ..Default::default()
    }
    .insert(ctx.db)
    .await?;
    Ok(NewKey { key, secret })
}

/// Revokes a key; replicas forget it at once (`ApiKeyRevoked` on `bus`).
///
/// # Errors
/// `FORBIDDEN` unless admin; `NOT_FOUND` for an unknown key.
pub async fn revoke(ctx: Ctx<'_>, bus: &EventBus, id: i64) -> ApiResult<api_key::Model> {
    ctx.policy.require_admin()?;
    let key = api_key::Entity::find_by_id(id)
        .one(ctx.db)
        .await?
        .ok_or_else(|| ApiError::not_found("API key"))?;
    if key.revoked_at.is_some() {
        return Ok(key);
    }
    let mut m = key.into_active_model();
    m.revoked_at = Set(Some(Utc::now()));
    let revoked = m.update(ctx.db).await?;
    bus.publish(DomainEvent::new(
        ChangeKind::ApiKeyRevoked,
        revoked.unit_id.unwrap_or(0),
        revoked.id,
    ));
    Ok(revoked)
}

/// # Errors
/// `FORBIDDEN` unless admin.
pub async fn list(ctx: Ctx<'_>) -> ApiResult<Vec<api_key::Model>> {
    ctx.policy.require_admin()?;
    Ok(api_key::Entity::find()
        .order_by_asc(api_key::Column::Id)
        .all(ctx.db)
        .await?)
}

/// # Errors
/// `UNAUTHENTICATED` or `FORBIDDEN` unless admin; database errors.
pub async fn find(ctx: Ctx<'_>, id: i64) -> ApiResult<Option<api_key::Model>> {
    if !ctx.policy.is_admin() {
        ctx.policy.viewer()?;
        return Ok(None);
    }
    Ok(api_key::Entity::find_by_id(id).one(ctx.db).await?)
}

/// The live key behind a secret.
///
/// # Errors
/// `UNAUTHENTICATED` for an unknown or revoked key.
pub async fn authenticate(db: &DatabaseConnection, secret: &str) -> ApiResult<api_key::Model> {
    api_key::Entity::find()
        .filter(api_key::Column::SecretHash.eq(digest(secret)))
        .filter(api_key::Column::RevokedAt.is_null())
        .one(db)
        .await?
        .ok_or(ApiError::InvalidToken("invalid or revoked API key"))
}
