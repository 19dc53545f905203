//! The backend contract suite (feature `test-util`).
//!
//! One set of tests pins the behaviour of [`Queue`], [`JobStore`], [`DataStore`] and
//! [`ImageStore`]. Every backend runs all of it, unchanged: a backend that passes is correct by
//! definition, and a bug found in one backend becomes a new test here.
//!
//! A backend's test file names a factory and invokes the macro:
//!
//! ```ignore
//! use std::sync::Arc;
//! use holidapp_core::{ManualClock, MemoryBackend, QueueSettings};
//!
//! async fn make(settings: QueueSettings, clock: Arc<ManualClock>) -> Arc<MemoryBackend> {
//!     Arc::new(MemoryBackend::with_clock(settings, clock))
//! }
//!
//! holidapp_core::backend_contract_suite!(make);
//! ```
//!
//! The factory must return a fresh, empty backend (its own key prefix on a shared Redis) that
//! reads time from the given [`ManualClock`]; the tests move that clock to expire leases, pass
//! retry delays and age out finished jobs, so nothing here sleeps.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use serde_json::json;

use crate::backends::Backend;
use crate::clock::{Clock, ManualClock};
use crate::dataset::{DataSet, Record};
use crate::error::Error;
use crate::job::{Job, JobId, JobParams, JobStatus};
use crate::queue::{FailureKind, Lease, Queue, QueueSettings, RetryPolicy};
use crate::store::{DataStore, ImageStore, JobStore, ListQuery, MAX_PAGE_SIZE};

/// Makes a fresh backend for one test.
pub trait MakeBackend: Sync {
    /// The backend under test.
    type Backend: Backend;

    /// A fresh, empty backend applying `settings` and reading time from `clock`.
    fn make(
        &self,
        settings: QueueSettings,
        clock: Arc<ManualClock>,
    ) -> BoxFuture<'static, Arc<Self::Backend>>;
}

impl<F, Fut, B> MakeBackend for F
where
    F: Fn(QueueSettings, Arc<ManualClock>) -> Fut + Sync,
    Fut: Future<Output = Arc<B>> + Send + 'static,
    B: Backend,
{
    type Backend = B;

    fn make(&self, settings: QueueSettings, clock: Arc<ManualClock>) -> BoxFuture<'static, Arc<B>> {
        Box::pin(self(settings, clock))
    }
}

/// The lease length the suite uses.
pub const LEASE: Duration = Duration::from_secs(30);

/// The settings the suite uses unless a test needs others: 3 attempts, retries after 1 s doubling
/// up to 8 s, finished jobs kept for an hour.
pub fn settings() -> QueueSettings {
    QueueSettings {
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
        },
        result_ttl: Duration::from_secs(3600),
    }
}

/// A fresh backend with the default suite settings, and its clock.
pub async fn fixture<M: MakeBackend>(make: &M) -> (Arc<M::Backend>, Arc<ManualClock>) {
    fixture_with(make, settings()).await
}

/// A fresh backend with these settings, and its clock.
pub async fn fixture_with<M: MakeBackend>(
    make: &M,
    settings: QueueSettings,
) -> (Arc<M::Backend>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::starting_now());
    (make.make(settings, Arc::clone(&clock)).await, clock)
}

/// A new job for `[start, end]` created at the clock's time.
pub fn job(clock: &ManualClock, start: &str, end: &str) -> Job {
    Job::new(JobParams::new(start, end), clock.now())
}

async fn submit<B: Backend>(backend: &B, clock: &ManualClock) -> Job {
    let job = job(clock, "1990", "2000");
    backend.enqueue(&job).await.expect("enqueue");
    job
}

async fn lease<B: Backend>(backend: &B, worker: &str) -> Lease {
    backend
        .lease(worker, LEASE)
        .await
        .expect("lease")
        .expect("a job is ready")
}

async fn status<B: Backend>(backend: &B, id: JobId) -> JobStatus {
    backend
        .get(id)
        .await
        .expect("get")
        .expect("job exists")
        .status
}

fn assert_lease_lost<T: std::fmt::Debug>(result: crate::Result<T>, what: &str) {
    match result {
        Err(Error::LeaseLost) => {}
        other => panic!("{what}: expected LeaseLost, got {other:?}"),
    }
}

