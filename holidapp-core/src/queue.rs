//! The [`Queue`] trait: how jobs are handed to workers, leased, and finished.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::job::{Job, JobId};

/// A fencing token: it changes every time a job is leased, so an old lease holder can be told
/// apart from the current one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct LeaseToken(pub u64);

/// A job handed to one worker for a limited time.
///
/// Whoever holds a `Lease` may [`renew`](Queue::renew), [`complete`](Queue::complete),
/// [`fail`](Queue::fail) or [`release`](Queue::release) the job, as long as the lease is still the
/// current one. Once the deadline passes and [`Queue::requeue_expired`] has run, or another worker
/// has leased the job, every one of those calls answers [`Error::LeaseLost`](crate::Error::LeaseLost).
#[derive(Clone, Debug, PartialEq)]
pub struct Lease {
    /// The job as it was when leased (status `in progress`, `attempts` already counting this one).
    pub job: Job,
    /// The fencing token of this lease.
    pub token: LeaseToken,
    /// The worker identity written on the job.
    pub worker: String,
    /// When the lease runs out unless renewed.
    pub deadline: DateTime<Utc>,
}

impl Lease {
    /// The leased job's id.
    pub fn id(&self) -> JobId {
        self.job.id
    }

    /// Which attempt this is, counting from 1.
    pub fn attempt(&self) -> u32 {
        self.job.attempts
    }
}

/// Why a job attempt failed, as far as retrying is concerned.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FailureKind {
    /// Trying again later may work (a backend outage, a data source hiccup).
    Transient,
    /// Trying again cannot work (bad parameters, no data, a render error).
    Permanent,
}

/// How a backend retries failed and abandoned jobs. Every backend applies it through
/// [`RetryPolicy::decide`], so they all agree.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts before a job is `failed` (`HOLIDAPP_MAX_ATTEMPTS`, default 3). At least 1.
    pub max_attempts: u32,
    /// Delay before the first retry; each further retry doubles it.
    pub base_delay: Duration,
    /// Cap on the delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }
}

/// What happens to a job whose attempt failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RetryDecision {
    /// Back to `submitted`, leasable again after this delay.
    RetryAfter(Duration),
    /// To `failed`, for good.
    GiveUp,
}

impl RetryPolicy {
    /// Decides the fate of a job whose attempt number `attempt` (counting from 1) failed.
    ///
    /// Permanent failures and the last allowed attempt give up; otherwise the delay is
    /// `base_delay * 2^(attempt-1)`, capped at `max_delay`, with "equal jitter": a random point in
    /// its upper half, so retries of many jobs that failed together spread out.
    pub fn decide(&self, attempt: u32, kind: FailureKind) -> RetryDecision {
        if kind == FailureKind::Permanent || attempt >= self.max_attempts.max(1) {
            return RetryDecision::GiveUp;
        }
        let exp = attempt.saturating_sub(1).min(31);
        let full = self
            .base_delay
            .checked_mul(1u32 << exp)
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        let half = full / 2;
        let jitter = Duration::from_nanos(fastrand::u64(
            0..=half.as_nanos().min(u64::MAX as u128) as u64,
        ));
        RetryDecision::RetryAfter(half + jitter)
    }
}

/// Settings every backend needs to carry out the queue's rules.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueueSettings {
    /// Retry rules for failed and expired attempts.
    pub retry: RetryPolicy,
    /// How long finished jobs and their results are kept (`HOLIDAPP_RESULT_TTL_SECONDS`).
    pub result_ttl: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            retry: RetryPolicy::default(),
            result_ttl: Duration::from_secs(604_800),
        }
    }
}

/// What one [`Queue::requeue_expired`] pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequeueReport {
    /// Jobs whose lease had expired and that went back to the queue.
    pub requeued: u64,
    /// Jobs whose lease had expired on their last allowed attempt and are now `failed`.
    pub failed: u64,
}

/// How many jobs wait, and where.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Leasable now.
    pub ready: u64,
    /// Waiting for a retry delay to pass.
    pub delayed: u64,
    /// Leased by a worker.
    pub leased: u64,
}

