//! The ingest log: one row per event id, applied or rejected, which makes
//! ingestion idempotent by event id (DESIGN §4).

use chrono::Utc;
use entity::ingest_log;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, Set,
    TransactionTrait,
};

/// Records a rejected event id in the ingest log (never over an applied one),
/// in a savepoint of its own so a failure here cannot abort a batch.
///
/// # Errors
/// Database errors only.
pub async fn record_rejection<C>(
    db: &C,
    id: &str,
    source: &str,
    kind: &str,
    reason: &str,
    key_id: Option<i64>,
) -> Result<(), DbErr>
where
    C: TransactionTrait<Transaction = DatabaseTransaction>,
{
    let txn = db.begin().await?;
    let row = ingest_log::ActiveModel {
        event_id: Set(id.to_owned()),
        source: Set(source.to_owned()),
        event_type: Set(kind.to_owned()),
        received_at: Set(Utc::now()),
        outcome: Set("rejected".into()),
        reason: Set(Some(reason.to_owned())),
        api_key_id: Set(key_id),
    };
    ingest_log::Entity::insert(row)
        .on_conflict(
            OnConflict::column(ingest_log::Column::EventId)
                .update_columns([
                    ingest_log::Column::Reason,
                    ingest_log::Column::ReceivedAt,
                    ingest_log::Column::ApiKeyId,
                ])
                .action_and_where(
                    Expr::col((ingest_log::Entity, ingest_log::Column::Outcome)).ne("applied"),
                )
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await
}

/// The upsert that claims an event id as applied: it takes over a logged id
/// that is not applied, and leaves an applied one alone.
pub(super) fn claim_conflict() -> OnConflict {
    OnConflict::column(ingest_log::Column::EventId)
        .update_columns([
            ingest_log::Column::Outcome,
            ingest_log::Column::Reason,
            ingest_log::Column::ReceivedAt,
            ingest_log::Column::ApiKeyId,
        ])
        .action_and_where(
            Expr::col((ingest_log::Entity, ingest_log::Column::Outcome)).ne("applied"),
        )
        .to_owned()
}

/// Turns an event id claimed in this transaction into a rejection.
///
/// # Errors
/// Database errors only.
pub(super) async fn mark_rejected(
    db: &impl ConnectionTrait,
    id: &str,
    reason: &str,
) -> Result<(), DbErr> {
    ingest_log::Entity::update_many()
        .col_expr(ingest_log::Column::Outcome, Expr::value("rejected"))
        .col_expr(ingest_log::Column::Reason, Expr::value(reason))
        .filter(ingest_log::Column::EventId.eq(id))
        .exec(db)
        .await?;
    Ok(())
}
