//! # A worker of your own
//!
//! A worker process for a program whose jobs are not plots: it serves two kinds from two queues,
//!
//! | kind | queue | does (pretend work) | result |
//! |---|---|---|---|
//! | `resize` ([`Resize`]) | `images` | plans a thumbnail of an image | JSON ([`Resized`]) |
//! | `email` ([`Email`]) | `mail` | "sends" an email | text |
//!
//! It is built from the same parts as `holidapp-worker`: a [`Kinds`] registry holding both
//! renderers, a [`Processor`] serving both queues, and [`holidapp_worker::run`], which runs jobs
//! concurrently, keeps their leases alive, recovers the jobs of workers that died, and stops
//! gracefully when its shutdown future completes.
//!
//! ```sh
//! cargo run -p example-own-worker                                   # demo, in memory
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p example-own-worker  # serve Redis until Ctrl-C
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p example-own-worker -- --demo   # demo anyway
//! ```
//!
//! On Redis, any program that submits `resize` jobs to the `images` queue or `email` jobs to the
//! `mail` queue (another process using `Jobs`, or `holidapp-api` with these kinds registered)
//! gets them run here, by as many of these processes as you start.
//!
//! `src/main.rs` reads the environment and installs the signal handler; [`serve`] and [`demo`]
//! are here, so that the tests in `tests/` run them.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use holidapp_core::redis_backend::{RedisBackend, RedisConfig};
use holidapp_core::{
    Backends, Context, Error, Job, JobId, Jobs, Json, Kinds, MemoryBackend, Output, Processor,
    QueueName, QueueSettings, Renderer, Result, ResultState, Submit, async_trait,
};
use holidapp_worker::{Report, Worker, WorkerConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// The queue `resize` jobs go to.
pub fn images() -> QueueName {
    QueueName::new("images").expect("a valid queue name")
}

/// The queue `email` jobs go to.
pub fn mail() -> QueueName {
    QueueName::new("mail").expect("a valid queue name")
}

/// The parameters of a `resize` job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResizeParams {
    /// The image to resize.
    pub image: String,
    /// The thumbnail's width, 1 to 4096 pixels.
    pub width: u32,
    /// The thumbnail's height, 1 to 4096 pixels.
    pub height: u32,
}

/// What a `resize` job answers, as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resized {
    /// The image resized.
    pub image: String,
    /// Where the thumbnail would be stored.
    pub thumbnail: String,
    /// Its size in bytes, uncompressed (4 bytes a pixel).
    pub bytes: u64,
}

/// The `resize` kind.
#[derive(Clone, Copy, Debug, Default)]
pub struct Resize;

#[async_trait]
impl Renderer for Resize {
    const KIND: &'static str = "resize";
    type Params = ResizeParams;
    type Output = Json<Resized>;

    fn validate(&self, params: &ResizeParams) -> Result<()> {
        if params.image.is_empty() {
            return Err(Error::InvalidParams("`image` must not be empty".into()));
        }
        for (name, value) in [("width", params.width), ("height", params.height)] {
            if !(1..=4096).contains(&value) {
                return Err(Error::InvalidParams(format!(
                    "`{name}` must be 1 to 4096 pixels, not {value}"
                )));
            }
        }
        Ok(())
    }

    async fn render(&self, params: ResizeParams, _ctx: &Context) -> Result<Json<Resized>> {
        // Pretend work: a real kind would decode, scale and store the image here (on
        // `spawn_blocking`, since that is CPU work).
        Ok(Json(Resized {
            thumbnail: format!("thumbs/{}x{}/{}", params.width, params.height, params.image),
            bytes: u64::from(params.width) * u64::from(params.height) * 4,
            image: params.image,
        }))
    }
}

/// The parameters of an `email` job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailParams {
    /// The address to send to.
    pub to: String,
    /// The subject line.
    pub subject: String,
}

/// The `email` kind.
#[derive(Clone, Copy, Debug, Default)]
pub struct Email;

#[async_trait]
impl Renderer for Email {
    const KIND: &'static str = "email";
    type Params = EmailParams;
    // A text result: `text/plain; charset=utf-8`.
    type Output = String;

    fn validate(&self, params: &EmailParams) -> Result<()> {
        if !params.to.contains('@') {
            return Err(Error::InvalidParams(format!(
                "`to` must be an email address, not '{}'",
                params.to
            )));
        }
        Ok(())
    }

