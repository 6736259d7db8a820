//! A stretch of time a work item spent in `ACTIVE` or `WAITING` states
//! (derived from the transitions; see the `flow_facts` migration).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "flow_wip")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub work_item_id: i64,
    pub unit_id: i64,
    pub portfolio_id: Option<i64>,
    pub program_id: Option<i64>,
    pub team_id: Option<i64>,
    /// Kind of the owning unit.
    pub level: String,
    pub item_type: String,
    pub flow_type: String,
    /// The item's first entry into `ACTIVE` or `WAITING`, epoch milliseconds.
    pub start_ms: i64,
    /// `[from_ms, to_ms)`; `to_ms` is the year 9999 while the item is in
    /// progress.
    pub from_ms: i64,
    pub to_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
