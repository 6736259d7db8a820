//! The replica's memory of who its callers are, so that a caller's repeated
//! requests run no authentication statement.
//!
//! A verified session token's [`Viewer`] (user and grants, and the fact that
//! the token is not revoked) is kept by the token itself, byte for byte; a
//! live API key by its secret's digest. An entry is dropped:
//!
//! - on this replica, **before** the change's `publish` returns, by the
//!   access-change events ([`ChangeKind::AccessChanged`] for a membership
//!   granted or revoked, a user updated or deactivated, a logout;
//!   [`ChangeKind::ApiKeyRevoked`]): the very next request reloads;
//! - on the other replicas, when the relay (PostgreSQL `LISTEN/NOTIFY`)
//!   delivers the same event, usually within milliseconds; a relay that
//!   lost its connection drops every entry when it reconnects;
//! - in any case once it is older than the time to live
//!   (`GEMBA_AUTH_CACHE_TTL_MS`, 2 s by default): the bound on staleness
//!   for what no event reached (a missed notification, a change made by
//!   another process such as the CLI). In an entry's last quarter of life
//!   the first request of its caller reads it again while the caller's
//!   other requests go on with it: a caller in steady use never finds its
//!   entry expired, so its requests do not all wait for one reload.
//!
//! The guarantee is thus: on the replica that made the change, at once; on
//! the others, on the notification, and at worst after the time to live.
//! A request that loaded a viewer while an invalidation happened does not
//! store it (an epoch counter tells), so a load never resurrects access
//! taken away meanwhile. A token's signature is verified when its entry is
//! loaded (only the very bytes verified find the entry again, so a token
//! altered in any way is verified afresh and refused); its expiry is checked
//! on every request, with the same leeway as the verification.
//!
//! Each map holds at most `GEMBA_AUTH_CACHE_CAPACITY` entries: a full map
//! first forgets expired entries, then its oldest one. A time to live of 0
//! turns the cache off.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use entity::api_key;
use sea_orm::DatabaseConnection;

use super::{TokenKeys, Viewer};
use crate::error::ApiResult;
use crate::events::{ChangeKind, DomainEvent, EventBus};
use crate::service::api_keys;
use crate::service::directory::renew_after;

/// A capped map whose entries expire, with an epoch that every
/// invalidation advances.
#[derive(Debug)]
struct TtlMap<K, V> {
    state: Mutex<State<K, V>>,
    ttl: Duration,
    capacity: usize,
    /// A gate per key being loaded: concurrent misses of one key wait for
    /// a single load instead of each running it.
    loads: Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
}

