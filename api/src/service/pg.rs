//! PostgreSQL array parameters for `INSERT ... SELECT ... FROM UNNEST(...)`
//! writers: one array per column instead of a parameter per cell. Arrays
//! cannot carry a null element here, so nullable columns travel with a
//! sentinel that cannot be a real value (the empty string, 0 for an id, NaN
//! for a number, `i64::MIN` for an instant) and come back as NULL through
//! `NULLIF`.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{ArrayType, Value};
use sea_orm::{DbBackend, Statement};

/// Stands for NULL in a `bigint[]` of instants.
pub(crate) const NULL_BIGINT: i64 = i64::MIN;

pub(crate) fn array(ty: ArrayType, values: Vec<Value>) -> Value {
    Value::Array(ty, Some(Box::new(values)))
}

pub(crate) fn texts<'a>(xs: impl Iterator<Item = &'a str>) -> Value {
    array(
        ArrayType::String,
        xs.map(|x| Value::String(Some(x.to_owned()))).collect(),
    )
}

pub(crate) fn opt_texts<'a>(xs: impl Iterator<Item = Option<&'a str>>) -> Value {
    texts(xs.map(|x| x.unwrap_or("")))
}

pub(crate) fn bigints(xs: impl Iterator<Item = i64>) -> Value {
    array(
        ArrayType::BigInt,
        xs.map(|x| Value::BigInt(Some(x))).collect(),
    )
}

pub(crate) fn doubles(xs: impl Iterator<Item = Option<f64>>) -> Value {
    array(
        ArrayType::Double,
        xs.map(|x| Value::Double(Some(x.unwrap_or(f64::NAN))))
            .collect(),
    )
}

pub(crate) fn times(xs: impl Iterator<Item = DateTime<Utc>>) -> Value {
    array(
        ArrayType::ChronoDateTimeUtc,
        xs.map(|x| Value::ChronoDateTimeUtc(Some(x))).collect(),
    )
}

pub(crate) fn statement(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

pub(crate) fn opt_bigints(xs: impl Iterator<Item = Option<i64>>) -> Value {
    bigints(xs.map(|x| x.unwrap_or(NULL_BIGINT)))
}
