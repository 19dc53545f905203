//! How to test a job kind of your own: the `fetch` kind, run against the in-memory backend with a
//! manual clock.
//!
//! Each test drives the queue the way a worker would, one step at a time:
//!
//! - `Processor::process_one` leases the next ready job, runs it with its kind's renderer and
//!   stores the outcome, or answers `Outcome::Idle` when nothing is ready. No worker loop, no
//!   background task: the test decides when work happens.
//! - `ManualClock::advance` moves time for the backend (lease deadlines, retry delays,
//!   retention), so a test of a 30 s lease or an hour of retention runs in microseconds.
//! - `Maintenance::requeue_expired` and `Maintenance::purge_expired` are what every worker runs on
//!   a timer; a test calls them when it wants them to have run.
//!
//! The in-memory backend keeps exactly the rules of the Redis one (both pass the same contract
//! suite), so what these tests show holds in production.

use std::sync::Arc;
use std::time::Duration;

use holidapp_core::store::total_counts;
use holidapp_core::{
    Backends, Error, JobOutcome, JobStatus, Jobs, Json, ManualClock, MemoryBackend, Outcome,
    Output, Processed, Processor, RequeueReport, ResultState, StatusCounts, Submit,
};

use example_testing_jobs::{FakeSource, Fetch, FetchParams, Fetched, LEASE, SETTINGS, kinds};

const URL: &str = "https://example.com/";
const PAGE: &str = "Example Domain\n<p>An example.</p>\n";

/// Everything a test needs, wired as the program wires it, but on a clock the test moves.
struct Rig {
    clock: Arc<ManualClock>,
    source: Arc<FakeSource>,
    backends: Backends,
    jobs: Jobs,
    processor: Processor,
}

fn rig() -> Rig {
    // One clock for the backend and for the job use cases, so that they agree on the time.
    let clock = Arc::new(ManualClock::starting_now());
    let backends = Backends::single(Arc::new(MemoryBackend::with_clock(SETTINGS, clock.clone())));
    let source = Arc::new(FakeSource::default());
    source.add_page(URL, PAGE);
    let kinds = kinds(source.clone());
    let jobs = Jobs::new(&backends, kinds.clone()).with_clock(clock.clone());
    let processor = Processor::new(backends.consumer.clone(), kinds, LEASE);
    Rig {
        clock,
        source,
        backends,
        jobs,
        processor,
    }
}

fn fetch(url: &str) -> FetchParams {
    FetchParams {
        url: url.to_owned(),
    }
}

/// What the fake source's page gives.
fn expected_page() -> Fetched {
    Fetched {
        url: URL.to_owned(),
        bytes: PAGE.len(),
        title: "Example Domain".to_owned(),
    }
}

/// How many jobs the store counts as complete, over every queue.
async fn complete_jobs(rig: &Rig) -> u64 {
    total_counts(&rig.backends.store.stats().await.unwrap()).complete
}

/// The handling of the job `process_one` took; fails the test when it found nothing to do.
fn processed(outcome: Outcome) -> Processed {
    match outcome {
        Outcome::Processed(done) => done,
        Outcome::Idle => panic!("expected a job to be run, but nothing was ready"),
    }
}

#[tokio::test]
async fn a_job_runs_to_completion_in_one_step() {
    let rig = rig();
    let job = rig.jobs.submit_as::<Fetch>(&fetch(URL)).await.unwrap();
    assert_eq!(job.status, JobStatus::Submitted);

    let done = processed(rig.processor.process_one("worker-1").await.unwrap());
    assert_eq!(
        (done.id, done.attempt, done.result),
        (job.id, 1, JobOutcome::Complete)
    );

    // The result, read back as the kind's own type.
    let result = rig.jobs.result_of::<Fetch>(job.id).await.unwrap();
    assert_eq!(result, Some(ResultState::Ready(Json(expected_page()))));
    let stored = rig.jobs.get(job.id).await.unwrap().unwrap();
    assert_eq!(stored.status, JobStatus::Complete);
    assert_eq!(stored.worker.as_deref(), Some("worker-1"));
    assert_eq!(stored.result_type.as_deref(), Some("application/json"));

    // Nothing is left to do.
    assert_eq!(
        rig.processor.process_one("worker-1").await.unwrap(),
        Outcome::Idle
    );
}

