//! A key result of an objective: a measure with a start and a target value.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "key_result")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub objective_id: i64,
    #[sea_orm(unique)]
    pub key: String,
    pub title: String,
    pub start_value: f64,
    pub target_value: f64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
