//! The worker's run loop in one process, on the in-memory backend, with tokio's clock paused: time
//! moves only when every task waits, so leases, heartbeats, grace periods and backoffs are tested
//! exactly and without waiting.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use holidapp_core::{
    Clock, Consumer, Context, Error, FailureKind, Job, JobId, JobStatus, JobStore, Kinds, Lease,
    Maintenance, ManualClock, MemoryBackend, Output, Params, Png, Processor, Producer, Progress,
    QueueName, QueueSettings, Renderer, Renewal, Result,
};
use holidapp_worker::{
    Ending, NoopRenderer, SleepRenderer, Worker, WorkerConfig, WorkerStats, run, run_with_force,
};
use tokio::time::Instant;

/// A backend clock that follows tokio's (paused) clock, so lease deadlines move with the timers.
#[derive(Debug)]
struct TokioClock {
    base: DateTime<Utc>,
    start: Instant,
}

impl TokioClock {
    fn new() -> Arc<Self> {
        Arc::new(TokioClock {
            base: Utc::now(),
            start: Instant::now(),
        })
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        self.base + chrono::Duration::from_std(self.start.elapsed()).expect("a short test")
    }
}

/// The in-memory queue with call counters and injected outages.
struct Flaky {
    inner: Arc<MemoryBackend>,
    /// The next this many `lease` calls fail as if the backend were down.
    failing_leases: AtomicU32,
    /// The next this many `renew_many` calls fail.
    failing_renewals: AtomicU32,
    /// The next this many `renew_many` calls answer "not held" for every lease, without asking
    /// the backend: what a worker sees when a job's own outcome ends its lease just before.
    not_held_renewals: AtomicU32,
    lease_calls: AtomicU32,
    /// `lease_many` calls, each counted once (the jobs they hand out are not `lease` calls).
    batch_calls: AtomicU32,
    renew_calls: AtomicU32,
    renewed_leases: AtomicU32,
    progress_calls: AtomicU32,
}

impl Flaky {
    fn new(inner: Arc<MemoryBackend>) -> Arc<Self> {
        Arc::new(Flaky {
            inner,
            failing_leases: AtomicU32::new(0),
            failing_renewals: AtomicU32::new(0),
            not_held_renewals: AtomicU32::new(0),
            lease_calls: AtomicU32::new(0),
            batch_calls: AtomicU32::new(0),
            renew_calls: AtomicU32::new(0),
            renewed_leases: AtomicU32::new(0),
            progress_calls: AtomicU32::new(0),
        })
    }

    fn outage(counter: &AtomicU32) -> Result<()> {
        let failing =
            counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        match failing {
            Ok(_) => Err(Error::Unavailable("injected outage".into())),
            Err(_) => Ok(()),
        }
    }
}

/// Only the consumer capability is wrapped: everything else goes to the backend itself.
#[async_trait]
impl Consumer for Flaky {
    async fn lease(
        &self,
        queue: &QueueName,
        worker: &str,
        lease_for: Duration,
    ) -> Result<Option<Lease>> {
        self.lease_calls.fetch_add(1, Ordering::SeqCst);
        Self::outage(&self.failing_leases)?;
        self.inner.lease(queue, worker, lease_for).await
    }
    async fn lease_many(
        &self,
        queue: &QueueName,
        worker: &str,
        lease_for: Duration,
        max: usize,
    ) -> Result<Vec<Lease>> {
        self.lease_calls.fetch_add(1, Ordering::SeqCst);
        self.batch_calls.fetch_add(1, Ordering::SeqCst);
        Self::outage(&self.failing_leases)?;
        self.inner.lease_many(queue, worker, lease_for, max).await
    }
    async fn renew(&self, lease: &Lease, lease_for: Duration) -> Result<DateTime<Utc>> {
        self.inner.renew(lease, lease_for).await
    }
    async fn renew_many(&self, leases: &[Lease], lease_for: Duration) -> Result<Vec<Renewal>> {
        self.renew_calls.fetch_add(1, Ordering::SeqCst);
        Self::outage(&self.failing_renewals)?;
        if Self::outage(&self.not_held_renewals).is_err() {
            return Ok(vec![Renewal::Lost; leases.len()]);
        }
        self.renewed_leases
            .fetch_add(leases.len() as u32, Ordering::SeqCst);
        self.inner.renew_many(leases, lease_for).await
    }
    async fn progress(&self, lease: &Lease, progress: &Progress) -> Result<()> {
        self.progress_calls.fetch_add(1, Ordering::SeqCst);
        self.inner.progress(lease, progress).await
    }
    async fn complete(&self, lease: &Lease, output: Output) -> Result<Job> {
        self.inner.complete(lease, output).await
    }
    async fn fail(&self, lease: &Lease, reason: &str, kind: FailureKind) -> Result<Job> {
        self.inner.fail(lease, reason, kind).await
    }
    async fn release(&self, lease: &Lease) -> Result<()> {
        self.inner.release(lease).await
    }
    async fn wait_for_work(&self, queues: &[QueueName], timeout: Duration) {
        self.inner.wait_for_work(queues, timeout).await
    }
}

