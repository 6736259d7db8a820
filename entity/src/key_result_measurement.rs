//! One measured value of a key result (the `key_result.measured` event).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "key_result_measurement")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub key_result_id: i64,
    pub value: f64,
    pub at: DateTimeUtc,
    pub source: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
