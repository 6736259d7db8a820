//! A node of the organisation tree (organisation → portfolio → program → team).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "unit")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub key: String,
    pub name: String,
    /// `ORGANIZATION`, `PORTFOLIO`, `PROGRAM` or `TEAM`.
    pub kind: String,
    pub parent_id: Option<i64>,
    /// Depth in the tree: 0 for the organisation.
    pub depth: i32,
    /// Counter behind generated work item keys (`KEY-1`, `KEY-2`, ...).
    pub next_item_number: i64,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
