//! Transaction helpers shared by every service that writes.

use sea_orm::{SqliteTransactionMode, TransactionOptions};

/// Options for a transaction that will write: on SQLite it takes the write
/// lock at `BEGIN` (waiting its turn), instead of failing when it first
/// writes after reading while another transaction holds the lock.
#[must_use]
pub fn write_transaction() -> TransactionOptions {
    TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    }
}
