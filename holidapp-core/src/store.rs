//! [`JobStore`]: reading jobs and their results, listing them, deleting them, and counting them
//! per queue.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::job::{Job, JobId, QueueName};
use crate::kind::Output;
use crate::machine::JobStatus;

/// The most jobs one [`JobStore::list`] call returns.
pub const MAX_PAGE_SIZE: usize = 1000;

/// The page size when a caller does not ask for one.
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// The largest [`ListQuery::offset`]; deeper pages are reached with a [`Cursor`].
pub const MAX_OFFSET: usize = 10_000;

/// A set of statuses, for listings.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Statuses(u8);

impl Statuses {
    /// Every status.
    pub const ALL: Statuses = Statuses(0b1_1111);

    /// Only `status`.
    pub fn only(status: JobStatus) -> Statuses {
        Statuses(Self::bit(status))
    }

    /// The statuses in `statuses`.
    pub fn of(statuses: &[JobStatus]) -> Statuses {
        Statuses(statuses.iter().fold(0, |bits, s| bits | Self::bit(*s)))
    }

    /// Whether `status` is in the set.
    pub fn contains(self, status: JobStatus) -> bool {
        self.0 & Self::bit(status) != 0
    }

    /// The statuses in the set, in [`JobStatus::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = JobStatus> {
        JobStatus::ALL
            .into_iter()
            .filter(move |s| self.contains(*s))
    }

    fn bit(status: JobStatus) -> u8 {
        match status {
            JobStatus::Submitted => 1,
            JobStatus::InProgress => 2,
            JobStatus::Complete => 4,
            JobStatus::Failed => 8,
            JobStatus::Cancelled => 16,
        }
    }
}

impl fmt::Debug for Statuses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// A position in a listing: the next page lists the jobs after it (older ones). Opaque to
/// clients; it is shown and parsed as a decimal number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Cursor(pub u64);

impl Cursor {
    /// The position of a job with submission number `seq` in a queue of slot tag `tag`: listings
    /// are ordered by submission number, then by tag (queues of different tags number their jobs
    /// apart), newest first.
    pub fn at(seq: u64, tag: u8) -> Cursor {
        Cursor(seq << 8 | u64::from(tag))
    }

    /// The submission number.
    pub fn seq(self) -> u64 {
        self.0 >> 8
    }

    /// The slot tag.
    pub fn tag(self) -> u8 {
        self.0 as u8
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Reads a cursor as it is shown: decimal digits only (no sign, no spaces), at most
/// `u64::MAX`.
impl FromStr for Cursor {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        digits
            .then(|| s.parse().ok())
            .flatten()
            .map(Cursor)
            .ok_or_else(|| {
                Error::InvalidParams(format!(
                    "'{}' is not a listing cursor (the number a previous page gave)",
                    crate::job::truncate(s, 40)
                ))
            })
    }
}

/// Which jobs to list: a filter, a position and a page size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListQuery {
    /// Only jobs in these statuses.
    pub statuses: Statuses,
    /// Only jobs of this kind.
    pub kind: Option<String>,
    /// Only jobs of this queue.
    pub queue: Option<QueueName>,
    /// Only jobs after this position (older); from the newest when `None`.
    pub before: Option<Cursor>,
    /// How many of the matching jobs to skip (at most [`MAX_OFFSET`]).
    pub offset: usize,
    /// Page size; clamped to `1..=MAX_PAGE_SIZE`.
    pub limit: usize,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            statuses: Statuses::ALL,
            kind: None,
            queue: None,
            before: None,
            offset: 0,
            limit: DEFAULT_PAGE_SIZE,
        }
    }
}

impl ListQuery {
    /// The first page of jobs in `status`.
    pub fn with_status(status: JobStatus) -> Self {
        ListQuery {
            statuses: Statuses::only(status),
            ..Self::default()
        }
    }

    /// The page size actually used: `limit` clamped to `1..=MAX_PAGE_SIZE`.
    pub fn page_size(&self) -> usize {
        self.limit.clamp(1, MAX_PAGE_SIZE)
    }

