//! A unit of work (epic, feature, story, task, defect, risk, debt).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "work_item")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub key: String,
    pub title: String,
    pub description: Option<String>,
    /// `EPIC`, `FEATURE`, `STORY`, `TASK`, `DEFECT`, `RISK` or `DEBT`.
    pub item_type: String,
    /// Flow Framework type: `FEATURE`, `DEFECT`, `RISK` or `DEBT`.
    pub flow_type: String,
    /// Current state: the `to_state` of the latest transition by `at`.
    pub state: String,
    pub state_category: String,
    pub unit_id: i64,
    pub parent_id: Option<i64>,
    pub assignee_id: Option<i64>,
    pub estimate: Option<f64>,
    pub business_value: Option<f64>,
    /// Position in the board column: compared as text.
    pub rank: String,
    /// Defects only: `DEVELOPMENT`, `TESTING` or `PRODUCTION`.
    pub found_in: Option<String>,
    pub severity: Option<String>,
    /// Flagged as blocked (shown on the card), whatever its state.
    pub blocked: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