fn sample_data(n: usize) -> DataSet {
    DataSet::new(
        (0..n)
            .map(|i| {
                let id = format!("HGNC:{i}");
                let fields = json!({"hgnc_id": id, "symbol": format!("G{i}"), "date_approved_reserved": "2001-02-03"});
                Record {
                    id,
                    fields: fields.as_object().cloned().unwrap_or_default(),
                }
            })
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------------
// Queue
// ---------------------------------------------------------------------------------------------

/// `enqueue` stores the job as `submitted` and makes it leasable, in one step.
pub async fn enqueue_stores_a_submitted_job<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let job = submit(&*b, &clock).await;
    let stored = b.get(job.id).await.unwrap().expect("stored");
    assert_eq!(stored.status, JobStatus::Submitted);
    assert_eq!(stored.params, job.params);
    assert_eq!(stored.attempts, 0);
    assert_eq!(stored.worker, None);
    assert_eq!(
        stored.created_at.timestamp_millis(),
        job.created_at.timestamp_millis()
    );
    assert_eq!(b.depth().await.unwrap().ready, 1);
    assert_eq!(b.counts().await.unwrap().submitted, 1);
}

/// Plot options survive storage exactly.
pub async fn enqueue_keeps_plot_options<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let params = JobParams::new("-50", "2020")
        .with_option("kind", "scatter")
        .with_option("width", 640)
        .with_option("title", "Ünïcode \"quotes\" and\nnewlines");
    let job = Job::new(params.clone(), clock.now());
    b.enqueue(&job).await.unwrap();
    assert_eq!(b.get(job.id).await.unwrap().unwrap().params, params);
    assert_eq!(lease(&*b, "w").await.job.params, params);
}

/// Enqueueing the same job twice is refused and changes nothing.
pub async fn enqueue_refuses_a_duplicate_id<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let job = submit(&*b, &clock).await;
    assert!(matches!(b.enqueue(&job).await, Err(Error::Conflict(_))));
    assert_eq!(b.depth().await.unwrap().ready, 1);
}

/// `enqueue_many` stores every job, leasable in the order given.
pub async fn enqueue_many_keeps_order<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let jobs: Vec<Job> = (0..25)
        .map(|i| job(&clock, &i.to_string(), "3000"))
        .collect();
    b.enqueue_many(&jobs).await.unwrap();
    assert_eq!(b.depth().await.unwrap().ready, 25);
    for expected in &jobs {
        assert_eq!(lease(&*b, "w").await.id(), expected.id);
    }
    assert!(b.lease("w", LEASE).await.unwrap().is_none());
}

/// `lease` on an empty queue answers `None`.
pub async fn lease_on_empty_queue_is_none<M: MakeBackend>(make: &M) {
    let (b, _) = fixture(make).await;
    assert!(b.lease("w", LEASE).await.unwrap().is_none());
}

/// A lease marks the job `in progress` with the worker, start time, attempt and deadline.
pub async fn lease_marks_the_job_in_progress<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let job = submit(&*b, &clock).await;
    clock.advance(Duration::from_secs(5));
    let lease = lease(&*b, "10.0.0.7").await;
    assert_eq!(lease.id(), job.id);
    assert_eq!(lease.worker, "10.0.0.7");
    assert_eq!(lease.attempt(), 1);
    assert_eq!(lease.job.status, JobStatus::InProgress);
    let expected_deadline = clock.now() + chrono::Duration::from_std(LEASE).unwrap();
    assert_eq!(
        lease.deadline.timestamp_millis(),
        expected_deadline.timestamp_millis()
    );
    let stored = b.get(job.id).await.unwrap().unwrap();
    assert_eq!(stored.status, JobStatus::InProgress);
    assert_eq!(stored.worker.as_deref(), Some("10.0.0.7"));
    assert_eq!(stored.attempts, 1);
    assert_eq!(
        stored.started_at.map(|t| t.timestamp_millis()),
        Some(clock.now().timestamp_millis())
    );
    let depth = b.depth().await.unwrap();
    assert_eq!((depth.ready, depth.leased), (0, 1));
}

/// Jobs are leased first in, first out, and each only once.
pub async fn lease_is_fifo_and_exclusive<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let first = submit(&*b, &clock).await;
    let second = submit(&*b, &clock).await;
    assert_eq!(lease(&*b, "a").await.id(), first.id);
    assert_eq!(lease(&*b, "b").await.id(), second.id);
    assert!(b.lease("c", LEASE).await.unwrap().is_none());
}

/// Every lease of a job carries a new token.
pub async fn each_lease_has_a_fresh_token<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    submit(&*b, &clock).await;
    let first = lease(&*b, "a").await;
    b.release(&first).await.unwrap();
    let second = lease(&*b, "b").await;
    assert_eq!(first.id(), second.id());
    assert_ne!(first.token, second.token);
}

/// `renew` pushes the deadline out, so the lease survives past its first deadline.
pub async fn renew_extends_the_lease<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let job = submit(&*b, &clock).await;
    let lease = lease(&*b, "w").await;
    clock.advance(Duration::from_secs(20));
    let deadline = b.renew(&lease, LEASE).await.unwrap();
    let expected = clock.now() + chrono::Duration::from_std(LEASE).unwrap();
    assert_eq!(deadline.timestamp_millis(), expected.timestamp_millis());
    clock.advance(Duration::from_secs(20)); // 40 s after leasing: past the first deadline
    assert_eq!(b.requeue_expired().await.unwrap().requeued, 0);
    assert_eq!(status(&*b, job.id).await, JobStatus::InProgress);
    b.complete(&lease, b"png".to_vec()).await.unwrap();
}

