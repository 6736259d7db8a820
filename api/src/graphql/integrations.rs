//! Integrations: each source's webhook secret and the mappings that
//! translate its native values into Gemba's.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::rc;
use crate::domain::MappingKind;
use crate::error::GqlResult;
use crate::service::integrations;

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

#[derive(Default)]
pub struct IntegrationsQuery;

#[Object]
impl IntegrationsQuery {
    /// The configured integrations, one per source, by source name. Admins
    /// only (`FORBIDDEN` for others); webhook secrets are never returned.
    async fn integrations(&self, ctx: &Context<'_>) -> GqlResult<Vec<Integration>> {
        Ok(integrations::list(rc(ctx)?.svc())
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// The rules translating integrations' native values into Gemba's, of one
    /// source or all, oldest first. Admins only (`FORBIDDEN` for others).
    async fn integration_mappings(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Only this source's mappings (`github`, `gitlab` or `jira`); every source's when omitted."
        )]
        source: Option<String>,
    ) -> GqlResult<Vec<IntegrationMapping>> {
        integrations::mappings(rc(ctx)?.svc(), source.as_deref())
            .await?
            .into_iter()
            .map(IntegrationMapping::from_model)
            .collect()
    }
}

#[derive(Default)]
pub struct IntegrationsMutation;

#[Object]
impl IntegrationsMutation {
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
}
