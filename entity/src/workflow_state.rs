//! One state (board column) of a workflow, mapped to a flow-state category.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "workflow_state")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workflow_id: i64,
    pub name: String,
    /// `NEW`, `ACTIVE`, `WAITING`, `DONE` or `CANCELED`.
    pub category: String,
    pub position: i32,
    pub wip_limit: Option<i32>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
