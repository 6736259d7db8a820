//! One stage of a value stream, at its position in the stream's order.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "value_stream_stage")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub value_stream_id: i64,
    /// 0 for the first stage.
    pub position: i32,
    pub name: String,
    pub value_adding: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
