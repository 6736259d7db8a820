//! A development value stream supports an operational one.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "value_stream_support")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub development_id: i64,
    pub operational_id: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
