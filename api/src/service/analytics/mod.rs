//! Flow analytics in memory: each replica holds the flow facts
//! (`flow_completion`, `flow_wip`) as columns ([`columns`]) and computes the
//! completions and WIP parts of flow metrics from them ([`compute`]), with
//! the same numbers as the SQL path, which stays the reference and answers
//! whatever the store cannot (see `docs/performance.md`, "Analytics in
//! memory").
//!
//! The database stays the source of truth. The store is loaded in the
//! background at start; until it is, metrics come from SQL. It is kept
//! current from the event bus: every work item change (this replica's, and
//! through the PostgreSQL relay the other replicas') names the item whose
//! facts were rewritten; its rows are read again and replace the held ones.
//! A metric read first applies every event already published (it waits for
//! an update in progress): a change whose mutation has answered is in the
//! next metric read on the same replica. A bus that overflowed (events
//! lost) drops the store back to SQL until a full reload; a full reload also
//! runs periodically as a backstop (`GEMBA_ANALYTICS_RELOAD_SECONDS`: every
//! 15 minutes by default, every 6 hours where the catch-up below runs).
//!
//! Events from other replicas come through `LISTEN/NOTIFY`, which loses
//! whatever is sent while a listener is reconnecting. So on PostgreSQL the
//! store also catches up by itself: every `GEMBA_ANALYTICS_CATCHUP_MS`
//! (1 s), and at once when the relay has reconnected, it asks the database
//! which items' facts changed since it last looked ([`catchup`]) and reads
//! them again. Reading an item's rows again is idempotent, so an item both
//! announced and found is only read twice. A catch-up that fails keeps the
//! facts held and retries; past [`BEHIND`] without one, the replica reports
//! not ready. On SQLite one process writes and its bus misses nothing but
//! an overflow, which reloads: no catch-up runs there.

pub mod catchup;
pub mod columns;
pub mod compute;
pub mod delivery;
pub mod states;
pub mod tree;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use sea_orm::{DatabaseConnection, DbBackend, DbErr};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{Notify, broadcast, watch};

use self::catchup::{Changed, Mark};
use self::columns::Facts;
use self::compute::{Filter, Groups, UnitCol};
use crate::config::{AnalyticsMode, Settings};
use crate::events::{ChangeKind, DomainEvent, EventBus};
use crate::service::Reach;
use crate::service::directory::Tree as Directory;
use crate::service::facts::delivery::kind_code;
use crate::service::facts::flow::ms;
use crate::service::metrics::delivery::Counted;
use crate::service::metrics::flow::{Completions, Scope, Wip};
use crate::service::metrics::{FlowParts, MetricFilter, StateTime, Window};

/// Wait before retrying a failed load.
const RETRY: Duration = Duration::from_secs(5);

/// Longest a replica serves its facts without a catch-up that succeeded
/// before it reports not ready (or three catch-up periods, if longer).
pub const BEHIND: Duration = Duration::from_secs(10);

/// Parts of sibling units' flow metrics computed in memory, by unit id;
/// `None` for a part not asked for or that the store cannot answer.
#[derive(Debug, Default)]
pub struct GroupedParts {
    pub completions: Option<HashMap<i64, Completions>>,
    pub wip: Option<HashMap<i64, Wip>>,
    pub time_in_state: Option<HashMap<i64, Vec<StateTime>>>,
    pub cumulative_flow: Option<HashMap<i64, BTreeMap<String, Vec<usize>>>>,
}

/// A replica's in-memory flow facts, or nothing when metrics are computed
/// in the database (`GEMBA_ANALYTICS=sql`). Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Analytics {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    db: DatabaseConnection,
    /// `None` until loaded, and after events were lost.
    facts: RwLock<Option<Facts>>,
    /// This replica's bus, read by whoever applies changes: the update
    /// task and every metric read.
    rx: tokio::sync::Mutex<broadcast::Receiver<DomainEvent>>,
    /// While a full load runs: what changed since it began, to read again
    /// once it is done.
    touched: Mutex<Option<Changed>>,
    /// Events were lost (the bus overflowed) or a refresh failed: the held
    /// facts may be stale.
    lost: AtomicBool,
    reload: Notify,
    loaded: watch::Sender<bool>,
    /// Metric parts answered from memory.
    answers: AtomicU64,
    /// Between two catch-ups; zero when none runs (SQLite, or turned off).
    catchup: Duration,
    /// Where the next catch-up starts, set by each full load.
    mark: Mutex<Option<Mark>>,
    /// When the facts were last known current: loaded or caught up.
    current_at: Mutex<Instant>,
    /// Since when catch-ups and loads have failed, none succeeding (logged
    /// once until one does).
    failing_since: Mutex<Option<Instant>>,
    /// A full load is running (and no catch-up meanwhile).
    loading: AtomicBool,
    /// Items read again because a catch-up found them changed.
    caught_up: AtomicU64,
    /// Times the bus lost events and the change logs made up for them.
    recovered: AtomicU64,
}

