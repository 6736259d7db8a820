//! API keys, the credentials of integrations: the `ApiKey` type, the
//! `apiKeys` list, and creating and revoking keys.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::api_key;

use super::ids::{self, kind};
use super::rc;
use super::units::Unit;
use crate::error::GqlResult;
use crate::service::api_keys;

/// An integration's credential (its secret is shown once, at creation).
#[derive(Clone)]
pub struct ApiKey(pub api_key::Model);

/// An integration's credential (its secret is shown once, at creation). Only
/// admins may see API keys.
#[Object]
impl ApiKey {
    /// Opaque global id, for `node(id:)` and for revoking the key.
    pub async fn id(&self) -> ID {
        ids::encode(kind::API_KEY, self.0.id)
    }

    /// Name given at creation, to tell keys apart.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// The secret's first characters, to recognise the key.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }

    /// When set, the key may only write inside this unit's subtree; null when
    /// it may write anywhere.
    async fn unit(&self, ctx: &Context<'_>) -> GqlResult<Option<Unit>> {
        let Some(u) = self.0.unit_id else {
            return Ok(None);
        };
        Ok(rc(ctx)?.units.load_one(u).await?.map(Unit))
    }

    /// When the key was created (UTC, RFC 3339).
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When the key was revoked (UTC, RFC 3339); null while it is valid.
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
}

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

#[derive(Default)]
pub struct ApiKeysQuery;

#[Object]
impl ApiKeysQuery {
    /// Every API key, revoked ones included, oldest first. Admins only
    /// (`FORBIDDEN` for others); secrets are never returned.
    async fn api_keys(&self, ctx: &Context<'_>) -> GqlResult<Vec<ApiKey>> {
        Ok(api_keys::list(rc(ctx)?.svc())
            .await?
            .into_iter()
            .map(ApiKey)
            .collect())
    }
}

#[derive(Default)]
pub struct ApiKeysMutation;

#[Object]
impl ApiKeysMutation {
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
            api_key: ApiKey(api_keys::revoke(r.svc(), &r.services.bus, id).await?),
        })
    }
}
