//! Changes a deployment ships.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "deployment_change")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub deployment_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub change_id: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
