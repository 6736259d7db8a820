//! An item's identity in another system, so the same item arriving twice from
//! an integration is updated, not duplicated.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "external_ref")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub work_item_id: i64,
    pub source: String,
    pub external_id: String,
    pub url: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
