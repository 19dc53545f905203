//! The backend contract suite (feature `test-util`).
//!
//! One set of tests pins the behaviour of [`Producer`], [`Consumer`], [`Maintenance`],
//! [`JobStore`] and [`WorkerRegistry`](crate::workers::WorkerRegistry). Every backend runs all of it, unchanged: a backend that passes is correct by
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
//! retry delays and age out finished jobs, so nothing here sleeps to wait for the backend.
//!
//! Every test that moves a job also checks that what the call answered is what
//! [`JobStore::get`] reads afterwards.

#[cfg(feature = "plots")]
pub mod plot;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::backends::Backend;
use crate::clock::{Clock, ManualClock};
use crate::error::Error;
use crate::job::{Job, JobId, Params, Progress, QueueName, UniqueScope};
use crate::kind::Output;
use crate::machine::{FailureKind, JobStatus, RetryPolicy};
use crate::queue::{
    Consumer, Enqueued, Lease, Maintenance, Producer, QueueSettings, Quotas, Renewal,
};
use crate::store::{
    Cursor, JobStore, ListQuery, MAX_PAGE_SIZE, QueueStats, ResultState, Statuses, total_counts,
};

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

/// The kind of the suite's jobs (backends never look at kinds).
pub const KIND: &str = "contract";

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
        ..QueueSettings::default()
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

/// The queue named `name`.
pub fn queue(name: &str) -> QueueName {
    QueueName::new(name).expect("a valid queue name")
}

/// A new job of the suite's kind in `queue`, with `params` (JSON text), created at the clock's
/// time, allowed 3 attempts.
pub fn job_in(clock: &ManualClock, queue: &QueueName, params: &str) -> Job {
    let params = Params::from_json(params).expect("JSON parameters");
    Job::new(KIND, queue.clone(), params, 3, clock.now())
}

/// A new job in the `default` queue.
pub fn job(clock: &ManualClock) -> Job {
    job_in(clock, &QueueName::default_queue(), r#"{"n":1}"#)
}

async fn submit<B: Backend>(backend: &B, clock: &ManualClock) -> Job {
    let job = job(clock);
    backend.enqueue(&job).await.expect("enqueue");
    job
}

async fn lease_from<B: Backend>(backend: &B, queue: &QueueName, worker: &str) -> Lease {
    backend
        .lease(queue, worker, LEASE)
        .await
        .expect("lease")
        .expect("a job is ready")
}

async fn lease<B: Backend>(backend: &B, worker: &str) -> Lease {
    lease_from(backend, &QueueName::default_queue(), worker).await
}

async fn nothing_ready<B: Backend>(backend: &B) -> bool {
    backend
        .lease(&QueueName::default_queue(), "w", LEASE)
        .await
        .expect("lease")
        .is_none()
}

async fn stored<B: Backend>(backend: &B, id: JobId) -> Job {
    backend.get(id).await.expect("get").expect("job exists")
}

async fn status<B: Backend>(backend: &B, id: JobId) -> JobStatus {
    stored(backend, id).await.status
}

/// The counts of one queue (zero when the backend has never seen it).
async fn stats_of<B: Backend>(backend: &B, name: &QueueName) -> QueueStats {
    backend
        .stats()
        .await
        .expect("stats")
        .into_iter()
        .find(|q| q.queue == *name)
        .unwrap_or_else(|| QueueStats::empty(name.clone()))
}

async fn default_stats<B: Backend>(backend: &B) -> QueueStats {
    stats_of(backend, &QueueName::default_queue()).await
}

async fn listed_ids<B: Backend>(backend: &B, query: ListQuery) -> Vec<JobId> {
    let page = backend.list(&query).await.expect("list");
    page.jobs.iter().map(|j| j.id).collect()
}

fn png(bytes: &'static [u8]) -> Output {
    Output::new("image/png", bytes)
}

fn assert_lease_lost<T: std::fmt::Debug>(result: crate::Result<T>, what: &str) {
    match result {
        Err(Error::LeaseLost) => {}
        other => panic!("{what}: expected LeaseLost, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Producer
// ---------------------------------------------------------------------------------------------

/// `enqueue` stores the job as `submitted`, exactly as given, and makes it leasable.
pub async fn enqueue_stores_the_job_as_given<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let job = job_in(
        &clock,
        &queue("imports"),
        r#"{"title":"Ünïcode \"quotes\" and\nnewlines","n":[1,2.5,null],"nested":{"a":true}}"#,
    );
    b.enqueue(&job).await.unwrap();
    let stored = stored(&*b, job.id).await;
    assert_eq!(stored, job, "the stored job is the job given");
    assert_eq!(stored.params.as_json(), job.params.as_json());
    let stats = stats_of(&*b, &queue("imports")).await;
    assert_eq!((stats.ready, stats.counts.submitted), (1, 1));
    let leased = lease_from(&*b, &queue("imports"), "w").await;
    assert_eq!(leased.job.params, job.params);
    assert_eq!(leased.job.kind, KIND);
}

/// Enqueueing the same job twice is refused and changes nothing; so is a job not `submitted`.
pub async fn enqueue_refuses_a_duplicate_id_or_a_moved_job<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let job = submit(&*b, &clock).await;
    assert!(matches!(b.enqueue(&job).await, Err(Error::Conflict(_))));
    let mut finished = self::job(&clock);
    finished.status = JobStatus::Complete;
    assert!(matches!(
        b.enqueue(&finished).await,
        Err(Error::IllegalTransition { .. })
    ));
    assert_eq!(b.get(finished.id).await.unwrap(), None);
    assert_eq!(default_stats(&*b).await.ready, 1);
}

/// `enqueue_many` stores every job, leasable in the order given, and answers for each on its
/// own: a refused job does not stop the ones after it.
pub async fn enqueue_many_keeps_order<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let first = job(&clock);
    b.enqueue(&first).await.unwrap();
    let mut jobs: Vec<Job> = (0..25).map(|_| job(&clock)).collect();
    jobs.insert(10, first.clone());
    let answers = b.enqueue_many(&jobs).await.unwrap();
    assert_eq!(answers.len(), 26);
    for (i, answer) in answers.iter().enumerate() {
        match (i, answer) {
            (10, Err(Error::Conflict(_))) => {}
            (10, other) => panic!("a taken id was not refused: {other:?}"),
            (_, Ok(Enqueued::Stored)) => {}
            (i, other) => panic!("job {i}: {other:?}"),
        }
    }
    jobs.remove(10);
    assert_eq!(lease(&*b, "w").await.id(), first.id);
    assert_eq!(default_stats(&*b).await.ready, 25);
    for expected in &jobs {
        assert_eq!(lease(&*b, "w").await.id(), expected.id);
    }
    assert!(nothing_ready(&*b).await);
}

// ---------------------------------------------------------------------------------------------
// Consumer
// ---------------------------------------------------------------------------------------------

/// `lease` on an empty queue answers `None`.
pub async fn lease_on_empty_queue_is_none<M: MakeBackend>(make: &M) {
    let (b, _) = fixture(make).await;
    assert!(nothing_ready(&*b).await);
}

/// A lease marks the job `in progress` with the worker, start time, attempt and deadline, and
/// the leased job is the job `get` reads.
pub async fn lease_marks_the_job_in_progress<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let job = submit(&*b, &clock).await;
    clock.advance(Duration::from_secs(5));
    let lease = lease(&*b, "10.0.0.7").await;
    assert_eq!(lease.id(), job.id);
    assert_eq!(lease.worker, "10.0.0.7");
    assert_eq!(lease.attempt(), 1);
    assert_eq!(lease.job.status, JobStatus::InProgress);
    assert_eq!(lease.job.worker.as_deref(), Some("10.0.0.7"));
    assert_eq!(lease.job.started_at, Some(clock.now()));
    let expected_deadline = clock.now() + chrono::Duration::from_std(LEASE).unwrap();
    assert_eq!(
        lease.deadline.timestamp_millis(),
        expected_deadline.timestamp_millis()
    );
    assert_eq!(stored(&*b, job.id).await, lease.job);
    let stats = default_stats(&*b).await;
    assert_eq!((stats.ready, stats.counts.in_progress), (0, 1));
}

/// Jobs are leased first in, first out, and each only once.
pub async fn lease_is_fifo_and_exclusive<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let first = submit(&*b, &clock).await;
    let second = submit(&*b, &clock).await;
    assert_eq!(lease(&*b, "a").await.id(), first.id);
    assert_eq!(lease(&*b, "b").await.id(), second.id);
    assert!(nothing_ready(&*b).await);
}