/// A renderer that answers from a script (and like [`NoopRenderer`] once the script is done);
/// a `None` entry panics.
struct Scripted(Mutex<VecDeque<Option<Result<()>>>>);

impl Scripted {
    fn new(answers: Vec<Option<Result<()>>>) -> Scripted {
        Scripted(Mutex::new(answers.into()))
    }
}

#[async_trait]
impl Renderer for Scripted {
    const KIND: &'static str = "scripted";
    type Params = serde_json::Value;
    type Output = Png;

    async fn render(&self, _: serde_json::Value, _: &Context) -> Result<Png> {
        let next = self.0.lock().unwrap().pop_front();
        match next {
            Some(Some(answer)) => answer.map(|()| Png(bytes::Bytes::from_static(b"png"))),
            Some(None) => panic!("scripted panic"),
            None => Ok(Png(bytes::Bytes::from_static(b"png"))),
        }
    }
}

/// The kind of the rig's jobs.
const KIND: &str = "test";

/// The rig's kind, served by `renderer`.
fn kind<R: Renderer>(renderer: R) -> Kinds {
    Kinds::new().with_named(KIND, renderer)
}

struct Rig {
    backend: Arc<MemoryBackend>,
    queue: Arc<Flaky>,
    lease: Duration,
}

impl Rig {
    /// A backend on `clock` with `jobs` jobs queued.
    async fn new(clock: Arc<dyn Clock>, lease: Duration, jobs: usize) -> Rig {
        let backend = Arc::new(MemoryBackend::with_clock(QueueSettings::default(), clock));
        let queue = Flaky::new(Arc::clone(&backend));
        let rig = Rig {
            backend,
            queue,
            lease,
        };
        rig.submit(jobs).await;
        rig
    }

