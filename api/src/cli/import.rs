//! `gemba import`: backfills from an NDJSON file or a JSON array (both streamed),
//! through the same path as `POST /ingest`, acting as the operator (no unit
//! limit). Re-running a file skips what was applied before: event ids are
//! idempotency keys.

use std::io::BufRead;
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;
use serde::de::{SeqAccess, Visitor};
use serde_json::Value;
use tokio::sync::mpsc::Sender;

use crate::events::EventBus;
use crate::policy::IngestScope;
use crate::service::ingest::report::{Report, Run};
use crate::service::ingest::{BATCH_SIZE, Raw};

/// Most rejected events kept for the report.
const MAX_REPORTED: usize = 1000;

/// What an import did.
#[derive(Debug)]
pub struct Outcome {
    pub report: Report,
    pub elapsed: Duration,
}

/// Called now and then with the running totals and the time so far.
pub type Progress<'a> = &'a mut dyn FnMut(&Report, Duration);

/// Imports events from `reader`. With `dry_run`, everything runs in one
/// transaction that is rolled back at the end.
///
/// # Errors
/// Reading the input or reaching the database fails.
pub async fn import(
    db: &DatabaseConnection,
    reader: impl BufRead + Send + 'static,
    dry_run: bool,
    progress: Progress<'_>,
) -> anyhow::Result<Outcome> {
    let bus = EventBus::new(1);
    let scope = IngestScope {
        key_id: None,
        unit_root: None,
    };
    let mut run = Run::begin(db, scope, &bus, dry_run, MAX_REPORTED).await?;
    let start = Instant::now();
    let read = apply_all(&mut run, reader, start, progress).await;
    let (report, rolled_back) = run.finish().await;
    rolled_back?;
    read?;
    let elapsed = start.elapsed();
    progress(&report, elapsed);
    Ok(Outcome { report, elapsed })
}

type Batch = Vec<(usize, Raw)>;

async fn apply_all(
    run: &mut Run<'_>,
    reader: impl BufRead + Send + 'static,
    start: Instant,
    progress: Progress<'_>,
) -> anyhow::Result<()> {
    let mut last_report = Instant::now();
    // A thread reads, parses and takes apart the next batches' events
    // while this task applies the current one; two batches in flight bound
    // the memory.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(2);
    let reading = tokio::task::spawn_blocking(move || read_batches(reader, &tx));
    while let Some(batch) = rx.recv().await {
        run.apply(batch)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        if last_report.elapsed() >= Duration::from_millis(250) {
            progress(&run.report, start.elapsed());
            last_report = Instant::now();
        }
    }
    reading.await??;
    Ok(())
}

/// Reads NDJSON lines or the elements of a JSON array, parsed, in batches.
/// A line that is not JSON is passed on as text, to be rejected with its
/// line number; a malformed JSON array fails the import.
fn read_batches(mut reader: impl BufRead, tx: &Sender<Batch>) -> anyhow::Result<()> {
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
    let mut batch: Batch = Vec::with_capacity(BATCH_SIZE);
    if first == Some(b'[') {
        let mut de = serde_json::Deserializer::from_reader(reader);
        serde::Deserializer::deserialize_seq(
            &mut de,
            ArrayVisitor {
                tx,
                batch: &mut batch,
            },
        )?;
        de.end()?;
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
            let raw = match serde_json::from_str::<Value>(text) {
                Ok(v) => Raw::Value(v),
                Err(_) => Raw::Line(text.to_owned()),
            };
            batch.push((n, Raw::prepared(n, raw)));
            if batch.len() >= BATCH_SIZE && !send(tx, &mut batch) {
                return Ok(());
            }
        }
    }
    send(tx, &mut batch);
    Ok(())
}

/// Hands a full batch to the applier; false once it is gone.
fn send(tx: &Sender<Batch>, batch: &mut Batch) -> bool {
    batch.is_empty() || tx.blocking_send(std::mem::take(batch)).is_ok()
}

/// Streams the elements of a JSON array into batches.
struct ArrayVisitor<'a> {
    tx: &'a Sender<Batch>,
    batch: &'a mut Batch,
}

impl<'de> Visitor<'de> for ArrayVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut n = 0usize;
        while let Some(v) = seq.next_element::<Value>()? {
            n += 1;
            self.batch.push((n, Raw::prepared(n, Raw::Value(v))));
            if self.batch.len() >= BATCH_SIZE && !send(self.tx, self.batch) {
                return Ok(());
            }
        }
        Ok(())
    }
}