/// `lease_many` hands out up to `max` of the oldest ready jobs at once, each with its own token,
/// each as `get` reads it, none twice; an empty batch when nothing is ready.
pub async fn lease_many_takes_the_oldest_jobs_each_once<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(submit(&*b, &clock).await.id);
    }
    let default = QueueName::default_queue();
    assert!(
        b.lease_many(&default, "w", LEASE, 0)
            .await
            .unwrap()
            .is_empty()
    );
    let first = b.lease_many(&default, "w", LEASE, 3).await.unwrap();
    assert_eq!(first.iter().map(Lease::id).collect::<Vec<_>>(), ids[..3]);
    let rest = b.lease_many(&default, "v", LEASE, 10).await.unwrap();
    assert_eq!(rest.iter().map(Lease::id).collect::<Vec<_>>(), ids[3..]);
    assert!(
        b.lease_many(&default, "w", LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let mut tokens: Vec<_> = first.iter().chain(&rest).map(|l| l.token).collect();
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 5, "each lease has its own token");
    for lease in first.iter().chain(&rest) {
        assert_eq!(lease.job.status, JobStatus::InProgress);
        assert_eq!(stored(&*b, lease.id()).await, lease.job);
    }
    assert_eq!(default_stats(&*b).await.counts.in_progress, 5);
    // Each lease of the batch finishes on its own.
    b.complete(&first[1], png(b"x")).await.unwrap();
    assert_eq!(status(&*b, ids[1]).await, JobStatus::Complete);
    assert_eq!(status(&*b, ids[0]).await, JobStatus::InProgress);
}

/// Queues are apart: a job is leased only from its own queue, and counted there.
pub async fn queues_are_apart<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let (fast, slow) = (queue("fast"), queue("slow"));
    let a = job_in(&clock, &fast, "1");
    let c = job_in(&clock, &slow, "2");
    b.enqueue_all(&[a.clone(), c.clone()]).await.unwrap();
    assert!(nothing_ready(&*b).await, "nothing in the default queue");
    assert_eq!(stats_of(&*b, &fast).await.ready, 1);
    assert_eq!(stats_of(&*b, &slow).await.ready, 1);
    let leased = lease_from(&*b, &slow, "w").await;
    assert_eq!(leased.id(), c.id);
    assert!(b.lease(&slow, "w", LEASE).await.unwrap().is_none());
    b.complete(&leased, png(b"x")).await.unwrap();
    let slow_stats = stats_of(&*b, &slow).await;
    assert_eq!((slow_stats.counts.complete, slow_stats.ready), (1, 0));
    assert_eq!(stats_of(&*b, &fast).await.counts.complete, 0);
    assert_eq!(lease_from(&*b, &fast, "w").await.id(), a.id);
    let mut names: Vec<String> = b
        .stats()
        .await
        .unwrap()
        .into_iter()
        .map(|q| q.queue.to_string())
        .collect();
    names.sort();
    assert_eq!(names, vec!["fast".to_owned(), "slow".to_owned()]);
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
    b.complete(&lease, png(b"png")).await.unwrap();
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
    assert_eq!(held, vec![Renewal::Held, Renewal::Lost]);
    clock.advance(Duration::from_secs(20));
    assert_eq!(
        b.requeue_expired().await.unwrap().requeued,
        0,
        "the kept lease was renewed"
    );
    assert_eq!(b.renew_many(&[], LEASE).await.unwrap(), Vec::new());
}

/// `complete` stores the result with its content type and marks the job `complete`, in one
/// step; the answer is what `get` reads.
pub async fn complete_stores_the_result<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let job = submit(&*b, &clock).await;
    assert_eq!(
        b.result(job.id).await.unwrap(),
        Some(ResultState::Pending(JobStatus::Submitted))
    );
    let lease = lease(&*b, "w").await;
    assert_eq!(
        b.result(job.id).await.unwrap(),
        Some(ResultState::Pending(JobStatus::InProgress))
    );
    clock.advance(Duration::from_secs(3));
    let bytes: &'static [u8] = &[0x89, b'P', b'N', b'G', 0, 255];
    let done = b.complete(&lease, png(bytes)).await.unwrap();
    assert_eq!(done.status, JobStatus::Complete);
    assert_eq!(done.finished_at, Some(clock.now()));
    assert_eq!(done.worker.as_deref(), Some("w"));
    assert_eq!(done.result_type.as_deref(), Some("image/png"));
    assert_eq!(done.error, None);
    assert_eq!(stored(&*b, job.id).await, done);
    assert_eq!(
        b.result(job.id).await.unwrap(),
        Some(ResultState::Ready(png(bytes)))
    );
    let stats = default_stats(&*b).await;
    assert_eq!(
        (stats.ready, stats.delayed, stats.counts.in_progress),
        (0, 0, 0)
    );
}

/// Results of any content type and size, empty ones included, come back exactly.
pub async fn results_keep_their_bytes_and_content_type<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let outputs = [
        Output::new("application/json", r#"{"ok":true}"#),
        Output::new("text/plain; charset=utf-8", "héllo"),
        Output::new("application/octet-stream", Vec::<u8>::new()),
        Output::new(
            "application/octet-stream",
            (0..=255u8).cycle().take(300_000).collect::<Vec<u8>>(),
        ),
    ];
    for output in outputs {
        let job = submit(&*b, &clock).await;
        let lease = lease(&*b, "w").await;
        b.complete(&lease, output.clone()).await.unwrap();
        assert_eq!(
            b.result(job.id).await.unwrap(),
            Some(ResultState::Ready(output))
        );
    }
}

/// A stale lease holder cannot complete, fail or release the job, and its attempt changes nothing.
pub async fn stale_lease_cannot_finish_the_job<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let job = submit(&*b, &clock).await;
    let stale = lease(&*b, "old").await;
    clock.advance(LEASE + Duration::from_secs(1));
    b.requeue_expired().await.unwrap();
    let current = lease(&*b, "new").await;
    assert_lease_lost(b.complete(&stale, png(b"stale")).await, "complete");
    assert_lease_lost(
        b.fail(&stale, "stale", FailureKind::Permanent).await,
        "fail",
    );
    assert_lease_lost(b.release(&stale).await, "release");
    assert_eq!(stored(&*b, job.id).await, current.job);
    b.complete(&current, png(b"fresh")).await.unwrap();
    assert_eq!(
        b.result(job.id).await.unwrap(),
        Some(ResultState::Ready(png(b"fresh")))
    );
}

/// A lease ended by its holder giving the job back, by expiry or by a failure to retry is over at
/// once, before the job is leased again: it can no longer complete, renew, report progress or
/// fail, and the job waits unchanged.
pub async fn an_ended_lease_finishes_nothing<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    for end in ["release", "expiry", "retry"] {
        let job = submit(&*b, &clock).await;
        let ended = lease(&*b, "w").await;
        match end {
            "release" => b.release(&ended).await.unwrap(),
            "expiry" => {
                clock.advance(LEASE + Duration::from_secs(1));
                assert_eq!(b.requeue_expired().await.unwrap().requeued, 1);
            }
            _ => {
                b.fail(&ended, "again", FailureKind::Transient)
                    .await
                    .unwrap();
            }
        }
        let waiting = stored(&*b, job.id).await;
        assert_eq!(waiting.status, JobStatus::Submitted, "{end}");
        assert_lease_lost(b.complete(&ended, png(b"late")).await, end);
        assert_lease_lost(b.renew(&ended, LEASE).await, end);
        assert_lease_lost(b.progress(&ended, &Progress::new(1.0, "")).await, end);
        assert_lease_lost(b.fail(&ended, "late", FailureKind::Permanent).await, end);
        assert_eq!(stored(&*b, job.id).await, waiting, "{end}");
        assert_eq!(
            b.result(job.id).await.unwrap(),
            Some(ResultState::Pending(JobStatus::Submitted)),
            "{end}"
        );
        // Leave the queue empty for the next round.
        clock.advance(Duration::from_secs(3600));
        let next = lease(&*b, "w").await;
        assert_eq!(next.id(), job.id);
        b.complete(&next, png(b"done")).await.unwrap();
    }
}

/// A finished job cannot be finished again with the same lease.
pub async fn complete_twice_is_refused<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let job = submit(&*b, &clock).await;
    let lease = lease(&*b, "w").await;
    let done = b.complete(&lease, png(b"one")).await.unwrap();
    assert_lease_lost(b.complete(&lease, png(b"two")).await, "second complete");
    assert_lease_lost(
        b.fail(&lease, "late", FailureKind::Transient).await,
        "fail after complete",
    );
    assert_lease_lost(b.renew(&lease, LEASE).await, "renew after complete");
    assert_eq!(
        b.result(job.id).await.unwrap(),
        Some(ResultState::Ready(png(b"one")))
    );
    assert_eq!(stored(&*b, job.id).await, done);
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
    assert_eq!(stored(&*b, job.id).await, after);
    assert_eq!(
        b.result(job.id).await.unwrap(),
        Some(ResultState::Pending(JobStatus::Submitted))
    );
    let stats = default_stats(&*b).await;
    assert_eq!(
        (stats.ready, stats.delayed, stats.counts.in_progress),
        (0, 1, 0)
    );
    // The first retry waits between half and all of base_delay (1 s): not before 500 ms.
    clock.advance(Duration::from_millis(400));
    assert!(nothing_ready(&*b).await, "leasable before its delay");
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
    assert_eq!(failed.finished_at, Some(clock.now()));
    assert_eq!(stored(&*b, job.id).await, failed);
    assert_eq!(
        b.result(job.id).await.unwrap(),
        Some(ResultState::Failed("invalid job parameters: no".into()))
    );
    clock.advance(Duration::from_secs(60));
    assert!(nothing_ready(&*b).await);
    assert_eq!(default_stats(&*b).await.counts.failed, 1);
}

