//! Integration configuration: webhook secrets and the mappings from native
//! values to Gemba's (DESIGN §4). Admins only.

use chrono::Utc;
use entity::{integration, integration_mapping, unit};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::Ctx;
use crate::domain::{MappingKind, WorkItemType};
use crate::error::{ApiError, ApiResult};

/// Sources with a webhook adapter.
pub const SOURCES: &[&str] = &["github", "gitlab", "jira"];

fn check_source(source: &str) -> ApiResult<()> {
    if SOURCES.contains(&source) {
        Ok(())
    } else {
        Err(ApiError::bad_input(format!(
            "source must be one of {}",
            SOURCES.join(", ")
        )))
    }
}

/// Sets the webhook secret of a source.
///
/// # Errors
/// `FORBIDDEN` unless admin; `BAD_USER_INPUT` for an unknown source or a
/// secret shorter than 16 characters.
pub async fn configure(ctx: Ctx<'_>, source: &str, secret: &str) -> ApiResult<integration::Model> {
    ctx.policy.require_admin()?;
    check_source(source)?;
    if secret.len() < 16 || secret.len() > 256 {
        return Err(ApiError::bad_input(
            "the secret must have 16 to 256 characters",
        ));
    }
    let now = Utc::now();
    integration::Entity::insert(integration::ActiveModel {
        source: Set(source.to_owned()),
        secret: Set(secret.to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(integration::Column::Source)
            .update_columns([integration::Column::Secret, integration::Column::UpdatedAt])
            .to_owned(),
    )
    .exec_without_returning(ctx.db)
    .await?;
    integration::Entity::find_by_id(source.to_owned())
        .one(ctx.db)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("integration vanished")))
}

/// # Errors
/// `FORBIDDEN` unless admin.
pub async fn list(ctx: Ctx<'_>) -> ApiResult<Vec<integration::Model>> {
    ctx.policy.require_admin()?;
    Ok(integration::Entity::find()
        .order_by_asc(integration::Column::Source)
        .all(ctx.db)
        .await?)
}

/// Creates or replaces the mapping of `external` for a source and kind.
///
/// # Errors
/// `FORBIDDEN` unless admin; `BAD_USER_INPUT` for a target that does not fit
/// the kind (an unknown unit key, item type or environment name).
pub async fn set_mapping(
    ctx: Ctx<'_>,
    source: &str,
    kind: MappingKind,
    external: &str,
    target: &str,
) -> ApiResult<integration_mapping::Model> {
    ctx.policy.require_admin()?;
    check_source(source)?;
    if external.trim().is_empty() || external.len() > 255 || target.trim().is_empty() {
        return Err(ApiError::bad_input("external and target must not be blank"));
    }
    match kind {
        MappingKind::Unit => {
            unit::Entity::find()
                .filter(unit::Column::Key.eq(target))
                .one(ctx.db)
                .await?
                .ok_or_else(|| ApiError::bad_input(format!("unknown unit {target:?}")))?;
        }
        MappingKind::ItemType => {
            if !WorkItemType::ALL.iter().any(|t| t.as_str() == target) {
                return Err(ApiError::bad_input(format!(
                    "unknown work item type {target:?}"
                )));
            }
        }
        MappingKind::Environment => {
            if !target.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
                return Err(ApiError::bad_input(
                    "an environment is an upper-case name such as PRODUCTION",
                ));
            }
        }
        MappingKind::State => {}
    }
    integration_mapping::Entity::insert(integration_mapping::ActiveModel {
        source: Set(source.to_owned()),
        kind: Set(kind.as_str().to_owned()),
        external: Set(external.to_owned()),
        target: Set(target.to_owned()),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::columns([
            integration_mapping::Column::Source,
            integration_mapping::Column::Kind,
            integration_mapping::Column::External,
        ])
        .update_column(integration_mapping::Column::Target)
        .to_owned(),
    )
    .exec_without_returning(ctx.db)
    .await?;
    integration_mapping::Entity::find()
        .filter(integration_mapping::Column::Source.eq(source))
        .filter(integration_mapping::Column::Kind.eq(kind.as_str()))
        .filter(integration_mapping::Column::External.eq(external))
        .one(ctx.db)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("mapping vanished")))
}

/// # Errors
/// `FORBIDDEN` unless admin; `NOT_FOUND` for an unknown mapping.
pub async fn delete_mapping(ctx: Ctx<'_>, id: i64) -> ApiResult<integration_mapping::Model> {
    ctx.policy.require_admin()?;
    let m = integration_mapping::Entity::find_by_id(id)
        .one(ctx.db)
        .await?
        .ok_or_else(|| ApiError::not_found("mapping"))?;
    integration_mapping::Entity::delete_by_id(id)
        .exec(ctx.db)
        .await?;
    Ok(m)
}

/// # Errors
/// `FORBIDDEN` unless admin.
pub async fn mappings(
    ctx: Ctx<'_>,
    source: Option<&str>,
) -> ApiResult<Vec<integration_mapping::Model>> {
    ctx.policy.require_admin()?;
    let mut q = integration_mapping::Entity::find();
    if let Some(s) = source {
        q = q.filter(integration_mapping::Column::Source.eq(s));
    }
    Ok(q.order_by_asc(integration_mapping::Column::Id)
        .all(ctx.db)
        .await?)
}

/// The target of a native value, if mapped.
///
/// # Errors
/// Database errors only.
pub async fn lookup(
    db: &impl ConnectionTrait,
    source: &str,
    kind: MappingKind,
    external: &str,
) -> ApiResult<Option<String>> {
    Ok(integration_mapping::Entity::find()
        .filter(integration_mapping::Column::Source.eq(source))
        .filter(integration_mapping::Column::Kind.eq(kind.as_str()))
        .filter(integration_mapping::Column::External.eq(external))
        .one(db)
        .await?
        .map(|m| m.target))
}

/// The webhook secret of a source, if configured.
///
/// # Errors
/// Database errors only.
pub async fn secret(db: &impl ConnectionTrait, source: &str) -> ApiResult<Option<String>> {
    Ok(integration::Entity::find_by_id(source.to_owned())
        .one(db)
        .await?
        .map(|i| i.secret))
}
