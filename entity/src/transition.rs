//! One state change of a work item. Append-only: the source of every flow metric.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "transition")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub work_item_id: i64,
    pub from_state: Option<String>,
    pub to_state: String,
    pub to_category: String,
    pub at: DateTimeUtc,
    /// The user who made the change, when it was made through the API.
    pub actor_id: Option<i64>,
    /// The system it came from (`jira`, `github`, `seed`, ...), for ingested history.
    pub source: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