    async fn submit(&self, n: usize) -> Vec<JobId> {
        let jobs: Vec<Job> = (0..n)
            .map(|i| {
                let params = Params::from_json(format!(r#"{{"n":{i}}}"#)).unwrap();
                Job::new(KIND, QueueName::default_queue(), params, 3, Utc::now())
            })
            .collect();
        self.backend.enqueue_all(&jobs).await.unwrap();
        jobs.iter().map(|j| j.id).collect()
    }

    fn worker(&self, kinds: Kinds, config: WorkerConfig) -> Worker {
        let processor = Processor::new(self.queue.clone(), kinds, self.lease);
        Worker::new(Arc::new(processor), self.backend.clone(), config)
    }

    async fn in_progress(&self) -> u64 {
        let stats = self.backend.stats().await.unwrap();
        holidapp_core::store::total_counts(&stats).in_progress
    }

    async fn jobs(&self, status: JobStatus) -> Vec<Job> {
        let query = holidapp_core::ListQuery {
            limit: 1000,
            ..holidapp_core::ListQuery::with_status(status)
        };
        self.backend.list(&query).await.unwrap().jobs
    }

    /// Whether every complete job completed on its first attempt.
    async fn all_complete_at_first_attempt(&self) -> bool {
        self.jobs(JobStatus::Complete)
            .await
            .iter()
            .all(|j| j.attempts == 1)
    }
}

fn config(concurrency: usize) -> WorkerConfig {
    WorkerConfig::new("10.1.2.3", concurrency)
}

/// Resolves once `condition` holds, checking every 10 ms of (paused) time; panics after `limit`.
async fn until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A shutdown future that resolves once `stats` satisfy `condition`.
fn when<F>(
    stats: &Arc<WorkerStats>,
    what: &'static str,
    condition: F,
) -> impl Future<Output = ()> + use<F>
where
    F: Fn(&holidapp_worker::StatsSnapshot) -> bool,
{
    let stats = Arc::clone(stats);
    async move {
        until(Duration::from_secs(300), what, || {
            condition(&stats.snapshot())
        })
        .await
    }
}

#[tokio::test(start_paused = true)]
async fn drains_the_queue_running_as_many_jobs_at_once_as_it_has_slots() {
    let rig = Rig::new(TokioClock::new(), Duration::from_secs(30), 20).await;
    let worker = rig.worker(kind(SleepRenderer(Duration::from_secs(1))), config(4));
    let done = when(&worker.stats, "20 jobs", |s| s.completed == 20);
    let started = Instant::now();

    let report = run(worker, done).await.unwrap();

    // 20 one-second jobs on 4 slots: 5 rounds, so 5 s and not 20.
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(5) && elapsed < Duration::from_millis(5500),
        "{elapsed:?}"
    );
    assert_eq!(report.ending, Ending::Drained);
    assert_eq!((report.stats.leased, report.stats.completed), (20, 20));
    assert_eq!(report.stats.busy, 0);
    let complete = rig.jobs(JobStatus::Complete).await;
    assert_eq!(complete.len(), 20);
    for job in complete {
        assert_eq!(job.worker.as_deref(), Some("10.1.2.3"));
        assert_eq!(job.attempts, 1);
    }
}

/// Jobs that take no time until `quick` of them have run, then `slow` each: a worker learns
/// that its jobs are short and fetches ahead, then holds a full buffer behind a long job.
struct QuickThenSlow {
    quick: AtomicU32,
    slow: Duration,
}

impl QuickThenSlow {
    fn new(quick: u32, slow: Duration) -> QuickThenSlow {
        QuickThenSlow {
            quick: AtomicU32::new(quick),
            slow,
        }
    }
}

#[async_trait]
impl Renderer for QuickThenSlow {
    const KIND: &'static str = "quick-then-slow";
    type Params = serde_json::Value;
    type Output = Png;