#[derive(Debug)]
struct State<K, V> {
    entries: HashMap<K, (V, Instant)>,
    epoch: u64,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlMap<K, V> {
    fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                entries: HashMap::new(),
                epoch: 0,
            }),
            ttl,
            capacity,
            loads: Mutex::new(HashMap::new()),
        }
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.capacity > 0
    }

    fn lock(&self) -> MutexGuard<'_, State<K, V>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh entry, or `None` (an expired one is forgotten).
    fn get(&self, key: &K) -> Option<V> {
        self.get_aged(key).map(|(v, _)| v)
    }

    /// A fresh entry and its age, or `None` (an expired one is forgotten).
    fn get_aged(&self, key: &K) -> Option<(V, Duration)> {
        if !self.enabled() {
            return None;
        }
        let mut state = self.lock();
        match state.entries.get(key) {
            Some((v, at)) if at.elapsed() < self.ttl => Some((v.clone(), at.elapsed())),
            Some(_) => {
                state.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// The epoch to pass to [`insert`](Self::insert) for a value about to
    /// be loaded.
    fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// Stores a value loaded since `epoch`, unless an invalidation happened
    /// meanwhile (the value may predate it).
    fn insert(&self, epoch: u64, key: K, value: V) {
        if !self.enabled() {
            return;
        }
        let mut state = self.lock();
        if state.epoch != epoch {
            return;
        }
        if state.entries.len() >= self.capacity && !state.entries.contains_key(&key) {
            let ttl = self.ttl;
            state.entries.retain(|_, (_, at)| at.elapsed() < ttl);
            if state.entries.len() >= self.capacity {
                let oldest = state
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    state.entries.remove(&k);
                }
            }
        }
        state.entries.insert(key, (value, Instant::now()));
    }

    /// The fresh entry of `key` that `valid` accepts, else the value `load`
    /// reads (and stores); concurrent misses of one key wait for the first
    /// one's load and take its value. A failed load stores nothing, and the
    /// next waiter loads again. In an entry's last quarter of life the first
    /// caller loads it again while the others go on with it, so that a key
    /// in steady use never expires and no caller waits for its reload; an
    /// entry is still never used past its time to live.
    async fn get_or_load<E, F>(
        &self,
        key: &K,
        valid: impl Fn(&V) -> bool,
        load: impl FnOnce() -> F,
    ) -> Result<V, E>
    where
        F: std::future::Future<Output = Result<V, E>>,
    {
        if !self.enabled() {
            return load().await;
        }
        let cached = || self.get(key).filter(|v| valid(v));
        if let Some((v, age)) = self.get_aged(key).filter(|(v, _)| valid(v)) {
            if age < renew_after(self.ttl) {
                return Ok(v);
            }
            let gate = self.gate(key);
            let Ok(turn) = gate.try_lock() else {
                self.release(key, &gate);
                return Ok(v);
            };
            let out = self.load_into(key, load).await;
            drop(turn);
            self.release(key, &gate);
            return out;
        }
        let gate = self.gate(key);
        let turn = gate.lock().await;
        let out = match cached() {
            Some(v) => Ok(v),
            None => self.load_into(key, load).await,
        };
        drop(turn);
        self.release(key, &gate);
        out
    }

    /// Runs `load` and stores its value, unless an invalidation came first.
    async fn load_into<E, F>(&self, key: &K, load: impl FnOnce() -> F) -> Result<V, E>
    where
        F: std::future::Future<Output = Result<V, E>>,
    {
        let epoch = self.epoch();
        let loaded = load().await;
        if let Ok(v) = &loaded {
            self.insert(epoch, key.clone(), v.clone());
        }
        loaded
    }

    /// The load gate of `key`, shared by its concurrent callers.
    fn gate(&self, key: &K) -> Arc<tokio::sync::Mutex<()>> {
        let mut loads = self.loads.lock().unwrap_or_else(PoisonError::into_inner);
        loads.entry(key.clone()).or_default().clone()
    }

    /// Lets go of `gate`: the last caller through takes it down.
    fn release(&self, key: &K, gate: &Arc<tokio::sync::Mutex<()>>) {
        let mut loads = self.loads.lock().unwrap_or_else(PoisonError::into_inner);
        if loads
            .get(key)
            .is_some_and(|g| Arc::ptr_eq(g, gate) && Arc::strong_count(gate) == 2)
        {
            loads.remove(key);
        }
    }

    /// Forgets the entries for which `drop` holds.
    fn invalidate(&self, drop: impl Fn(&V) -> bool) {
        let mut state = self.lock();
        state.epoch += 1;
        state.entries.retain(|_, (v, _)| !drop(v));
    }
}

/// The authentication cache of one replica (see the module's comment).
#[derive(Clone, Debug)]
pub struct AuthCache {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Session tokens by the token.
    viewers: TtlMap<String, Viewer>,
    /// Live API keys by their secret's digest.
    api_keys: TtlMap<String, api_key::Model>,
}

impl AuthCache {
    /// A cache keeping entries for `ttl` (0: no caching), at most
    /// `capacity` tokens and as many API keys.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                viewers: TtlMap::new(ttl, capacity),
                api_keys: TtlMap::new(ttl, capacity),
            }),
        }
    }

    /// A cache that forgets what the access-change events on `bus` (local
    /// or relayed from other replicas) make stale, before they are
    /// published.
    pub fn attached(ttl: Duration, capacity: usize, bus: &EventBus) -> Self {
        let cache = Self::new(ttl, capacity);
        let observer = cache.clone();
        bus.observe(move |e| observer.on_event(e));
        cache
    }

    /// Applies one event: forgets the viewers of a user whose access
    /// changed (everyone's for `entity_id` 0), or a revoked API key.
    pub fn on_event(&self, event: &DomainEvent) {
        match event.kind {
            ChangeKind::AccessChanged if event.entity_id == 0 => {
                self.inner.viewers.invalidate(|_| true);
                self.inner.api_keys.invalidate(|_| true);
            }
            ChangeKind::AccessChanged => {
                let user = event.entity_id;
                self.inner.viewers.invalidate(|v| v.user.id == user);
            }
            ChangeKind::ApiKeyRevoked => {
                let key = event.entity_id;
                self.inner.api_keys.invalidate(|k| k.id == key);
            }
            _ => {}
        }
    }

    /// [`super::authenticate`], from memory when this token was seen within
    /// the time to live and no access change came since.
    ///
    /// # Errors
    /// As [`super::authenticate`].
    pub async fn viewer(
        &self,
        db: &DatabaseConnection,
        keys: &TokenKeys,
        bearer: &str,
    ) -> ApiResult<Viewer> {
        let now = chrono::Utc::now();
        self.inner
            .viewers
            .get_or_load(
                &bearer.to_owned(),
                |v| v.token.live_at(now),
                || async move { super::load_viewer(db, keys.verify(bearer)?).await },
            )
            .await
    }

    /// [`api_keys::authenticate`], from memory likewise.
    ///
    /// # Errors
    /// As [`api_keys::authenticate`].
    pub async fn api_key(
        &self,
        db: &DatabaseConnection,
        secret: &str,
    ) -> ApiResult<api_key::Model> {
        let digest = api_keys::digest(secret);
        self.inner
            .api_keys
            .get_or_load(&digest, |_| true, || api_keys::authenticate(db, secret))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_oldest_goes_first() {
        let m: TtlMap<i64, i64> = TtlMap::new(Duration::from_millis(50), 2);
        m.insert(m.epoch(), 1, 10);
        m.insert(m.epoch(), 2, 20);
        m.insert(m.epoch(), 3, 30);
        assert_eq!(m.get(&1), None, "the oldest was evicted");
        assert_eq!((m.get(&2), m.get(&3)), (Some(20), Some(30)));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(m.get(&2), None, "expired");
    }

    #[test]
    fn a_load_that_raced_an_invalidation_is_not_stored() {
        let m: TtlMap<i64, i64> = TtlMap::new(Duration::from_secs(5), 10);
        let epoch = m.epoch();
        m.invalidate(|_| true);
        m.insert(epoch, 1, 10);
        assert_eq!(m.get(&1), None);
        m.insert(m.epoch(), 1, 10);
        assert_eq!(m.get(&1), Some(10));
        m.invalidate(|v| *v == 10);
        assert_eq!(m.get(&1), None);
    }

    /// In its last quarter an entry is loaded again by one caller while
    /// the others go on with it; past its time to live, nobody uses it.
    #[tokio::test]
    async fn an_entry_in_use_is_renewed_before_it_expires() {
        let m: TtlMap<i64, i64> = TtlMap::new(Duration::from_millis(400), 10);
        let ok = |v: i64| async move { Ok::<i64, ()>(v) };
        assert_eq!(m.get_or_load(&1, |_| true, || ok(10)).await, Ok(10));
        assert_eq!(
            m.get_or_load(&1, |_| true, || ok(11)).await,
            Ok(10),
            "young: no load"
        );
        tokio::time::sleep(Duration::from_millis(320)).await;
        // The renewer's load waits; a second caller meanwhile takes the
        // entry as it is, without loading.
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let renewal = m.get_or_load(
            &1,
            |_| true,
            || async move {
                wait.await.map_err(|_| ())?;
                Ok::<i64, ()>(12)
            },
        );
        let other = async {
            tokio::task::yield_now().await;
            let seen = m.get_or_load(&1, |_| true, || ok(13)).await;
            release.send(()).ok();
            seen
        };
        let (renewed, seen) = tokio::join!(renewal, other);
        assert_eq!((renewed, seen), (Ok(12), Ok(10)));
        assert_eq!(m.get(&1), Some(12), "renewed: young again");
        tokio::time::sleep(Duration::from_millis(420)).await;
        assert_eq!(m.get(&1), None, "never used past its time to live");
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let m: TtlMap<i64, i64> = TtlMap::new(Duration::ZERO, 10);
        m.insert(m.epoch(), 1, 10);
        assert_eq!(m.get(&1), None);
    }
}
