//! One ingestion run over many batches, as `POST /ingest` and `gemba import`
//! both make it: the dry run (every batch inside one transaction, rolled
//! back at the end, so later events see earlier ones and nothing stays),
//! the tally of each event's result, and the report they answer with.
//! Reading the input and shaping the answer stay with each caller.

use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};

use super::{EventResult, Raw, Status, Summary, apply_batch};
use crate::error::ApiError;
use crate::events::EventBus;
use crate::policy::IngestScope;
use crate::service::tx::write_transaction;

/// What a run did: counts for all events, details for rejected ones only (a
/// million applied events would otherwise make a million-line answer), and
/// those only up to a bound.
#[derive(Debug)]
pub struct Report {
    pub summary: Summary,
    /// Results tallied (every event read, including lines that failed to
    /// parse).
    pub events: u64,
    /// The first rejected events, at most `max_rejected` of them.
    pub rejected: Vec<EventResult>,
    max_rejected: usize,
}

impl Report {
    /// An empty report keeping the details of at most `max_rejected`
    /// rejected events.
    #[must_use]
    pub fn new(max_rejected: usize) -> Self {
        Self {
            summary: Summary::default(),
            events: 0,
            rejected: Vec::new(),
            max_rejected,
        }
    }

    /// Counts one event's result.
    pub fn add(&mut self, r: EventResult) {
        self.events += 1;
        self.summary.add(&r);
        if r.status == Status::Rejected && self.rejected.len() < self.max_rejected {
            self.rejected.push(r);
        }
    }
}

/// Applies batches for one caller and tallies their results. A dry run
/// holds one transaction from [`Run::begin`] to [`Run::finish`], which
/// rolls it back; otherwise each batch commits on its own (see
/// [`apply_batch`]) and its changes are published on the bus.
pub struct Run<'a> {
    db: &'a DatabaseConnection,
    /// The dry run's transaction.
    dry: Option<DatabaseTransaction>,
    scope: IngestScope,
    bus: &'a EventBus,
    pub report: Report,
}

impl<'a> Run<'a> {
    /// Starts a run; with `dry_run`, opens the transaction it rolls back.
    ///
    /// # Errors
    /// The database cannot start the dry run's transaction.
    pub async fn begin(
        db: &'a DatabaseConnection,
        scope: IngestScope,
        bus: &'a EventBus,
        dry_run: bool,
        max_rejected: usize,
    ) -> Result<Self, DbErr> {
        let dry = if dry_run {
            Some(db.begin_with_options(write_transaction()).await?)
        } else {
            None
        };
        Ok(Self {
            db,
            dry,
            scope,
            bus,
            report: Report::new(max_rejected),
        })
    }

    /// Applies one batch and tallies its results.
    ///
    /// # Errors
    /// As [`apply_batch`]: the database went away or ran past its deadline;
    /// nothing of the batch is tallied.
    pub async fn apply(&mut self, batch: Vec<(usize, Raw)>) -> Result<(), ApiError> {
        let results = match &self.dry {
            Some(txn) => apply_batch(txn, self.scope, self.bus, true, batch).await?,
            None => apply_batch(self.db, self.scope, self.bus, false, batch).await?,
        };
        for r in results {
            self.report.add(r);
        }
        Ok(())
    }

    /// Ends the run: rolls a dry run back. Returns the report, and whether
    /// the rollback went through (always, for a run that wrote).
    pub async fn finish(self) -> (Report, Result<(), DbErr>) {
        let rolled_back = match self.dry {
            Some(txn) => txn.rollback().await,
            None => Ok(()),
        };
        (self.report, rolled_back)
    }
}
