//! PostgreSQL writers for the batch: one array parameter per column and
//! `UNNEST`, instead of a `VALUES` list with a parameter per cell. The
//! statement text is the same for every batch and binding is a handful of
//! arrays, which is what makes these inserts cheap to parse, bind and plan.
//!
//! Arrays cannot carry a null element here, so nullable columns travel with
//! a sentinel that cannot be a real value (the empty string, 0 for an id,
//! NaN for a number) and come back as NULL through `NULLIF`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Value;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};

use crate::service::pg::{bigints, doubles, opt_texts, statement, texts, times};

use super::queue::{NewItem, NewTransition};
use super::writer::{ITEM_HEAD, LOG_CLAIM, LOG_HEAD, REF_HEAD, TRANSITION_HEAD};

/// The claims of `rows`' ids, as `LOG_HEAD`'s rows.
const CLAIM_ROWS: &str = "SELECT e, s, k, $4, 'applied', NULL, $5::bigint FROM UNNEST($1::text[], $2::text[], $3::text[]) AS u(e, s, k)";

fn claim_values(
    rows: &[(String, String, String)],
    at: DateTime<Utc>,
    key_id: Option<i64>,
) -> Vec<Value> {
    vec![
        texts(rows.iter().map(|r| r.0.as_str())),
        texts(rows.iter().map(|r| r.1.as_str())),
        texts(rows.iter().map(|r| r.2.as_str())),
        Value::ChronoDateTimeUtc(Some(at)),
        Value::BigInt(key_id),
    ]
}

/// Claims event ids as applied unless already applied; returns the ids
/// claimed.
pub(super) async fn claim(
    db: &DatabaseTransaction,
    rows: &[(String, String, String)],
    at: DateTime<Utc>,
    key_id: Option<i64>,
) -> Result<Vec<String>, DbErr> {
    let sql = format!(r#"{LOG_HEAD} {CLAIM_ROWS} {LOG_CLAIM} RETURNING "event_id""#);
    db.query_all_raw(statement(&sql, claim_values(rows, at, key_id)))
        .await?
        .iter()
        .map(|row| row.try_get_by_index(0))
        .collect()
}

/// Claims event ids none of which is in the log: a plain insert, about
/// half the work of [`claim`]'s upsert, which fails with a unique
/// violation on an id that is (see `writer::claim_all`).
pub(super) async fn claim_new(
    db: &DatabaseTransaction,
    rows: &[(String, String, String)],
    at: DateTime<Utc>,
    key_id: Option<i64>,
) -> Result<(), DbErr> {
    let sql = format!("{LOG_HEAD} {CLAIM_ROWS}");
    db.execute_raw(statement(&sql, claim_values(rows, at, key_id)))
        .await?;
    Ok(())
}

/// Inserts work items; returns their ids by key.
pub(super) async fn items(
    db: &DatabaseTransaction,
    rows: &[NewItem],
    now: DateTime<Utc>,
) -> Result<HashMap<String, i64>, DbErr> {
    let sql = format!(
        r#"{ITEM_HEAD}
SELECT k, t, NULLIF(d, ''), it, ft, st, sc, u, NULLIF(p, 0), NULL, NULLIF(e, 'NaN'::float8),
  NULLIF(bv, 'NaN'::float8), r, NULLIF(fi, ''), NULLIF(sv, ''), c, $16
FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
  $8::bigint[], $9::bigint[], $10::float8[], $11::float8[], $12::text[], $13::text[], $14::text[],
  $15::timestamptz[]) AS x(k, t, d, it, ft, st, sc, u, p, e, bv, r, fi, sv, c)
RETURNING "id", "key""#
    );
    let values = vec![
        texts(rows.iter().map(|m| m.key.as_str())),
        texts(rows.iter().map(|m| m.title.as_str())),
        opt_texts(rows.iter().map(|m| m.description.as_deref())),
        texts(rows.iter().map(|m| m.item_type.as_str())),
        texts(rows.iter().map(|m| m.flow_type.as_str())),
        texts(rows.iter().map(|m| m.state.as_str())),
        texts(rows.iter().map(|m| m.category.as_str())),
        bigints(rows.iter().map(|m| m.unit_id)),
        bigints(rows.iter().map(|m| m.parent_id.unwrap_or(0))),
        doubles(rows.iter().map(|m| m.estimate)),
        doubles(rows.iter().map(|m| m.business_value)),
        texts(rows.iter().map(|m| m.rank.as_str())),
        opt_texts(rows.iter().map(|m| m.found_in.as_deref())),
        opt_texts(rows.iter().map(|m| m.severity.as_deref())),
        times(rows.iter().map(|m| m.created_at)),
        Value::ChronoDateTimeUtc(Some(now)),
    ];
    let mut ids = HashMap::with_capacity(rows.len());
    for row in db.query_all_raw(statement(&sql, values)).await? {
        ids.insert(row.try_get::<String>("", "key")?, row.try_get("", "id")?);
    }
    Ok(ids)
}

/// Inserts external references: (item id, source, external id, url).
pub(super) async fn refs(
    db: &DatabaseTransaction,
    rows: &[(i64, &str, &str, Option<&str>)],
) -> Result<(), DbErr> {
    let sql = format!(
        r#"{REF_HEAD}
SELECT w, s, e, NULLIF(u, '') FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[]) AS x(w, s, e, u)"#
    );
    let values = vec![
        bigints(rows.iter().map(|r| r.0)),
        texts(rows.iter().map(|r| r.1)),
        texts(rows.iter().map(|r| r.2)),
        opt_texts(rows.iter().map(|r| r.3)),
    ];
    db.execute_raw(statement(&sql, values)).await?;
    Ok(())
}

/// Inserts transitions; `ids` are their items' ids, row for row.
pub(super) async fn transitions(
    db: &DatabaseTransaction,
    rows: &[NewTransition],
    ids: &[i64],
) -> Result<(), DbErr> {
    let sql = format!(
        r#"{TRANSITION_HEAD}
SELECT w, NULLIF(f, ''), t, c, a, NULL, s
FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[]) AS x(w, f, t, c, a, s)"#
    );
    let values = vec![
        bigints(ids.iter().copied()),
        opt_texts(rows.iter().map(|t| t.from.as_deref())),
        texts(rows.iter().map(|t| t.to.as_str())),
        texts(rows.iter().map(|t| t.category.as_str())),
        times(rows.iter().map(|t| t.at)),
        texts(rows.iter().map(|t| t.source.as_str())),
    ];
    db.execute_raw(statement(&sql, values)).await?;
    Ok(())
}
