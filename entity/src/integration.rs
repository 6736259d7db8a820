//! A configured integration: the shared secret its webhooks are verified with.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "integration")]
pub struct Model {
    /// `github`, `gitlab` or `jira`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub source: String,
    /// HMAC key (GitHub) or token (GitLab, Jira). Needed in clear to verify.
    pub secret: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