/// The last allowed attempt gives up even on a transient error; the limit is the job's own.
pub async fn attempt_limit_fails_the_job<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let mut job = job(&clock);
    job.max_attempts = 2;
    b.enqueue(&job).await.unwrap();
    for attempt in 1..=2u32 {
        clock.advance(Duration::from_secs(10)); // past any backoff delay (max 8 s)
        let lease = lease(&*b, "w").await;
        assert_eq!(lease.attempt(), attempt);
        let after = b
            .fail(&lease, "flaky", FailureKind::Transient)
            .await
            .unwrap();
        let expected = if attempt < 2 {
            JobStatus::Submitted
        } else {
            JobStatus::Failed
        };
        assert_eq!(after.status, expected, "after attempt {attempt}");
        assert_eq!(stored(&*b, job.id).await, after);
    }
    clock.advance(Duration::from_secs(60));
    assert!(nothing_ready(&*b).await);
    let stored = stored(&*b, job.id).await;
    assert_eq!((stored.status, stored.attempts), (JobStatus::Failed, 2));
}

/// `release` puts the job back at once without counting the attempt.
pub async fn release_returns_the_job_uncounted<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let job = submit(&*b, &clock).await;
    let first = lease(&*b, "w").await;
    b.release(&first).await.unwrap();
    let stored = stored(&*b, job.id).await;
    assert_eq!((stored.status, stored.attempts), (JobStatus::Submitted, 0));
    assert_eq!(default_stats(&*b).await.ready, 1);
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
    let listed = |statuses: Statuses, offset: usize, limit: usize| {
        let b = Arc::clone(&b);
        async move {
            let query = ListQuery {
                statuses,
                offset,
                limit,
                ..ListQuery::default()
            };
            listed_ids(&*b, query).await
        }
    };
    let submitted = Statuses::only(JobStatus::Submitted);
    let newest_first: Vec<JobId> = ids.iter().rev().copied().collect();
    // ids[0] waits for its retry, ids[1] is back in the queue, ids[2] is in progress.
    assert_eq!(
        listed(submitted, 0, 10).await,
        vec![ids[4], ids[3], ids[1], ids[0]]
    );
    assert_eq!(listed(Statuses::ALL, 0, 10).await, newest_first);
    clock.advance(LEASE + Duration::from_secs(1));
    assert_eq!(b.requeue_expired().await.unwrap().requeued, 1);
    assert_eq!(default_stats(&*b).await.counts.submitted, 5);
    assert_eq!(listed(submitted, 0, 10).await, newest_first);
    assert_eq!(listed(submitted, 1, 2).await, vec![ids[3], ids[2]]);
    assert_eq!(listed(submitted, 3, 10).await, vec![ids[1], ids[0]]);
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
    assert_eq!(listed(submitted, 0, 10).await, expected);
    for offset in 0..5 {
        for limit in 1..4 {
            let end = (offset + limit).min(expected.len());
            let want = expected.get(offset..end).unwrap_or_default().to_vec();
            assert_eq!(
                listed(submitted, offset, limit).await,
                want,
                "offset {offset}, limit {limit}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Maintenance
// ---------------------------------------------------------------------------------------------

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
    let requeued = stored(&*b, early.id).await;
    assert_eq!(requeued.status, JobStatus::Submitted);
    assert_eq!(
        requeued.error.as_deref(),
        Some("lease expired on attempt 1 of 3")
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
    let failed = stored(&*b, job.id).await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.attempts, 3);
    assert_eq!(
        failed.error.as_deref(),
        Some("lease expired on attempt 3 of 3")
    );
    assert_eq!(failed.finished_at, Some(clock.now()));
    assert!(nothing_ready(&*b).await);
    let stats = default_stats(&*b).await;
    assert_eq!(
        (
            stats.ready,
            stats.delayed,
            stats.counts.in_progress,
            stats.counts.failed
        ),
        (0, 0, 0, 1)
    );
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
    assert_eq!(default_stats(&*b).await.ready, 20);
}

/// Concurrent lessees get each job exactly once.
pub async fn concurrent_lessees_get_each_job_once<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let jobs: Vec<Job> = (0..200).map(|_| job(&clock)).collect();
    b.enqueue_all(&jobs).await.unwrap();
    let workers = (0..4).map(|w| {
        let b = Arc::clone(&b);
        tokio::spawn(async move {
            let mut done = Vec::new();
            let default = QueueName::default_queue();
            while let Some(lease) = b.lease(&default, &format!("w{w}"), LEASE).await.unwrap() {
                b.complete(&lease, png(b"1")).await.unwrap();
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
    assert_eq!(default_stats(&*b).await.counts.complete, 200);
}

/// The counts follow every move: ready, delayed, leased, finished.
pub async fn stats_follow_every_move<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    for _ in 0..6 {
        submit(&*b, &clock).await;
    }
    let retried = lease(&*b, "w").await;
    let done = lease(&*b, "w").await;
    let failed = lease(&*b, "w").await;
    lease(&*b, "w").await;
    b.fail(&retried, "x", FailureKind::Transient).await.unwrap();
    b.complete(&done, png(b"1")).await.unwrap();
    b.fail(&failed, "bad", FailureKind::Permanent)
        .await
        .unwrap();
    let stats = default_stats(&*b).await;
    assert_eq!((stats.ready, stats.delayed), (2, 1));
    let counts = stats.counts;
    assert_eq!(
        (
            counts.submitted,
            counts.in_progress,
            counts.complete,
            counts.failed
        ),
        (3, 1, 1, 1)
    );
    assert_eq!(total_counts(&b.stats().await.unwrap()), counts);
    assert_eq!((stats.completed_total, stats.failed_total), (1, 1));
    // The totals are counters: deleting or purging finished jobs does not take them back, and a
    // lease that expires on its last attempt counts as a failure.
    assert!(b.delete(done.id()).await.unwrap());
    b.retry(failed.id()).await.unwrap();
    clock.advance(Duration::from_secs(2));
    let again = lease(&*b, "w").await;
    b.fail(&again, "still bad", FailureKind::Permanent)
        .await
        .unwrap();
    let stats = default_stats(&*b).await;
    assert_eq!(
        (
            stats.counts.complete,
            stats.completed_total,
            stats.failed_total
        ),
        (0, 1, 2)
    );
}

/// `wait_for_work` returns when a job is enqueued in a watched queue, and times out when none
/// is.
pub async fn wait_for_work_wakes_on_enqueue<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let watched = [QueueName::default_queue(), queue("other")];
    // Idle: returns after its timeout.
    tokio::time::timeout(
        Duration::from_secs(10),
        b.wait_for_work(&watched, Duration::from_millis(50)),
    )
    .await
    .expect("an idle wait ends at its timeout");
    // Work already there: returns at once.
    b.enqueue(&job_in(&clock, &watched[1], "{}")).await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        b.wait_for_work(&watched, Duration::from_secs(3600)),
    )
    .await
    .expect("a wait with work ready returns at once");
    lease_from(&*b, &watched[1], "w").await;
    // As a worker does: a lease finds nothing, then it waits. Work arriving while it waits wakes
    // it long before its one-hour timeout.
    for queue in &watched {
        assert!(b.lease(queue, "w", LEASE).await.unwrap().is_none());
    }
    let mut waiter = {
        let b = Arc::clone(&b);
        let watched = watched.clone();
        tokio::spawn(async move { b.wait_for_work(&watched, Duration::from_secs(3600)).await })
    };
    // With nothing to do the waiter waits: give it the time to block before work arrives, so
    // the wake-up itself is what ends the wait (one that is not blocked yet returns either way).
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut waiter)
            .await
            .is_err(),
        "an idle waiter returned without work"
    );
    b.enqueue(&job_in(&clock, &watched[1], "{}")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter was not woken by enqueued work")
        .unwrap();
}

/// A retry that becomes due ends a wait, with no other event.
pub async fn wait_for_work_wakes_for_a_due_retry<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    submit(&*b, &clock).await;
    let l = lease(&*b, "w").await;
    b.fail(&l, "flaky", FailureKind::Transient).await.unwrap();
    // The retry is due within 1 s of the (manual) clock, which the waiter reads: with the clock
    // moved past it, a wait returns at once instead of running its hour.
    clock.advance(Duration::from_secs(2));
    tokio::time::timeout(
        Duration::from_secs(10),
        b.wait_for_work(&[QueueName::default_queue()], Duration::from_secs(3600)),
    )
    .await
    .expect("a due retry ends the wait");
    assert_eq!(lease(&*b, "w").await.id(), l.id());
}

// ---------------------------------------------------------------------------------------------
// JobStore
// ---------------------------------------------------------------------------------------------

/// An unknown id is absent everywhere.
pub async fn unknown_job_is_absent<M: MakeBackend>(make: &M) {
    let (b, _) = fixture(make).await;
    let id = JobId::new_in(&QueueName::default_queue());
    assert_eq!(b.get(id).await.unwrap(), None);
    assert_eq!(b.result(id).await.unwrap(), None);
    assert!(!b.delete(id).await.unwrap());
}

/// `list` returns newest first, filters by status, kind and queue, pages with offset and
/// cursors, and caps the page size.
pub async fn list_is_newest_first_filtered_and_bounded<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(submit(&*b, &clock).await.id);
    }
    let l = lease(&*b, "w").await; // ids[0]
    b.complete(&l, png(b"1")).await.unwrap();
    lease(&*b, "w").await; // ids[1] in progress
    let newest_first: Vec<JobId> = ids.iter().rev().copied().collect();
    assert_eq!(listed_ids(&*b, ListQuery::default()).await, newest_first);
    let of = |status| ListQuery::with_status(status);
    assert_eq!(
        listed_ids(&*b, of(JobStatus::Submitted)).await,
        newest_first[..4].to_vec()
    );
    assert_eq!(listed_ids(&*b, of(JobStatus::Complete)).await, vec![ids[0]]);
    assert_eq!(
        listed_ids(&*b, of(JobStatus::InProgress)).await,
        vec![ids[1]]
    );
    assert!(listed_ids(&*b, of(JobStatus::Failed)).await.is_empty());
    let incomplete = ListQuery {
        statuses: Statuses::of(&[JobStatus::Submitted, JobStatus::InProgress]),
        ..ListQuery::default()
    };
    assert_eq!(
        listed_ids(&*b, incomplete).await,
        newest_first[..5].to_vec()
    );
    let page = ListQuery {
        offset: 2,
        limit: 3,
        ..ListQuery::default()
    };
    assert_eq!(listed_ids(&*b, page).await, newest_first[2..5].to_vec());
    let beyond = ListQuery {
        offset: 100,
        ..ListQuery::default()
    };
    assert!(listed_ids(&*b, beyond).await.is_empty());
    for offset in [usize::MAX, usize::MAX / 2, i64::MAX as usize] {
        let hostile = ListQuery {
            offset,
            limit: usize::MAX,
            ..ListQuery::default()
        };
        assert!(
            listed_ids(&*b, hostile.clone()).await.is_empty(),
            "offset {offset}"
        );
        let filtered = ListQuery {
            statuses: Statuses::only(JobStatus::Submitted),
            ..hostile
        };
        assert!(
            listed_ids(&*b, filtered).await.is_empty(),
            "offset {offset}"
        );
    }
    let huge = ListQuery {
        limit: usize::MAX,
        ..ListQuery::default()
    };
    assert_eq!(huge.page_size(), MAX_PAGE_SIZE);
    assert_eq!(listed_ids(&*b, huge).await.len(), 6);
    // Kind and queue filters. (Across queues, listings order jobs by submission time, to the
    // millisecond: the clock moves between these submits.)
    clock.advance(Duration::from_millis(1));
    let other = job_in(&clock, &queue("other"), "{}");
    b.enqueue(&other).await.unwrap();
    clock.advance(Duration::from_millis(1));
    let mut other_kind = job(&clock);
    other_kind.kind = "another".into();
    b.enqueue(&other_kind).await.unwrap();
    let in_other = ListQuery {
        queue: Some(queue("other")),
        ..ListQuery::default()
    };
    assert_eq!(listed_ids(&*b, in_other).await, vec![other.id]);
    let of_kind = ListQuery {
        kind: Some("another".into()),
        ..ListQuery::default()
    };
    assert_eq!(listed_ids(&*b, of_kind).await, vec![other_kind.id]);
    let mut everything = vec![other_kind.id, other.id];
    everything.extend(&newest_first);
    assert_eq!(listed_ids(&*b, ListQuery::default()).await, everything);
}

