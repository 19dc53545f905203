//! The queue, by capability: [`Producer`] stores new jobs, [`Consumer`] hands them to workers
//! under leases and takes their outcomes, [`Maintenance`] recovers abandoned leases and frees
//! finished jobs past retention.
//!
//! Each trait is small so that a wrapper (a test double injecting outages, a metrics decorator)
//! implements only the capability it changes. A backend implements all of them, and
//! [`JobStore`](crate::JobStore) for reading; [`Backend`](crate::Backend) names the whole set.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::job::{Job, JobId, Name, Progress, QueueName};
use crate::kind::Output;
use crate::machine::{FailureKind, RetryPolicy};

/// A fencing token: it changes every time a job is leased, so an old lease holder can be told
/// apart from the current one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct LeaseToken(pub u64);

/// A job handed to one worker for a limited time.
///
/// Whoever holds a `Lease` may [`renew`](Consumer::renew), [`complete`](Consumer::complete),
/// [`fail`](Consumer::fail) or [`release`](Consumer::release) the job, as long as the lease is
/// still the current one. Once the deadline passes and [`Maintenance::requeue_expired`] has run,
/// or another worker has leased the job, every one of those calls answers
/// [`Error::LeaseLost`](crate::Error::LeaseLost).
#[derive(Clone, Debug, PartialEq)]
pub struct Lease {
    /// The job as it was when leased (status `in progress`, `attempts` already counting this one).
    pub job: Job,
    /// The fencing token of this lease.
    pub token: LeaseToken,
    /// The worker identity written on the job.
    pub worker: Name,
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

/// Settings every backend needs to carry out the queue's rules.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueueSettings {
    /// Retry rules for failed and expired attempts.
    pub retry: RetryPolicy,
    /// How long finished jobs and their results are kept (`HOLIDAPP_RESULT_TTL_SECONDS`).
    pub result_ttl: Duration,
    /// How long a unique key holds its job, from its submit
    /// (`HOLIDAPP_UNIQUE_TTL_SECONDS`, default one day).
    pub unique_ttl: Duration,
    /// The quotas of every queue.
    pub quotas: Quotas,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            retry: RetryPolicy::default(),
            result_ttl: Duration::from_secs(604_800),
            unique_ttl: Duration::from_secs(86_400),
            quotas: Quotas::default(),
        }
    }
}

/// Per-queue quotas; past one, a submit is refused with
/// [`Error::QuotaExceeded`](crate::Error::QuotaExceeded) and nothing is stored. `None` is no
/// limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quotas {
    /// Most jobs a queue holds waiting (`submitted`: ready or delayed)
    /// (`HOLIDAPP_QUEUE_MAX_WAITING`).
    pub max_waiting: Option<u64>,
    /// Most bytes of results a queue holds (`HOLIDAPP_QUEUE_MAX_RESULT_BYTES`); a queue at or
    /// past it takes no new job until retention or deletes free some.
    pub max_result_bytes: Option<u64>,
}

/// One of the [`Quotas`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Quota {
    /// [`Quotas::max_waiting`].
    Waiting,
    /// [`Quotas::max_result_bytes`].
    ResultBytes,
}

impl Quotas {
    /// The error for a job that the quota `which` of `queue` refused.
    pub(crate) fn refusal(&self, queue: &QueueName, which: Quota) -> crate::Error {
        crate::Error::QuotaExceeded(match which {
            Quota::Waiting => format!(
                "queue '{queue}' already holds its most waiting jobs ({}); try again once \
                 workers have drained it",
                self.max_waiting.unwrap_or(0)
            ),
            Quota::ResultBytes => format!(
                "the results of queue '{queue}' already take its most bytes ({}); try again \
                 once retention or deletes have freed some",
                self.max_result_bytes.unwrap_or(0)
            ),
        })
    }
}

/// What a submitted job became.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// It was stored and queued.
    Stored,
    /// Its unique key is held by this job, which is kept; nothing was stored.
    Duplicate(JobId),
}

