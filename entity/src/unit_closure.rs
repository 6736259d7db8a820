//! Closure table of the unit tree: one row per (ancestor, descendant) pair,
//! including each unit paired with itself at depth 0. "Every unit under X" is
//! `ancestor_id = X` (primary key prefix); "every ancestor of X" is
//! `descendant_id = X` (secondary index).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "unit_closure")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub ancestor_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub descendant_id: i64,
    pub depth: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
