//! A statement builder for raw SQL on either backend, shared by the fact
//! writers and the metric readers.

use sea_orm::{DbBackend, Statement, Value};

/// A statement under construction, with numbered parameters (`$n` on
/// PostgreSQL, `?n` on SQLite) so a value may be used twice.
pub(crate) struct Sql {
    backend: DbBackend,
    text: String,
    pub(crate) values: Vec<Value>,
}

impl Sql {
    pub(crate) fn new(backend: DbBackend) -> Self {
        Self {
            backend,
            text: String::new(),
            values: Vec::new(),
        }
    }

    pub(crate) fn pg(&self) -> bool {
        self.backend == DbBackend::Postgres
    }

    /// The placeholder of a new parameter.
    pub(crate) fn bind(&mut self, v: impl Into<Value>) -> String {
        self.values.push(v.into());
        let n = self.values.len();
        if self.pg() {
            format!("${n}")
        } else {
            format!("?{n}")
        }
    }

    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// The parameters bound so far.
    pub(crate) fn values(&self) -> &[Value] {
        &self.values
    }

    /// Starts from the parameters of another statement, so its text can be
    /// reused.
    pub(crate) fn set_values(&mut self, values: Vec<Value>) {
        self.values = values;
    }

    pub(crate) fn statement(&self) -> Statement {
        Statement::from_sql_and_values(self.backend, self.text.clone(), self.values.clone())
    }
}

/// Executes the statements `next` builds, in order, building each while
/// the previous one runs. SQLite executes on a worker thread of its own
/// (sqlx), so a writer of many multi-row inserts keeps both threads busy
/// instead of handing the work back and forth; on PostgreSQL the build
/// overlaps the round trip. Stops at the first error.
///
/// # Errors
/// The first statement's error.
pub(crate) async fn execute_overlapped<C: sea_orm::ConnectionTrait>(
    db: &C,
    mut next: impl FnMut() -> Option<Statement>,
) -> Result<(), sea_orm::DbErr> {
    let mut current = next();
    while let Some(statement) = current {
        // `join!` polls the execution first: its command is on its way to
        // the database before the next statement is built.
        let (done, following) = futures::join!(db.execute_raw(statement), async { next() });
        done?;
        current = following;
    }
    Ok(())
}

/// A multi-row `INSERT` for SQLite, built from the values directly rather
/// than from a model per row: `head` is `INSERT INTO "t" ("a", …)`, `width`
/// the number of columns, `values` the rows one after another, `tail` what
/// follows the rows (an `ON CONFLICT` clause, or nothing). Chunks of the
/// same size share their text, so the connection reuses the prepared
/// statement.
pub(crate) fn sqlite_rows(head: &str, width: usize, values: Vec<Value>, tail: &str) -> Statement {
    debug_assert!(width > 0 && values.len().is_multiple_of(width));
    let rows = values.len() / width.max(1);
    let row = format!("({})", vec!["?"; width].join(", "));
    let mut text = String::with_capacity(head.len() + tail.len() + 8 + rows * (row.len() + 2));
    text.push_str(head);
    text.push_str(" VALUES ");
    for i in 0..rows {
        if i > 0 {
            text.push_str(", ");
        }
        text.push_str(&row);
    }
    text.push_str(tail);
    Statement::from_sql_and_values(DbBackend::Sqlite, text, values)
}
