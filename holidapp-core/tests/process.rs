//! The processing step, driven one job at a time against the in-memory backend.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use holidapp_core::contract::settings;
use holidapp_core::{
    Clock, DataSet, DataStore, Error, Job, JobOutcome, JobParams, JobStatus, JobStore, ManualClock,
    MemoryBackend, Outcome, Processor, Queue, Record, Renderer, Result,
};

/// A renderer that answers from a script and records the size of each data set it was given.
#[derive(Default)]
struct Scripted {
    answers: Mutex<VecDeque<Result<Vec<u8>>>>,
    seen: Mutex<Vec<usize>>,
}

impl Scripted {
    fn answering(answers: Vec<Result<Vec<u8>>>) -> Arc<Self> {
        Arc::new(Scripted {
            answers: Mutex::new(answers.into()),
            seen: Mutex::default(),
        })
    }
}

#[async_trait]
impl Renderer for Scripted {
    fn validate(&self, _: &JobParams) -> Result<()> {
        Ok(())
    }

    async fn render(&self, data: Arc<DataSet>, params: &JobParams) -> Result<Vec<u8>> {
        self.seen.lock().unwrap().push(data.len());
        let scripted = self.answers.lock().unwrap().pop_front();
        scripted.unwrap_or_else(|| Ok(format!("{}-{}", params.start, params.end).into_bytes()))
    }
}

fn records(n: usize) -> DataSet {
    DataSet::new(
        (0..n)
            .map(|i| Record {
                id: i.to_string(),
                fields: serde_json::Map::new(),
            })
            .collect(),
    )
}

struct Rig {
    backend: Arc<MemoryBackend>,
    clock: Arc<ManualClock>,
    renderer: Arc<Scripted>,
    processor: Processor,
}

async fn rig(answers: Vec<Result<Vec<u8>>>) -> Rig {
    let clock = Arc::new(ManualClock::starting_now());
    let backend = Arc::new(MemoryBackend::with_clock(settings(), clock.clone()));
    backend.replace(records(3)).await.unwrap();
    let renderer = Scripted::answering(answers);
    let processor = Processor::new(
        backend.clone(),
        backend.clone(),
        renderer.clone(),
        Duration::from_secs(30),
    );
    Rig {
        backend,
        clock,
        renderer,
        processor,
    }
}

async fn submit(rig: &Rig) -> Job {
    let job = Job::new(JobParams::new("1990", "2000"), rig.clock.now());
    rig.backend.enqueue(&job).await.unwrap();
    job
}

fn processed(outcome: Outcome) -> holidapp_core::Processed {
    match outcome {
        Outcome::Processed(p) => p,
        Outcome::Idle => panic!("expected a job to be processed"),
    }
}

#[tokio::test]
async fn an_empty_queue_is_idle() {
    let rig = rig(vec![]).await;
    assert_eq!(rig.processor.process_one("w").await.unwrap(), Outcome::Idle);
}

#[tokio::test]
async fn a_job_runs_to_a_stored_result() {
    let rig = rig(vec![]).await;
    let job = submit(&rig).await;
    let p = processed(rig.processor.process_one("10.1.2.3").await.unwrap());
    assert_eq!(
        (p.id, p.attempt, p.result),
        (job.id, 1, JobOutcome::Complete)
    );
    let stored = rig.backend.get(job.id).await.unwrap().unwrap();
    assert_eq!(stored.status, JobStatus::Complete);
    assert_eq!(stored.worker.as_deref(), Some("10.1.2.3"));
    assert_eq!(
        rig.backend.result(job.id).await.unwrap().unwrap().as_ref(),
        b"1990-2000"
    );
    assert_eq!(*rig.renderer.seen.lock().unwrap(), vec![3]);
}

#[tokio::test]
async fn a_transient_error_retries_and_then_succeeds() {
    let rig = rig(vec![Err(Error::Unavailable("connection reset".into()))]).await;
    let job = submit(&rig).await;
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
}

#[tokio::test]
async fn a_permanent_error_fails_at_once_with_the_reason() {
    let rig = rig(vec![Err(Error::Render("no records with field x".into()))]).await;
    let job = submit(&rig).await;
    let p = processed(rig.processor.process_one("w").await.unwrap());
    assert!(
        matches!(&p.result, JobOutcome::Failed { reason } if reason.contains("no records with field x"))
    );
    let stored = rig.backend.get(job.id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.attempts), (JobStatus::Failed, 1));
    assert!(stored.error.unwrap().contains("no records with field x"));
}

#[tokio::test]
async fn no_loaded_data_fails_the_job_permanently() {
    let rig = rig(vec![]).await;
    rig.backend.clear().await.unwrap();
    let job = submit(&rig).await;
    let p = processed(rig.processor.process_one("w").await.unwrap());
    assert!(
        matches!(&p.result, JobOutcome::Failed { reason } if reason.contains("POST /data")),
        "{p:?}"
    );
    assert_eq!(
        rig.backend.get(job.id).await.unwrap().unwrap().status,
        JobStatus::Failed
    );
    assert!(
        rig.renderer.seen.lock().unwrap().is_empty(),
        "the renderer never ran"
    );
}

#[tokio::test]
async fn the_data_set_is_reloaded_only_when_it_changes() {
    let rig = rig(vec![]).await;
    for _ in 0..2 {
        submit(&rig).await;
        processed(rig.processor.process_one("w").await.unwrap());
    }
    rig.backend.replace(records(7)).await.unwrap();
    submit(&rig).await;
    processed(rig.processor.process_one("w").await.unwrap());
    assert_eq!(*rig.renderer.seen.lock().unwrap(), vec![3, 3, 7]);
}

#[tokio::test]
async fn a_lease_lost_while_rendering_drops_the_result() {
    let rig = rig(vec![]).await;
    let job = submit(&rig).await;
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