/// A lease that expired and was taken over can no longer be renewed.
pub async fn renew_with_a_stale_token_is_refused<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    submit(&*b, &clock).await;
    let stale = lease(&*b, "old").await;
    clock.advance(LEASE + Duration::from_secs(1));
    assert_eq!(b.requeue_expired().await.unwrap().requeued, 1);
    assert_lease_lost(b.renew(&stale, LEASE).await, "renew after requeue");
    let current = lease(&*b, "new").await;
    assert_lease_lost(b.renew(&stale, LEASE).await, "renew after takeover");
    b.renew(&current, LEASE).await.unwrap();
}

/// `renew_many` answers per lease and renews the ones still held.
pub async fn renew_many_reports_each_lease<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    submit(&*b, &clock).await;
    submit(&*b, &clock).await;
    let kept = lease(&*b, "w").await;
    let lost = lease(&*b, "w").await;
    b.release(&lost).await.unwrap();
    clock.advance(Duration::from_secs(20));
    let held = b.renew_many(&[kept.clone(), lost], LEASE).await.unwrap();
    assert_eq!(held, vec![true, false]);
    clock.advance(Duration::from_secs(20));
    assert_eq!(
        b.requeue_expired().await.unwrap().requeued,
        0,
        "the kept lease was renewed"
    );
    assert_eq!(b.renew_many(&[], LEASE).await.unwrap(), Vec::<bool>::new());
}

/// `complete` stores the result and marks the job `complete`, in one step.
pub async fn complete_stores_the_result<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let job = submit(&*b, &clock).await;
    assert_eq!(b.result(job.id).await.unwrap(), None);
    let lease = lease(&*b, "w").await;
    assert_eq!(b.result(job.id).await.unwrap(), None);
    clock.advance(Duration::from_secs(3));
    let done = b
        .complete(&lease, vec![0x89, b'P', b'N', b'G', 0, 255])
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Complete);
    assert_eq!(
        done.finished_at.map(|t| t.timestamp_millis()),
        Some(clock.now().timestamp_millis())
    );
    assert_eq!(done.worker.as_deref(), Some("w"));
    let stored = b.get(job.id).await.unwrap().unwrap();
    assert_eq!(stored.status, JobStatus::Complete);
    assert_eq!(stored.error, None);
    assert_eq!(
        b.result(job.id).await.unwrap(),
        Some(Bytes::from_static(&[0x89, b'P', b'N', b'G', 0, 255]))
    );
    let depth = b.depth().await.unwrap();
    assert_eq!((depth.ready, depth.delayed, depth.leased), (0, 0, 0));
}

/// A stale lease holder cannot complete, fail or release the job, and its attempt changes nothing.
pub async fn stale_lease_cannot_finish_the_job<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let job = submit(&*b, &clock).await;
    let stale = lease(&*b, "old").await;
    clock.advance(LEASE + Duration::from_secs(1));
    b.requeue_expired().await.unwrap();
    let current = lease(&*b, "new").await;
    assert_lease_lost(b.complete(&stale, b"stale".to_vec()).await, "complete");
    assert_lease_lost(
        b.fail(&stale, "stale", FailureKind::Permanent).await,
        "fail",
    );
    assert_lease_lost(b.release(&stale).await, "release");
    let stored = b.get(job.id).await.unwrap().unwrap();
    assert_eq!(stored.status, JobStatus::InProgress);
    assert_eq!(stored.worker.as_deref(), Some("new"));
    assert_eq!(b.result(job.id).await.unwrap(), None);
    b.complete(&current, b"fresh".to_vec()).await.unwrap();
    assert_eq!(
        b.result(job.id).await.unwrap(),
        Some(Bytes::from_static(b"fresh"))
    );
}

/// A finished job cannot be finished again with the same lease.
pub async fn complete_twice_is_refused<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let job = submit(&*b, &clock).await;
    let lease = lease(&*b, "w").await;
    b.complete(&lease, b"one".to_vec()).await.unwrap();
    assert_lease_lost(b.complete(&lease, b"two".to_vec()).await, "second complete");
    assert_lease_lost(
        b.fail(&lease, "late", FailureKind::Transient).await,
        "fail after complete",
    );
    assert_lease_lost(b.renew(&lease, LEASE).await, "renew after complete");
    assert_eq!(
        b.result(job.id).await.unwrap(),
        Some(Bytes::from_static(b"one"))
    );
    assert_eq!(status(&*b, job.id).await, JobStatus::Complete);
}

/// A transient failure sends the job back to `submitted`, leasable only after its backoff delay.
pub async fn transient_failure_retries_after_backoff<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let job = submit(&*b, &clock).await;
    let first = lease(&*b, "w").await;
    let after = b
        .fail(&first, "redis went away", FailureKind::Transient)
        .await
        .unwrap();
    assert_eq!(after.status, JobStatus::Submitted);
    assert_eq!(after.error.as_deref(), Some("redis went away"));
    assert_eq!(after.finished_at, None);
    let depth = b.depth().await.unwrap();
    assert_eq!((depth.ready, depth.delayed, depth.leased), (0, 1, 0));
    // The first retry waits between half and all of base_delay (1 s): not before 500 ms.
    clock.advance(Duration::from_millis(400));
    assert!(
        b.lease("w", LEASE).await.unwrap().is_none(),
        "leasable before its delay"
    );
    clock.advance(Duration::from_millis(700));
    let second = lease(&*b, "w").await;
    assert_eq!(second.id(), job.id);
    assert_eq!(second.attempt(), 2);
    assert_ne!(second.token, first.token);
}