/// What a heartbeat learns of one lease ([`Consumer::renew_many`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// Still held: renewed.
    Held,
    /// No longer held (expired and taken over, or the job is gone): another worker may own it.
    Lost,
    /// The job was cancelled: stop running it; nothing about it can be stored.
    Cancelled,
}

/// What one [`Maintenance::requeue_expired`] pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequeueReport {
    /// Jobs whose lease had expired and that went back to their queue.
    pub requeued: u64,
    /// Jobs whose lease had expired on their last allowed attempt and are now `failed`.
    pub failed: u64,
}

/// Stores new jobs.
///
/// # Contract
///
/// - **Atomicity.** A job is stored and queued in one step: no job is ever stored but unqueued,
///   or queued but not readable. A refused job writes nothing.
/// - **Refusals.** A job whose id is taken is refused with
///   [`Error::Conflict`](crate::Error::Conflict); a job not in `submitted`, with
///   [`Error::IllegalTransition`](crate::Error::IllegalTransition); a job past its queue's
///   [`Quotas`], with [`Error::QuotaExceeded`](crate::Error::QuotaExceeded).
/// - **Unique keys.** A job whose [`unique_key`](Job::unique_key) is held by a job still kept
///   (not deleted, not purged), submitted to the same queue within
///   [`QueueSettings::unique_ttl`], is not stored: the answer names the job that holds the key.
#[async_trait]
pub trait Producer: Send + Sync {
    /// A fresh id for a new job of `queue`. The default names the queue's slot tag
    /// ([`JobId::new_in`]); a backend that splits queues into partitions
    /// names the partition the job will go to.
    fn new_id(&self, queue: &QueueName) -> JobId {
        JobId::new_in(queue)
    }

    /// Stores `job` (status `submitted`) and queues it in its queue, as one step.
    async fn enqueue(&self, job: &Job) -> Result<Enqueued>;

    /// Enqueues many jobs in as few round trips as the backend allows, each stored or refused on
    /// its own: one answer per job, in order. Jobs of one queue are leased in the order given.
    /// The outer `Err` is for a failure of the whole call (the backend is down). The default calls
    /// [`enqueue`](Producer::enqueue) for each.
    async fn enqueue_many(&self, jobs: &[Job]) -> Result<Vec<Result<Enqueued>>> {
        let mut answers = Vec::with_capacity(jobs.len());
        for job in jobs {
            match self.enqueue(job).await {
                Err(e @ crate::Error::Unavailable(_)) => return Err(e),
                answer => answers.push(answer),
            }
        }
        Ok(answers)
    }

    /// [`enqueue_many`](Producer::enqueue_many), answering the first refusal as an error (the
    /// other jobs stay stored): for callers that treat any refusal as a failure.
    async fn enqueue_all(&self, jobs: &[Job]) -> Result<Vec<Enqueued>> {
        self.enqueue_many(jobs).await?.into_iter().collect()
    }
}

/// Hands jobs to workers under leases and takes their outcomes.
///
/// # Contract
///
/// - **Atomicity.** Each method is one atomic step: no other caller ever sees a job half moved
///   (leased but still `submitted`, complete without its result).
/// - **Order.** Within a queue, ready jobs are leased oldest submission first. A job back from a
///   lease (released, expired, or retried once its delay has passed) is therefore leased before
///   every job not leased yet: it has waited longest.
/// - **At most one holder.** A job is leased by at most one worker at a time; each lease gets a
///   fresh [`LeaseToken`].
/// - **Fencing.** `renew`, `complete`, `fail` and `release` check the token and answer
///   [`Error::LeaseLost`](crate::Error::LeaseLost) once the lease is not the current one (expired
///   and requeued, leased again, the job cancelled or deleted). A lost lease changes nothing.
/// - **Decisions.** Every status change is the [`Move`](crate::machine::Move) that
///   [`machine::decide`](crate::machine::decide) answers; a backend carries moves out and decides
///   nothing itself.
/// - **Time** comes from the backend's [`Clock`](crate::Clock).
#[async_trait]
pub trait Consumer: Send + Sync {
    /// Hands the oldest ready job of `queue` to `worker` for `lease_for`, marking it
    /// `in progress` with the worker's identity, `started_at` and one more attempt; `None` when
    /// nothing is ready there.
    async fn lease(
        &self,
        queue: &QueueName,
        worker: &str,
        lease_for: Duration,
    ) -> Result<Option<Lease>>;

