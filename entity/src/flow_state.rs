//! One visit of a work item to a state (derived from the transitions; see
//! the `flow_states` migration).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "flow_state")]
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
    pub state: String,
    pub category: String,
    /// `[from_ms, to_ms)`, epoch milliseconds; `to_ms` is the year 9999
    /// while the item is still in the state.
    pub from_ms: i64,
    pub to_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
