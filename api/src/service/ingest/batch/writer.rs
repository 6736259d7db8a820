//! The batch's writes: its claims in the ingest log, and a segment's queued
//! rows inserted a chunk per statement (`UNNEST` arrays on PostgreSQL, see
//! `unnest.rs`), their ids read back by their natural keys.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::{change, change_work_item, deployment, deployment_change, ingest_log, work_item};
use sea_orm::sea_query::{CaseStatement, Expr, Query, Value};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, EntityTrait, QueryFilter,
    QuerySelect, QueryTrait, Set, SqlErr, TransactionTrait,
};

use super::queue::{Id, NewItem, Pending, Written, internal};
use super::unnest;
use crate::service::ingest::event::Envelope;
use crate::service::ingest::log::mark_rejected;
use crate::service::sql::{execute_overlapped, sqlite_rows};

/// Rows per multi-row `VALUES` statement: well under the bind-parameter
/// limits of both databases for the widest table.
const CHUNK: usize = 1000;
/// Rows per PostgreSQL `UNNEST` statement (one parameter per column).
const ARRAY_CHUNK: usize = 10_000;

/// Claims the batch's event ids in the log as applied, in id order (so
/// concurrent batches lock them in the same order). An id applied
/// before is not claimed: its events are duplicates. A concurrent batch
/// holding one of the ids makes this wait for its commit.
pub(super) async fn claim(
    txn: &DatabaseTransaction,
    events: &[(usize, usize, Envelope)],
    key_id: Option<i64>,
) -> Result<HashSet<String>, DbErr> {
    let mut rows: Vec<(String, String, String)> = events
        .iter()
        .map(|(_, _, e)| (e.id.clone(), e.source.clone(), e.kind.clone()))
        .collect();
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    rows.dedup_by(|a, b| a.0 == b.0);
    let now = Utc::now();
    let pg = txn.get_database_backend() == DbBackend::Postgres;
    if let Some(all) = claim_all(txn, &rows, now, key_id).await? {
        return Ok(all);
    }
    let mut claimed_ids = HashSet::new();
    for chunk in rows.chunks(if pg { ARRAY_CHUNK } else { CHUNK }) {
        if pg {
            claimed_ids.extend(unnest::claim(txn, chunk, now, key_id).await?);
        } else {
            claim_sqlite(txn, chunk, now, key_id, &mut claimed_ids).await?;
        }
    }
    Ok(claimed_ids)
}