#[tokio::test]
async fn parameters_the_kind_refuses_are_never_stored() {
    let rig = rig();
    let refused = rig
        .jobs
        .submit_as::<Fetch>(&fetch("ftp://example.com/"))
        .await;
    assert!(
        matches!(refused, Err(Error::InvalidParams(_))),
        "{refused:?}"
    );

    let counts = total_counts(&rig.backends.store.stats().await.unwrap());
    assert_eq!(counts, StatusCounts::default(), "no job in any status");
    assert_eq!(
        rig.processor.process_one("worker-1").await.unwrap(),
        Outcome::Idle
    );
    assert_eq!(rig.source.calls(), 0, "the renderer never ran");
}

#[tokio::test]
async fn a_transient_failure_is_retried_after_its_backoff() {
    let rig = rig();
    let job = rig.jobs.submit_as::<Fetch>(&fetch(URL)).await.unwrap();

    // The source is unreachable for one call: the render answers `Error::Transient`, a
    // transient error, so the job goes back to its queue instead of failing.
    rig.source.fail_next(1);
    let first = processed(rig.processor.process_one("worker-1").await.unwrap());
    match &first.result {
        JobOutcome::Retrying { reason } => assert!(reason.contains("connection reset"), "{reason}"),
        other => panic!("expected a retry, got {other:?}"),
    }
    let waiting = rig.jobs.get(job.id).await.unwrap().unwrap();
    assert_eq!(
        (waiting.status, waiting.attempts),
        (JobStatus::Submitted, 1)
    );
    assert!(waiting.error.unwrap().contains("connection reset"));

    // The first retry waits `base_delay` (10 s) with jitter: a random point between 5 and 10 s.
    // Before 5 s the job is not ready, whatever the jitter drew.
    assert_eq!(
        rig.processor.process_one("worker-1").await.unwrap(),
        Outcome::Idle
    );
    rig.clock.advance(Duration::from_secs(4));
    assert_eq!(
        rig.processor.process_one("worker-1").await.unwrap(),
        Outcome::Idle
    );

    // At 10 s it is ready, whatever the jitter drew, and the second attempt succeeds.
    rig.clock.advance(Duration::from_secs(6));
    let second = processed(rig.processor.process_one("worker-1").await.unwrap());
    assert_eq!((second.attempt, second.result), (2, JobOutcome::Complete));
    assert_eq!(
        rig.jobs.result_of::<Fetch>(job.id).await.unwrap(),
        Some(ResultState::Ready(Json(expected_page())))
    );
    assert_eq!(rig.source.calls(), 2);
}

#[tokio::test]
async fn a_job_that_keeps_failing_fails_at_its_attempt_limit() {
    let rig = rig();
    // This job allows two attempts instead of the settings' three.
    let request = Submit::of::<Fetch>(&fetch(URL))
        .unwrap()
        .with_max_attempts(2);
    let job = rig.jobs.submit(request).await.unwrap();
    assert_eq!(job.max_attempts, 2);

    rig.source.fail_next(u32::MAX);
    let first = processed(rig.processor.process_one("worker-1").await.unwrap());
    assert!(
        matches!(first.result, JobOutcome::Retrying { .. }),
        "{first:?}"
    );

    rig.clock.advance(SETTINGS.retry.base_delay);
    let second = processed(rig.processor.process_one("worker-1").await.unwrap());
    assert_eq!(second.attempt, 2);
    match &second.result {
        JobOutcome::Failed { reason } => assert!(reason.contains("connection reset"), "{reason}"),
        other => panic!("expected the job to fail for good, got {other:?}"),
    }

    // The job is failed with the last reason, and is never tried again.
    let failed = rig.jobs.get(job.id).await.unwrap().unwrap();
    assert_eq!((failed.status, failed.attempts), (JobStatus::Failed, 2));
    match rig.jobs.result_of::<Fetch>(job.id).await.unwrap() {
        Some(ResultState::Failed(reason)) => assert!(reason.contains("connection reset")),
        other => panic!("expected a failed result, got {other:?}"),
    }
    rig.clock.advance(SETTINGS.retry.max_delay);
    assert_eq!(
        rig.processor.process_one("worker-1").await.unwrap(),
        Outcome::Idle
    );
    assert_eq!(rig.source.calls(), 2);
}

