//! Facts: rows derived from the written data and rewritten in the same
//! transaction as it, so that the metrics read them instead of replaying
//! histories. Writers (ingest, work items) call down into this module;
//! the metric readers in `service::metrics` only read what it wrote.

pub mod delivery;
pub mod flow;
