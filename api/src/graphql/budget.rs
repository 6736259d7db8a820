//! Cost budgets per caller, as GitHub's and Shopify's GraphQL APIs keep them.
//!
//! Every operation costs its complexity, as async-graphql computes it on the
//! validated document (fragments expanded; a connection's page size
//! multiplies its children). Each caller (a session token, an API key, or an
//! anonymous client address) has a bucket of points that refills at a steady
//! rate; an operation its bucket cannot pay for is refused with
//! `RATE_LIMITED`, `Retry-After` and the remaining points, before it runs.
//!
//! Buckets live in each replica's memory. What they protect, CPU and the
//! database pool, belongs to a replica: a caller spread over N replicas by a
//! balancer spends at most N budgets, which are N times the capacity the
//! budget protects. docs/operations.md says how to size it.
//!
//! The cost is computed by validation, which only an extension can see,
//! and any extension sends every resolved field through async-graphql's
//! extension chain: 41 % more instructions for a nested read of 50 items.
//! So an operation's cost is remembered by its text, operation name and
//! variables (cost is a function of those alone), and an operation seen
//! before is charged here and run on a schema without the extension
//! (`AppState::unmetered`); only the first of its kind pays for the chain.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextValidation};
use async_graphql::{ServerError, ValidationResult};

use crate::error::ApiError;
use crate::graphql::RequestCtx;
use crate::policy::Policy;

/// Whose budget an operation spends.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Caller {
    /// A session token, by its id (`jti`): each token has its own budget.
    Token(String),
    ApiKey(i64),
    /// A caller without a token.
    Address(IpAddr),
    /// A caller with neither token nor known address (tests, in-process).
    Unknown,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    points: f64,
    at: Instant,
}

/// Buckets above this count are pruned of those that have refilled.
const PRUNE_ABOVE: usize = 100_000;
/// Operations whose cost is remembered before the memo starts afresh.
const COSTS_KEPT: usize = 10_000;

/// The budgets of every caller of this replica.
#[derive(Debug)]
pub struct Budgets {
    capacity: f64,
    refill_per_second: f64,
    buckets: Mutex<HashMap<Caller, Bucket>>,
    refused: AtomicU64,
    /// Costs of operations validated before, by [`Budgets::cost_key`].
    costs: Mutex<HashMap<u64, u64>>,
    /// The memo's key hash, seeded per replica so that no client can
    /// choose two operations that share a key.
    keys: RandomState,
}

/// What identifies an operation's cost: everything complexity depends on.
pub struct Operation<'a> {
    pub query: &'a str,
    pub operation_name: Option<&'a str>,
    pub variables: Option<&'a serde_json::Map<String, serde_json::Value>>,
    /// The `persistedQuery` extension, which names the document when the
    /// query text is left out.
    pub persisted: Option<&'a serde_json::Value>,
}

/// Feeds serialised JSON to a hasher without building the text.
struct HashWriter<'a, H: Hasher>(&'a mut H);

impl<H: Hasher> std::io::Write for HashWriter<'_, H> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Budgets {
    /// `capacity` points per caller, regaining `refill_per_second`; a
    /// capacity of 0 turns budgets off.
    pub fn new(capacity: u64, refill_per_second: u64) -> Self {
        Self {
            capacity: capacity as f64,
            refill_per_second: refill_per_second as f64,
            buckets: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
            costs: Mutex::new(HashMap::new()),
            keys: RandomState::new(),
        }
    }

    /// Whether operations are charged at all.
    pub fn enabled(&self) -> bool {
        self.capacity > 0.0
    }

    /// The key under which `op`'s cost is remembered.
    pub fn cost_key(&self, op: &Operation<'_>) -> u64 {
        let mut h = self.keys.build_hasher();
        h.write(op.query.as_bytes());
        h.write_u8(0xff);
        match op.operation_name {
            Some(name) => {
                h.write_u8(1);
                h.write(name.as_bytes());
                h.write_u8(0xff);
            }
            None => h.write_u8(0),
        }
        feed_json(&mut h, op.variables);
        feed_json(&mut h, op.persisted);
        h.finish()
    }

    /// The cost remembered under `key`, if the operation was seen before.
    pub fn known_cost(&self, key: u64) -> Option<u64> {
        self.costs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .copied()
    }

    fn remember(&self, key: u64, cost: u64) {
        let mut costs = self.costs.lock().unwrap_or_else(|p| p.into_inner());
        if costs.len() >= COSTS_KEPT {
            costs.clear();
        }
        costs.insert(key, cost);
    }

    /// Operations refused so far (exported on `/metrics`).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Spends `cost` from `caller`'s bucket and returns what remains.
    ///
    /// # Errors
    /// `RATE_LIMITED` (with the wait and what remains) when the bucket cannot
    /// pay; nothing is spent then.
    pub fn spend(&self, caller: Caller, cost: u64) -> Result<u64, ApiError> {
        if self.capacity <= 0.0 {
            return Ok(0);
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > PRUNE_ABOVE {
            let full = self.capacity;
            let rate = self.refill_per_second;
            buckets.retain(|_, b| b.points + now.duration_since(b.at).as_secs_f64() * rate < full);
        }
        let bucket = buckets.entry(caller).or_insert(Bucket {
            points: self.capacity,
            at: now,
        });
        let refilled = (bucket.points
            + now.duration_since(bucket.at).as_secs_f64() * self.refill_per_second)
            .min(self.capacity);
        bucket.at = now;
        bucket.points = refilled;
        let cost_f = cost as f64;
        if cost_f <= refilled {
            bucket.points = refilled - cost_f;
            return Ok(bucket.points.floor() as u64);
        }
        drop(buckets);
        self.refused.fetch_add(1, Ordering::Relaxed);
        let wait = if self.refill_per_second > 0.0 {
            ((cost_f.min(self.capacity) - refilled) / self.refill_per_second).ceil()
        } else {
            f64::from(u32::MAX)
        };
        Err(ApiError::OverBudget {
            cost,
            remaining: refilled.floor() as u64,
            retry_after_secs: (wait as u64).max(1),
        })
    }
}

