//! A workflow: the ordered states of a unit's board. A unit without its own
//! workflow inherits the nearest ancestor's.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "workflow")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The unit that owns this workflow (one workflow per unit at most).
    #[sea_orm(unique)]
    pub unit_id: i64,
    pub name: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