/// Following the cursor from page to page lists every matching job once, newest first, across
/// queues and statuses, while jobs move.
pub async fn cursors_page_through_every_job_once<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let queues = [queue("default"), queue("q1"), queue("q2")];
    let mut all = Vec::new();
    for i in 0..30 {
        // Across queues, listings order jobs by submission time, to the millisecond.
        clock.advance(Duration::from_millis(1));
        let job = job_in(&clock, &queues[i % 3], "{}");
        b.enqueue(&job).await.unwrap();
        all.push(job.id);
    }
    for queue in &queues {
        let l = lease_from(&*b, queue, "w").await;
        b.complete(&l, png(b"1")).await.unwrap();
        lease_from(&*b, queue, "w").await;
    }
    let newest_first: Vec<JobId> = all.iter().rev().copied().collect();
    for limit in [1, 4, 7, 30, 31] {
        let mut seen = Vec::new();
        let mut before: Option<Cursor> = None;
        for _ in 0..100 {
            let query = ListQuery {
                before,
                limit,
                ..ListQuery::default()
            };
            let page = b.list(&query).await.unwrap();
            assert!(page.jobs.len() <= limit);
            seen.extend(page.jobs.iter().map(|j| j.id));
            match page.next {
                Some(next) => {
                    assert!(before.is_none_or(|b| next < b), "the cursor moves on");
                    before = Some(next);
                }
                None => break,
            }
        }
        assert_eq!(seen, newest_first, "limit {limit}");
    }
}

/// A page never holds more than the maximum page size.
pub async fn list_caps_the_page_size<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let jobs: Vec<Job> = (0..MAX_PAGE_SIZE + 5).map(|_| job(&clock)).collect();
    b.enqueue_all(&jobs).await.unwrap();
    let huge = ListQuery {
        limit: MAX_PAGE_SIZE * 10,
        ..ListQuery::default()
    };
    let page = b.list(&huge).await.unwrap();
    assert_eq!(page.jobs.len(), MAX_PAGE_SIZE);
    assert_eq!(page.jobs[0].id, jobs[jobs.len() - 1].id);
    assert!(page.next.is_some());
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
    b.complete(&done_lease, png(b"png")).await.unwrap();
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
    assert!(nothing_ready(&*b).await, "deleted jobs are not leased");
    assert_eq!(
        listed_ids(&*b, ListQuery::default()).await,
        vec![running.id]
    );
    let stats = default_stats(&*b).await;
    assert_eq!(
        (stats.ready, stats.delayed, stats.counts.in_progress),
        (0, 0, 1)
    );
    assert_eq!(total_counts(&[stats]).submitted, 0);
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
    b.complete(&l, png(b"png")).await.unwrap();
    let l = lease(&*b, "w").await;
    b.fail(&l, "bad", FailureKind::Permanent).await.unwrap();
    clock.advance(Duration::from_secs(59));
    assert!(b.get(done.id).await.unwrap().is_some());
    assert_eq!(b.purge_expired().await.unwrap(), 0);
    clock.advance(Duration::from_secs(2));
    assert_eq!(b.get(done.id).await.unwrap(), None);
    assert_eq!(b.result(done.id).await.unwrap(), None);
    assert_eq!(b.get(failed.id).await.unwrap(), None);
    assert_eq!(
        listed_ids(&*b, ListQuery::default()).await,
        vec![waiting.id]
    );
    assert_eq!(b.purge_expired().await.unwrap(), 2);
    assert_eq!(b.purge_expired().await.unwrap(), 0);
    let counts = default_stats(&*b).await.counts;
    assert_eq!(
        (counts.submitted, counts.complete, counts.failed),
        (1, 0, 0)
    );
    assert!(
        b.get(waiting.id).await.unwrap().is_some(),
        "unfinished jobs never expire"
    );
}