impl Analytics {
    /// Starts loading the facts of `db` in the background and listening to
    /// `bus`, unless `settings` asks for SQL.
    pub fn start(db: &DatabaseConnection, bus: &EventBus, settings: &Settings) -> Self {
        if settings.analytics == AnalyticsMode::Sql {
            return Self::default();
        }
        let catchup = if db.get_database_backend() == DbBackend::Postgres {
            settings.analytics_catchup
        } else {
            Duration::ZERO
        };
        let inner = Arc::new(Inner {
            db: db.clone(),
            facts: RwLock::new(None),
            rx: tokio::sync::Mutex::new(bus.subscribe()),
            touched: Mutex::new(None),
            lost: AtomicBool::new(false),
            reload: Notify::new(),
            loaded: watch::channel(false).0,
            answers: AtomicU64::new(0),
            catchup,
            mark: Mutex::new(None),
            current_at: Mutex::new(Instant::now()),
            failing_since: Mutex::new(None),
            loading: AtomicBool::new(false),
            caught_up: AtomicU64::new(0),
            recovered: AtomicU64::new(0),
        });
        let reload = reload_period(settings, catchup);
        tokio::spawn(run(inner.clone(), bus.subscribe(), bus.gaps(), reload));
        Self { inner: Some(inner) }
    }

