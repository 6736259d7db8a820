//! A value stream (DESIGN §1.4), owned by a unit (usually a portfolio).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "value_stream")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub unit_id: i64,
    #[sea_orm(unique)]
    pub key: String,
    pub name: String,
    /// `OPERATIONAL` or `DEVELOPMENT`.
    pub kind: String,
    /// Funding allocated for `budget_period` (sensitive).
    pub budget: Option<f64>,
    /// Label of the funding period, e.g. `FY2027` or `2026-Q4`.
    pub budget_period: Option<String>,
    /// Run-rate cost per `cost_period` (sensitive).
    pub cost_per_period: Option<f64>,
    /// `MONTH`, `QUARTER` or `YEAR`.
    pub cost_period: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
