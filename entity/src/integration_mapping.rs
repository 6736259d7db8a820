//! One translation rule of an integration: a native value (repository,
//! label, status, environment) to a Gemba value (unit key, item type, state,
//! environment).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "integration_mapping")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub source: String,
    /// `UNIT`, `ITEM_TYPE`, `STATE` or `ENVIRONMENT`.
    pub kind: String,
    pub external: String,
    pub target: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
