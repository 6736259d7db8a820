//! One ingested event id and what became of it: the idempotency record.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "ingest_log")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub event_id: String,
    pub source: String,
    pub event_type: String,
    pub received_at: DateTimeUtc,
    /// `applied` or `rejected`. Only applied ids count as duplicates.
    pub outcome: String,
    /// Why the event was rejected.
    pub reason: Option<String>,
    /// The API key the event came with, if any.
    pub api_key_id: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
