//! Work item rows decoded by position. SeaORM's derived decoding looks
//! every column up by name (a hash per column per row) and builds a
//! formatted error for each NULL of an optional column before discarding
//! it; on the request path's hottest read (a page of items and their
//! parents) that was about a tenth of the server's time. A row selected
//! with the entity's own column list (`Entity::find()`, columns in
//! declaration order) is read here by position instead; any other shape
//! falls back to the derived decoding. Values are decoded without sqlx's
//! per-value type check (most of the cost of a positional read): the names
//! are the entity's, whose column types the migrations fix, and a value
//! that does not decode still fails the read. On PostgreSQL a value in
//! binary form is read from its bytes ([`PgBinary`]), its length checked.

use chrono::{DateTime, Utc};
use entity::work_item;
use sea_orm::sqlx::error::BoxDynError;
use sea_orm::sqlx::postgres::{PgRow, PgValueFormat};
use sea_orm::sqlx::{self, Row, ValueRef};
use sea_orm::{DbErr, FromQueryResult, QueryResult};

/// The columns of `work_item` in the order `Entity::find()` selects them.
const COLUMNS: [&str; 19] = [
    "id",
    "key",
    "title",
    "description",
    "item_type",
    "flow_type",
    "state",
    "state_category",
    "unit_id",
    "parent_id",
    "assignee_id",
    "estimate",
    "business_value",
    "rank",
    "found_in",
    "severity",
    "blocked",
    "created_at",
    "updated_at",
];

/// A `work_item` row, decoded by position where the row has the entity's
/// shape.
pub struct ItemRow(pub work_item::Model);

macro_rules! decode_item {
    ($row:expr) => {{
        let row = $row;
        work_item::Model {
            id: row.try_get_unchecked(0)?,
            key: row.try_get_unchecked(1)?,
            title: row.try_get_unchecked(2)?,
            description: row.try_get_unchecked(3)?,
            item_type: row.try_get_unchecked(4)?,
            flow_type: row.try_get_unchecked(5)?,
            state: row.try_get_unchecked(6)?,
            state_category: row.try_get_unchecked(7)?,
            unit_id: row.try_get_unchecked(8)?,
            parent_id: row.try_get_unchecked(9)?,
            assignee_id: row.try_get_unchecked(10)?,
            estimate: row.try_get_unchecked(11)?,
            business_value: row.try_get_unchecked(12)?,
            rank: row.try_get_unchecked(13)?,
            found_in: row.try_get_unchecked(14)?,
            severity: row.try_get_unchecked(15)?,
            blocked: row.try_get_unchecked(16)?,
            created_at: row.try_get_unchecked(17)?,
            updated_at: row.try_get_unchecked(18)?,
        }
    }};
}

/// Whether `row`'s columns are exactly [`COLUMNS`], by name, in order,
/// followed by `extra`.
fn shaped<R: Row>(row: &R, extra: &[&str]) -> bool {
    use sqlx::Column;
    let columns = row.columns();
    columns.len() == COLUMNS.len() + extra.len()
        && columns
            .iter()
            .zip(COLUMNS.iter().chain(extra))
            .all(|(c, n)| c.name() == *n)
}

/// A PostgreSQL value of a type read from its bytes. sqlx asks for binary
/// results on prepared statements; its own decoding turns a timestamp into
/// a date by counting days from 2000 (about 400 instructions; 140 here),
/// twice in each row of a page. A value in text form (an unprepared
/// statement) goes through sqlx.
trait PgBinary: Sized + for<'r> sqlx::Decode<'r, sqlx::Postgres> {
    /// The value from its binary form; `None` is NULL.
    fn from_binary(bytes: Option<&[u8]>) -> Result<Self, BoxDynError>;
}

/// The bytes of a NOT NULL fixed-size value.
fn fixed<const N: usize>(bytes: Option<&[u8]>) -> Result<[u8; N], BoxDynError> {
    let bytes = bytes.ok_or(sqlx::error::UnexpectedNullError)?;
    bytes
        .try_into()
        .map_err(|_| format!("expected {N} bytes, got {}", bytes.len()).into())
}

impl PgBinary for i64 {
    fn from_binary(bytes: Option<&[u8]>) -> Result<Self, BoxDynError> {
        Ok(Self::from_be_bytes(fixed(bytes)?))
    }
}

impl PgBinary for i32 {
    fn from_binary(bytes: Option<&[u8]>) -> Result<Self, BoxDynError> {
        Ok(Self::from_be_bytes(fixed(bytes)?))
    }
}

impl PgBinary for f64 {
    fn from_binary(bytes: Option<&[u8]>) -> Result<Self, BoxDynError> {
        Ok(Self::from_be_bytes(fixed(bytes)?))
    }
}

impl PgBinary for bool {
    fn from_binary(bytes: Option<&[u8]>) -> Result<Self, BoxDynError> {
        Ok(fixed::<1>(bytes)?[0] != 0)
    }
}