/// A job with a unique key holds it: while the job is kept (and within the unique key's time), a
/// job with the same key in the same queue is not stored, and the answer names the holder. The
/// key is per queue, one batch counts, and a deleted or expired holder lets the key go.
pub async fn unique_keys_answer_the_job_that_holds_them<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let keyed = |key: &str| {
        let mut job = job(&clock);
        job.unique_key = Some(key.to_owned());
        job
    };
    let first = keyed("order-1");
    assert_eq!(b.enqueue(&first).await.unwrap(), Enqueued::Stored);
    let again = keyed("order-1");
    assert_eq!(
        b.enqueue(&again).await.unwrap(),
        Enqueued::Duplicate(first.id)
    );
    assert_eq!(b.get(again.id).await.unwrap(), None, "nothing stored");
    assert_eq!(default_stats(&*b).await.counts.submitted, 1);

    // Another queue has keys of its own; within one batch the first job wins.
    let mut elsewhere = job_in(&clock, &queue("other"), "{}");
    elsewhere.unique_key = Some("order-1".into());
    let (x, y) = (keyed("order-2"), keyed("order-2"));
    let answers = b
        .enqueue_many(&[elsewhere.clone(), x.clone(), y.clone()])
        .await
        .unwrap();
    assert!(matches!(answers[0], Ok(Enqueued::Stored)), "{answers:?}");
    assert!(matches!(answers[1], Ok(Enqueued::Stored)), "{answers:?}");
    assert!(
        matches!(answers[2], Ok(Enqueued::Duplicate(id)) if id == x.id),
        "{answers:?}"
    );

    // The holder's key is kept on it, and survives its life: it still holds once complete.
    assert_eq!(
        b.get(first.id)
            .await
            .unwrap()
            .unwrap()
            .unique_key
            .as_deref(),
        Some("order-1")
    );
    let lease = lease(&*b, "w").await;
    assert_eq!(lease.id(), first.id);
    b.complete(&lease, png(b"1")).await.unwrap();
    assert_eq!(
        b.enqueue(&keyed("order-1")).await.unwrap(),
        Enqueued::Duplicate(first.id)
    );
    // Deleted, it lets the key go.
    assert!(b.delete(first.id).await.unwrap());
    let after_delete = keyed("order-1");
    assert_eq!(b.enqueue(&after_delete).await.unwrap(), Enqueued::Stored);
    // And so it does once the key's time is up.
    clock.advance(settings().unique_ttl + Duration::from_secs(1));
    assert_eq!(
        b.enqueue(&keyed("order-1")).await.unwrap(),
        Enqueued::Stored
    );
}

/// Past a queue's quota of waiting jobs, or at its quota of result bytes, a job is refused with
/// `QuotaExceeded` and nothing is stored; room made by a lease or a delete lets jobs in again.
/// Other queues have quotas of their own.
pub async fn quotas_refuse_jobs_and_store_nothing<M: MakeBackend>(make: &M) {
    let mut limited = settings();
    limited.quotas = Quotas {
        max_waiting: Some(2),
        max_result_bytes: Some(10),
    };
    let (b, clock) = fixture_with(make, limited).await;
    let (one, two, three) = (job(&clock), job(&clock), job(&clock));
    b.enqueue(&one).await.unwrap();
    b.enqueue(&two).await.unwrap();
    assert!(matches!(
        b.enqueue(&three).await,
        Err(Error::QuotaExceeded(message)) if message.contains("waiting")
    ));
    assert_eq!(b.get(three.id).await.unwrap(), None);
    assert_eq!(default_stats(&*b).await.counts.submitted, 2);
    // A batch fills the room left and refuses the rest, each on its own.
    let other = queue("other");
    let batch: Vec<Job> = (0..3).map(|_| job_in(&clock, &other, "{}")).collect();
    let answers = b.enqueue_many(&batch).await.unwrap();
    assert!(
        matches!(answers[..], [Ok(_), Ok(_), Err(Error::QuotaExceeded(_))]),
        "{answers:?}"
    );

    // A lease makes room.
    let leased = lease(&*b, "w").await;
    b.enqueue(&three).await.unwrap();
    // Results of 10 bytes fill the result quota: nothing new until they are gone.
    b.complete(&leased, png(b"0123456789")).await.unwrap();
    let four = job(&clock);
    assert!(matches!(
        b.enqueue(&four).await,
        Err(Error::QuotaExceeded(message)) if message.contains("results")
    ));
    assert!(b.delete(leased.id()).await.unwrap());
    // Still two waiting: the waiting quota refuses it now, until one is deleted.
    assert!(matches!(
        b.enqueue(&four).await,
        Err(Error::QuotaExceeded(_))
    ));
    assert!(b.delete(two.id).await.unwrap());
    assert_eq!(b.enqueue(&four).await.unwrap(), Enqueued::Stored);
}

/// A waiting job that is deleted leaves its queue at once: it is not counted, listed, read or
/// leased, and the jobs around it are leased in order.
pub async fn deleted_waiting_jobs_leave_the_queue<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let jobs: Vec<Job> = (0..5).map(|_| job(&clock)).collect();
    b.enqueue_all(&jobs).await.unwrap();
    for gone in [&jobs[0], &jobs[1], &jobs[3]] {
        assert!(b.delete(gone.id).await.unwrap());
        assert!(!b.delete(gone.id).await.unwrap(), "deleted twice");
        assert_eq!(b.get(gone.id).await.unwrap(), None);
        assert_eq!(b.result(gone.id).await.unwrap(), None);
    }
    let stats = default_stats(&*b).await;
    assert_eq!((stats.ready, stats.counts.submitted), (2, 2));
    assert_eq!(
        listed_ids(&*b, ListQuery::default()).await,
        vec![jobs[4].id, jobs[2].id]
    );
    assert_eq!(lease(&*b, "w").await.id(), jobs[2].id);
    assert_eq!(lease(&*b, "w").await.id(), jobs[4].id);
    assert!(nothing_ready(&*b).await);
    assert_eq!(default_stats(&*b).await.ready, 0);
}

/// A waiting job that is cancelled, wherever it waits (never leased, back from a lease, waiting
/// for a retry), becomes `cancelled` at once, finished: it is never leased, counts and lists as
/// `cancelled` only, and has no result. Cancelling it again answers it unchanged.
pub async fn cancel_takes_a_waiting_job_out_of_its_queue<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let jobs: Vec<Job> = (0..5).map(|_| job(&clock)).collect();
    b.enqueue_all(&jobs).await.unwrap();
    // jobs[0] back from a lease, jobs[1] waiting for a retry, the others never leased.
    let released = lease(&*b, "w").await;
    b.release(&released).await.unwrap();
    let lease_0 = lease(&*b, "w").await;
    assert_eq!(lease_0.id(), jobs[0].id);
    let retried = lease(&*b, "w").await;
    b.fail(&retried, "flaky", FailureKind::Transient)
        .await
        .unwrap();
    b.release(&lease_0).await.unwrap();
    clock.advance(Duration::from_secs(2));
    for gone in [&jobs[0], &jobs[1], &jobs[3]] {
        let cancelled = b.cancel(gone.id).await.unwrap().expect("the job exists");
        assert_eq!(cancelled.status, JobStatus::Cancelled);
        assert_eq!(cancelled.finished_at, Some(clock.now()));
        assert_eq!(cancelled, stored(&*b, gone.id).await);
        assert_eq!(
            b.result(gone.id).await.unwrap(),
            Some(ResultState::Cancelled)
        );
        clock.advance(Duration::from_millis(5));
        assert_eq!(
            b.cancel(gone.id).await.unwrap(),
            Some(cancelled),
            "a second cancel answers the job unchanged"
        );
    }
    let stats = default_stats(&*b).await;
    assert_eq!(
        (
            stats.ready,
            stats.delayed,
            stats.counts.submitted,
            stats.counts.cancelled
        ),
        (2, 0, 2, 3)
    );
    assert_eq!(
        listed_ids(&*b, ListQuery::with_status(JobStatus::Cancelled)).await,
        vec![jobs[3].id, jobs[1].id, jobs[0].id]
    );
    assert_eq!(
        listed_ids(&*b, ListQuery::with_status(JobStatus::Submitted)).await,
        vec![jobs[4].id, jobs[2].id]
    );
    assert_eq!(
        listed_ids(&*b, ListQuery::default()).await,
        jobs.iter().rev().map(|j| j.id).collect::<Vec<_>>(),
        "every job listed once"
    );
    clock.advance(Duration::from_secs(60));
    assert_eq!(lease(&*b, "w").await.id(), jobs[2].id);
    assert_eq!(lease(&*b, "w").await.id(), jobs[4].id);
    assert!(nothing_ready(&*b).await);
    assert_eq!(default_stats(&*b).await.ready, 0);
}

/// A running job that is cancelled is `cancelled` at once; its worker's heartbeat hears so, and
/// nothing it sends afterwards (renew, progress, complete, fail, release) is accepted; its lease
/// running out changes nothing either.
pub async fn cancel_stops_a_running_job<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let job = submit(&*b, &clock).await;
    submit(&*b, &clock).await;
    let running = lease(&*b, "w").await;
    let other = lease(&*b, "w").await;
    let cancelled = b.cancel(job.id).await.unwrap().expect("the job exists");
    assert_eq!(
        (
            cancelled.status,
            cancelled.attempts,
            cancelled.worker.as_deref()
        ),
        (JobStatus::Cancelled, 1, Some("w"))
    );
    assert_eq!(cancelled, stored(&*b, job.id).await);
    assert_eq!(
        b.renew_many(&[running.clone(), other.clone()], LEASE)
            .await
            .unwrap(),
        vec![Renewal::Cancelled, Renewal::Held]
    );
    assert_lease_lost(b.renew(&running, LEASE).await, "renew");
    assert_lease_lost(
        b.progress(&running, &Progress::new(50.0, "half")).await,
        "progress",
    );
    assert_lease_lost(b.complete(&running, png(b"late")).await, "complete");
    assert_lease_lost(
        b.fail(&running, "late", FailureKind::Transient).await,
        "fail",
    );
    assert_lease_lost(b.release(&running).await, "release");
    assert_eq!(stored(&*b, job.id).await, cancelled, "nothing changed it");
    assert_eq!(
        b.result(job.id).await.unwrap(),
        Some(ResultState::Cancelled)
    );
    let stats = default_stats(&*b).await;
    assert_eq!((stats.counts.in_progress, stats.counts.cancelled), (1, 1));
    clock.advance(LEASE * 2);
    assert_eq!(
        b.requeue_expired().await.unwrap().requeued,
        1,
        "only the other job"
    );
    assert_eq!(status(&*b, job.id).await, JobStatus::Cancelled);
}