    /// The offset actually used: `offset` capped at [`MAX_OFFSET`].
    pub fn bounded_offset(&self) -> usize {
        self.offset.min(MAX_OFFSET)
    }
}

/// One page of a listing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    /// The jobs, newest first.
    pub jobs: Vec<Job>,
    /// Where the next page starts, when there may be one.
    pub next: Option<Cursor>,
}

/// How many jobs are in each status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusCounts {
    /// Jobs in `submitted`.
    pub submitted: u64,
    /// Jobs in `in progress`.
    pub in_progress: u64,
    /// Jobs in `complete`.
    pub complete: u64,
    /// Jobs in `failed`.
    pub failed: u64,
    /// Jobs in `cancelled`.
    pub cancelled: u64,
}

impl StatusCounts {
    /// The count for one status.
    pub fn get(&self, status: JobStatus) -> u64 {
        match status {
            JobStatus::Submitted => self.submitted,
            JobStatus::InProgress => self.in_progress,
            JobStatus::Complete => self.complete,
            JobStatus::Failed => self.failed,
            JobStatus::Cancelled => self.cancelled,
        }
    }
}

impl std::ops::Add for StatusCounts {
    type Output = StatusCounts;

    /// The sum of two counts, status by status.
    fn add(self, other: StatusCounts) -> StatusCounts {
        StatusCounts {
            submitted: self.submitted + other.submitted,
            in_progress: self.in_progress + other.in_progress,
            complete: self.complete + other.complete,
            failed: self.failed + other.failed,
            cancelled: self.cancelled + other.cancelled,
        }
    }
}

/// One queue's counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueStats {
    /// The queue.
    pub queue: QueueName,
    /// Jobs per status.
    pub counts: StatusCounts,
    /// Of the `submitted` jobs, those leasable now.
    pub ready: u64,
    /// Of the `submitted` jobs, those waiting for their time (a delayed submit, a retry's
    /// backoff).
    pub delayed: u64,
    /// Jobs that ever completed in this queue (a counter: it never goes down, whatever is purged
    /// or deleted, so its rate is the queue's throughput).
    pub completed_total: u64,
    /// Jobs that ever failed for good in this queue (a counter, like `completed_total`; a failed
    /// job retried and failing again counts twice).
    pub failed_total: u64,
}

impl QueueStats {
    /// Zero counts for `queue`.
    pub fn empty(queue: QueueName) -> Self {
        QueueStats {
            queue,
            counts: StatusCounts::default(),
            ready: 0,
            delayed: 0,
            completed_total: 0,
            failed_total: 0,
        }
    }
}

/// The sum of every queue's counts.
pub fn total_counts(stats: &[QueueStats]) -> StatusCounts {
    stats
        .iter()
        .fold(StatusCounts::default(), |sum, q| sum + q.counts)
}

/// What a job's result is, read in one step with its status. `O` is the result's type: the
/// stored [`Output`] as read, or a kind's own output type
/// ([`Jobs::result_of`](crate::Jobs::result_of)).
#[derive(Clone, Debug, PartialEq)]
pub enum ResultState<O = Output> {
    /// The job is not finished; it is in this status.
    Pending(JobStatus),
    /// The job failed, for this reason.
    Failed(String),
    /// The job was cancelled: it has no result and never will.
    Cancelled,
    /// The job is complete: its result.
    Ready(O),
}

/// The refusal to cancel job `id`, which is `status` (finished).
pub fn cancel_refused(id: JobId, status: JobStatus) -> Error {
    Error::Conflict(format!(
        "job {id} is {status}; only a waiting or running job can be cancelled"
    ))
}

/// The refusal to retry job `id`, which is `status` (not failed).
pub fn retry_refused(id: JobId, status: JobStatus) -> Error {
    Error::Conflict(format!(
        "job {id} is {status}; only a failed job can be retried"
    ))
}