    /// Hands up to `max` of the oldest ready jobs of `queue` to `worker`, each as
    /// [`lease`](Consumer::lease) would (its own fencing token), in as few steps as the backend
    /// allows: a worker that runs or buffers many jobs takes them in one round trip. An empty
    /// answer when nothing is ready. The default calls `lease` until it has `max` jobs or finds
    /// none; should a call fail after some succeeded, the error is answered and the jobs already
    /// leased come back when their lease runs out.
    async fn lease_many(
        &self,
        queue: &QueueName,
        worker: &str,
        lease_for: Duration,
        max: usize,
    ) -> Result<Vec<Lease>> {
        let mut leases = Vec::new();
        while leases.len() < max {
            match self.lease(queue, worker, lease_for).await? {
                Some(lease) => leases.push(lease),
                None => break,
            }
        }
        Ok(leases)
    }

    /// Extends `lease` to `lease_for` from now and returns the new deadline.
    async fn renew(&self, lease: &Lease, lease_for: Duration) -> Result<DateTime<Utc>>;

    /// Renews many leases in one step (a worker's batched heartbeat). Each entry of the answer
    /// says whether that lease is still held, and, when it is not because its job was
    /// cancelled, says so; a lost lease does not stop the others. The default renews each with
    /// [`renew`](Consumer::renew), which cannot tell a cancelled job from a lost lease.
    async fn renew_many(&self, leases: &[Lease], lease_for: Duration) -> Result<Vec<Renewal>> {
        let mut held = Vec::with_capacity(leases.len());
        for lease in leases {
            match self.renew(lease, lease_for).await {
                Ok(_) => held.push(Renewal::Held),
                Err(crate::Error::LeaseLost) => held.push(Renewal::Lost),
                Err(e) => return Err(e),
            }
        }
        Ok(held)
    }

    /// Records how far the job has come ([`Job::progress`]), under the lease's fencing check:
    /// a report of a lost lease changes nothing and answers [`Error::LeaseLost`](crate::Error::LeaseLost).
    async fn progress(&self, lease: &Lease, progress: &Progress) -> Result<()>;

    /// Stores `output` as the job's result and marks it `complete`, as one step; returns the
    /// finished job.
    async fn complete(&self, lease: &Lease, output: Output) -> Result<Job>;

    /// Records a failed attempt with its reason: the job goes back to `submitted` after a backoff
    /// delay, or to `failed` for good, as the status machine decides. Returns the job as it now
    /// is.
    async fn fail(&self, lease: &Lease, reason: &str, kind: FailureKind) -> Result<Job>;

    /// Gives the job back to its queue at once without counting the attempt (a worker shutting
    /// down before it could finish).
    async fn release(&self, lease: &Lease) -> Result<()>;

    /// Waits until a job of one of `queues` may be ready to lease or `timeout` passes, whichever
    /// comes first. A hint only: the next [`lease`](Consumer::lease) may still find nothing. Idle
    /// workers call this instead of polling in a tight loop.
    async fn wait_for_work(&self, queues: &[QueueName], timeout: Duration);
}

/// Recovers abandoned leases and frees finished jobs past retention. Safe to run from every
/// process at once: no leader is needed.
#[async_trait]
pub trait Maintenance: Send + Sync {
    /// Sends every job whose lease has expired back to its queue, or to `failed` when it was on
    /// its last allowed attempt. Each expired lease is handled exactly once, however many
    /// processes call this at the same time.
    async fn requeue_expired(&self) -> Result<RequeueReport>;

    /// Deletes finished jobs past retention, with their results, and takes them out of every
    /// index; returns how many went. Reads already hide such jobs: this frees what they hold.
    async fn purge_expired(&self) -> Result<u64>;
}