/// A reliable, leased job queue.
///
/// # Contract
///
/// An implementation must guarantee, and the contract suite
/// ([`contract`](crate::contract), feature `test-util`) checks:
///
/// - **Atomicity.** Each method is one atomic step: no other caller ever sees a job half moved
///   (stored but not queued, leased but still `submitted`, complete without its result).
/// - **Order.** Ready jobs are leased oldest submission first. A job back from a lease (released,
///   expired, or retried once its delay has passed) is therefore leased before every job not
///   leased yet: it has waited longest, and a retry delay means what it says even behind a large
///   backlog.
/// - **At most one holder.** A job is leased by at most one worker at a time; each lease gets a
///   fresh [`LeaseToken`].
/// - **Fencing.** `renew`, `complete`, `fail` and `release` check the token and answer
///   [`Error::LeaseLost`](crate::Error::LeaseLost) once the lease is not the current one (expired
///   and requeued, leased again, or the job deleted). A lost lease changes nothing.
/// - **Nothing lost.** A leased job whose deadline passes goes back to the queue on the next
///   [`requeue_expired`](Queue::requeue_expired), or to `failed` (with the reason) when that was
///   its last allowed attempt.
/// - **Status changes** follow [`JobStatus::transition`](crate::JobStatus::transition).
/// - **Time** comes from the backend's [`Clock`](crate::Clock).
#[async_trait]
pub trait Queue: Send + Sync {
    /// Stores `job` (status `submitted`) and queues it, as one step. Creating a job and queueing
    /// it are never separate, so no job is ever stored but unqueued.
    async fn enqueue(&self, job: &Job) -> Result<()>;

    /// Enqueues many jobs in as few round trips as the backend allows. The default calls
    /// [`enqueue`](Queue::enqueue) for each; each job is still atomic on its own.
    async fn enqueue_many(&self, jobs: &[Job]) -> Result<()> {
        for job in jobs {
            self.enqueue(job).await?;
        }
        Ok(())
    }

    /// Hands the oldest ready job to `worker` for `lease_for`, marking it `in progress` with the
    /// worker's identity, `started_at` and one more attempt; `None` when nothing is ready.
    async fn lease(&self, worker: &str, lease_for: Duration) -> Result<Option<Lease>>;

    /// Extends `lease` to `lease_for` from now and returns the new deadline.
    async fn renew(&self, lease: &Lease, lease_for: Duration) -> Result<DateTime<Utc>>;

    /// Renews many leases in one step (a worker's batched heartbeat). Each entry of the answer
    /// says whether that lease is still held; a lost lease does not stop the others.
    async fn renew_many(&self, leases: &[Lease], lease_for: Duration) -> Result<Vec<bool>> {
        let mut held = Vec::with_capacity(leases.len());
        for lease in leases {
            match self.renew(lease, lease_for).await {
                Ok(_) => held.push(true),
                Err(crate::Error::LeaseLost) => held.push(false),
                Err(e) => return Err(e),
            }
        }
        Ok(held)
    }

    /// Stores `result` and marks the job `complete`, as one step; returns the finished job.
    async fn complete(&self, lease: &Lease, result: Vec<u8>) -> Result<Job>;

    /// Records a failed attempt with its reason. The backend applies its [`RetryPolicy`]: the job
    /// goes back to `submitted` after a backoff delay, or to `failed` for good. Returns the job as
    /// it now is.
    async fn fail(&self, lease: &Lease, reason: &str, kind: FailureKind) -> Result<Job>;

    /// Gives the job back to the queue at once without counting the attempt (a worker shutting
    /// down before it could finish).
    async fn release(&self, lease: &Lease) -> Result<()>;

    /// Sends every job whose lease has expired back to the queue, or to `failed` when it was on
    /// its last allowed attempt. Safe to call from many processes at once: each expired lease is
    /// handled exactly once.
    async fn requeue_expired(&self) -> Result<RequeueReport>;

    /// How many jobs are ready, delayed and leased.
    async fn depth(&self) -> Result<QueueDepth>;

    /// Waits until a job may be ready to lease or `timeout` passes, whichever comes first. A hint
    /// only: the next [`lease`](Queue::lease) may still find nothing. Idle workers call this
    /// instead of polling in a tight loop.
    async fn wait_for_work(&self, timeout: Duration);
}
