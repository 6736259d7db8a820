//! Replicas on one PostgreSQL database deliver each other's events through
//! `LISTEN/NOTIFY` (DESIGN §6), with no other broker.
//!
//! A sender task takes this replica's events off the bus, packs them into
//! notifications of at most [`MAX_PAYLOAD`] bytes and sends them with
//! `pg_notify`; a listener task `LISTEN`s on its own connection and hands the
//! other replicas' events to the local bus. A lost connection is reopened
//! with backoff; events published meanwhile reach this replica only, as
//! notifications are not stored. Once listening again, the relay reports a
//! gap on the bus ([`EventBus::gaps`]): state kept from events catches up
//! from the database (`service::analytics`), or is bounded by a time to
//! live (the authentication cache, the tree's snapshot).

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{ChangeKind, DomainEvent, EventBus};

/// The notification channel.
pub const CHANNEL: &str = "gemba_events";
/// PostgreSQL's payload limit is 8000 bytes; stay below it.
const MAX_PAYLOAD: usize = 7000;
/// Events waiting for the sender before publishers skip the relay.
const QUEUE: usize = 16_384;

#[derive(Serialize, Deserialize)]
struct Packet {
    /// The replica that sent it: a replica ignores its own.
    origin: String,
    events: Vec<DomainEvent>,
}

/// Starts the relay when `db` is PostgreSQL; on SQLite events stay in
/// process and this does nothing.
pub fn start(db: &DatabaseConnection, bus: &EventBus) {
    if db.get_database_backend() != DbBackend::Postgres {
        return;
    }
    let (tx, rx) = mpsc::channel(QUEUE);
    if !bus.attach_remote(tx) {
        return;
    }
    let origin = uuid::Uuid::new_v4().simple().to_string();
    tokio::spawn(send_loop(db.clone(), rx, origin.clone()));
    tokio::spawn(listen_loop(db.clone(), bus.clone(), origin));
}

/// Packs queued events into payloads below the limit.
fn pack(origin: &str, events: Vec<DomainEvent>) -> Vec<String> {
    let mut out = Vec::new();
    let mut batch: Vec<DomainEvent> = Vec::new();
    let mut size = 0;
    for e in events {
        let len = serde_json::to_string(&e).map_or(0, |s| s.len()) + 1;
        if !batch.is_empty() && size + len > MAX_PAYLOAD - 100 {
            out.extend(encode(origin, std::mem::take(&mut batch)));
            size = 0;
        }
        size += len;
        batch.push(e);
    }
    if !batch.is_empty() {
        out.extend(encode(origin, batch));
    }
    out
}

fn encode(origin: &str, events: Vec<DomainEvent>) -> Option<String> {
    serde_json::to_string(&Packet {
        origin: origin.to_owned(),
        events,
    })
    .ok()
    .filter(|p| p.len() <= MAX_PAYLOAD)
}

async fn send_loop(db: DatabaseConnection, mut rx: mpsc::Receiver<DomainEvent>, origin: String) {
    let mut queued = Vec::new();
    while rx.recv_many(&mut queued, 512).await > 0 {
        for payload in pack(&origin, std::mem::take(&mut queued)) {
            let stmt = Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [CHANNEL.into(), payload.into()],
            );
            if let Err(e) = db.execute_raw(stmt).await {
                tracing::warn!(error = %e, "cannot relay events to other replicas");
            }
        }
    }
}

async fn listen_loop(db: DatabaseConnection, bus: EventBus, origin: String) {
    let mut backoff = Duration::from_millis(100);
    let mut reconnect = false;
    loop {
        let pool = db.get_postgres_connection_pool();
        let mut listener = match sea_orm::sqlx::postgres::PgListener::connect_with(pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the event listener; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "cannot LISTEN for events; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
            continue;
        }
        tracing::info!("listening for other replicas' events");
        if reconnect {
            // What was sent while no listener was in place is lost.
            bus.report_gap();
        }
        reconnect = true;
        backoff = Duration::from_millis(100);
        loop {
            // `try_recv` reports a lost connection as `None`; the outer loop
            // then opens a new listener, to know when it listens again.
            match listener.try_recv().await {
                Ok(Some(n)) => match serde_json::from_str::<Packet>(n.payload()) {
                    Ok(p) if p.origin == origin => {}
                    Ok(p) => p.events.into_iter().for_each(|e| bus.deliver_remote(e)),
                    Err(e) => tracing::warn!(error = %e, "ignoring a malformed event notification"),
                },
                Ok(None) => {
                    tracing::warn!("event listener lost its connection; reconnecting");
                    // Notifications sent meanwhile are gone: whatever access
                    // changes they carried, every connection re-checks.
                    bus.deliver_remote(DomainEvent::new(ChangeKind::AccessChanged, 0, 0));
                    bus.report_gap();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "event listener failed; reconnecting");
                    tokio::time::sleep(backoff).await;
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_below_the_payload_limit() {
        let events: Vec<DomainEvent> = (0..1000)
            .map(|i| DomainEvent::new(ChangeKind::WorkItemMoved, i, i))
            .collect();
        let packets = pack("o", events);
        assert!(packets.len() > 1);
        let mut n = 0;
        for p in &packets {
            assert!(p.len() <= MAX_PAYLOAD);
            n += serde_json::from_str::<Packet>(p).unwrap().events.len();
        }
        assert_eq!(n, 1000);
    }
}
