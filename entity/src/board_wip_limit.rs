//! A board's own WIP limit for one column, overriding its workflow's.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "board_wip_limit")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub unit_id: i64,
    /// The column: a state name of the unit's effective workflow.
    pub state: String,
    /// `None`: this board's column has no limit, whatever the workflow says.
    pub wip_limit: Option<i32>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
