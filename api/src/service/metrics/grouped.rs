//! Distributions of values grouped inside the database: the statement
//! returns a row per group, whatever the number of values.
//!
//! PostgreSQL takes the continuous percentiles with `percentile_cont`;
//! SQLite, which has none, returns each column's values sorted by group and
//! value as a stream, and the server keeps only the ranks it needs.

use futures::TryStreamExt;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbErr, QueryResult, StreamTrait, TryGetable, Value,
};

use super::flow::{distribution, exact_mean, exact_sum, set_percentiles};
use super::stats::{Distribution, RankPicker};
use crate::service::sql::Sql;

/// One group: the aggregate row (for any extra aggregates the caller
/// asked for), and per value column its sum and distribution.
pub struct Group<G> {
    pub key: G,
    pub row: QueryResult,
    pub sums: Vec<f64>,
    pub dists: Vec<Distribution>,
}

/// Groups the rows of `inner` (bound with `values`) by its column `g` and
/// takes the distribution of each of its value columns `cols` (nulls are
/// left out). `extra` adds aggregate expressions to the grouped row, each
/// starting with a comma. With `means_of` (one per value column), each
/// mean and sum are the exact ones of [`exact_mean`] and [`exact_sum`] over
/// that column of milliseconds instead of the average and sum of the
/// values.
///
/// # Errors
/// Database errors only.
pub async fn by_group<G>(
    db: &DatabaseConnection,
    values: &[Value],
    inner: &str,
    cols: &[&str],
    means_of: &[&str],
    extra: &str,
) -> Result<Vec<Group<G>>, DbErr>
where
    G: TryGetable + PartialEq,
{
    let backend = db.get_database_backend();
    let pg = backend == sea_orm::DbBackend::Postgres;
    let mut sql = Sql::new(backend);
    sql.set_values(values.to_vec());
    let mut select = String::from("SELECT g");
    for (i, c) in cols.iter().enumerate() {
        let (sum, mean) = means_of.get(i).map_or_else(
            || (format!("SUM({c})"), format!("AVG({c})")),
            |ms| (exact_sum(ms), exact_mean(ms)),
        );
        select.push_str(&format!(
            ", {sum} AS {c}_sum, COUNT({c}) AS {c}_n, {mean} AS {c}_mean, \
             MIN({c}) AS {c}_min, MAX({c}) AS {c}_max"
        ));
        if pg {
            select.push_str(&format!(
                ", percentile_cont(ARRAY[0.5, 0.85, 0.95]::float8[]) WITHIN GROUP (ORDER BY {c}) AS {c}_p"
            ));
        }
    }
    sql.push(&format!(
        "{select}{extra} FROM ({inner}) x GROUP BY g ORDER BY g"
    ));
    let mut out = Vec::new();
    for row in db.query_all_raw(sql.statement()).await? {
        let mut sums = Vec::with_capacity(cols.len());
        let mut dists = Vec::with_capacity(cols.len());
        for c in cols {
            sums.push(
                row.try_get::<Option<f64>>("", &format!("{c}_sum"))?
                    .unwrap_or(0.0),
            );
            dists.push(distribution(&row, c, pg)?);
        }
        out.push(Group {
            key: row.try_get("", "g")?,
            row,
            sums,
            dists,
        });
    }
    if !pg {
        for (i, c) in cols.iter().enumerate() {
            if out.iter().all(|g| g.dists[i].count == 0) {
                continue;
            }
            let mut sorted = Sql::new(backend);
            sorted.set_values(values.to_vec());
            sorted.push(&format!(
                "SELECT g, {c} AS v FROM ({inner}) x WHERE {c} IS NOT NULL ORDER BY g, v"
            ));
            let mut stream = db.stream_raw(sorted.statement()).await?;
            // The group being read and its picker.
            let mut current: Option<(usize, RankPicker)> = None;
            while let Some(row) = stream.try_next().await? {
                let key: G = row.try_get("", "g")?;
                if current.as_ref().is_none_or(|(at, _)| out[*at].key != key) {
                    if let Some((at, picker)) = current.take() {
                        set_percentiles(&mut out[at].dists[i], picker.finish());
                    }
                    let Some(at) = out.iter().position(|g| g.key == key) else {
                        continue;
                    };
                    current = Some((at, RankPicker::new(out[at].dists[i].count)));
                }
                if let Some((_, picker)) = current.as_mut() {
                    picker.feed(row.try_get("", "v")?);
                }
            }
            if let Some((at, picker)) = current {
                set_percentiles(&mut out[at].dists[i], picker.finish());
            }
        }
    }
    Ok(out)
}