#[tokio::test]
async fn a_permanent_failure_fails_the_job_at_once() {
    let rig = rig();
    // The source has no such page: the render answers `Error::Render`, which retrying cannot fix.
    let job = rig
        .jobs
        .submit_as::<Fetch>(&fetch("https://example.com/missing"))
        .await
        .unwrap();

    let done = processed(rig.processor.process_one("worker-1").await.unwrap());
    match &done.result {
        JobOutcome::Failed { reason } => assert!(reason.contains("no such page"), "{reason}"),
        other => panic!("expected the job to fail at once, got {other:?}"),
    }
    let failed = rig.jobs.get(job.id).await.unwrap().unwrap();
    assert_eq!((failed.status, failed.attempts), (JobStatus::Failed, 1));
}

#[tokio::test]
async fn the_job_of_a_worker_that_died_runs_again_once_its_lease_expires() {
    let rig = rig();
    let job = rig.jobs.submit_as::<Fetch>(&fetch(URL)).await.unwrap();

    // Worker A takes the job and dies: it never completes, fails, renews or releases it.
    // (`lease` is the first half of `process_one`; `execute` would be the second.)
    let stale = rig.processor.lease("worker-a").await.unwrap().unwrap();
    assert_eq!(stale.job.id, job.id);

    // While its lease runs, nobody else gets the job, and recovery leaves it alone.
    assert_eq!(
        rig.processor.process_one("worker-b").await.unwrap(),
        Outcome::Idle
    );
    assert_eq!(
        rig.backends.maintenance.requeue_expired().await.unwrap(),
        RequeueReport::default()
    );

    // Once the lease is past its deadline, recovery sends the job back to its queue. The attempt
    // counts: a job whose worker dies on every attempt fails once its attempts run out.
    rig.clock.advance(LEASE + Duration::from_secs(1));
    assert_eq!(
        rig.backends.maintenance.requeue_expired().await.unwrap(),
        RequeueReport {
            requeued: 1,
            failed: 0
        }
    );
    let waiting = rig.jobs.get(job.id).await.unwrap().unwrap();
    assert_eq!(
        (waiting.status, waiting.attempts),
        (JobStatus::Submitted, 1)
    );
    assert_eq!(
        waiting.error.as_deref(),
        Some("lease expired on attempt 1 of 3")
    );

    // Should worker A wake up, its lease is refused by every call, and changes nothing.
    let consumer = &rig.backends.consumer;
    assert!(matches!(
        consumer.renew(&stale, LEASE).await,
        Err(Error::LeaseLost)
    ));
    let late_result = Output::new("application/json", r#"{"late":true}"#);
    assert!(matches!(
        consumer.complete(&stale, late_result).await,
        Err(Error::LeaseLost)
    ));
    assert_eq!(
        rig.jobs.get(job.id).await.unwrap().unwrap().status,
        JobStatus::Submitted
    );

    // Worker B runs it: the second attempt, with the real result.
    let done = processed(rig.processor.process_one("worker-b").await.unwrap());
    assert_eq!((done.attempt, done.result), (2, JobOutcome::Complete));
    let finished = rig.jobs.get(job.id).await.unwrap().unwrap();
    assert_eq!(finished.worker.as_deref(), Some("worker-b"));
    assert_eq!(
        rig.jobs.result_of::<Fetch>(job.id).await.unwrap(),
        Some(ResultState::Ready(Json(expected_page())))
    );
}

#[tokio::test]
async fn finished_jobs_expire_after_their_retention() {
    let rig = rig();
    let job = rig.jobs.submit_as::<Fetch>(&fetch(URL)).await.unwrap();
    processed(rig.processor.process_one("worker-1").await.unwrap());

    // Within `result_ttl` (an hour here) the result stays readable.
    rig.clock
        .advance(SETTINGS.result_ttl - Duration::from_secs(1));
    assert!(matches!(
        rig.jobs.result_of::<Fetch>(job.id).await.unwrap(),
        Some(ResultState::Ready(_))
    ));

    // Past it, the job is gone from every read at once...
    rig.clock.advance(Duration::from_secs(2));
    assert_eq!(rig.jobs.get(job.id).await.unwrap(), None);
    assert_eq!(rig.jobs.result_of::<Fetch>(job.id).await.unwrap(), None);

    // ...but it still takes memory (and counts in the stats) until it is purged, which every
    // worker does on a timer.
    assert_eq!(complete_jobs(&rig).await, 1);
    assert_eq!(rig.backends.maintenance.purge_expired().await.unwrap(), 1);
    assert_eq!(complete_jobs(&rig).await, 0);
    assert_eq!(rig.backends.maintenance.purge_expired().await.unwrap(), 0);
}
