//! A work item's entry into a `DONE` state, with its flow facts as of that
//! completion (derived from the transitions; see the `flow_facts` migration).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "flow_completion")]
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
    /// Epoch milliseconds, as are the other instants.
    pub created_ms: i64,
    /// First entry into `ACTIVE` or `WAITING` before the completion.
    pub start_ms: Option<i64>,
    pub completed_ms: i64,
    /// The next transition after the completion; the year 9999 while none.
    pub left_ms: i64,
    /// Milliseconds in `ACTIVE` states between start and completion.
    pub active_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
