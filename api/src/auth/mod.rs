//! Who is calling: passwords, tokens, login limits and the [`Viewer`] built
//! for each authenticated request.

pub mod cache;
pub mod password;
pub mod rate_limit;
pub mod token;

use std::collections::HashMap;

use entity::{membership, revoked_token, unit, unit_closure, user};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::domain::{Role, UnitKind};
use crate::error::{ApiError, ApiResult};
pub use cache::AuthCache;
pub use token::{TokenInfo, TokenKeys};

/// One membership of the viewer, with what the policy needs to know of its unit.
#[derive(Clone, Debug)]
pub struct Grant {
    pub membership_id: i64,
    pub role: Role,
    pub unit_id: i64,
    pub unit_kind: UnitKind,
    /// Strict ancestors of the unit (nearest last).
    pub ancestors: Vec<i64>,
}

/// The authenticated caller of one request. Loaded from the database, or
/// on the request path from the replica's [`AuthCache`], which forgets it as
/// soon as a membership granted or revoked, a deactivation or a logout is
/// published, so such a change applies at the next request.
#[derive(Clone, Debug)]
pub struct Viewer {
    pub user: user::Model,
    pub grants: Vec<Grant>,
    pub token: TokenInfo,
}

/// Verifies a bearer token and loads the viewer behind it from the
/// database (no cache: see [`AuthCache::viewer`] for the request path).
///
/// # Errors
/// `UNAUTHENTICATED` for a bad, expired or revoked token or an inactive user.
pub async fn authenticate(
    db: &DatabaseConnection,
    keys: &TokenKeys,
    bearer: &str,
) -> ApiResult<Viewer> {
    load_viewer(db, keys.verify(bearer)?).await
}

/// The viewer behind a verified token: checks it is not revoked and its
/// user active, and loads the grants.
///
/// # Errors
/// `UNAUTHENTICATED` for a revoked token or an inactive user.
async fn load_viewer(db: &DatabaseConnection, token: TokenInfo) -> ApiResult<Viewer> {
    if revoked_token::Entity::find_by_id(token.jti.clone())
        .one(db)
        .await?
        .is_some()
    {
        return Err(ApiError::InvalidToken("token revoked"));
    }
    let user = user::Entity::find_by_id(token.user_id)
        .one(db)
        .await?
        .filter(|u| u.active)
        .ok_or(ApiError::InvalidToken("account is not active"))?;
    let grants = load_grants(db, user.id).await?;
    Ok(Viewer {
        user,
        grants,
        token,
    })
}

/// Loads a user's memberships with their units' kinds and ancestors.
///
/// # Errors
/// Database errors only.
pub async fn load_grants(db: &DatabaseConnection, user_id: i64) -> ApiResult<Vec<Grant>> {
    let memberships = membership::Entity::find()
        .filter(membership::Column::UserId.eq(user_id))
        .all(db)
        .await?;
    if memberships.is_empty() {
        return Ok(Vec::new());
    }
    let unit_ids: Vec<i64> = memberships.iter().map(|m| m.unit_id).collect();
    let kinds: HashMap<i64, String> = unit::Entity::find()
        .filter(unit::Column::Id.is_in(unit_ids.clone()))
        .all(db)
        .await?
        .into_iter()
        .map(|u| (u.id, u.kind))
        .collect();
    let mut closure = unit_closure::Entity::find()
        .filter(unit_closure::Column::DescendantId.is_in(unit_ids))
        .filter(unit_closure::Column::Depth.gt(0))
        .all(db)
        .await?;
    // Farthest ancestor first.
    closure.sort_by_key(|c| std::cmp::Reverse(c.depth));
    let mut grants = Vec::with_capacity(memberships.len());
    for m in memberships {
        let Some(kind) = kinds.get(&m.unit_id) else {
            continue;
        };
        grants.push(Grant {
            membership_id: m.id,
            role: Role::parse(&m.role)?,
            unit_id: m.unit_id,
            unit_kind: UnitKind::parse(kind)?,
            ancestors: closure
                .iter()
                .filter(|c| c.descendant_id == m.unit_id)
                .map(|c| c.ancestor_id)
                .collect(),
        });
    }
    Ok(grants)
}