/// A permanent failure fails the job at once, with its reason.
pub async fn permanent_failure_fails_at_once<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let job = submit(&*b, &clock).await;
    let lease = lease(&*b, "w").await;
    let failed = b
        .fail(&lease, "invalid job parameters: no", FailureKind::Permanent)
        .await
        .unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("invalid job parameters: no"));
    assert!(failed.finished_at.is_some());
    assert_eq!(b.get(job.id).await.unwrap().unwrap(), failed);
    assert_eq!(b.result(job.id).await.unwrap(), None);
    clock.advance(Duration::from_secs(60));
    assert!(b.lease("w", LEASE).await.unwrap().is_none());
    assert_eq!(b.counts().await.unwrap().failed, 1);
}

/// The last allowed attempt gives up even on a transient error.
pub async fn attempt_limit_fails_the_job<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let job = submit(&*b, &clock).await;
    for attempt in 1..=3u32 {
        clock.advance(Duration::from_secs(10)); // past any backoff delay (max 8 s)
        let lease = lease(&*b, "w").await;
        assert_eq!(lease.attempt(), attempt);
        let after = b
            .fail(&lease, "flaky", FailureKind::Transient)
            .await
            .unwrap();
        let expected = if attempt < 3 {
            JobStatus::Submitted
        } else {
            JobStatus::Failed
        };
        assert_eq!(after.status, expected, "after attempt {attempt}");
    }
    clock.advance(Duration::from_secs(60));
    assert!(b.lease("w", LEASE).await.unwrap().is_none());
    let stored = b.get(job.id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.attempts), (JobStatus::Failed, 3));
}

/// `release` puts the job back at once without counting the attempt.
pub async fn release_returns_the_job_uncounted<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let job = submit(&*b, &clock).await;
    let first = lease(&*b, "w").await;
    b.release(&first).await.unwrap();
    let stored = b.get(job.id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.attempts), (JobStatus::Submitted, 0));
    assert_eq!(b.depth().await.unwrap().ready, 1);
    let again = lease(&*b, "w2").await;
    assert_eq!((again.id(), again.attempt()), (job.id, 1));
    assert_lease_lost(b.release(&first).await, "release with the old token");
}

/// Jobs back from a lease (retried, released or expired) are leased before jobs never leased,
/// oldest submission first, and wherever they wait they list among the `submitted` jobs in
/// submission order.
pub async fn returned_jobs_go_first_and_list_in_order<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(submit(&*b, &clock).await.id);
    }
    let first = lease(&*b, "w").await;
    let second = lease(&*b, "w").await;
    lease(&*b, "w").await; // ids[2], left to expire
    b.fail(&first, "flaky", FailureKind::Transient)
        .await
        .unwrap();
    b.release(&second).await.unwrap();
    let listed = |status: Option<JobStatus>, offset: usize, limit: usize| {
        let b = Arc::clone(&b);
        async move {
            let query = ListQuery {
                status,
                offset,
                limit,
            };
            let page = b.list(&query).await.unwrap();
            page.iter().map(|j| j.id).collect::<Vec<JobId>>()
        }
    };
    let newest_first: Vec<JobId> = ids.iter().rev().copied().collect();
    // ids[0] waits for its retry, ids[1] is back in the queue, ids[2] is in progress.
    assert_eq!(
        listed(Some(JobStatus::Submitted), 0, 10).await,
        vec![ids[4], ids[3], ids[1], ids[0]]
    );
    assert_eq!(listed(None, 0, 10).await, newest_first);
    clock.advance(LEASE + Duration::from_secs(1));
    assert_eq!(b.requeue_expired().await.unwrap().requeued, 1);
    assert_eq!(b.counts().await.unwrap().submitted, 5);
    assert_eq!(
        listed(Some(JobStatus::Submitted), 0, 10).await,
        newest_first
    );
    assert_eq!(
        listed(Some(JobStatus::Submitted), 1, 2).await,
        vec![ids[3], ids[2]]
    );
    assert_eq!(
        listed(Some(JobStatus::Submitted), 3, 10).await,
        vec![ids[1], ids[0]]
    );
    let mut leases = Vec::new();
    for expected in &ids {
        let l = lease(&*b, "w").await;
        assert_eq!(l.id(), *expected);
        leases.push(l);
    }
    // Nothing waits for a retry now: two jobs back from a lease, two never leased.
    b.release(&leases[3]).await.unwrap();
    b.release(&leases[0]).await.unwrap();
    ids.push(submit(&*b, &clock).await.id);
    ids.push(submit(&*b, &clock).await.id);
    let expected = vec![ids[6], ids[5], ids[3], ids[0]];
    assert_eq!(listed(Some(JobStatus::Submitted), 0, 10).await, expected);
    for offset in 0..5 {
        for limit in 1..4 {
            let end = (offset + limit).min(expected.len());
            let want = expected.get(offset..end).unwrap_or_default().to_vec();
            assert_eq!(
                listed(Some(JobStatus::Submitted), offset, limit).await,
                want,
                "offset {offset}, limit {limit}"
            );
        }
    }
}

