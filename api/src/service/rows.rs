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
//! A page read with its parents may leave out the columns its caller does
//! not read ([`PagedItemRow`], [`kept`]).

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

/// A type a row's column decodes to, on either database.
trait Cell: PgBinary + for<'r> sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> {}

impl<T: PgBinary + for<'r> sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>> Cell for T {}

/// A row read by position.
trait Cells {
    fn cell<T: Cell>(&self, index: usize) -> Result<T, sqlx::Error>;
}

impl Cells for PgRow {
    fn cell<T: Cell>(&self, index: usize) -> Result<T, sqlx::Error> {
        pg(self, index)
    }
}

impl Cells for sqlx::sqlite::SqliteRow {
    fn cell<T: Cell>(&self, index: usize) -> Result<T, sqlx::Error> {
        self.try_get_unchecked(index)
    }
}

/// A NOT NULL column, which a page row may hold as NULL when the page's
/// statement left it out (`partial`): its type's default then, never read
/// (see [`super::work_items::list_with_parents`]).
fn kept<T: Cell + Default>(
    row: &impl Cells,
    index: usize,
    partial: bool,
) -> Result<T, sqlx::Error> {
    if partial {
        Ok(row.cell::<Option<T>>(index)?.unwrap_or_default())
    } else {
        row.cell(index)
    }
}

fn decode(row: &impl Cells, partial: bool) -> Result<work_item::Model, sqlx::Error> {
    Ok(work_item::Model {
        id: row.cell(0)?,
        key: kept(row, 1, partial)?,
        title: kept(row, 2, partial)?,
        description: row.cell(3)?,
        item_type: kept(row, 4, partial)?,
        flow_type: kept(row, 5, partial)?,
        state: kept(row, 6, partial)?,
        state_category: kept(row, 7, partial)?,
        unit_id: row.cell(8)?,
        parent_id: row.cell(9)?,
        assignee_id: row.cell(10)?,
        estimate: row.cell(11)?,
        business_value: row.cell(12)?,
        rank: kept(row, 13, partial)?,
        found_in: row.cell(14)?,
        severity: row.cell(15)?,
        blocked: kept(row, 16, partial)?,
        created_at: kept(row, 17, partial)?,
        updated_at: kept(row, 18, partial)?,
    })
}

/// `res` decoded by position when its columns are the entity's followed by
/// `extra`, with the value of the flag column `flag` (an index past the
/// entity's) when given; `None` for any other shape. A row whose flag is 0
/// is a page's row, whose NOT NULL columns may be NULL (see [`kept`]).
fn by_position(
    res: &QueryResult,
    extra: &[&str],
    flag: Option<usize>,
) -> Option<Result<(work_item::Model, Option<i32>), DbErr>> {
    read_by_position(res, extra, flag, false)
}

/// [`by_position`], without checking the columns' names again when
/// `shape_known` (another row of the same statement was checked).
fn read_by_position(
    res: &QueryResult,
    extra: &[&str],
    flag: Option<usize>,
    shape_known: bool,
) -> Option<Result<(work_item::Model, Option<i32>), DbErr>> {
    fn read(
        row: &impl Cells,
        flag: Option<usize>,
    ) -> Result<(work_item::Model, Option<i32>), sqlx::Error> {
        let flag = flag.map(|i| row.cell::<i32>(i)).transpose()?;
        Ok((decode(row, flag == Some(0))?, flag))
    }
    let read = if let Some(row) = res
        .try_as_pg_row()
        .filter(|r| shape_known || shaped(*r, extra))
    {
        read(row, flag)
    } else {
        let row = res
            .try_as_sqlite_row()
            .filter(|r| shape_known || shaped(*r, extra))?;
        read(row, flag)
    };
    Some(read.map_err(|e| DbErr::Type(e.to_string())))
}

impl FromQueryResult for ItemRow {
    fn from_query_result(res: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        match by_position(res, &[], None).filter(|_| pre.is_empty()) {
            Some(read) => read.map(|(item, _)| Self(item)),
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
        match by_position(res, &[PARENT_FLAG], Some(COLUMNS.len())).filter(|_| pre.is_empty()) {
            Some(read) => read.map(|(item, flag)| Self {
                item,
                parent: flag != Some(0),
            }),
            None => Ok(Self {
                item: work_item::Model::from_query_result(res, pre)?,
                parent: res.try_get::<i32>(pre, PARENT_FLAG)? != 0,
            }),
        }
    }
}

/// The rows of one statement of [`PagedItemRow`]s, split into the page's
/// items and the parents, each in a vector sized once. The columns' names
/// are checked on the first row: every row of a statement has the same.
///
/// # Errors
/// A value that does not decode.
pub fn paged(
    rows: &[QueryResult],
) -> Result<(Vec<work_item::Model>, Vec<work_item::Model>), DbErr> {
    let mut items = Vec::with_capacity(rows.len());
    let mut parents = Vec::new();
    let mut shape_known = false;
    for res in rows {
        let row = match read_by_position(res, &[PARENT_FLAG], Some(COLUMNS.len()), shape_known) {
            Some(read) => {
                shape_known = true;
                let (item, flag) = read?;
                PagedItemRow {
                    item,
                    parent: flag != Some(0),
                }
            }
            None => PagedItemRow::from_query_result(res, "")?,
        };
        if row.parent {
            parents.push(row.item);
        } else {
            items.push(row.item);
        }
    }
    Ok((items, parents))
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
