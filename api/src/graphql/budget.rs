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

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextValidation};
use async_graphql::{ServerError, ValidationResult};

use crate::error::ApiError;
use crate::graphql::RequestCtx;

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

/// The budgets of every caller of this replica.
#[derive(Debug)]
pub struct Budgets {
    capacity: f64,
    refill_per_second: f64,
    buckets: Mutex<HashMap<Caller, Bucket>>,
    refused: AtomicU64,
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
        }
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
        let caller = rc.policy.caller().unwrap_or(match rc.client_addr {
            Some(a) => Caller::Address(a),
            None => Caller::Unknown,
        });
        let cost = u64::try_from(result.complexity).unwrap_or(u64::MAX);
        match rc.services.budgets.spend(caller, cost) {
            Ok(_) => Ok(result),
            Err(e) => {
                let err: async_graphql::Error = e.into();
                Err(vec![err.into_server_error(async_graphql::Pos::default())])
            }
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
    fn zero_capacity_is_off() {
        let b = Budgets::new(0, 0);
        assert!(b.spend(Caller::Unknown, u64::MAX).is_ok());
    }
}