/// Expired leases go back to the queue; live ones stay.
pub async fn requeue_expired_requeues_only_expired_leases<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let early = submit(&*b, &clock).await;
    let late = submit(&*b, &clock).await;
    lease(&*b, "w").await;
    clock.advance(Duration::from_secs(10));
    lease(&*b, "w").await;
    clock.advance(Duration::from_secs(25)); // early expired 5 s ago; late has 5 s left
    let report = b.requeue_expired().await.unwrap();
    assert_eq!((report.requeued, report.failed), (1, 0));
    let requeued = b.get(early.id).await.unwrap().unwrap();
    assert_eq!(requeued.status, JobStatus::Submitted);
    assert!(
        requeued
            .error
            .as_deref()
            .is_some_and(|e| e.contains("lease expired")),
        "{requeued:?}"
    );
    assert_eq!(status(&*b, late.id).await, JobStatus::InProgress);
    let again = lease(&*b, "w").await;
    assert_eq!((again.id(), again.attempt()), (early.id, 2));
    assert_eq!(b.requeue_expired().await.unwrap().requeued, 0);
}

/// A lease that expires on the last allowed attempt fails the job with the reason.
pub async fn requeue_expired_fails_past_the_attempt_limit<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let job = submit(&*b, &clock).await;
    for attempt in 1..=3u64 {
        lease(&*b, "w").await;
        clock.advance(LEASE + Duration::from_secs(1));
        let report = b.requeue_expired().await.unwrap();
        let expected = if attempt < 3 { (1, 0) } else { (0, 1) };
        assert_eq!(
            (report.requeued, report.failed),
            expected,
            "attempt {attempt}"
        );
    }
    let failed = b.get(job.id).await.unwrap().unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.attempts, 3);
    let reason = failed.error.unwrap_or_default();
    assert!(
        reason.contains("lease expired") && reason.contains('3'),
        "reason: {reason}"
    );
    assert!(failed.finished_at.is_some());
    assert!(b.lease("w", LEASE).await.unwrap().is_none());
    let depth = b.depth().await.unwrap();
    assert_eq!((depth.ready, depth.delayed, depth.leased), (0, 0, 0));
}

/// Many processes may requeue at once: each expired lease is handled exactly once.
pub async fn concurrent_requeue_handles_each_lease_once<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    for _ in 0..20 {
        submit(&*b, &clock).await;
        lease(&*b, "w").await;
    }
    clock.advance(LEASE + Duration::from_secs(1));
    let calls = (0..8).map(|_| {
        let b = Arc::clone(&b);
        tokio::spawn(async move { b.requeue_expired().await.unwrap() })
    });
    let mut total = 0;
    for call in futures::future::join_all(calls).await {
        total += call.unwrap().requeued;
    }
    assert_eq!(total, 20);
    assert_eq!(b.depth().await.unwrap().ready, 20);
}

/// Concurrent lessees get each job exactly once.
pub async fn concurrent_lessees_get_each_job_once<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let jobs: Vec<Job> = (0..200).map(|_| job(&clock, "1", "2")).collect();
    b.enqueue_many(&jobs).await.unwrap();
    let workers = (0..4).map(|w| {
        let b = Arc::clone(&b);
        tokio::spawn(async move {
            let mut done = Vec::new();
            while let Some(lease) = b.lease(&format!("w{w}"), LEASE).await.unwrap() {
                b.complete(&lease, vec![1]).await.unwrap();
                done.push(lease.id());
            }
            done
        })
    });
    let mut done: Vec<JobId> = Vec::new();
    for w in futures::future::join_all(workers).await {
        done.extend(w.unwrap());
    }
    done.sort();
    let mut expected: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
    expected.sort();
    assert_eq!(done, expected);
    assert_eq!(b.counts().await.unwrap().complete, 200);
}

/// `depth` counts ready, delayed and leased jobs.
pub async fn depth_counts_each_place<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    for _ in 0..4 {
        submit(&*b, &clock).await;
    }
    let l1 = lease(&*b, "w").await;
    lease(&*b, "w").await;
    b.fail(&l1, "x", FailureKind::Transient).await.unwrap();
    let depth = b.depth().await.unwrap();
    assert_eq!((depth.ready, depth.delayed, depth.leased), (2, 1, 1));
}

