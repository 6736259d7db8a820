//! Work item rows decoded by position. SeaORM's derived decoding looks
//! every column up by name (a hash per column per row) and builds a
//! formatted error for each NULL of an optional column before discarding
//! it; on the request path's hottest read (a page of items and their
//! parents) that was about a tenth of the server's time. A row selected
//! with the entity's own column list (`Entity::find()`, columns in
//! declaration order) is read here by position instead; any other shape
//! falls back to the derived decoding.

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
            id: row.try_get(0)?,
            key: row.try_get(1)?,
            title: row.try_get(2)?,
            description: row.try_get(3)?,
            item_type: row.try_get(4)?,
            flow_type: row.try_get(5)?,
            state: row.try_get(6)?,
            state_category: row.try_get(7)?,
            unit_id: row.try_get(8)?,
            parent_id: row.try_get(9)?,
            assignee_id: row.try_get(10)?,
            estimate: row.try_get(11)?,
            business_value: row.try_get(12)?,
            rank: row.try_get(13)?,
            found_in: row.try_get(14)?,
            severity: row.try_get(15)?,
            blocked: row.try_get(16)?,
            created_at: row.try_get(17)?,
            updated_at: row.try_get(18)?,
        }
    }};
}

/// Whether `row`'s columns are exactly [`COLUMNS`], by name, in order.
fn shaped<R: Row>(row: &R) -> bool {
    use sqlx::Column;
    let columns = row.columns();
    columns.len() == COLUMNS.len() && columns.iter().zip(COLUMNS).all(|(c, n)| c.name() == n)
}

fn decode_pg(row: &sqlx::postgres::PgRow) -> Result<work_item::Model, sqlx::Error> {
    Ok(decode_item!(row))
}

fn decode_sqlite(row: &sqlx::sqlite::SqliteRow) -> Result<work_item::Model, sqlx::Error> {
    Ok(decode_item!(row))
}

impl FromQueryResult for ItemRow {
    fn from_query_result(res: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        let decoded = if !pre.is_empty() {
            None
        } else if let Some(row) = res.try_as_pg_row().filter(|r| shaped(*r)) {
            Some(decode_pg(row))
        } else {
            res.try_as_sqlite_row()
                .filter(|r| shaped(*r))
                .map(decode_sqlite)
        };
        match decoded {
            Some(Ok(item)) => Ok(Self(item)),
            Some(Err(e)) => Err(DbErr::Type(e.to_string())),
            None => work_item::Model::from_query_result(res, pre).map(Self),
        }
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