/// A finished job cannot be cancelled; a job that does not exist, or no longer does, answers
/// `None`; a cancelled job can be deleted and ages out after retention like any finished job.
pub async fn cancel_refuses_finished_jobs_and_cancelled_ones_expire<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let done = submit(&*b, &clock).await;
    let failed = submit(&*b, &clock).await;
    let kept = submit(&*b, &clock).await;
    let gone = submit(&*b, &clock).await;
    b.complete(&lease(&*b, "w").await, png(b"x")).await.unwrap();
    b.fail(&lease(&*b, "w").await, "no", FailureKind::Permanent)
        .await
        .unwrap();
    for finished in [&done, &failed] {
        let before = stored(&*b, finished.id).await;
        assert!(
            matches!(b.cancel(finished.id).await, Err(Error::Conflict(_))),
            "{:?}",
            before.status
        );
        assert_eq!(stored(&*b, finished.id).await, before);
    }
    assert_eq!(
        b.cancel(JobId::new_in(&QueueName::default_queue()))
            .await
            .unwrap(),
        None
    );
    b.cancel(kept.id).await.unwrap();
    b.cancel(gone.id).await.unwrap();
    assert!(b.delete(gone.id).await.unwrap());
    assert_eq!(b.cancel(gone.id).await.unwrap(), None);
    assert_eq!(default_stats(&*b).await.counts.cancelled, 1);
    clock.advance(Duration::from_secs(3601));
    assert_eq!(b.get(kept.id).await.unwrap(), None);
    assert_eq!(b.cancel(kept.id).await.unwrap(), None);
    assert_eq!(b.purge_expired().await.unwrap(), 3);
    let stats = default_stats(&*b).await;
    assert_eq!((stats.counts.cancelled, stats.ready), (0, 0));
    assert!(nothing_ready(&*b).await);
}

/// A failed job that is retried is `submitted` again at once, with its attempts counted from zero
/// and its error, finish time and retention gone: it lists and counts as waiting, is leased ahead
/// of the jobs submitted after it, and can complete. Only a failed job can be retried.
pub async fn retry_runs_a_failed_job_again<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let failed = submit(&*b, &clock).await;
    let later = submit(&*b, &clock).await;
    let first = lease(&*b, "w").await;
    assert_eq!(first.id(), failed.id);
    b.fail(&first, "bad input", FailureKind::Permanent)
        .await
        .unwrap();
    assert_eq!(status(&*b, failed.id).await, JobStatus::Failed);
    clock.advance(Duration::from_secs(10));
    let retried = b.retry(failed.id).await.unwrap().expect("the job exists");
    assert_eq!(
        (
            retried.status,
            retried.attempts,
            retried.error.as_deref(),
            retried.finished_at
        ),
        (JobStatus::Submitted, 0, None, None)
    );
    assert_eq!(retried, stored(&*b, failed.id).await);
    assert_eq!(
        b.result(failed.id).await.unwrap(),
        Some(ResultState::Pending(JobStatus::Submitted))
    );
    let stats = default_stats(&*b).await;
    assert_eq!(
        (stats.ready, stats.counts.submitted, stats.counts.failed),
        (2, 2, 0)
    );
    assert!(
        listed_ids(&*b, ListQuery::with_status(JobStatus::Failed))
            .await
            .is_empty()
    );
    assert_eq!(
        listed_ids(&*b, ListQuery::with_status(JobStatus::Submitted)).await,
        vec![later.id, failed.id]
    );
    for waiting in [&failed, &later] {
        assert!(
            matches!(b.retry(waiting.id).await, Err(Error::Conflict(_))),
            "a waiting job is not retried"
        );
    }
    // Past the failed job's retention, the retried job is still there: its retention is gone.
    clock.advance(Duration::from_secs(3601));
    assert_eq!(b.purge_expired().await.unwrap(), 0);
    let again = lease(&*b, "w").await;
    assert_eq!((again.id(), again.job.attempts), (failed.id, 1));
    b.complete(&again, png(b"second time")).await.unwrap();
    assert!(matches!(
        b.result(failed.id).await.unwrap(),
        Some(ResultState::Ready(_))
    ));
    let before = stored(&*b, failed.id).await;
    assert!(
        matches!(b.retry(failed.id).await, Err(Error::Conflict(_))),
        "a complete job is not retried"
    );
    assert_eq!(stored(&*b, failed.id).await, before);
    assert_eq!(lease(&*b, "w").await.id(), later.id);
    assert!(nothing_ready(&*b).await);
    assert_eq!(
        b.retry(JobId::new_in(&QueueName::default_queue()))
            .await
            .unwrap(),
        None
    );
}

/// A progress report is kept on the job under the lease's fencing check; the last one shows.
pub async fn progress_is_kept_under_the_lease<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let job = submit(&*b, &clock).await;
    let first = lease(&*b, "w").await;
    b.progress(&first, &Progress::new(10.0, "loading"))
        .await
        .unwrap();
    b.progress(&first, &Progress::new(55.5, "drawing"))
        .await
        .unwrap();
    assert_eq!(
        stored(&*b, job.id).await.progress,
        Some(Progress::new(55.5, "drawing"))
    );
    clock.advance(LEASE + Duration::from_secs(1));
    b.requeue_expired().await.unwrap();
    let second = lease(&*b, "w2").await;
    assert_eq!(
        second.job.progress,
        Some(Progress::new(55.5, "drawing")),
        "the last report shows until the next attempt reports"
    );
    assert_lease_lost(
        b.progress(&first, &Progress::new(99.0, "stale")).await,
        "a report of the expired lease",
    );
    b.progress(&second, &Progress::new(100.0, "done"))
        .await
        .unwrap();
    let finished = b.complete(&second, png(b"x")).await.unwrap();
    assert_eq!(finished, stored(&*b, job.id).await);
    assert_eq!(finished.progress, Some(Progress::new(100.0, "done")));

    let flaky = submit(&*b, &clock).await;
    let attempt = lease(&*b, "w").await;
    b.progress(&attempt, &Progress::new(30.0, ""))
        .await
        .unwrap();
    let retrying = b
        .fail(&attempt, "flaky", FailureKind::Transient)
        .await
        .unwrap();
    assert_eq!(retrying, stored(&*b, flaky.id).await);
    assert_eq!(retrying.progress, Some(Progress::new(30.0, "")));
}

/// A job of `priority`, with `run_at` when given, in the `default` queue.
fn job_at(clock: &ManualClock, priority: i32, run_at: Option<Duration>) -> Job {
    let mut job = job(clock);
    job.priority = priority;
    job.run_at = run_at.map(|d| clock.now() + chrono::Duration::from_std(d).expect("short"));
    job
}

/// Within a queue, the highest priority is leased first, and jobs of equal priority in
/// submission order; a job back from a lease goes before the jobs of its priority submitted after
/// it, not before those of a higher one. Each job shows its priority.
pub async fn priorities_lease_the_highest_first_and_equal_ones_in_order<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let priorities = [0, 5, -1, 5, 0, 10, -1, 1000, -1000, 5];
    let jobs: Vec<Job> = priorities
        .iter()
        .map(|&p| job_at(&clock, p, None))
        .collect();
    b.enqueue_all(&jobs).await.unwrap();
    for job in &jobs {
        assert_eq!(stored(&*b, job.id).await.priority, job.priority);
    }
    assert_eq!(default_stats(&*b).await.ready, jobs.len() as u64);
    assert_eq!(
        listed_ids(&*b, ListQuery::with_status(JobStatus::Submitted)).await,
        jobs.iter().rev().map(|j| j.id).collect::<Vec<_>>(),
        "listed newest first whatever their priority"
    );
    let top = lease(&*b, "w").await;
    assert_eq!((top.id(), top.job.priority), (jobs[7].id, 1000));
    assert_eq!(lease(&*b, "w").await.id(), jobs[5].id);
    let five = lease(&*b, "w").await;
    assert_eq!(five.id(), jobs[1].id);
    b.release(&five).await.unwrap();
    let rest = b
        .lease_many(&QueueName::default_queue(), "w", LEASE, 100)
        .await
        .unwrap();
    let order: Vec<JobId> = rest.iter().map(|l| l.id()).collect();
    let expected: Vec<JobId> = [1, 3, 9, 0, 4, 2, 6, 8]
        .iter()
        .map(|&i| jobs[i].id)
        .collect();
    assert_eq!(order, expected);
    for lease in &rest {
        assert_eq!(lease.job, stored(&*b, lease.id()).await);
    }
    assert!(nothing_ready(&*b).await);
    assert_eq!(default_stats(&*b).await.ready, 0);
}