/// `wait_for_work` returns when a job is enqueued, and times out on an idle queue.
pub async fn wait_for_work_wakes_on_enqueue<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    // Idle: returns after its timeout.
    tokio::time::timeout(
        Duration::from_secs(10),
        b.wait_for_work(Duration::from_millis(50)),
    )
    .await
    .expect("an idle wait ends at its timeout");
    // Work already there: returns at once.
    submit(&*b, &clock).await;
    tokio::time::timeout(
        Duration::from_secs(10),
        b.wait_for_work(Duration::from_secs(3600)),
    )
    .await
    .expect("a wait with work ready returns at once");
    lease(&*b, "w").await;
    // Work arriving while waiting wakes the waiter long before its one-hour timeout.
    let waiter = {
        let b = Arc::clone(&b);
        tokio::spawn(async move { b.wait_for_work(Duration::from_secs(3600)).await })
    };
    let job = job(&clock, "1", "2");
    // Keep enqueueing until the waiter wakes: it may not be blocked yet when the first arrives.
    let woke = tokio::time::timeout(Duration::from_secs(20), async {
        b.enqueue(&job).await.unwrap();
        let mut waiter = waiter;
        loop {
            tokio::select! {
                r = &mut waiter => break r,
                () = tokio::time::sleep(Duration::from_millis(200)) => {
                    b.enqueue(&Job::new(JobParams::new("1", "2"), clock.now())).await.unwrap();
                }
            }
        }
    })
    .await;
    assert!(woke.is_ok(), "the waiter was not woken by enqueued work");
}

// ---------------------------------------------------------------------------------------------
// JobStore
// ---------------------------------------------------------------------------------------------

/// An unknown id is absent everywhere.
pub async fn unknown_job_is_absent<M: MakeBackend>(make: &M) {
    let (b, _) = fixture(make).await;
    let id = JobId::new();
    assert_eq!(b.get(id).await.unwrap(), None);
    assert_eq!(b.result(id).await.unwrap(), None);
    assert!(!b.delete(id).await.unwrap());
}

/// `list` returns newest first, filters by status, pages with offset, and caps the page size.
pub async fn list_is_newest_first_filtered_and_bounded<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(submit(&*b, &clock).await.id);
    }
    let l = lease(&*b, "w").await; // ids[0]
    b.complete(&l, vec![1]).await.unwrap();
    lease(&*b, "w").await; // ids[1] in progress
    let all: Vec<JobId> = b
        .list(&ListQuery::default())
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    let newest_first: Vec<JobId> = ids.iter().rev().copied().collect();
    assert_eq!(all, newest_first);
    let submitted = b
        .list(&ListQuery::with_status(JobStatus::Submitted))
        .await
        .unwrap();
    assert_eq!(
        submitted.iter().map(|j| j.id).collect::<Vec<_>>(),
        newest_first[..4].to_vec()
    );
    assert!(submitted.iter().all(|j| j.status == JobStatus::Submitted));
    let complete = b
        .list(&ListQuery::with_status(JobStatus::Complete))
        .await
        .unwrap();
    assert_eq!(
        complete.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[0]]
    );
    let in_progress = b
        .list(&ListQuery::with_status(JobStatus::InProgress))
        .await
        .unwrap();
    assert_eq!(
        in_progress.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[1]]
    );
    assert!(
        b.list(&ListQuery::with_status(JobStatus::Failed))
            .await
            .unwrap()
            .is_empty()
    );
    let page = ListQuery {
        status: None,
        offset: 2,
        limit: 3,
    };
    let paged: Vec<JobId> = b.list(&page).await.unwrap().iter().map(|j| j.id).collect();
    assert_eq!(paged, newest_first[2..5].to_vec());
    let beyond = ListQuery {
        offset: 100,
        ..ListQuery::default()
    };
    assert!(b.list(&beyond).await.unwrap().is_empty());
    for offset in [usize::MAX, usize::MAX / 2, i64::MAX as usize] {
        let hostile = ListQuery {
            status: None,
            offset,
            limit: usize::MAX,
        };
        assert!(
            b.list(&hostile).await.unwrap().is_empty(),
            "offset {offset}"
        );
        let filtered = ListQuery {
            status: Some(JobStatus::Submitted),
            ..hostile
        };
        assert!(
            b.list(&filtered).await.unwrap().is_empty(),
            "offset {offset}"
        );
    }
    let huge = ListQuery {
        limit: usize::MAX,
        ..ListQuery::default()
    };
    assert_eq!(huge.page_size(), MAX_PAGE_SIZE);
    assert_eq!(b.list(&huge).await.unwrap().len(), 6);
}

/// A page never holds more than the maximum page size.
pub async fn list_caps_the_page_size<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let jobs: Vec<Job> = (0..MAX_PAGE_SIZE + 5)
        .map(|_| job(&clock, "1", "2"))
        .collect();
    b.enqueue_many(&jobs).await.unwrap();
    let huge = ListQuery {
        limit: MAX_PAGE_SIZE * 10,
        ..ListQuery::default()
    };
    let page = b.list(&huge).await.unwrap();
    assert_eq!(page.len(), MAX_PAGE_SIZE);
    assert_eq!(page[0].id, jobs[jobs.len() - 1].id);
}

