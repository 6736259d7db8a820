//! `gemba import`: backfills from an NDJSON file (streamed) or a JSON array,
//! through the same path as `POST /ingest`, acting as the operator (no unit
//! limit). Re-running a file skips what was applied before: event ids are
//! idempotency keys.

use std::io::BufRead;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, TransactionTrait};
use serde_json::Value;

use crate::events::EventBus;
use crate::policy::IngestScope;
use crate::service::ingest::{EventResult, Ingestor, Status, Summary};

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
    let bus = EventBus::new(1);
    let scope = IngestScope {
        key_id: None,
        unit_root: None,
    };
    if dry_run {
        let txn = db.begin().await?;
        let ingestor = Ingestor {
            db: &txn,
            scope,
            bus: &bus,
            dry_run: true,
        };
        let out = run(&ingestor, reader, progress).await;
        txn.rollback().await?;
        out
    } else {
        let ingestor = Ingestor {
            db,
            scope,
            bus: &bus,
            dry_run: false,
        };
        run(&ingestor, reader, progress).await
    }
}

async fn run<C>(
    ingestor: &Ingestor<'_, C>,
    mut reader: impl BufRead,
    progress: Progress<'_>,
) -> anyhow::Result<Outcome>
where
    C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>,
{
    let start = Instant::now();
    let mut out = Outcome::default();
    let mut last_report = Instant::now();
    let record = |out: &mut Outcome, r: EventResult| {
        out.events += 1;
        out.summary.add(&r);
        if r.status == Status::Rejected && out.rejected.len() < MAX_REPORTED {
            out.rejected.push(r);
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
            let r = ingestor.event(i + 1, e).await;
            record(&mut out, r);
            if last_report.elapsed() >= Duration::from_millis(250) {
                out.elapsed = start.elapsed();
                progress(&out);
                last_report = Instant::now();
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
            let r = ingestor.line(n, text).await;
            record(&mut out, r);
            if last_report.elapsed() >= Duration::from_millis(250) {
                out.elapsed = start.elapsed();
                progress(&out);
                last_report = Instant::now();
            }
        }
    }
    out.elapsed = start.elapsed();
    progress(&out);
    Ok(out)
}
