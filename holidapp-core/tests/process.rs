//! The processing step, driven one job at a time against the in-memory backend: a kind's render
//! with its context, outcomes and retries, unknown kinds, lost leases, and the worker's queues.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use holidapp_core::contract::settings;
use holidapp_core::{
    Backends, Clock, Consumer, Context, Error, FailureKind, Job, JobOutcome, JobStatus, JobStore,
    Jobs, Json, Kinds, Lease, Maintenance, ManualClock, MemoryBackend, Outcome, Output, Processor,
    Producer, Progress, QueueName, Renderer, Result, ResultState, Submit, async_trait,
};
use serde::{Deserialize, Serialize};

/// The parameters of the test kind.
#[derive(Serialize, Deserialize)]
struct Echo {
    text: String,
}

/// What the test kind answers: its text and what its context said.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Echoed {
    text: String,
    attempt: u32,
    queue: String,
}

/// A kind that answers from a script, then echoes its parameters and context.
#[derive(Default)]
struct Scripted {
    answers: Mutex<VecDeque<Result<()>>>,
    runs: Mutex<u32>,
}

#[async_trait]
impl Renderer for Scripted {
    const KIND: &'static str = "echo";
    type Params = Echo;
    type Output = Json<Echoed>;

    async fn render(&self, params: Echo, ctx: &Context) -> Result<Json<Echoed>> {
        *self.runs.lock().unwrap() += 1;
        if let Some(answer) = self.answers.lock().unwrap().pop_front() {
            answer?;
        }
        Ok(Json(Echoed {
            text: params.text,
            attempt: ctx.attempt(),
            queue: ctx.queue().to_string(),
        }))
    }
}

/// The registered renderer: forwards to a [`Scripted`] the test keeps, to count its runs.
struct Shared(Arc<Scripted>);

#[async_trait]
impl Renderer for Shared {
    const KIND: &'static str = "echo";
    type Params = Echo;
    type Output = Json<Echoed>;

    async fn render(&self, params: Echo, ctx: &Context) -> Result<Json<Echoed>> {
        self.0.render(params, ctx).await
    }
}

struct Rig {
    backend: Arc<MemoryBackend>,
    clock: Arc<ManualClock>,
    renderer: Arc<Scripted>,
    jobs: Jobs,
    processor: Processor,
}

fn rig(answers: Vec<Result<()>>) -> Rig {
    let clock = Arc::new(ManualClock::starting_now());
    let backend = Arc::new(MemoryBackend::with_clock(settings(), clock.clone()));
    let renderer = Arc::new(Scripted {
        answers: Mutex::new(answers.into()),
        runs: Mutex::default(),
    });
    let kinds = Kinds::new().with(Shared(Arc::clone(&renderer)));
    let backends = Backends::single(backend.clone());
    let jobs = Jobs::new(&backends, kinds.clone()).with_clock(clock.clone());
    let processor = Processor::new(backends.consumer, kinds, Duration::from_secs(30));
    Rig {
        backend,
        clock,
        renderer,
        jobs,
        processor,
    }
}

async fn submit(rig: &Rig, text: &str) -> Job {
    rig.jobs
        .submit(Submit::new("echo", serde_json::json!({ "text": text })))
        .await
        .unwrap()
}

fn processed(outcome: Outcome) -> holidapp_core::Processed {
    match outcome {
        Outcome::Processed(p) => p,
        Outcome::Idle => panic!("expected a job to be processed"),
    }
}

#[tokio::test]
async fn an_empty_queue_is_idle() {
    let rig = rig(vec![]);
    assert_eq!(rig.processor.process_one("w").await.unwrap(), Outcome::Idle);
}

#[tokio::test]
async fn a_job_runs_to_a_stored_typed_result() {
    let rig = rig(vec![]);
    let job = submit(&rig, "hi").await;
    let p = processed(rig.processor.process_one("10.1.2.3").await.unwrap());
    assert_eq!(
        (p.id, p.attempt, p.result),
        (job.id, 1, JobOutcome::Complete)
    );
    let stored = rig.backend.get(job.id).await.unwrap().unwrap();
    assert_eq!(stored.status, JobStatus::Complete);
    assert_eq!(stored.worker.as_deref(), Some("10.1.2.3"));
    assert_eq!(stored.result_type.as_deref(), Some("application/json"));
    let result = rig.jobs.result_of::<Scripted>(job.id).await.unwrap();
    assert_eq!(
        result,
        Some(ResultState::Ready(Json(Echoed {
            text: "hi".into(),
            attempt: 1,
            queue: "default".into(),
        })))
    );
}