/// `delete` removes a waiting job from store and queue; a running job is a conflict.
pub async fn delete_removes_the_job_everywhere<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let waiting = submit(&*b, &clock).await;
    let running = submit(&*b, &clock).await;
    let done = submit(&*b, &clock).await;
    let retrying = submit(&*b, &clock).await;
    assert!(b.delete(waiting.id).await.unwrap());
    let running_lease = lease(&*b, "w").await;
    assert_eq!(running_lease.id(), running.id);
    assert!(matches!(
        b.delete(running.id).await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(status(&*b, running.id).await, JobStatus::InProgress);
    let done_lease = lease(&*b, "w").await;
    b.complete(&done_lease, b"png".to_vec()).await.unwrap();
    assert!(b.delete(done.id).await.unwrap());
    assert_eq!(b.result(done.id).await.unwrap(), None);
    let retry_lease = lease(&*b, "w").await;
    b.fail(&retry_lease, "x", FailureKind::Transient)
        .await
        .unwrap();
    assert!(b.delete(retrying.id).await.unwrap());
    for id in [waiting.id, done.id, retrying.id] {
        assert_eq!(b.get(id).await.unwrap(), None);
        assert!(!b.delete(id).await.unwrap(), "second delete");
    }
    clock.advance(Duration::from_secs(60));
    assert!(
        b.lease("w", LEASE).await.unwrap().is_none(),
        "deleted jobs are not leased"
    );
    let listed: Vec<JobId> = b
        .list(&ListQuery::default())
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed, vec![running.id]);
    let depth = b.depth().await.unwrap();
    assert_eq!((depth.ready, depth.delayed, depth.leased), (0, 0, 1));
}

/// `counts` follows every move.
pub async fn counts_follow_every_move<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    for _ in 0..5 {
        submit(&*b, &clock).await;
    }
    let a = lease(&*b, "w").await;
    let c = lease(&*b, "w").await;
    lease(&*b, "w").await;
    b.complete(&a, vec![1]).await.unwrap();
    b.fail(&c, "bad", FailureKind::Permanent).await.unwrap();
    let counts = b.counts().await.unwrap();
    assert_eq!(
        (
            counts.submitted,
            counts.in_progress,
            counts.complete,
            counts.failed
        ),
        (2, 1, 1, 1)
    );
}

/// Finished jobs and results disappear after the retention period; running ones do not.
pub async fn finished_jobs_expire_after_retention<M: MakeBackend>(make: &M) {
    let mut settings = settings();
    settings.result_ttl = Duration::from_secs(60);
    let (b, clock) = fixture_with(make, settings).await;
    let done = submit(&*b, &clock).await;
    let failed = submit(&*b, &clock).await;
    let waiting = submit(&*b, &clock).await;
    let l = lease(&*b, "w").await;
    b.complete(&l, b"png".to_vec()).await.unwrap();
    let l = lease(&*b, "w").await;
    b.fail(&l, "bad", FailureKind::Permanent).await.unwrap();
    clock.advance(Duration::from_secs(59));
    assert!(b.get(done.id).await.unwrap().is_some());
    assert_eq!(b.purge_expired().await.unwrap(), 0);
    clock.advance(Duration::from_secs(2));
    assert_eq!(b.get(done.id).await.unwrap(), None);
    assert_eq!(b.result(done.id).await.unwrap(), None);
    assert_eq!(b.get(failed.id).await.unwrap(), None);
    let listed: Vec<JobId> = b
        .list(&ListQuery::default())
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed, vec![waiting.id]);
    assert_eq!(b.purge_expired().await.unwrap(), 2);
    assert_eq!(b.purge_expired().await.unwrap(), 0);
    let counts = b.counts().await.unwrap();
    assert_eq!(
        (counts.submitted, counts.complete, counts.failed),
        (1, 0, 0)
    );
    assert!(
        b.get(waiting.id).await.unwrap().is_some(),
        "unfinished jobs never expire"
    );
}