/// Feeds `value`, if any, to `h` as its serialised JSON (which cannot fail:
/// the writer never does).
fn feed_json(h: &mut impl Hasher, value: Option<&impl serde::Serialize>) {
    match value {
        Some(v) => {
            h.write_u8(1);
            let _ = serde_json::to_writer(HashWriter(&mut *h), v);
            h.write_u8(0xff);
        }
        None => h.write_u8(0),
    }
}

/// Whose budget a request of `policy`'s holder from `addr` spends.
pub fn caller_of(policy: &Policy, addr: Option<IpAddr>) -> Caller {
    policy.caller().unwrap_or(match addr {
        Some(a) => Caller::Address(a),
        None => Caller::Unknown,
    })
}

/// The request error a refused operation answers with.
pub fn refusal(e: ApiError) -> ServerError {
    let err: async_graphql::Error = e.into();
    err.into_server_error(async_graphql::Pos::default())
}

/// The extension that charges each validated operation to its caller.
pub struct CostBudget;

impl ExtensionFactory for CostBudget {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(CostBudget)
    }
}

#[async_trait::async_trait]
impl Extension for CostBudget {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        let Some(rc) = ctx.data_opt::<RequestCtx>() else {
            return Ok(result);
        };
        let cost = u64::try_from(result.complexity).unwrap_or(u64::MAX);
        let budgets = &rc.services.budgets;
        if let Some(key) = rc.cost_key {
            budgets.remember(key, cost);
        }
        match budgets.spend(caller_of(&rc.policy, rc.client_addr), cost) {
            Ok(_) => Ok(result),
            Err(e) => Err(vec![refusal(e)]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_pays_refuses_and_refills() {
        let b = Budgets::new(100, 1000);
        let me = Caller::ApiKey(1);
        assert_eq!(b.spend(me.clone(), 60).ok(), Some(40));
        let Err(ApiError::OverBudget {
            remaining,
            retry_after_secs,
            ..
        }) = b.spend(me.clone(), 60)
        else {
            panic!("the second spend must be refused");
        };
        assert!((40..100).contains(&remaining));
        assert_eq!(retry_after_secs, 1);
        assert_eq!(b.refused(), 1);
        // Another caller has a budget of its own.
        assert!(b.spend(Caller::ApiKey(2), 100).is_ok());
        std::thread::sleep(std::time::Duration::from_millis(80));
        assert!(b.spend(me, 60).is_ok());
    }

    #[test]
    fn an_operation_is_keyed_by_all_its_cost_depends_on() {
        let b = Budgets::new(100, 1);
        let vars = |n: i64| serde_json::json!({"n": n}).as_object().cloned();
        let (v1, v2) = (vars(1), vars(2));
        let persisted = serde_json::json!({"version": 1, "sha256Hash": "ab"});
        let op = |query, operation_name, variables, persisted| Operation {
            query,
            operation_name,
            variables,
            persisted,
        };
        let key = b.cost_key(&op("{ a }", None, v1.as_ref(), None));
        assert_eq!(key, b.cost_key(&op("{ a }", None, v1.as_ref(), None)));
        let others = [
            op("{ b }", None, v1.as_ref(), None),
            op("{ a }", Some("A"), v1.as_ref(), None),
            op("{ a }", None, v2.as_ref(), None),
            op("{ a }", None, None, None),
            op("{ a }", None, v1.as_ref(), Some(&persisted)),
            // The boundary between the text and the name is kept.
            op("{ a }A", None, v1.as_ref(), None),
        ];
        for other in &others {
            assert_ne!(key, b.cost_key(other), "{}", other.query);
        }
        assert_eq!(b.known_cost(key), None);
        b.remember(key, 42);
        assert_eq!(b.known_cost(key), Some(42));
    }

    #[test]
    fn zero_capacity_is_off() {
        let b = Budgets::new(0, 0);
        assert!(b.spend(Caller::Unknown, u64::MAX).is_ok());
    }
}