/// The claim of ids none of which was applied before, the usual case: the
/// claims alone, in a savepoint, without reading the log first or a row
/// coming back per id. On PostgreSQL a plain insert, which fails on an id
/// already in the log (applied or not); on SQLite the upserts, which
/// change fewer rows than there are ids when some were applied before
/// (their claim's `WHERE` left them alone). Either way the savepoint is
/// undone and `None` says to claim chunk by chunk with the upsert.
async fn claim_all(
    txn: &DatabaseTransaction,
    rows: &[(String, String, String)],
    now: DateTime<Utc>,
    key_id: Option<i64>,
) -> Result<Option<HashSet<String>>, DbErr> {
    let sp = txn.begin().await?;
    if sp.get_database_backend() == DbBackend::Postgres {
        for chunk in rows.chunks(ARRAY_CHUNK) {
            match unnest::claim_new(&sp, chunk, now, key_id).await {
                Ok(()) => {}
                Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                    sp.rollback().await?;
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
    } else {
        let mut changed = 0;
        for chunk in rows.chunks(CHUNK) {
            changed += sp
                .execute_raw(claim_rows_sqlite(chunk, now, key_id))
                .await?
                .rows_affected();
        }
        if usize::try_from(changed).ok() != Some(rows.len()) {
            sp.rollback().await?;
            return Ok(None);
        }
    }
    sp.commit().await?;
    Ok(Some(rows.iter().map(|r| r.0.clone()).collect()))
}

/// The upsert claiming `chunk`'s ids on SQLite.
fn claim_rows_sqlite(
    chunk: &[(String, String, String)],
    now: DateTime<Utc>,
    key_id: Option<i64>,
) -> sea_orm::Statement {
    let mut values = Vec::with_capacity(chunk.len() * 7);
    for (id, source, kind) in chunk {
        values.extend([
            Value::String(Some(id.clone())),
            Value::String(Some(source.clone())),
            Value::String(Some(kind.clone())),
            Value::ChronoDateTimeUtc(Some(now)),
            Value::String(Some("applied".to_owned())),
            Value::String(None),
            Value::BigInt(key_id),
        ]);
    }
    sqlite_rows(LOG_HEAD, 7, values, LOG_CLAIM)
}

/// SQLite's claim of a chunk. The batch holds the write lock from its
/// `BEGIN IMMEDIATE`, so nothing claims an id between the two statements:
/// the ids applied before are read (usually none), and the claims are
/// written without a row coming back for each (sqlx hands SQLite's rows
/// over from its worker thread one at a time).
async fn claim_sqlite(
    txn: &DatabaseTransaction,
    chunk: &[(String, String, String)],
    now: DateTime<Utc>,
    key_id: Option<i64>,
    claimed: &mut HashSet<String>,
) -> Result<(), DbErr> {
    let mut q = Query::select();
    q.column(ingest_log::Column::EventId)
        .from(ingest_log::Entity)
        .and_where(ingest_log::Column::Outcome.eq("applied"))
        .and_where(ingest_log::Column::EventId.is_in(chunk.iter().map(|r| r.0.as_str())));
    let mut applied = HashSet::new();
    for row in txn.query_all(&q).await? {
        applied.insert(row.try_get_by_index::<String>(0)?);
    }
    txn.execute_raw(claim_rows_sqlite(chunk, now, key_id))
        .await?;
    claimed.extend(
        chunk
            .iter()
            .filter(|r| !applied.contains(&r.0))
            .map(|r| r.0.clone()),
    );
    Ok(())
}

/// Writes a segment's queued rows; the caller runs this in a savepoint.
pub(super) async fn write(db: &DatabaseTransaction, p: &Pending) -> Result<Written, DbErr> {
    let now = Utc::now();
    let pg = db.get_database_backend() == DbBackend::Postgres;
    if pg {
        // The batch plans its lookups afresh each time
        // (`force_custom_plan`), but that also made PostgreSQL plan the
        // foreign-key check of every inserted row again: 2.4× the cost of
        // a transition insert. The inserts' plans do not depend on the
        // tables' sizes. Reverted with the savepoint if the write fails.
        db.execute_unprepared(&plan_cache_mode("auto")).await?;
    }
    let mut items = Vec::with_capacity(p.items.len());
    let rows = if pg { ARRAY_CHUNK } else { CHUNK };
    for chunk in p.items.chunks(rows) {
        let by_key = if pg {
            unnest::items(db, chunk, now).await?
        } else {
            insert_items(db, chunk, now).await?
        };
        for m in chunk {
            items.push(
                *by_key
                    .get(&m.key)
                    .ok_or_else(|| internal("an inserted item was not found"))?,
            );
        }
    }
    let item_id = |id: Id| match id {
        Id::New(n) => items[n],
        Id::Row(r) => r,
    };
    if pg {
        for chunk in p.refs.chunks(rows) {
            let rows: Vec<(i64, &str, &str, Option<&str>)> = chunk
                .iter()
                .map(|(id, source, ext, url)| {
                    (item_id(*id), source.as_str(), ext.as_str(), url.as_deref())
                })
                .collect();
            unnest::refs(db, &rows).await?;
        }
        for chunk in p.transitions.chunks(rows) {
            let ids: Vec<i64> = chunk.iter().map(|t| item_id(t.item)).collect();
            unnest::transitions(db, chunk, &ids).await?;
        }
    } else {
        let refs = p.refs.chunks(rows).map(|chunk| {
            let mut values = Vec::with_capacity(chunk.len() * 4);
            for (id, source, ext, url) in chunk {
                values.extend([
                    Value::BigInt(Some(item_id(*id))),
                    Value::String(Some(source.clone())),
                    Value::String(Some(ext.clone())),
                    Value::String(url.clone()),
                ]);
            }
            sqlite_rows(REF_HEAD, 4, values, "")
        });
        let transitions = p.transitions.chunks(rows).map(|chunk| {
            let mut values = Vec::with_capacity(chunk.len() * 7);
            for t in chunk {
                values.extend([
                    Value::BigInt(Some(item_id(t.item))),
                    Value::String(t.from.clone()),
                    Value::String(Some(t.to.clone())),
                    Value::String(Some(t.category.clone())),
                    Value::ChronoDateTimeUtc(Some(t.at)),
                    Value::BigInt(None),
                    Value::String(Some(t.source.clone())),
                ]);
            }
            sqlite_rows(TRANSITION_HEAD, 7, values, "")
        });
        let mut statements = refs.chain(transitions);
        execute_overlapped(db, || statements.next()).await?;
    }
    let moves: Vec<(&i64, &(String, String, String))> = p.moves.iter().collect();
    let mut moves = moves.chunks(CHUNK).map(|chunk| {
        let (mut state, mut category, mut rank) = (
            CaseStatement::new(),
            CaseStatement::new(),
            CaseStatement::new(),
        );
        for (id, (s, c, r)) in chunk {
            state = state.case(work_item::Column::Id.eq(**id), s.as_str());
            category = category.case(work_item::Column::Id.eq(**id), c.as_str());
            rank = rank.case(work_item::Column::Id.eq(**id), r.as_str());
        }
        work_item::Entity::update_many()
            .col_expr(work_item::Column::State, state.into())
            .col_expr(work_item::Column::StateCategory, category.into())
            .col_expr(work_item::Column::Rank, rank.into())
            .col_expr(work_item::Column::UpdatedAt, Expr::value(now))
            .filter(work_item::Column::Id.is_in(chunk.iter().map(|(id, _)| **id)))
            .build(db.get_database_backend())
    });
    execute_overlapped(db, || moves.next()).await?;
    let changes = insert_owned::<change::Entity, _>(
        db,
        &p.changes,
        &p.change_refs,
        change::Column::Id,
        change::Column::Source,
        change::Column::ExternalId,
    )
    .await?;
    let links: Vec<change_work_item::ActiveModel> = p
        .change_links
        .iter()
        .map(|(n, item)| change_work_item::ActiveModel {
            change_id: Set(changes[*n]),
            work_item_id: Set(item_id(*item)),
        })
        .collect();
    for chunk in links.chunks(CHUNK) {
        change_work_item::Entity::insert_many(chunk.iter().cloned())
            .exec_without_returning(db)
            .await?;
    }
    let deployments = insert_owned::<deployment::Entity, _>(
        db,
        &p.deployments,
        &p.deployment_refs,
        deployment::Column::Id,
        deployment::Column::Source,
        deployment::Column::ExternalId,
    )
    .await?;
    let links: Vec<deployment_change::ActiveModel> = p
        .deployment_links
        .iter()
        .map(|(n, ch)| deployment_change::ActiveModel {
            deployment_id: Set(deployments[*n]),
            change_id: Set(match ch {
                Id::New(c) => changes[*c],
                Id::Row(r) => *r,
            }),
        })
        .collect();
    for chunk in links.chunks(CHUNK) {
        deployment_change::Entity::insert_many(chunk.iter().cloned())
            .exec_without_returning(db)
            .await?;
    }
    // The batch claimed these ids as applied: turn the claims into
    // rejections (the last reason given for an id wins).
    for (id, reason) in &p.rejections {
        mark_rejected(db, id, reason).await?;
    }
    if pg {
        db.execute_unprepared(&plan_cache_mode(LOOKUP_PLANS))
            .await?;
    }
    Ok(Written {
        items,
        changes,
        deployments,
    })
}

/// The inserts' heads, shared with the PostgreSQL writers ([`super::unnest`]).
pub(super) const ITEM_HEAD: &str = r#"INSERT INTO "work_item" ("key", "title", "description", "item_type", "flow_type", "state", "state_category", "unit_id", "parent_id", "assignee_id", "estimate", "business_value", "rank", "found_in", "severity", "created_at", "updated_at")"#;
pub(super) const REF_HEAD: &str =
    r#"INSERT INTO "external_ref" ("work_item_id", "source", "external_id", "url")"#;
pub(super) const TRANSITION_HEAD: &str = r#"INSERT INTO "transition" ("work_item_id", "from_state", "to_state", "to_category", "at", "actor_id", "source")"#;
pub(super) const LOG_HEAD: &str = r#"INSERT INTO "ingest_log" ("event_id", "source", "event_type", "received_at", "outcome", "reason", "api_key_id")"#;
/// A claim takes an id unless it was applied before (as `log::claim_conflict`).
pub(super) const LOG_CLAIM: &str = r#" ON CONFLICT ("event_id") DO UPDATE SET "outcome" = "excluded"."outcome", "reason" = "excluded"."reason", "received_at" = "excluded"."received_at", "api_key_id" = "excluded"."api_key_id" WHERE "ingest_log"."outcome" <> 'applied'"#;

/// Inserts items and reads their ids back by key (unique).
async fn insert_items(
    db: &DatabaseTransaction,
    chunk: &[NewItem],
    now: DateTime<Utc>,
) -> Result<HashMap<String, i64>, DbErr> {
    let mut values = Vec::with_capacity(chunk.len() * 17);
    for m in chunk {
        values.extend([
            Value::String(Some(m.key.clone())),
            Value::String(Some(m.title.clone())),
            Value::String(m.description.clone()),
            Value::String(Some(m.item_type.clone())),
            Value::String(Some(m.flow_type.clone())),
            Value::String(Some(m.state.clone())),
            Value::String(Some(m.category.clone())),
            Value::BigInt(Some(m.unit_id)),
            Value::BigInt(m.parent_id),
            Value::BigInt(None),
            Value::Double(m.estimate),
            Value::Double(m.business_value),
            Value::String(Some(m.rank.clone())),
            Value::String(m.found_in.clone()),
            Value::String(m.severity.clone()),
            Value::ChronoDateTimeUtc(Some(m.created_at)),
            Value::ChronoDateTimeUtc(Some(now)),
        ]);
    }
    db.execute_raw(sqlite_rows(ITEM_HEAD, 17, values, ""))
        .await?;
    let rows: Vec<(i64, String)> = work_item::Entity::find()
        .select_only()
        .column(work_item::Column::Id)
        .column(work_item::Column::Key)
        .filter(work_item::Column::Key.is_in(chunk.iter().map(|m| m.key.clone())))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|(id, k)| (k, id)).collect())
}