impl PgBinary for String {
    fn from_binary(bytes: Option<&[u8]>) -> Result<Self, BoxDynError> {
        let bytes = bytes.ok_or(sqlx::error::UnexpectedNullError)?;
        Ok(std::str::from_utf8(bytes)?.to_owned())
    }
}

/// Microseconds from the Unix epoch to PostgreSQL's, 2000-01-01 UTC.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

impl PgBinary for DateTime<Utc> {
    fn from_binary(bytes: Option<&[u8]>) -> Result<Self, BoxDynError> {
        let micros = i64::from_be_bytes(fixed(bytes)?);
        micros
            .checked_add(PG_EPOCH_MICROS)
            .and_then(DateTime::from_timestamp_micros)
            .ok_or_else(|| "timestamp out of range".into())
    }
}

impl<T: PgBinary> PgBinary for Option<T> {
    fn from_binary(bytes: Option<&[u8]>) -> Result<Self, BoxDynError> {
        bytes.map(|b| T::from_binary(Some(b))).transpose()
    }
}

/// Column `index` of `row`.
fn pg<T: PgBinary>(row: &PgRow, index: usize) -> Result<T, sqlx::Error> {
    let value = row.try_get_raw(index)?;
    let decoded = if value.format() == PgValueFormat::Binary {
        let bytes = if value.is_null() {
            None
        } else {
            Some(
                value
                    .as_bytes()
                    .map_err(|source| decode_error(index, source))?,
            )
        };
        T::from_binary(bytes)
    } else {
        T::decode(value)
    };
    decoded.map_err(|source| decode_error(index, source))
}

fn decode_error(index: usize, source: BoxDynError) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: index.to_string(),
        source,
    }
}

fn decode_pg(row: &PgRow) -> Result<work_item::Model, sqlx::Error> {
    Ok(work_item::Model {
        id: pg(row, 0)?,
        key: pg(row, 1)?,
        title: pg(row, 2)?,
        description: pg(row, 3)?,
        item_type: pg(row, 4)?,
        flow_type: pg(row, 5)?,
        state: pg(row, 6)?,
        state_category: pg(row, 7)?,
        unit_id: pg(row, 8)?,
        parent_id: pg(row, 9)?,
        assignee_id: pg(row, 10)?,
        estimate: pg(row, 11)?,
        business_value: pg(row, 12)?,
        rank: pg(row, 13)?,
        found_in: pg(row, 14)?,
        severity: pg(row, 15)?,
        blocked: pg(row, 16)?,
        created_at: pg(row, 17)?,
        updated_at: pg(row, 18)?,
    })
}

fn decode_sqlite(row: &sqlx::sqlite::SqliteRow) -> Result<work_item::Model, sqlx::Error> {
    Ok(decode_item!(row))
}

/// `res` decoded by position when its columns are the entity's followed by
/// `extra`; `None` for any other shape.
fn by_position(res: &QueryResult, extra: &[&str]) -> Option<Result<work_item::Model, DbErr>> {
    let decoded = if let Some(row) = res.try_as_pg_row().filter(|r| shaped(*r, extra)) {
        decode_pg(row)
    } else {
        decode_sqlite(res.try_as_sqlite_row().filter(|r| shaped(*r, extra))?)
    };
    Some(decoded.map_err(|e| DbErr::Type(e.to_string())))
}

impl FromQueryResult for ItemRow {
    fn from_query_result(res: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        match by_position(res, &[]).filter(|_| pre.is_empty()) {
            Some(item) => item.map(Self),
            None => work_item::Model::from_query_result(res, pre).map(Self),
        }
    }
}

/// The name of [`PagedItemRow`]'s flag column.
pub const PARENT_FLAG: &str = "parent_row";

/// A row of a page of items read together with the readable parents of
/// its items: the `work_item` columns, then [`PARENT_FLAG`], 1 on a
/// parent's row and 0 on the page's (an item can be both).
pub struct PagedItemRow {
    pub item: work_item::Model,
    pub parent: bool,
}

impl FromQueryResult for PagedItemRow {
    fn from_query_result(res: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        let Some(item) = by_position(res, &[PARENT_FLAG]).filter(|_| pre.is_empty()) else {
            return Ok(Self {
                item: work_item::Model::from_query_result(res, pre)?,
                parent: res.try_get::<i32>(pre, PARENT_FLAG)? != 0,
            });
        };
        let at = COLUMNS.len();
        let flag: Result<i32, sqlx::Error> = match res.try_as_pg_row() {
            Some(row) => pg(row, at),
            None => res.try_as_sqlite_row().map_or(
                Err(sqlx::Error::ColumnIndexOutOfBounds { index: at, len: 0 }),
                |row| row.try_get_unchecked(at),
            ),
        };
        Ok(Self {
            item: item?,
            parent: flag.map_err(|e| DbErr::Type(e.to_string()))? != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{IdenStatic, Iterable};

    use super::*;

    #[test]
    fn the_positions_are_the_entitys_columns() {
        let names: Vec<String> = work_item::Column::iter()
            .map(|c| c.as_str().to_owned())
            .collect();
        assert_eq!(names, COLUMNS);
    }
}
