//! A role held by a user on a unit (DESIGN §2).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "membership")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    pub unit_id: i64,
    /// `TEAM_MEMBER`, `PROGRAM_MANAGER`, `PORTFOLIO_MANAGER`, `EXECUTIVE` or `ADMIN`.
    pub role: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
