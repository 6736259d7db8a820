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
//! that does not decode still fails the read.

use entity::work_item;
use sea_orm::sqlx::{self, Row};
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

fn decode_pg(row: &sqlx::postgres::PgRow) -> Result<work_item::Model, sqlx::Error> {
    Ok(decode_item!(row))
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
            Some(row) => row.try_get_unchecked(at),
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
