//! A production incident, optionally caused by a deployment.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "incident")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub unit_id: i64,
    pub source: String,
    pub external_id: String,
    pub severity: String,
    pub opened_at: DateTimeUtc,
    pub resolved_at: Option<DateTimeUtc>,
    pub deployment_id: Option<i64>,
    /// Derived: the deployment that caused it, the named one or else the
    /// latest successful production deployment of its unit before it
    /// opened.
    pub cause_deployment_id: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