    async fn render(&self, params: EmailParams, ctx: &Context) -> Result<String> {
        // Pretend work: a real kind would hand the message to a mail server here, and answer
        // `Error::Transient` when the server cannot be reached, so that the job is retried.
        Ok(format!(
            "sent to {} on attempt {}: {}",
            params.to,
            ctx.attempt(),
            params.subject
        ))
    }
}

/// Both kinds, as the submitting side and the worker both register them.
pub fn kinds() -> Kinds {
    Kinds::new().with(Resize).with(Email)
}

/// How long the worker holds a job before another may take it over; it renews the lease every
/// third of it while the job runs.
pub const LEASE: Duration = Duration::from_secs(30);

/// A worker over `backends` running both kinds from both queues, as `identity`.
pub fn worker(backends: &Backends, identity: impl Into<String>) -> Worker {
    // The queues in order of preference: `images` first, and `mail` gets one lease call in four
    // even while `images` is busy, so neither starves.
    let processor =
        Processor::new(backends.consumer.clone(), kinds(), LEASE).with_queues([images(), mail()]);
    Worker::new(
        Arc::new(processor),
        backends.maintenance.clone(),
        // Four jobs at once; the other settings (grace period, recovery interval, ...) keep
        // their defaults.
        WorkerConfig::new(identity, 4),
    )
}

/// Serves the Redis of `config` as `identity` until `shutdown` completes, then stops gracefully
/// (running jobs get the grace period to finish; the rest go back to their queue). Answers what
/// the worker did.
pub async fn serve(
    config: &RedisConfig,
    identity: impl Into<String>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<Report> {
    let backend = RedisBackend::connect(config, QueueSettings::default()).await?;
    let backends = Backends::single(Arc::new(backend));
    Ok(holidapp_worker::run(worker(&backends, identity), shutdown).await?)
}

/// A job the demo ran, as it ended.
#[derive(Clone, Debug)]
pub struct Finished {
    /// The job: its queue, kind, status, attempts, worker.
    pub job: Job,
    /// Its result, with its content type.
    pub result: Output,
}

/// Submits two jobs of each kind to the in-memory backend, runs a worker until all four are done,
/// and answers them in the order they were submitted.
pub async fn demo() -> anyhow::Result<Vec<Finished>> {
    let backends = Backends::single(Arc::new(MemoryBackend::new(QueueSettings::default())));
    let jobs = Jobs::new(&backends, kinds());

    // Each job goes to its kind's queue: `Submit::of` takes the typed parameters, `in_queue`
    // picks the queue.
    let mut ids = Vec::new();
    for (image, width, height) in [("cat.jpg", 64, 64), ("dog.png", 128, 96)] {
        let params = ResizeParams {
            image: image.to_owned(),
            width,
            height,
        };
        let job = jobs
            .submit(Submit::of::<Resize>(&params)?.in_queue(images()))
            .await?;
        ids.push(job.id);
    }
    for (to, subject) in [
        ("ada@example.com", "Your thumbnails are ready"),
        ("bob@example.com", "Welcome"),
    ] {
        let params = EmailParams {
            to: to.to_owned(),
            subject: subject.to_owned(),
        };
        let job = jobs
            .submit(Submit::of::<Email>(&params)?.in_queue(mail()))
            .await?;
        ids.push(job.id);
    }

    // The worker runs in a task of its own until told to stop.
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(holidapp_worker::run(
        worker(&backends, "demo-worker"),
        async {
            let _ = stopped.await;
        },
    ));
    let waited = wait_until_finished(&jobs, &ids, Duration::from_secs(30)).await;
    let _ = stop.send(());
    running.await??;
    waited?;

    let mut finished = Vec::new();
    for id in ids {
        let job = jobs.get(id).await?;
        let result = jobs.result(id).await?;
        match (job, result) {
            (Some(job), Some(ResultState::Ready(result))) => {
                finished.push(Finished { job, result })
            }
            (_, other) => anyhow::bail!("job {id} did not complete: {other:?}"),
        }
    }
    Ok(finished)
}

/// Waits until every job of `ids` is finished (complete or failed), reading them again every
/// 20 ms, for at most `within`.
///
/// Nothing announces that a job has finished, so a program that wants to know reads the job
/// again, as an HTTP client polls `GET /jobs/{id}`.
pub async fn wait_until_finished(
    jobs: &Jobs,
    ids: &[JobId],
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mut unfinished = 0;
        for &id in ids {
            match jobs.get(id).await? {
                Some(job) if job.status.is_finished() => {}
                Some(_) => unfinished += 1,
                None => anyhow::bail!("job {id} has disappeared"),
            }
        }
        if unfinished == 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "{unfinished} of {} jobs were not finished after {within:?}",
                ids.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
