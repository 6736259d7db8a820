//! `gemba import`: backfills from an NDJSON file (streamed) or a JSON array,
//! through the same path as `POST /ingest`, acting as the operator (no unit
//! limit). Re-running a file skips what was applied before: event ids are
//! idempotency keys.

use std::io::BufRead;
use std::time::{Duration, Instant};

use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};
use serde_json::Value;

use crate::events::EventBus;
use crate::policy::IngestScope;
use crate::service::ingest::{BATCH_SIZE, EventResult, Raw, Status, Summary, apply_batch};

/// Most rejected events kept for the report.
const MAX_REPORTED: usize = 1000;

/// What an import did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub summary: Summary,
    /// Events read (including blank-free lines that failed to parse).
    pub events: u64,
    pub rejected: Vec<EventResult>,
    pub elapsed: Duration,
}

/// Called now and then with the running totals.
pub type Progress<'a> = &'a mut dyn FnMut(&Outcome);

/// Imports events from `reader`. With `dry_run`, everything runs in one
/// transaction that is rolled back at the end.
///
/// # Errors
/// Reading the input or reaching the database fails.
pub async fn import(
    db: &DatabaseConnection,
    reader: impl BufRead,
    dry_run: bool,
    progress: Progress<'_>,
) -> anyhow::Result<Outcome> {
    if dry_run {
        let txn = db.begin().await?;
        let out = run(&txn, true, reader, progress).await;
        txn.rollback().await?;
        out
    } else {
        run(db, false, reader, progress).await
    }
}

async fn run<C>(
    db: &C,
    dry_run: bool,
    mut reader: impl BufRead,
    progress: Progress<'_>,
) -> anyhow::Result<Outcome>
where
    C: TransactionTrait<Transaction = DatabaseTransaction>,
{
    let bus = EventBus::new(1);
    let scope = IngestScope {
        key_id: None,
        unit_root: None,
    };
    let start = Instant::now();
    let mut out = Outcome::default();
    let mut last_report = Instant::now();
    let mut batch: Vec<(usize, Raw)> = Vec::with_capacity(BATCH_SIZE);
    let mut flush = async |out: &mut Outcome, batch: &mut Vec<(usize, Raw)>| {
        for r in apply_batch(db, scope, &bus, dry_run, std::mem::take(batch)).await {
            out.events += 1;
            out.summary.add(&r);
            if r.status == Status::Rejected && out.rejected.len() < MAX_REPORTED {
                out.rejected.push(r);
            }
        }
        if last_report.elapsed() >= Duration::from_millis(250) {
            out.elapsed = start.elapsed();
            progress(out);
            last_report = Instant::now();
        }
    };
    // Peek at the first non-blank byte: '[' means a JSON array.
    let first = loop {
        let buf = reader.fill_buf()?;
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                let b = buf[i];
                reader.consume(i);
                break Some(b);
            }
            None if buf.is_empty() => break None,
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    };
    if first == Some(b'[') {
        let events: Vec<Value> = serde_json::from_reader(reader)?;
        for (i, e) in events.into_iter().enumerate() {
            batch.push((i + 1, Raw::Value(e)));
            if batch.len() >= BATCH_SIZE {
                flush(&mut out, &mut batch).await;
            }
        }
    } else {
        let mut line = String::new();
        let mut n = 0usize;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                break;
            }
            n += 1;
            let text = line.trim();
            if text.is_empty() {
                continue;
            }
            batch.push((n, Raw::Line(text.to_owned())));
            if batch.len() >= BATCH_SIZE {
                flush(&mut out, &mut batch).await;
            }
        }
    }
    flush(&mut out, &mut batch).await;
    out.elapsed = start.elapsed();
    progress(&out);
    Ok(out)
}