/// Priorities hold across batches, deletes and cancels: each lease call takes the highest
/// priority ready, and ids left behind by a delete or a cancel are skipped.
pub async fn priorities_hold_across_batches_deletes_and_cancels<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let jobs: Vec<Job> = (0..30).map(|i| job_at(&clock, i % 3, None)).collect();
    b.enqueue_all(&jobs).await.unwrap();
    b.delete(jobs[2].id).await.unwrap();
    b.cancel(jobs[5].id).await.unwrap();
    b.delete(jobs[0].id).await.unwrap();
    let mut taken = Vec::new();
    loop {
        let batch = b
            .lease_many(&QueueName::default_queue(), "w", LEASE, 4)
            .await
            .unwrap();
        if batch.is_empty() {
            break;
        }
        taken.extend(batch.into_iter().map(|l| l.id()));
    }
    let mut expected: Vec<usize> = (0..30).filter(|i| ![0, 2, 5].contains(i)).collect();
    expected.sort_by_key(|&i| (-(i as i64 % 3), i));
    assert_eq!(
        taken,
        expected.iter().map(|&i| jobs[i].id).collect::<Vec<_>>()
    );
    assert_eq!(default_stats(&*b).await.ready, 0);
}

/// A job submitted with a time to run is not leased before then: it waits as `submitted`,
/// listed and counted as delayed, with its time on it. Once due it is leased by its priority, and
/// among equals in submission order.
pub async fn delayed_jobs_wait_for_their_time<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let minute = Duration::from_secs(60);
    let early = job_at(&clock, 0, Some(minute));
    let plain = job_at(&clock, 0, None);
    let later = job_at(&clock, 3, Some(minute * 2));
    let after = job_at(&clock, 0, None);
    b.enqueue_all(&[early.clone(), plain.clone(), later.clone(), after.clone()])
        .await
        .unwrap();
    assert_eq!(stored(&*b, early.id).await, early, "shown with its time");
    let stats = default_stats(&*b).await;
    assert_eq!(
        (stats.ready, stats.delayed, stats.counts.submitted),
        (2, 2, 4)
    );
    assert_eq!(
        listed_ids(&*b, ListQuery::with_status(JobStatus::Submitted)).await,
        vec![after.id, later.id, plain.id, early.id]
    );
    assert_eq!(lease(&*b, "w").await.id(), plain.id);
    clock.advance(minute + Duration::from_secs(1));
    // Due now, and submitted before `after`: leased first.
    assert_eq!(lease(&*b, "w").await.id(), early.id);
    assert_eq!(lease(&*b, "w").await.id(), after.id);
    assert!(nothing_ready(&*b).await);
    let stats = default_stats(&*b).await;
    assert_eq!((stats.ready, stats.delayed), (0, 1));
    clock.advance(minute);
    let due = lease(&*b, "w").await;
    assert_eq!((due.id(), due.job.run_at), (later.id, later.run_at));
    assert_eq!(due.job, stored(&*b, later.id).await);
    assert!(nothing_ready(&*b).await);

    // A due job goes after the jobs of its priority submitted before it, and before the later
    // ones.
    let before = job_at(&clock, 0, None);
    let delayed = job_at(&clock, 0, Some(Duration::from_secs(1)));
    let behind = job_at(&clock, 0, None);
    b.enqueue_all(&[before.clone(), delayed.clone(), behind.clone()])
        .await
        .unwrap();
    clock.advance(Duration::from_secs(2));
    let order: Vec<JobId> = b
        .lease_many(&QueueName::default_queue(), "w", LEASE, 10)
        .await
        .unwrap()
        .iter()
        .map(Lease::id)
        .collect();
    assert_eq!(order, vec![before.id, delayed.id, behind.id]);
}

/// A delayed job can be cancelled or deleted while it waits; a due one of a higher priority goes
/// before jobs of a lower one that were ready all along.
pub async fn delayed_jobs_leave_cleanly_and_keep_their_priority<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let second = Duration::from_secs(1);
    let gone = job_at(&clock, 0, Some(second));
    let dropped = job_at(&clock, 0, Some(second));
    let low = job_at(&clock, -5, None);
    let high = job_at(&clock, 7, Some(second));
    b.enqueue_all(&[gone.clone(), dropped.clone(), low.clone(), high.clone()])
        .await
        .unwrap();
    b.cancel(gone.id).await.unwrap();
    assert!(b.delete(dropped.id).await.unwrap());
    let stats = default_stats(&*b).await;
    assert_eq!(
        (stats.ready, stats.delayed, stats.counts.submitted),
        (1, 1, 2)
    );
    clock.advance(second * 2);
    assert_eq!(lease(&*b, "w").await.id(), high.id);
    assert_eq!(lease(&*b, "w").await.id(), low.id);
    assert!(nothing_ready(&*b).await);
    assert_eq!(default_stats(&*b).await.counts.submitted, 0);
}

/// An idle worker's wait ends when a delayed job's time comes.
pub async fn wait_for_work_wakes_for_a_delayed_job<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let delayed = job_at(&clock, 0, Some(Duration::from_secs(30)));
    b.enqueue(&delayed).await.unwrap();
    assert!(nothing_ready(&*b).await);
    clock.advance(Duration::from_secs(31));
    tokio::time::timeout(
        Duration::from_secs(10),
        b.wait_for_work(&[QueueName::default_queue()], Duration::from_secs(3600)),
    )
    .await
    .expect("a due job ends the wait");
    assert_eq!(lease(&*b, "w").await.id(), delayed.id);
}

/// A job of the `default` queue holding `key` for `scope`.
fn unique_job(clock: &ManualClock, key: &str, scope: UniqueScope) -> Job {
    let mut job = job(clock);
    job.unique_key = Some(key.to_owned());
    job.unique_scope = Some(scope);
    job
}

/// A unique key held "while active" answers its job while it waits or runs, and is free once the
/// job is finished or cancelled; one held "for" a duration holds that long, finished or not.
pub async fn unique_key_scopes_hold_while_active_or_for_a_duration<M: MakeBackend>(make: &M) {
    let (b, clock) = fixture(make).await;
    let active = || unique_job(&clock, "nightly", UniqueScope::Active);
    let first = active();
    assert_eq!(b.enqueue(&first).await.unwrap(), Enqueued::Stored);
    assert_eq!(stored(&*b, first.id).await, first, "shown with its scope");
    assert_eq!(
        b.enqueue(&active()).await.unwrap(),
        Enqueued::Duplicate(first.id)
    );
    let running = lease(&*b, "w").await;
    assert_eq!(
        b.enqueue(&active()).await.unwrap(),
        Enqueued::Duplicate(first.id)
    );
    b.complete(&running, png(b"x")).await.unwrap();
    let second = active();
    assert_eq!(
        b.enqueue(&second).await.unwrap(),
        Enqueued::Stored,
        "free once finished"
    );
    b.cancel(second.id).await.unwrap();
    let third = active();
    assert_eq!(
        b.enqueue(&third).await.unwrap(),
        Enqueued::Stored,
        "free once cancelled"
    );

    let timed = || unique_job(&clock, "report-7", UniqueScope::For(10));
    let held = timed();
    assert_eq!(b.enqueue(&held).await.unwrap(), Enqueued::Stored);
    let done = lease(&*b, "w").await;
    assert_eq!(done.id(), third.id);
    let done = lease(&*b, "w").await;
    assert_eq!(done.id(), held.id);
    b.complete(&done, png(b"x")).await.unwrap();
    clock.advance(Duration::from_secs(9));
    assert_eq!(
        b.enqueue(&timed()).await.unwrap(),
        Enqueued::Duplicate(held.id)
    );
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        b.enqueue(&timed()).await.unwrap(),
        Enqueued::Stored,
        "free after 10 s"
    );
}