    /// Whether metrics are answered from memory now.
    pub fn is_loaded(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| *i.loaded.borrow())
    }

    /// Whether the facts in memory answer metrics but cannot catch up
    /// with the database: every catch-up or reload failed for longer than
    /// [`BEHIND`] (or three catch-up periods), or none has ended for that
    /// long outside a reload. They may miss other replicas' changes, so the
    /// replica is not ready.
    pub fn is_behind(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| {
            let bound = BEHIND.max(i.catchup * 3);
            let failing = i
                .failing_since
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some_and(|t| t.elapsed() > bound);
            let stuck = !i.loading.load(Ordering::SeqCst) && i.current_at().elapsed() > bound;
            !i.catchup.is_zero() && *i.loaded.borrow() && (failing || stuck)
        })
    }

    /// Items read again because a catch-up found them changed, so far.
    pub fn caught_up(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.caught_up.load(Ordering::Relaxed))
    }

    /// Times the bus lost events and the database's change logs made up
    /// for them (PostgreSQL) instead of a full reload.
    pub fn recovered(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.recovered.load(Ordering::Relaxed))
    }

    /// Metric parts answered from memory so far.
    pub fn answers(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.answers.load(Ordering::Relaxed))
    }

    /// Waits until the facts are loaded; `false` in SQL mode.
    pub async fn wait_loaded(&self) -> bool {
        let Some(inner) = &self.inner else {
            return false;
        };
        let mut rx = inner.loaded.subscribe();
        rx.wait_for(|loaded| *loaded).await.is_ok()
    }

    /// Bytes the held columns take, and their rows.
    pub fn size(&self) -> (usize, usize) {
        self.inner.as_ref().map_or((0, 0), |i| {
            i.read().as_ref().map_or((0, 0), |f| (f.bytes(), f.rows()))
        })
    }

    /// The completions part of one unit's flow metrics; `None` when the
    /// store cannot answer (not loaded, or a filter it does not hold).
    pub async fn completions(&self, scope: &Scope<'_>, window: Window) -> Option<Completions> {
        let inner = self.ready(scope.filter).await?;
        let facts = inner.read();
        let facts = facts.as_ref()?;
        let filter = Filter::of(scope.filter, facts)?;
        let groups = Groups::one(scope, facts);
        let out = compute::completions(facts, &groups, &filter, window);
        inner.answers.fetch_add(1, Ordering::Relaxed);
        out.into_iter().next()
    }

    /// The WIP part of one unit's flow metrics; `None` as for
    /// [`Self::completions`].
    pub async fn wip(&self, scope: &Scope<'_>, window: Window) -> Option<Wip> {
        let inner = self.ready(scope.filter).await?;
        let facts = inner.read();
        let facts = facts.as_ref()?;
        let filter = Filter::of(scope.filter, facts)?;
        let groups = Groups::one(scope, facts);
        let out = compute::wip(facts, &groups, &filter, window);
        inner.answers.fetch_add(1, Ordering::Relaxed);
        out.into_iter().next()
    }

    /// Time in state and the cumulative flow of one unit, each if `parts`
    /// asks for it (time in state, cumulative flow) and the store can
    /// answer (not when the tree is not held).
    pub async fn states(
        &self,
        scope: &Scope<'_>,
        window: Window,
        parts: (bool, bool),
    ) -> (Option<Vec<StateTime>>, Option<BTreeMap<String, Vec<usize>>>) {
        if !parts.0 && !parts.1 {
            return (None, None);
        }
        let Some(inner) = self.ready(scope.filter).await else {
            return (None, None);
        };
        let facts = inner.read();
        let Some((facts, tree)) = facts.as_ref().and_then(|f| Some((f, f.tree.as_ref()?))) else {
            return (None, None);
        };
        let Some(filter) = Filter::of(scope.filter, facts) else {
            return (None, None);
        };
        let groups = Groups::one(scope, facts);
        let time_in_state = parts.0.then(|| {
            inner.answers.fetch_add(1, Ordering::Relaxed);
            states::time_in_state(facts, tree, &groups, &filter, window)
        });
        let cumulative_flow = parts.1.then(|| {
            inner.answers.fetch_add(1, Ordering::Relaxed);
            states::cumulative_flow(tree, &groups, &filter, window)
        });
        (
            time_in_state.and_then(|v| v.into_iter().next()),
            cumulative_flow.and_then(|v| v.into_iter().next()),
        )
    }

    /// The parts `parts` asks for of sibling units' flow metrics, each
    /// unit found in `col`, in one pass over each table; a part the store
    /// cannot answer is `None`.
    pub async fn grouped(
        &self,
        col: UnitCol,
        ids: &[i64],
        filter: &MetricFilter,
        window: Window,
        parts: FlowParts,
    ) -> GroupedParts {
        let mut out = GroupedParts::default();
        let Some(inner) = self.ready(filter).await else {
            return out;
        };
        let facts = inner.read();
        let Some(facts) = facts.as_ref() else {
            return out;
        };
        let Some(filter) = Filter::of(filter, facts) else {
            return out;
        };
        let groups = Groups::many(col, ids, facts);
        let mut answered = 0;
        if parts.completions {
            out.completions = Some(by_id(
                ids,
                compute::completions(facts, &groups, &filter, window),
            ));
            answered += 1;
        }
        if parts.wip {
            out.wip = Some(by_id(ids, compute::wip(facts, &groups, &filter, window)));
            answered += 1;
        }
        if let Some(tree) = facts.tree.as_ref() {
            if parts.time_in_state {
                let v = states::time_in_state(facts, tree, &groups, &filter, window);
                out.time_in_state = Some(by_id(ids, v));
                answered += 1;
            }
            if parts.cumulative_flow {
                let v = states::cumulative_flow(tree, &groups, &filter, window);
                out.cumulative_flow = Some(by_id(ids, v));
                answered += 1;
            }
        }
        inner.answers.fetch_add(answered, Ordering::Relaxed);
        out
    }

    /// What the delivery metrics of `ids` (each with its subtree for
    /// [`Reach::Subtree`]) count over `window`, in the order of `ids`, with
    /// the units placed by `tree`; `None` when the store cannot answer.
    pub async fn delivery(
        &self,
        ids: &[i64],
        reach: Reach,
        window: Window,
        tree: &Directory,
    ) -> Option<Vec<Counted>> {
        let inner = self.ready(&MetricFilter::default()).await?;
        let facts = inner.read();
        let delivery = &facts.as_ref()?.delivery;
        // Per unit code, the groups its rows count for: its own unit's, and
        // for a subtree every asked unit above it.
        let mut member = vec![Vec::new(); delivery.units().len() + 1];
        for (g, &id) in ids.iter().enumerate() {
            let below = match reach {
                Reach::Subtree if !tree.subtree(id).is_empty() => tree.subtree(id),
                _ => std::slice::from_ref(&id),
            };
            for unit in below {
                if let Some(groups) = delivery.unit_code(*unit).and_then(|c| member.get_mut(c)) {
                    groups.push(g);
                }
            }
        }
        let span = (ms(window.from), ms(window.to));
        let out = delivery.count(&member, ids.len(), span);
        inner.answers.fetch_add(1, Ordering::Relaxed);
        Some(out)
    }

    /// The leaves below `roots` by category at `at` (epoch ms), as
    /// delivery progress counts them; `None` when the store cannot answer.
    pub async fn leaves(&self, roots: &[i64], at: i64) -> Option<tree::LeafCounts> {
        let inner = self.ready(&MetricFilter::default()).await?;
        let facts = inner.read();
        let facts = facts.as_ref()?;
        let out = facts.tree.as_ref()?.leaves(roots, at, &facts.dicts.units);
        inner.answers.fetch_add(1, Ordering::Relaxed);
        Some(out)
    }

    /// A forecast's sample from memory: per day of `[from, to)` the leaf
    /// completions in the subtrees of `units` (see
    /// [`compute::daily_leaf_throughput`]); `None` when the store cannot
    /// answer.
    pub async fn daily_throughput(
        &self,
        units: &[crate::policy::UnitPath],
        span: (i64, i64),
        days: usize,
    ) -> Option<Vec<u32>> {
        let inner = self.ready(&MetricFilter::default()).await?;
        let facts = inner.read();
        let facts = facts.as_ref()?;
        let out = compute::daily_leaf_throughput(facts, facts.tree.as_ref()?, units, span, days);
        inner.answers.fetch_add(1, Ordering::Relaxed);
        Some(out)
    }

    /// The store, current with every event published so far, when it can
    /// answer for `filter`.
    async fn ready(&self, filter: &MetricFilter) -> Option<&Inner> {
        let inner = self.inner.as_deref()?;
        if filter.leaves_of.is_some() || !*inner.loaded.borrow() {
            return None;
        }
        inner.sync().await;
        (*inner.loaded.borrow()).then_some(inner)
    }
}

