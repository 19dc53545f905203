//! [`WorkerStats`]: counters a worker keeps while it runs, readable from any thread.
//!
//! The `holidapp-worker` run loop updates them, logs them in its periodic summary line and
//! returns them when it stops; a caller that embeds a worker (the HTTP API without Redis) keeps
//! an `Arc` of them and shows a [`snapshot`](WorkerStats::snapshot) on its metrics page. They
//! live here, beside the processing step, so that both adapters share them without depending on
//! each other.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of one worker. Every counter only grows, except `busy`.
///
/// Relaxed atomics: each counter is exact, but a snapshot taken while jobs run may mix values from
/// slightly different instants, which is fine for metrics and logs.
#[derive(Debug, Default)]
pub struct WorkerStats {
    leased: AtomicU64,
    completed: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    lease_lost: AtomicU64,
    cancelled: AtomicU64,
    released: AtomicU64,
    crashed: AtomicU64,
    unrecorded: AtomicU64,
    backend_errors: AtomicU64,
    requeued: AtomicU64,
    expired_failed: AtomicU64,
    purged: AtomicU64,
    busy: AtomicU64,
}

/// The values of [`WorkerStats`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Jobs this worker leased.
    pub leased: u64,
    /// Jobs it rendered and stored as `complete`.
    pub completed: u64,
    /// Attempts that failed with a transient error; the queue retries the job later.
    pub retried: u64,
    /// Jobs it recorded as `failed` for good.
    pub failed: u64,
    /// Jobs it dropped because their lease was taken over (found by a heartbeat, or refused when
    /// the outcome was stored). Another worker owns them now.
    pub lease_lost: u64,
    /// Jobs it stopped running because a heartbeat found them cancelled.
    pub cancelled: u64,
    /// Jobs handed back to the queue unfinished at shutdown.
    pub released: u64,
    /// Jobs whose task panicked; their lease runs out and the queue retries them.
    pub crashed: u64,
    /// Jobs whose outcome could not be stored because the backend was unreachable; their lease
    /// runs out and the queue retries them.
    pub unrecorded: u64,
    /// Backend calls (lease, renew, requeue, purge, store) that failed and were retried later.
    pub backend_errors: u64,
    /// Expired leases (of any worker) this worker sent back to the queue.
    pub requeued: u64,
    /// Expired leases on their last attempt that this worker marked `failed`.
    pub expired_failed: u64,
    /// Finished jobs past retention this worker purged.
    pub purged: u64,
    /// Jobs running right now.
    pub busy: u64,
}

/// One counter of [`WorkerStats`], for [`WorkerStats::add`]; each is the field of
/// [`StatsSnapshot`] of the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Counter {
    Leased,
    Completed,
    Retried,
    Failed,
    LeaseLost,
    Cancelled,
    Released,
    Crashed,
    Unrecorded,
    BackendErrors,
    Requeued,
    ExpiredFailed,
    Purged,
}

impl WorkerStats {
    /// Fresh counters, all zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            leased: get(&self.leased),
            completed: get(&self.completed),
            retried: get(&self.retried),
            failed: get(&self.failed),
            lease_lost: get(&self.lease_lost),
            cancelled: get(&self.cancelled),
            released: get(&self.released),
            crashed: get(&self.crashed),
            unrecorded: get(&self.unrecorded),
            backend_errors: get(&self.backend_errors),
            requeued: get(&self.requeued),
            expired_failed: get(&self.expired_failed),
            purged: get(&self.purged),
            busy: get(&self.busy),
        }
    }

    /// Adds `n` to `counter`.
    pub fn add(&self, counter: Counter, n: u64) {
        let cell = match counter {
            Counter::Leased => &self.leased,
            Counter::Completed => &self.completed,
            Counter::Retried => &self.retried,
            Counter::Failed => &self.failed,
            Counter::LeaseLost => &self.lease_lost,
            Counter::Cancelled => &self.cancelled,
            Counter::Released => &self.released,
            Counter::Crashed => &self.crashed,
            Counter::Unrecorded => &self.unrecorded,
            Counter::BackendErrors => &self.backend_errors,
            Counter::Requeued => &self.requeued,
            Counter::ExpiredFailed => &self.expired_failed,
            Counter::Purged => &self.purged,
        };
        cell.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a job that starts running (`busy` goes up).
    pub fn job_started(&self) {
        self.busy.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a job that stopped running (`busy` goes down).
    pub fn job_ended(&self) {
        self.busy.fetch_sub(1, Ordering::Relaxed);
    }
}