/// Inserts rows identified by (source, external id) and reads their ids back.
async fn insert_owned<E, A>(
    db: &DatabaseTransaction,
    rows: &[A],
    refs: &[(String, String)],
    id_col: E::Column,
    source_col: E::Column,
    ext_col: E::Column,
) -> Result<Vec<i64>, DbErr>
where
    E: EntityTrait,
    A: sea_orm::ActiveModelTrait<Entity = E> + Clone + Send,
{
    let mut ids = Vec::with_capacity(rows.len());
    for (chunk, chunk_refs) in rows.chunks(CHUNK).zip(refs.chunks(CHUNK)) {
        E::insert_many(chunk.iter().cloned())
            .exec_without_returning(db)
            .await?;
        let mut by_ref: HashMap<(String, String), i64> = HashMap::new();
        let mut sources: Vec<&str> = chunk_refs.iter().map(|(s, _)| s.as_str()).collect();
        sources.sort_unstable();
        sources.dedup();
        for source in sources {
            let exts = chunk_refs
                .iter()
                .filter(|(s, _)| s == source)
                .map(|(_, e)| e.clone());
            let found: Vec<(i64, String)> = E::find()
                .select_only()
                .column(id_col)
                .column(ext_col)
                .filter(source_col.eq(source))
                .filter(ext_col.is_in(exts))
                .into_tuple()
                .all(db)
                .await?;
            by_ref.extend(
                found
                    .into_iter()
                    .map(|(id, ext)| ((source.to_owned(), ext), id)),
            );
        }
        for r in chunk_refs {
            ids.push(
                *by_ref
                    .get(r)
                    .ok_or_else(|| internal("an inserted row was not found"))?,
            );
        }
    }
    Ok(ids)
}

/// How the batch's lookups are planned on PostgreSQL: afresh each time.
pub(super) const LOOKUP_PLANS: &str = "force_custom_plan";

/// The statement that sets `plan_cache_mode` for the rest of the
/// transaction (or until the savepoint it runs in is rolled back).
pub(super) fn plan_cache_mode(mode: &str) -> String {
    format!("SET LOCAL plan_cache_mode = {mode}")
}
