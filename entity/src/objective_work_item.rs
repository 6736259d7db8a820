//! An epic or feature linked to an objective it serves (DESIGN §3.7).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "objective_work_item")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub objective_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub work_item_id: i64,
    pub linked_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