#[tokio::test]
async fn a_transient_error_retries_and_then_succeeds() {
    let rig = rig(vec![Err(Error::Unavailable("connection reset".into()))]);
    let job = submit(&rig, "x").await;
    let p = processed(rig.processor.process_one("w").await.unwrap());
    assert!(
        matches!(&p.result, JobOutcome::Retrying { reason } if reason.contains("connection reset"))
    );
    assert_eq!(
        rig.backend.get(job.id).await.unwrap().unwrap().status,
        JobStatus::Submitted
    );
    assert_eq!(
        rig.processor.process_one("w").await.unwrap(),
        Outcome::Idle,
        "waits for its backoff"
    );
    rig.clock.advance(Duration::from_secs(2));
    let p = processed(rig.processor.process_one("w").await.unwrap());
    assert_eq!((p.attempt, p.result), (2, JobOutcome::Complete));
    match rig.jobs.result_of::<Scripted>(job.id).await.unwrap() {
        Some(ResultState::Ready(Json(echoed))) => assert_eq!(echoed.attempt, 2),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_permanent_error_fails_at_once_with_the_reason() {
    let rig = rig(vec![Err(Error::Render("nothing to draw".into()))]);
    let job = submit(&rig, "x").await;
    let p = processed(rig.processor.process_one("w").await.unwrap());
    assert!(
        matches!(&p.result, JobOutcome::Failed { reason } if reason.contains("nothing to draw"))
    );
    let stored = rig.backend.get(job.id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.attempts), (JobStatus::Failed, 1));
    assert!(stored.error.unwrap().contains("nothing to draw"));
    assert!(matches!(
        rig.jobs.result(job.id).await.unwrap(),
        Some(ResultState::Failed(reason)) if reason.contains("nothing to draw")
    ));
}

#[tokio::test]
async fn a_job_of_a_kind_the_worker_does_not_run_is_retried_not_lost() {
    let rig = rig(vec![]);
    // Stored by a producer that knows a kind this worker does not.
    let job = Job::new(
        "thumbnail",
        QueueName::default_queue(),
        holidapp_core::Params::from_json("{}").unwrap(),
        3,
        rig.clock.now(),
    );
    rig.backend.enqueue(&job).await.unwrap();
    let p = processed(rig.processor.process_one("w").await.unwrap());
    match &p.result {
        JobOutcome::Retrying { reason } => {
            assert!(
                reason.contains("'thumbnail'") && reason.contains("echo"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(*rig.renderer.runs.lock().unwrap(), 0);
}

#[tokio::test]
async fn a_lease_lost_while_rendering_drops_the_result() {
    let rig = rig(vec![]);
    let job = submit(&rig, "x").await;
    let stale = rig.processor.lease("slow").await.unwrap().unwrap();
    // The slow worker overruns its lease; another worker takes the job over.
    rig.clock.advance(Duration::from_secs(31));
    rig.backend.requeue_expired().await.unwrap();
    let current = rig.processor.lease("fast").await.unwrap().unwrap();
    let p = rig.processor.execute(&stale).await.unwrap();
    assert_eq!(p.result, JobOutcome::LeaseLost);
    let stored = rig.backend.get(job.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.worker.as_deref()),
        (JobStatus::InProgress, Some("fast"))
    );
    assert_eq!(
        rig.processor.execute(&current).await.unwrap().result,
        JobOutcome::Complete
    );
}

#[tokio::test]
async fn the_first_queue_is_preferred_and_the_later_ones_are_not_starved() {
    let rig = rig(vec![]);
    let (urgent, bulk) = (
        QueueName::new("urgent").unwrap(),
        QueueName::new("bulk").unwrap(),
    );
    let processor = Processor::new(
        rig.backend.clone(),
        rig.processor.kinds().clone(),
        Duration::from_secs(30),
    )
    .with_queues([urgent.clone(), bulk.clone()]);
    for queue in [&urgent, &bulk] {
        for _ in 0..8 {
            let request =
                Submit::new("echo", serde_json::json!({"text": "x"})).in_queue(queue.clone());
            rig.jobs.submit(request).await.unwrap();
        }
    }
    let mut from_urgent = 0;
    for _ in 0..8 {
        let lease = processor.lease("w").await.unwrap().unwrap();
        if lease.job.queue == urgent {
            from_urgent += 1;
        }
    }
    // Three leases in four start with the first queue; the fourth goes to the later one.
    assert_eq!(from_urgent, 6);
    // With the first queue empty, the later one gets every lease.
    for _ in 0..8 {
        processor.lease("w").await.unwrap().unwrap();
    }
    assert!(processor.lease("w").await.unwrap().is_none());
}

/// A consumer whose `lease_many` fails for one queue: everything else goes to the backend.
struct FailsOn {
    inner: Arc<MemoryBackend>,
    queue: QueueName,
}

#[async_trait]
impl Consumer for FailsOn {
    async fn lease(
        &self,
        queue: &QueueName,
        worker: &str,
        for_: Duration,
    ) -> Result<Option<Lease>> {
        self.inner.lease(queue, worker, for_).await
    }
    async fn lease_many(
        &self,
        queue: &QueueName,
        worker: &str,
        for_: Duration,
        max: usize,
    ) -> Result<Vec<Lease>> {
        if *queue == self.queue {
            return Err(Error::Unavailable("injected outage".into()));
        }
        self.inner.lease_many(queue, worker, for_, max).await
    }
    async fn renew(&self, lease: &Lease, for_: Duration) -> Result<DateTime<Utc>> {
        self.inner.renew(lease, for_).await
    }
    async fn progress(&self, lease: &Lease, progress: &Progress) -> Result<()> {
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

/// `Processor::lease_many` takes what the first queue has, then fills up from the next; when a
/// later queue's call fails, the jobs already leased are answered, not lost with the error.
#[tokio::test]
async fn lease_many_fills_up_from_the_queues_in_turn_and_keeps_what_it_leased() {
    let rig = rig(vec![]);
    let (urgent, bulk) = (
        QueueName::new("urgent").unwrap(),
        QueueName::new("bulk").unwrap(),
    );
    for (queue, n) in [(&urgent, 3), (&bulk, 5)] {
        for _ in 0..n {
            let request =
                Submit::new("echo", serde_json::json!({"text": "x"})).in_queue(queue.clone());
            rig.jobs.submit(request).await.unwrap();
        }
    }
    let processor = |consumer: Arc<dyn Consumer>| {
        Processor::new(
            consumer,
            rig.processor.kinds().clone(),
            Duration::from_secs(30),
        )
        .with_queues([urgent.clone(), bulk.clone()])
    };
    let failing = processor(Arc::new(FailsOn {
        inner: rig.backend.clone(),
        queue: bulk.clone(),
    }));
    let leases = failing.lease_many("w", 6).await.unwrap();
    assert_eq!(
        leases.len(),
        3,
        "urgent's jobs are answered despite bulk's failure"
    );
    assert!(leases.iter().all(|l| l.job.queue == urgent));
    assert!(
        failing.lease_many("w", 6).await.is_err(),
        "with nothing leased, the failure is answered"
    );

    let leases = processor(rig.backend.clone())
        .lease_many("w", 4)
        .await
        .unwrap();
    assert_eq!(leases.len(), 4);
    assert!(leases.iter().all(|l| l.job.queue == bulk));
}

/// A kind whose renders never end.
struct Hangs;

#[async_trait]
impl Renderer for Hangs {
    const KIND: &'static str = "hangs";
    type Params = serde_json::Value;
    type Output = String;

    async fn render(&self, _params: serde_json::Value, _ctx: &Context) -> Result<String> {
        std::future::pending().await
    }
}

/// An attempt that runs past its time limit (the processor's, or the job's own when shorter)
/// is stopped and fails as transient: the job waits for a retry, and the worker's slot is free.
#[tokio::test(start_paused = true)]
async fn an_attempt_past_its_time_limit_fails_as_transient() {
    let clock = Arc::new(ManualClock::starting_now());
    let backend = Arc::new(MemoryBackend::with_clock(settings(), clock.clone()));
    let backends = Backends::single(backend.clone());
    let kinds = Kinds::new().with(Hangs);
    let jobs = Jobs::new(&backends, kinds.clone()).with_clock(clock.clone());
    let processor = Processor::new(backend.clone(), kinds, Duration::from_secs(600))
        .with_timeout(Duration::from_secs(60));

    let plain = jobs
        .submit(Submit::new("hangs", serde_json::json!({})))
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let Outcome::Processed(done) = processor.process_one("w").await.unwrap() else {
        panic!("a job was ready");
    };
    assert_eq!(started.elapsed(), Duration::from_secs(60));
    match done.result {
        JobOutcome::Retrying { reason } => {
            assert!(reason.contains("time limit of 60 s"), "{reason}")
        }
        other => panic!("expected a retry, got {other:?}"),
    }
    assert_eq!(
        jobs.get(plain.id).await.unwrap().unwrap().status,
        JobStatus::Submitted
    );

    // A job asking for less than the processor's limit gets its own.
    let quick = jobs
        .submit(Submit::new("hangs", serde_json::json!({})).with_timeout(5))
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let Outcome::Processed(done) = processor.process_one("w").await.unwrap() else {
        panic!("a job was ready");
    };
    assert_eq!(done.id, quick.id);
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert!(matches!(done.result, JobOutcome::Retrying { .. }));
    // Out-of-range limits are refused when submitted.
    for bad in [0, 86_401] {
        assert!(matches!(
            jobs.submit(Submit::new("hangs", serde_json::json!({})).with_timeout(bad))
                .await,
            Err(Error::InvalidParams(_))
        ));
    }
}