    async fn render(&self, _: serde_json::Value, _: &Context) -> Result<Png> {
        let quick = self
            .quick
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if !quick {
            tokio::time::sleep(self.slow).await;
        }
        Ok(Png(bytes::Bytes::from_static(b"png")))
    }
}

fn prefetching(concurrency: usize, prefetch: usize) -> WorkerConfig {
    WorkerConfig {
        prefetch,
        ..config(concurrency)
    }
}

#[tokio::test(start_paused = true)]
async fn short_jobs_are_leased_in_batches_ahead_of_the_slots() {
    let rig = Rig::new(TokioClock::new(), Duration::from_secs(30), 1000).await;
    let worker = rig.worker(kind(NoopRenderer), prefetching(1, 100));
    let done = when(&worker.stats, "1000 jobs", |s| s.completed == 1000);

    let report = run(worker, done).await.unwrap();

    assert_eq!((report.stats.leased, report.stats.completed), (1000, 1000));
    // One job alone first (nothing is known of the jobs yet), then batches of up to 101.
    let calls = rig.queue.batch_calls.load(Ordering::SeqCst);
    assert!(
        (10..=40).contains(&calls),
        "{calls} lease calls for 1000 jobs"
    );
    assert!(rig.all_complete_at_first_attempt().await);
}

#[tokio::test(start_paused = true)]
async fn long_jobs_are_not_fetched_ahead() {
    let rig = Rig::new(TokioClock::new(), Duration::from_secs(30), 12).await;
    let worker = rig.worker(
        kind(SleepRenderer(Duration::from_secs(1))),
        prefetching(2, 100),
    );
    let stats = Arc::clone(&worker.stats);
    let handle = tokio::spawn(run(worker, async {
        tokio::time::sleep(Duration::from_secs(3600)).await
    }));
    let mut most_held = 0;
    while stats.snapshot().completed < 12 {
        most_held = most_held.max(rig.in_progress().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    handle.abort();
    // One-second jobs are far past the prefetch horizon: the worker holds one per slot, and the
    // rest stay in the queue for other workers.
    assert_eq!(most_held, 2);
}

#[tokio::test(start_paused = true)]
async fn a_stopping_worker_gives_its_buffered_jobs_back_at_once() {
    let rig = Rig::new(TokioClock::new(), Duration::from_secs(30), 20).await;
    let worker = rig.worker(
        kind(QuickThenSlow::new(1, Duration::from_secs(60))),
        WorkerConfig {
            shutdown_grace: Duration::from_secs(50),
            ..prefetching(1, 8)
        },
    );
    let stats = Arc::clone(&worker.stats);
    // Stops once a slow job runs with eight more leased behind it.
    let shutdown = when(&stats, "a full buffer", |s| s.leased == 10 && s.busy == 1);
    let handle = tokio::spawn(run(worker, shutdown));
    until(Duration::from_secs(60), "a full buffer", || {
        let s = stats.snapshot();
        s.leased == 10 && s.busy == 1
    })
    .await;
    assert_eq!(rig.in_progress().await, 9);

    // A second later, well within the grace period, only the running job is still held.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rig.in_progress().await, 1);
    assert_eq!(stats.snapshot().released, 8);
    // Back in the queue with the attempt uncounted.
    let waiting = rig.jobs(JobStatus::Submitted).await;
    assert_eq!(waiting.len(), 18);
    assert!(waiting.iter().all(|j| j.attempts == 0));

    let report = handle.await.unwrap().unwrap();
    assert_eq!(report.ending, Ending::GraceExpired);
    assert_eq!((report.stats.completed, report.stats.released), (1, 9));
    assert_eq!(rig.jobs(JobStatus::Submitted).await.len(), 19);
}

#[tokio::test(start_paused = true)]
async fn heartbeats_keep_the_leases_of_buffered_jobs() {
    // Each slow job takes four leases' time, and the buffered ones wait behind them for longer
    // still: without renewals their leases would run out and recovery would requeue them.
    let rig = Rig::new(TokioClock::new(), Duration::from_secs(3), 6).await;
    let worker = rig.worker(
        kind(QuickThenSlow::new(1, Duration::from_secs(12))),
        prefetching(1, 8),
    );
    let done = when(&worker.stats, "6 jobs", |s| s.completed == 6);

    let report = run(worker, done).await.unwrap();

    assert_eq!(report.stats.completed, 6);
    assert_eq!(
        (report.stats.requeued, report.stats.lease_lost),
        (0, 0),
        "a buffered lease ran out"
    );
    assert!(rig.all_complete_at_first_attempt().await);
}

#[tokio::test(start_paused = true)]
async fn an_idle_worker_waits_for_work_instead_of_polling() {
    let rig = Rig::new(TokioClock::new(), Duration::from_secs(30), 0).await;
    let worker = rig.worker(kind(NoopRenderer), config(2));
    let stats = Arc::clone(&worker.stats);
    let handle = tokio::spawn(run(worker, async {
        tokio::time::sleep(Duration::from_secs(3600)).await
    }));

    tokio::time::sleep(Duration::from_secs(10)).await;
    // One lease call per idle wait (1 s), not a tight loop.
    let calls = rig.queue.lease_calls.load(Ordering::SeqCst);
    assert!((5..=12).contains(&calls), "{calls} lease calls in 10 s");

    // New work wakes it at once, without waiting for the idle wait to end.
    rig.submit(1).await;
    let submitted = Instant::now();
    until(Duration::from_secs(5), "the new job", || {
        stats.snapshot().completed == 1
    })
    .await;
    assert!(submitted.elapsed() < Duration::from_millis(100));
    handle.abort();
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_in_flight_jobs_finish_and_leases_nothing_new() {
    let rig = Rig::new(TokioClock::new(), Duration::from_secs(30), 4).await;
    let worker = rig.worker(
        kind(SleepRenderer(Duration::from_secs(3))),
        WorkerConfig {
            shutdown_grace: Duration::from_secs(10),
            ..config(2)
        },
    );
    let shutdown = when(&worker.stats, "two busy slots", |s| s.busy == 2);
    let started = Instant::now();

    let report = run(worker, shutdown).await.unwrap();

    assert_eq!(report.ending, Ending::Drained);
    assert!(started.elapsed() < Duration::from_millis(3100));
    assert_eq!((report.stats.completed, report.stats.released), (2, 0));
    assert_eq!(rig.jobs(JobStatus::Complete).await.len(), 2);
    let waiting = rig.jobs(JobStatus::Submitted).await;
    assert_eq!(waiting.len(), 2);
    assert!(
        waiting
            .iter()
            .all(|j| j.attempts == 0 && j.worker.is_none())
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_releases_jobs_that_outlast_the_grace_period() {
    let rig = Rig::new(TokioClock::new(), Duration::from_secs(30), 3).await;
    let worker = rig.worker(
        kind(SleepRenderer(Duration::from_secs(60))),
        WorkerConfig {
            shutdown_grace: Duration::from_secs(2),
            ..config(2)
        },
    );
    let shutdown = when(&worker.stats, "two busy slots", |s| s.busy == 2);
    let started = Instant::now();

    let report = run(worker, shutdown).await.unwrap();

    // Back in the queue after the 2 s grace, not after the 30 s lease.
    assert_eq!(report.ending, Ending::GraceExpired);
    assert!(
        started.elapsed() < Duration::from_millis(2100),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((report.stats.released, report.stats.completed), (2, 0));
    assert_eq!(rig.in_progress().await, 0);
    assert_eq!(rig.jobs(JobStatus::Submitted).await.len(), 3);

    // Another worker takes them at once.
    let next = rig.worker(kind(NoopRenderer), WorkerConfig::new("10.9.9.9", 2));
    let done = when(&next.stats, "3 jobs", |s| s.completed == 3);
    let started = Instant::now();
    run(next, done).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(100));
    let complete = rig.jobs(JobStatus::Complete).await;
    assert!(
        complete
            .iter()
            .all(|j| j.worker.as_deref() == Some("10.9.9.9"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_forced_stop_ends_the_grace_period_at_once() {
    let rig = Rig::new(TokioClock::new(), Duration::from_secs(30), 2).await;
    let worker = rig.worker(
        kind(SleepRenderer(Duration::from_secs(60))),
        WorkerConfig {
            shutdown_grace: Duration::from_secs(50),
            ..config(2)
        },
    );
    let stats = Arc::clone(&worker.stats);
    let shutdown = when(&stats, "two busy slots", |s| s.busy == 2);
    let force = async move {
        until(Duration::from_secs(60), "two busy slots", || {
            stats.snapshot().busy == 2
        })
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let started = Instant::now();

    let report = run_with_force(worker, shutdown, force).await.unwrap();

    assert_eq!(report.ending, Ending::Forced);
    assert!(started.elapsed() < Duration::from_millis(1100));
    assert_eq!(report.stats.released, 2);
    assert_eq!(rig.jobs(JobStatus::Submitted).await.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn heartbeats_renew_all_leases_in_one_call_and_keep_long_jobs() {
    // Jobs four times as long as the lease, with recovery scanning every second: without renewals
    // the leases would run out, the jobs be requeued and the results refused.
    let rig = Rig::new(TokioClock::new(), Duration::from_secs(3), 3).await;
    let worker = rig.worker(kind(SleepRenderer(Duration::from_secs(12))), config(3));
    let done = when(&worker.stats, "3 jobs", |s| s.completed == 3);

    let report = run(worker, done).await.unwrap();

    assert_eq!(report.stats.completed, 3);
    assert_eq!(report.stats.lease_lost, 0);
    assert_eq!(report.stats.requeued, 0);
    assert!(rig.all_complete_at_first_attempt().await);
    // One call per heartbeat (every second) for all three leases, not one timer per job.
    let calls = rig.queue.renew_calls.load(Ordering::SeqCst);
    let renewed = rig.queue.renewed_leases.load(Ordering::SeqCst);
    assert!((10..=13).contains(&calls), "{calls} renewal calls");
    assert_eq!(renewed, 3 * calls);
}

#[tokio::test(start_paused = true)]
async fn a_job_whose_lease_was_taken_over_is_abandoned() {
    // The backend's clock is moved by hand, apart from the timers.
    let clock = Arc::new(ManualClock::starting_now());
    let rig = Rig::new(clock.clone(), Duration::from_secs(3), 1).await;
    let worker = rig.worker(kind(SleepRenderer(Duration::from_secs(60))), config(1));
    let stats = Arc::clone(&worker.stats);
    let handle = tokio::spawn(run(worker, async {
        tokio::time::sleep(Duration::from_secs(3600)).await
    }));
    until(Duration::from_secs(5), "the job to start", || {
        stats.snapshot().busy == 1
    })
    .await;

    // The lease runs out (say the worker was paused) and another worker takes the job.
    clock.advance(Duration::from_secs(10));
    rig.backend.requeue_expired().await.unwrap();
    let thief = rig
        .backend
        .lease(
            &QueueName::default_queue(),
            "10.6.6.6",
            Duration::from_secs(30),
        )
        .await
        .unwrap()
        .expect("the expired job is leasable");

    // Within two heartbeats (every 1 s) the worker is sure the lease is gone; the job stops long
    // before its 60 s are up.
    let noticed = Instant::now();
    until(Duration::from_secs(5), "the lost lease", || {
        let s = stats.snapshot();
        s.lease_lost == 1 && s.busy == 0
    })
    .await;
    assert!(noticed.elapsed() <= Duration::from_secs(2));
    assert!(noticed.elapsed() > Duration::from_secs(1));
    assert_eq!(stats.snapshot().completed, 0);

    let job = rig
        .backend
        .complete(&thief, Output::new("image/png", "theirs"))
        .await
        .unwrap();
    assert_eq!(job.worker.as_deref(), Some("10.6.6.6"));
    assert_eq!(job.status, JobStatus::Complete);
    handle.abort();
}

/// A renderer that waits for its job's cancellation, notes that it heard of it, and answers as
/// if it had finished.
struct UntilCancelled(Arc<std::sync::atomic::AtomicBool>);

#[async_trait]
impl Renderer for UntilCancelled {
    const KIND: &'static str = "until-cancelled";
    type Params = serde_json::Value;
    type Output = Png;

    async fn render(&self, _: serde_json::Value, ctx: &Context) -> Result<Png> {
        ctx.progress(10.0, "waiting to be cancelled");
        ctx.cancelled().await;
        self.0.store(ctx.is_cancelled(), Ordering::SeqCst);
        Ok(Png(bytes::Bytes::from_static(b"too late")))
    }
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_job_is_told_stopped_within_a_heartbeat_and_stores_nothing() {
    let rig = Rig::new(TokioClock::new(), Duration::from_secs(3), 2).await;
    let heard = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let worker = rig.worker(kind(UntilCancelled(Arc::clone(&heard))), config(1));
    let stats = Arc::clone(&worker.stats);
    let handle = tokio::spawn(run(worker, async {
        tokio::time::sleep(Duration::from_secs(3600)).await
    }));
    until(Duration::from_secs(5), "the first job to start", || {
        stats.snapshot().busy == 1
    })
    .await;
    let running = rig.jobs(JobStatus::InProgress).await.remove(0);
    until(Duration::from_secs(2), "its progress", || {
        let job = futures::executor::block_on(rig.backend.get(running.id));
        job.unwrap().unwrap().progress.is_some()
    })
    .await;

    let cancelled_at = Instant::now();
    rig.backend.cancel(running.id).await.unwrap();
    // Heartbeats every 1 s: the render hears of it within one, and its slot goes to the next job.
    until(Duration::from_secs(2), "the cancelled job to stop", || {
        stats.snapshot().cancelled == 1
    })
    .await;
    assert!(cancelled_at.elapsed() <= Duration::from_secs(1));
    assert!(heard.load(Ordering::SeqCst), "the render was told");
    until(Duration::from_secs(2), "the next job to start", || {
        let s = stats.snapshot();
        s.busy == 1 && s.leased == 2
    })
    .await;
    let job = rig.backend.get(running.id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
    assert_eq!(
        job.progress,
        Some(Progress::new(10.0, "waiting to be cancelled"))
    );
    assert_eq!(
        rig.backend.result(running.id).await.unwrap(),
        Some(holidapp_core::ResultState::Cancelled)
    );
    let s = stats.snapshot();
    assert_eq!((s.completed, s.lease_lost), (0, 0));
    handle.abort();
}

#[tokio::test(start_paused = true)]
async fn progress_reports_are_written_at_most_once_per_interval() {
    /// Reports 1,000 times over 4 s.
    struct Chatty;
    #[async_trait]
    impl Renderer for Chatty {
        const KIND: &'static str = "chatty";
        type Params = serde_json::Value;
        type Output = Png;
        async fn render(&self, _: serde_json::Value, ctx: &Context) -> Result<Png> {
            for i in 0..1000 {
                ctx.progress(f64::from(i) / 10.0, format!("step {i}"));
                tokio::time::sleep(Duration::from_millis(4)).await;
            }
            Ok(Png(bytes::Bytes::from_static(b"png")))
        }
    }
    let rig = Rig::new(TokioClock::new(), Duration::from_secs(30), 1).await;
    let worker = rig.worker(kind(Chatty), config(1));
    let done = when(&worker.stats, "the job", |s| s.completed == 1);
    run(worker, done).await.unwrap();
    // Writes at 0 s, 1 s, 2 s and 3 s: the first report, then the latest one each second.
    assert_eq!(rig.queue.progress_calls.load(Ordering::SeqCst), 4);
    let job = rig.jobs(JobStatus::Complete).await.remove(0);
    assert_eq!(job.progress, Some(Progress::new(75.0, "step 750")));
}

#[tokio::test(start_paused = true)]
async fn one_not_held_answer_does_not_abandon_a_job() {
    let rig = Rig::new(TokioClock::new(), Duration::from_secs(3), 1).await;
    rig.queue.not_held_renewals.store(1, Ordering::SeqCst);
    let worker = rig.worker(kind(SleepRenderer(Duration::from_secs(5))), config(1));
    let done = when(&worker.stats, "the job", |s| s.completed == 1);

    let report = run(worker, done).await.unwrap();

    assert_eq!((report.stats.completed, report.stats.lease_lost), (1, 0));
    assert_eq!(rig.jobs(JobStatus::Complete).await[0].attempts, 1);
}

#[tokio::test(start_paused = true)]
async fn a_dead_workers_job_runs_again_within_lease_plus_recovery_interval() {
    let rig = Rig::new(TokioClock::new(), Duration::from_secs(3), 1).await;
    // A worker takes the job and dies without a word.
    let dead = rig
        .backend
        .lease(&QueueName::default_queue(), "10.0.0.1", rig.lease)
        .await
        .unwrap()
        .unwrap();
    let worker = rig.worker(kind(NoopRenderer), config(1));
    let done = when(&worker.stats, "the recovered job", |s| s.completed == 1);
    let started = Instant::now();

    let report = run(worker, done).await.unwrap();

    // Lease 3 s + recovery interval min(5 s, 3 s / 3) = 1 s, jittered by up to 20 %.
    let elapsed = started.elapsed();
    assert!(elapsed <= Duration::from_millis(4300), "{elapsed:?}");
    assert_eq!(report.stats.requeued, 1);
    let job = rig.backend.get(dead.id()).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!(job.worker.as_deref(), Some("10.1.2.3"));
    assert_eq!(job.attempts, 2);
}

#[tokio::test(start_paused = true)]
async fn backend_outages_are_retried_with_backoff_never_in_a_tight_loop() {
    let rig = Rig::new(TokioClock::new(), Duration::from_secs(3), 2).await;
    rig.queue.failing_leases.store(8, Ordering::SeqCst);
    rig.queue.failing_renewals.store(2, Ordering::SeqCst);
    let worker = rig.worker(kind(SleepRenderer(Duration::from_secs(6))), config(2));
    let done = when(&worker.stats, "2 jobs", |s| s.completed == 2);
    let started = Instant::now();

    let report = run(worker, done).await.unwrap();

    // Eight failed leases wait at least half of 0.1, 0.2, ... 5, 5 s: over 8 s in all.
    assert!(started.elapsed() >= Duration::from_secs(8) + Duration::from_secs(6));
    // Two failed renewals were retried within the lease: nothing was lost.
    assert_eq!(report.stats.completed, 2);
    assert_eq!(report.stats.lease_lost, 0);
    assert_eq!(report.stats.backend_errors, 10);
    let leases = rig.queue.lease_calls.load(Ordering::SeqCst);
    assert!(leases <= 8 + 2 + 8, "{leases} lease calls");
}

#[tokio::test(start_paused = true)]
async fn failures_are_counted_as_core_decides_them() {
    let rig = Rig::new(TokioClock::new(), Duration::from_secs(30), 2).await;
    let renderer = Scripted::new(vec![
        Some(Err(Error::InvalidParams("start is not a year".into()))),
        Some(Err(Error::Unavailable("data source hiccup".into()))),
    ]);
    let worker = rig.worker(kind(renderer), config(1));
    let done = when(&worker.stats, "both jobs finished", |s| {
        s.completed == 1 && s.failed == 1
    });

    let report = run(worker, done).await.unwrap();

    // The first job failed for good at once; the second was retried after core's backoff.
    assert_eq!(report.stats.retried, 1);
    let failed = rig.jobs(JobStatus::Failed).await;
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0]
            .error
            .as_deref()
            .unwrap()
            .contains("start is not a year")
    );
    assert_eq!(failed[0].attempts, 1);
    let complete = rig.jobs(JobStatus::Complete).await;
    assert_eq!(complete[0].attempts, 2);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_job_is_counted_and_its_lease_left_to_expire() {
    let rig = Rig::new(TokioClock::new(), Duration::from_secs(3), 1).await;
    let worker = rig.worker(kind(Scripted::new(vec![None])), config(1));
    let done = when(&worker.stats, "the retried job", |s| s.completed == 1);

    let report = run(worker, done).await.unwrap();

    assert_eq!((report.stats.crashed, report.stats.requeued), (1, 1));
    let complete = rig.jobs(JobStatus::Complete).await;
    assert_eq!(complete[0].attempts, 2);
}

#[tokio::test]
async fn a_configuration_that_cannot_run_is_refused() {
    let rig = Rig::new(TokioClock::new(), Duration::from_secs(30), 0).await;
    let worker = rig.worker(kind(NoopRenderer), config(0));
    let err = run(worker, async {}).await.unwrap_err();
    assert!(err.to_string().contains("concurrency"), "{err}");
}