/// Every status change of every job is an event, in order, with its kind, queue and (for what a
/// worker did) worker; a reader resumes from any cursor with each retained event once, and
/// `head` is after all of them.
pub async fn events_record_every_status_change_and_resume_from_any_cursor<M: MakeBackend>(
    make: &M,
) {
    use crate::events::{EventLog, MAX_READ};
    let (b, clock) = fixture(make).await;
    let start = b.head().await.unwrap();
    assert!(b.read(&start, MAX_READ).await.unwrap().is_empty());
    let mail = queue("mail");
    let a = submit(&*b, &clock).await;
    let c = job_in(&clock, &mail, "{}");
    let d = job(&clock);
    b.enqueue_all(&[c.clone(), d.clone()]).await.unwrap();
    let la = lease(&*b, "w1").await;
    b.complete(&la, png(b"done")).await.unwrap();
    let ld = lease(&*b, "w2").await;
    b.fail(&ld, "boom", FailureKind::Transient).await.unwrap();
    let lc = lease_from(&*b, &mail, "w3").await;
    b.release(&lc).await.unwrap();
    b.cancel(c.id).await.unwrap();
    clock.advance(Duration::from_secs(2));
    let ld = lease(&*b, "w4").await;
    clock.advance(LEASE + Duration::from_secs(1));
    b.requeue_expired().await.unwrap();

    let events = b.read(&start, MAX_READ).await.unwrap();
    let of = |id: JobId| -> Vec<(JobStatus, Option<&str>)> {
        events
            .iter()
            .filter(|e| e.job == id)
            .map(|e| (e.status, e.worker.as_deref()))
            .collect()
    };
    use JobStatus::*;
    assert_eq!(
        of(a.id),
        [
            (Submitted, None),
            (InProgress, Some("w1")),
            (Complete, Some("w1"))
        ]
    );
    assert_eq!(
        of(d.id),
        [
            (Submitted, None),
            (InProgress, Some("w2")),
            (Submitted, Some("w2")),
            (InProgress, Some("w4")),
            (Submitted, None),
        ]
    );
    assert_eq!(
        of(c.id),
        [
            (Submitted, None),
            (InProgress, Some("w3")),
            (Submitted, Some("w3")),
            (Cancelled, None)
        ]
    );
    assert_eq!(events.len(), 12, "{events:#?}");
    for e in &events {
        assert_eq!(e.kind, KIND);
        let expected = if e.job == c.id { &mail } else { &a.queue };
        assert_eq!(&e.queue, expected);
    }
    let _ = ld;

    // Resuming after any event answers exactly the events after it, however they are paged.
    for cut in 0..events.len() {
        let mut cursor = start.clone();
        for e in &events[..cut] {
            cursor.pass(e);
        }
        let mut rest = Vec::new();
        loop {
            let page = b.read(&cursor, 2).await.unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 2);
            for e in &page {
                cursor.pass(e);
            }
            rest.extend(page);
        }
        let expected: Vec<_> = events[cut..].iter().map(|e| (e.job, e.status)).collect();
        let got: Vec<_> = rest.iter().map(|e| (e.job, e.status)).collect();
        // Streams of different queues may interleave differently; each job's order may not.
        for id in [a.id, c.id, d.id] {
            let seq = |v: &Vec<(JobId, JobStatus)>| -> Vec<JobStatus> {
                v.iter()
                    .filter(|(j, _)| *j == id)
                    .map(|(_, s)| *s)
                    .collect()
            };
            assert_eq!(seq(&got), seq(&expected), "after {cut} events, job {id}");
        }
        assert_eq!(got.len(), expected.len(), "after {cut} events");
        // The text form of a cursor resumes just the same.
        let reparsed: crate::events::EventCursor = cursor.to_string().parse().unwrap();
        assert!(b.read(&reparsed, MAX_READ).await.unwrap().is_empty());
    }
    let head = b.head().await.unwrap();
    assert!(b.read(&head, MAX_READ).await.unwrap().is_empty());
}

/// A reader waiting at the head of the log is woken by the next event, long before its timeout.
pub async fn event_waits_wake_on_the_next_event<M: MakeBackend>(make: &M) {
    use crate::events::{EventLog, MAX_READ};
    let (b, clock) = fixture(make).await;
    submit(&*b, &clock).await;
    let head = b.head().await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        b.wait(&head, Duration::from_millis(50)),
    )
    .await
    .expect("an idle wait ends at its timeout");
    let mut waiter = {
        let b = Arc::clone(&b);
        let head = head.clone();
        tokio::spawn(async move { b.wait(&head, Duration::from_secs(3600)).await })
    };
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut waiter)
            .await
            .is_err(),
        "an idle waiter returned without an event"
    );
    let l = lease(&*b, "w").await;
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter was not woken by the lease's event")
        .unwrap();
    let new = b.read(&head, MAX_READ).await.unwrap();
    assert_eq!(new.len(), 1);
    assert_eq!((new[0].job, new[0].status), (l.id(), JobStatus::InProgress));
}

/// A worker's entry as it beats: `last_seen` is the registry's.
fn worker_info(id: &str, completed: u64) -> crate::workers::WorkerInfo {
    crate::workers::WorkerInfo {
        id: id.to_owned(),
        identity: "10.0.0.7".to_owned(),
        queues: vec![QueueName::default_queue(), QueueName::new("mail").unwrap()],
        concurrency: 4,
        in_flight: 2,
        leased: completed + 3,
        completed,
        failed: 1,
        retried: 0,
        started_at: chrono::DateTime::UNIX_EPOCH,
        last_seen: chrono::DateTime::UNIX_EPOCH,
    }
}

/// Workers beat, are listed with what they sent and the registry's time, replace their own
/// entry, leave, and disappear once their entry outlives its time to live.
pub async fn workers_register_beat_leave_and_expire<M: MakeBackend>(make: &M) {
    use crate::workers::WorkerRegistry;
    let (b, clock) = fixture(make).await;
    assert!(b.workers().await.unwrap().is_empty());
    let ttl = Duration::from_secs(6);
    b.beat(&worker_info("a/1", 5), ttl).await.unwrap();
    b.beat(&worker_info("b/2", 0), ttl).await.unwrap();
    let listed = b.workers().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, "a/1");
    let mut expected = worker_info("a/1", 5);
    expected.last_seen = listed[0].last_seen;
    assert_eq!(listed[0], expected);
    let at = clock.now();
    assert!(
        (listed[0].last_seen - at).num_milliseconds().abs() <= 1,
        "{:?}",
        listed[0]
    );

    // A later beat replaces the entry, and keeps it alive.
    clock.advance(Duration::from_secs(4));
    b.beat(&worker_info("a/1", 9), ttl).await.unwrap();
    clock.advance(Duration::from_secs(3));
    let listed = b.workers().await.unwrap();
    assert_eq!(listed.len(), 1, "b/2 missed its beats: {listed:?}");
    assert_eq!((listed[0].id.as_str(), listed[0].completed), ("a/1", 9));
    assert!(listed[0].last_seen > at);

    // Leaving is at once, and twice is harmless.
    b.leave("a/1").await.unwrap();
    b.leave("a/1").await.unwrap();
    b.leave("never/0").await.unwrap();
    assert!(b.workers().await.unwrap().is_empty());

    // Exactly at its deadline an entry is dead.
    b.beat(&worker_info("c/3", 0), ttl).await.unwrap();
    clock.advance(ttl);
    assert!(b.workers().await.unwrap().is_empty());

    // Names a registry refuses.
    let bad = worker_info("bad\nid", 0);
    assert!(matches!(
        b.beat(&bad, ttl).await,
        Err(Error::InvalidParams(_))
    ));
}

/// `ping` answers while the backend is up.
pub async fn ping_answers<M: MakeBackend>(make: &M) {
    let (b, _) = fixture(make).await;
    b.ping().await.unwrap();
}

/// Runs the whole contract suite against a backend factory (see the [module docs](self)).
#[macro_export]
macro_rules! backend_contract_suite {
    ($make:path) => {
        $crate::backend_contract_suite!(@each $make;
            enqueue_stores_the_job_as_given,
            enqueue_refuses_a_duplicate_id_or_a_moved_job,
            enqueue_many_keeps_order,
            lease_on_empty_queue_is_none,
            lease_marks_the_job_in_progress,
            lease_is_fifo_and_exclusive,
            lease_many_takes_the_oldest_jobs_each_once,
            queues_are_apart,
            each_lease_has_a_fresh_token,
            renew_extends_the_lease,
            renew_with_a_stale_token_is_refused,
            renew_many_reports_each_lease,
            complete_stores_the_result,
            results_keep_their_bytes_and_content_type,
            stale_lease_cannot_finish_the_job,
            an_ended_lease_finishes_nothing,
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
            stats_follow_every_move,
            wait_for_work_wakes_on_enqueue,
            wait_for_work_wakes_for_a_due_retry,
            unknown_job_is_absent,
            list_is_newest_first_filtered_and_bounded,
            cursors_page_through_every_job_once,
            list_caps_the_page_size,
            delete_removes_the_job_everywhere,
            finished_jobs_expire_after_retention,
            unique_keys_answer_the_job_that_holds_them,
            quotas_refuse_jobs_and_store_nothing,
            deleted_waiting_jobs_leave_the_queue,
            cancel_takes_a_waiting_job_out_of_its_queue,
            cancel_stops_a_running_job,
            cancel_refuses_finished_jobs_and_cancelled_ones_expire,
            retry_runs_a_failed_job_again,
            progress_is_kept_under_the_lease,
            priorities_lease_the_highest_first_and_equal_ones_in_order,
            priorities_hold_across_batches_deletes_and_cancels,
            delayed_jobs_wait_for_their_time,
            delayed_jobs_leave_cleanly_and_keep_their_priority,
            wait_for_work_wakes_for_a_delayed_job,
            unique_key_scopes_hold_while_active_or_for_a_duration,
            workers_register_beat_leave_and_expire,
            events_record_every_status_change_and_resume_from_any_cursor,
            event_waits_wake_on_the_next_event,
            ping_answers,
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