/// Where jobs and their results are read, listed, deleted and counted.
///
/// Jobs are created and moved through their statuses by the [`Producer`](crate::Producer) and the
/// [`Consumer`](crate::Consumer); this trait reads them and deletes them.
///
/// # Contract
///
/// - `get` and `result` read one job in one step: a result is never seen with another status
///   than the one it was stored with.
/// - `list` returns the matching jobs newest first (within a queue by submission order, across
///   queues by submission time to the millisecond), at most
///   [`ListQuery::page_size`] of them, and a cursor whenever more may follow; a backend may return
///   a short page with a cursor (it bounds the work one page costs), never skip a job.
/// - `delete` removes the job, its result and its place in its queue as one step; deleting a job
///   that is `in progress` is refused with [`Error::Conflict`].
/// - `cancel` moves a `submitted` or `in progress` job to `cancelled` as one step, as the status
///   machine decides: it is never leased again, and the lease of a worker running it stops being
///   current at once (that worker's [`renew_many`](crate::Consumer::renew_many) answers
///   [`Renewal::Cancelled`](crate::Renewal::Cancelled); its `complete`, `fail`, `release` and
///   `renew` answer [`Error::LeaseLost`] and change nothing). A cancelled job is finished: its
///   retention starts. Cancelling a job already cancelled answers it unchanged; a `complete` or
///   `failed` job is refused with [`Error::Conflict`].
/// - `retry` moves a `failed` job back to `submitted` as one step, as the status machine decides:
///   leasable at once, ahead of the jobs submitted after it, with its attempts counted from zero
///   and its error, finish time and retention cleared (its id, parameters and history stay). Any
///   other status is refused with [`Error::Conflict`]. A unique key the job held is not taken
///   again.
/// - Finished jobs and their results disappear once older than the retention setting
///   ([`QueueSettings::result_ttl`](crate::QueueSettings)), from every read and listing.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// The job with this id, if it exists.
    async fn get(&self, id: JobId) -> Result<Option<Job>>;

    /// A page of jobs, newest first.
    async fn list(&self, query: &ListQuery) -> Result<Page>;

    /// The job's result with its status, read in one step; `None` when there is no such job.
    async fn result(&self, id: JobId) -> Result<Option<ResultState>>;

    /// Deletes a job and its result; `false` when there was no such job.
    async fn delete(&self, id: JobId) -> Result<bool>;

    /// Cancels a waiting or running job; answers the job as it now is, `None` when there is no
    /// such job.
    async fn cancel(&self, id: JobId) -> Result<Option<Job>>;

    /// Retries a failed job; answers the job as it now is (`submitted`), `None` when there is no
    /// such job.
    async fn retry(&self, id: JobId) -> Result<Option<Job>>;

    /// The counts of every queue that has held a job, by queue name.
    async fn stats(&self) -> Result<Vec<QueueStats>>;

    /// Checks that the backend answers (for readiness probes).
    async fn ping(&self) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_sets_hold_what_they_are_given() {
        let incomplete = Statuses::of(&[JobStatus::Submitted, JobStatus::InProgress]);
        assert!(incomplete.contains(JobStatus::InProgress));
        assert!(!incomplete.contains(JobStatus::Failed));
        assert_eq!(
            incomplete.iter().collect::<Vec<_>>(),
            vec![JobStatus::Submitted, JobStatus::InProgress]
        );
        assert_eq!(Statuses::ALL.iter().count(), JobStatus::ALL.len());
    }

    #[test]
    fn cursors_order_by_sequence_then_tag_and_round_trip() {
        let a = Cursor::at(1_000, 7);
        assert!(Cursor::at(999, 255) < a && a < Cursor::at(1_000, 8));
        assert_eq!((a.seq(), a.tag()), (1_000, 7));
        assert_eq!(a.to_string().parse::<Cursor>().unwrap(), a);
        assert!("x1".parse::<Cursor>().is_err());
        assert_eq!(
            u64::MAX.to_string().parse::<Cursor>().unwrap(),
            Cursor(u64::MAX)
        );
        for other in ["", "+5", " 5", "-0", "5.0", "18446744073709551616"] {
            assert!(other.parse::<Cursor>().is_err(), "{other:?}");
        }
    }
}