/// `ping` answers while the backend is up.
pub async fn ping_answers<M: MakeBackend>(make: &M) {
    let (b, _) = fixture(make).await;
    b.ping().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// DataStore and ImageStore
// ---------------------------------------------------------------------------------------------

/// Nothing loaded: version 0, empty reads.
pub async fn data_starts_empty<M: MakeBackend>(make: &M) {
    let (b, _) = fixture(make).await;
    assert_eq!(b.version().await.unwrap(), 0);
    assert_eq!(b.len().await.unwrap(), 0);
    assert!(b.page(0, 10).await.unwrap().is_empty());
    assert_eq!(b.record("HGNC:1").await.unwrap(), None);
    assert!(b.ids().await.unwrap().is_empty());
    assert!(b.load().await.unwrap().1.is_empty());
    assert!(!b.clear().await.unwrap());
}

/// A loaded data set reads back in order, by page and by id.
pub async fn data_reads_back_in_load_order<M: MakeBackend>(make: &M) {
    let (b, _) = fixture(make).await;
    let data = sample_data(250);
    assert_eq!(b.replace(data.clone()).await.unwrap(), 250);
    assert!(b.version().await.unwrap() > 0);
    assert_eq!(b.len().await.unwrap(), 250);
    assert_eq!(b.page(0, 3).await.unwrap(), data.records[..3].to_vec());
    assert_eq!(b.page(248, 10).await.unwrap(), data.records[248..].to_vec());
    assert!(b.page(250, 10).await.unwrap().is_empty());
    assert!(b.page(u64::MAX, u64::MAX).await.unwrap().is_empty());
    assert_eq!(b.page(10, 0).await.unwrap(), Vec::<Record>::new());
    assert_eq!(
        b.record("HGNC:42").await.unwrap(),
        Some(data.records[42].clone())
    );
    assert_eq!(b.record("HGNC:999").await.unwrap(), None);
    let ids = b.ids().await.unwrap();
    assert_eq!(ids.len(), 250);
    assert_eq!(ids[7], "HGNC:7");
    let (_, loaded) = b.load().await.unwrap();
    assert_eq!(*loaded, data);
}

/// `replace` swaps the whole set and changes the version; `clear` empties it.
pub async fn data_replace_and_clear_change_the_version<M: MakeBackend>(make: &M) {
    let (b, _) = fixture(make).await;
    b.replace(sample_data(10)).await.unwrap();
    let v1 = b.version().await.unwrap();
    b.replace(sample_data(3)).await.unwrap();
    let v2 = b.version().await.unwrap();
    assert_ne!(v1, v2);
    assert_eq!(b.len().await.unwrap(), 3);
    assert_eq!(
        b.record("HGNC:5").await.unwrap(),
        None,
        "old records are gone"
    );
    let (version, loaded) = b.load().await.unwrap();
    assert_eq!((version, loaded.len()), (v2, 3));
    assert!(b.clear().await.unwrap());
    assert_ne!(b.version().await.unwrap(), v2);
    assert_eq!(b.len().await.unwrap(), 0);
    assert!(b.page(0, 10).await.unwrap().is_empty());
    assert!(!b.clear().await.unwrap());
}

/// A data set with a repeated record id is refused and the loaded one stays as it was.
pub async fn data_with_duplicate_ids_is_refused<M: MakeBackend>(make: &M) {
    let (b, _) = fixture(make).await;
    b.replace(sample_data(4)).await.unwrap();
    let version = b.version().await.unwrap();
    let mut twice = sample_data(3);
    twice.records.push(twice.records[1].clone());
    assert!(matches!(b.replace(twice).await, Err(Error::InvalidData(_))));
    assert_eq!(b.version().await.unwrap(), version);
    assert_eq!(b.len().await.unwrap(), 4);
    assert_eq!(b.ids().await.unwrap().len(), 4);
}

/// The image is stored, read back and removed.
pub async fn image_round_trips<M: MakeBackend>(make: &M) {
    let (b, _) = fixture(make).await;
    assert_eq!(b.get_image().await.unwrap(), None);
    assert!(!b.delete_image().await.unwrap());
    let png = Bytes::from((0..=255u8).cycle().take(100_000).collect::<Vec<u8>>());
    b.put_image(png.clone()).await.unwrap();
    assert_eq!(b.get_image().await.unwrap(), Some(png));
    b.put_image(Bytes::from_static(b"second")).await.unwrap();
    assert_eq!(
        b.get_image().await.unwrap(),
        Some(Bytes::from_static(b"second"))
    );
    assert!(b.delete_image().await.unwrap());
    assert_eq!(b.get_image().await.unwrap(), None);
}

/// Runs the whole contract suite against a backend factory (see the [module docs](self)).
#[macro_export]
macro_rules! backend_contract_suite {
    ($make:path) => {
        $crate::backend_contract_suite!(@each $make;
            enqueue_stores_a_submitted_job,
            enqueue_keeps_plot_options,
            enqueue_refuses_a_duplicate_id,
            enqueue_many_keeps_order,
            lease_on_empty_queue_is_none,
            lease_marks_the_job_in_progress,
            lease_is_fifo_and_exclusive,
            each_lease_has_a_fresh_token,
            renew_extends_the_lease,
            renew_with_a_stale_token_is_refused,
            renew_many_reports_each_lease,
            complete_stores_the_result,
            stale_lease_cannot_finish_the_job,
            complete_twice_is_refused,
            transient_failure_retries_after_backoff,
            permanent_failure_fails_at_once,
            attempt_limit_fails_the_job,
            release_returns_the_job_uncounted,
            returned_jobs_go_first_and_list_in_order,
            requeue_expired_requeues_only_expired_leases,
            requeue_expired_fails_past_the_attempt_limit,
            concurrent_requeue_handles_each_lease_once,
            concurrent_lessees_get_each_job_once,
            depth_counts_each_place,
            wait_for_work_wakes_on_enqueue,
            unknown_job_is_absent,
            list_is_newest_first_filtered_and_bounded,
            list_caps_the_page_size,
            delete_removes_the_job_everywhere,
            counts_follow_every_move,
            finished_jobs_expire_after_retention,
            ping_answers,
            data_starts_empty,
            data_reads_back_in_load_order,
            data_replace_and_clear_change_the_version,
            data_with_duplicate_ids_is_refused,
            image_round_trips,
        );
    };
    (@each $make:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::contract::$name(&$make).await;
            }
        )*
    };
}