/// Per-group results keyed by the groups' unit ids.
fn by_id<T>(ids: &[i64], per_group: Vec<T>) -> HashMap<i64, T> {
    ids.iter().copied().zip(per_group).collect()
}

impl Inner {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Option<Facts>> {
        self.facts.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Option<Facts>> {
        self.facts.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn current_at(&self) -> Instant {
        *self
            .current_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn set_current(&self, mark: Option<Mark>) {
        *self
            .current_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        if mark.is_some() {
            *self.mark.lock().unwrap_or_else(PoisonError::into_inner) = mark;
        }
    }

    /// Notes a failed catch-up or load; `true` for the first of a run.
    fn failed(&self) -> bool {
        let mut since = self
            .failing_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let first = since.is_none();
        since.get_or_insert_with(Instant::now);
        first
    }

    /// Notes a catch-up or load that succeeded; `true` after failures.
    fn succeeded(&self) -> bool {
        self.failing_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .is_some()
    }

    /// Reads again the items whose facts changed since the last catch-up
    /// (or load), announced or not; on failure keeps the facts held and
    /// the mark, for the next one to retry.
    async fn catch_up(&self) {
        let mark = self
            .mark
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(mark) = mark else { return };
        if self.read().is_none() {
            // Dropped: the reload coming sets a new mark.
            return;
        }
        // One writer at a time, as [`Self::sync`]: an item's rows read
        // earlier never replace rows read later.
        let rx = self.rx.lock().await;
        let caught = self.catch_up_from(&mark).await;
        drop(rx);
        match caught {
            Ok(items) => {
                if self.succeeded() {
                    tracing::info!(items, "flow facts in memory caught up with the database");
                }
            }
            Err(e) => {
                if self.failed() {
                    tracing::warn!(
                        error = %e,
                        "cannot catch up with the database; serving the flow facts held"
                    );
                }
            }
        }
    }

    /// Reads again what changed since `mark`: the items and delivery
    /// entities read again. The caller holds the lock on `rx`.
    async fn catch_up_from(&self, mark: &Mark) -> Result<usize, DbErr> {
        let (next, changed) = mark.changes(&self.db).await?;
        if !changed.is_empty() {
            let held = self.held_related(&changed);
            let rows = Facts::fetch(&self.db, &changed, &held).await?;
            let mut facts = self.write();
            let Some(f) = facts.as_mut() else {
                return Ok(0);
            };
            if let Err(e) = f.replace(&rows) {
                drop(facts);
                self.drop_facts(&e.to_string());
                return Ok(0);
            }
            self.caught_up
                .fetch_add(changed.len() as u64, Ordering::Relaxed);
        }
        self.set_current(Some(next));
        Ok(changed.len())
    }

    /// What the held delivery facts link to the deployments `changed`
    /// names.
    fn held_related(&self, changed: &Changed) -> Vec<(i32, i64)> {
        if changed.delivery.is_empty() {
            return Vec::new();
        }
        self.read()
            .as_ref()
            .map(|f| f.delivery.held_related(&changed.delivery))
            .unwrap_or_default()
    }

    /// Stops answering from memory until the next full load.
    fn drop_facts(&self, why: &str) {
        tracing::warn!(why, "flow facts in memory dropped until reloaded");
        self.lost.store(true, Ordering::SeqCst);
        self.loaded.send_replace(false);
        *self.write() = None;
        self.reload.notify_one();
    }

    /// The items and delivery entities changed by the events waiting in
    /// `rx`; `None` when some were lost.
    fn drain(rx: &mut broadcast::Receiver<DomainEvent>) -> Option<Changed> {
        let mut changed = Changed::default();
        let mut complete = true;
        loop {
            match rx.try_recv() {
                Ok(e) => {
                    if matches!(
                        e.kind,
                        ChangeKind::WorkItemCreated
                            | ChangeKind::WorkItemUpdated
                            | ChangeKind::WorkItemMoved
                    ) {
                        changed.items.push(e.entity_id);
                    } else if let Some(kind) = kind_code(e.kind) {
                        changed.delivery.push((kind, e.entity_id));
                    }
                }
                Err(TryRecvError::Lagged(_)) => complete = false,
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        complete.then_some(changed)
    }

    /// Applies every event published so far.
    async fn sync(&self) {
        let mut rx = self.rx.lock().await;
        let Some(changed) = Self::drain(&mut rx) else {
            self.recover().await;
            return;
        };
        if changed.is_empty() {
            return;
        }
        if let Some(t) = self
            .touched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            t.extend(&changed);
        }
        if self.read().is_none() {
            return;
        }
        let held = self.held_related(&changed);
        match Facts::fetch(&self.db, &changed, &held).await {
            Ok(rows) => {
                let mut facts = self.write();
                if let Some(f) = facts.as_mut()
                    && let Err(e) = f.replace(&rows)
                {
                    drop(facts);
                    self.drop_facts(&e.to_string());
                }
            }
            Err(e) => self.drop_facts(&e.to_string()),
        }
    }

    /// After the bus lost events (the caller holds the lock on `rx`): on
    /// PostgreSQL, whatever they named committed before they were
    /// published, so the database's change logs hold it and a catch-up
    /// reads it again; a load running meanwhile does the same from its own
    /// mark. Elsewhere, or when that fails, the facts are dropped until a
    /// full reload.
    async fn recover(&self) {
        self.lost.store(true, Ordering::SeqCst);
        let mark = self
            .mark
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(mark) = mark.filter(|_| !self.catchup.is_zero()) else {
            self.drop_facts("the event bus overflowed");
            return;
        };
        if self.read().is_none() {
            // The load running (or coming) reads from its own mark.
            return;
        }
        match self.catch_up_from(&mark).await {
            Ok(items) => {
                self.recovered.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    items,
                    "events lost on the bus: read again from the database"
                );
            }
            Err(e) => self.drop_facts(&e.to_string()),
        }
    }

    /// Reads every fact again and puts it in place of the held ones, then
    /// the rows of the items changed meanwhile; until it succeeds, again
    /// after [`RETRY`].
    async fn load(&self) {
        self.loading.store(true, Ordering::SeqCst);
        loop {
            self.lost.store(false, Ordering::SeqCst);
            *self.touched.lock().unwrap_or_else(PoisonError::into_inner) = Some(Changed::default());
            let started = Instant::now();
            match self.load_once().await {
                Ok(true) => {
                    let (bytes, rows) = self
                        .read()
                        .as_ref()
                        .map_or((0, 0), |f| (f.bytes(), f.rows()));
                    tracing::info!(
                        rows,
                        mib = bytes / (1 << 20),
                        seconds = started.elapsed().as_secs_f64(),
                        "flow facts loaded in memory"
                    );
                    self.succeeded();
                    self.loading.store(false, Ordering::SeqCst);
                    return;
                }
                Ok(false) => {
                    tracing::info!("events lost while loading the flow facts: loading again");
                }
                Err(e) => {
                    self.failed();
                    tracing::warn!(error = %e, "cannot load the flow facts; retrying");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }

    /// `Ok(false)` when events were lost meanwhile.
    async fn load_once(&self) -> Result<bool, DbErr> {
        // Marked before reading: whatever commits during the load, the
        // first catch-up reads again.
        let mut mark = if self.catchup.is_zero() {
            None
        } else {
            Some(Mark::now(&self.db).await?)
        };
        let mut facts = Facts::load(&self.db).await?;
        let mut rx = self.rx.lock().await;
        let drained = Self::drain(&mut rx);
        let lost = drained.is_none() || self.lost.load(Ordering::SeqCst);
        let mut touched = self
            .touched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_default();
        touched.extend(&drained.unwrap_or_default());
        if lost {
            // Events were lost while loading: on PostgreSQL everything
            // they named is in the change logs since the load's mark;
            // elsewhere, load again.
            let Some(m) = mark.as_ref() else {
                return Ok(false);
            };
            let (next, changed) = m.changes(&self.db).await?;
            touched.extend(&changed);
            mark = Some(next);
        }
        if !touched.is_empty() {
            let held = facts.delivery.held_related(&touched.delivery);
            facts.replace(&Facts::fetch(&self.db, &touched, &held).await?)?;
        }
        *self.write() = Some(facts);
        self.set_current(mark);
        self.loaded.send_replace(true);
        drop(rx);
        Ok(true)
    }
}

/// What the update task does next.
enum Step {
    Sync,
    CatchUp,
    Reload,
}

/// Between two full reloads: as configured, or by default rarely where a
/// catch-up (every `catchup`, zero for none) brings other writers' changes.
fn reload_period(settings: &Settings, catchup: Duration) -> Duration {
    settings.analytics_reload.unwrap_or(if catchup.is_zero() {
        Settings::DEFAULT_RELOAD
    } else {
        Settings::DEFAULT_RELOAD_CAUGHT_UP
    })
}

/// Loads, then applies changes as they come, catches up with the database
/// every catch-up period and whenever `gaps` says the relay may have lost
/// events, and loads again every `period` (never for zero) or after events
/// were lost.
async fn run(
    inner: Arc<Inner>,
    mut wake: broadcast::Receiver<DomainEvent>,
    mut gaps: watch::Receiver<u64>,
    period: Duration,
) {
    inner.load().await;
    let mut next = Instant::now() + period;
    let catchup = !inner.catchup.is_zero();
    let mut tick = tokio::time::interval(inner.catchup.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let step = tokio::select! {
            r = wake.recv() => {
                if matches!(r, Err(RecvError::Closed)) {
                    return;
                }
                // One sync applies every event waiting.
                while matches!(wake.try_recv(), Ok(_) | Err(TryRecvError::Lagged(_))) {}
                Step::Sync
            }
            r = gaps.changed() => {
                if r.is_err() {
                    return;
                }
                Step::CatchUp
            }
            _ = tick.tick(), if catchup => Step::CatchUp,
            () = inner.reload.notified() => Step::Reload,
            () = tokio::time::sleep_until(next.into()), if !period.is_zero() => Step::Reload,
        };
        match step {
            Step::Sync => inner.sync().await,
            Step::CatchUp => inner.catch_up().await,
            Step::Reload => {
                inner.load().await;
                next = Instant::now() + period;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reload_is_rare_only_where_a_catch_up_runs() {
        let mut settings = Settings::default();
        let second = Duration::from_secs(1);
        assert_eq!(
            reload_period(&settings, Duration::ZERO),
            Settings::DEFAULT_RELOAD
        );
        assert_eq!(
            reload_period(&settings, second),
            Settings::DEFAULT_RELOAD_CAUGHT_UP
        );
        assert!(Settings::DEFAULT_RELOAD_CAUGHT_UP > Settings::DEFAULT_RELOAD);
        // A configured period wins either way, zero (never) included.
        settings.analytics_reload = Some(Duration::ZERO);
        assert_eq!(reload_period(&settings, second), Duration::ZERO);
        settings.analytics_reload = Some(second * 60);
        assert_eq!(reload_period(&settings, Duration::ZERO), second * 60);
    }
}
