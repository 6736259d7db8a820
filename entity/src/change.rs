//! A merged pull or merge request (DESIGN §1.5).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "change")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub unit_id: i64,
    pub source: String,
    pub external_id: String,
    pub repository: String,
    pub title: Option<String>,
    pub url: Option<String>,
    pub first_commit_at: Option<DateTimeUtc>,
    pub opened_at: Option<DateTimeUtc>,
    pub merged_at: DateTimeUtc,
    /// The merge commit, lower-case hex, when the source reports it.
    pub merge_sha: Option<String>,
    /// Derived: the first successful production deployment that shipped
    /// it (by finish time, then id).
    pub first_deployment_id: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
