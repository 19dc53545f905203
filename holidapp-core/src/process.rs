//! The processing step: what a worker does with one job.
//!
//! [`Processor::process_one`] leases the next job from the worker's queues, runs it with the
//! renderer of its kind and stores its result, or records the failure so the status machine can
//! retry it or fail it. It is the unit everything else is built on: the `holidapp-worker` run
//! loop calls it (split into [`Processor::lease`] and [`Processor::execute`], so it can keep the
//! lease alive in between), the embedded mode calls it, and tests call it to drain a queue step
//! by step without sleeping.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::job::{JobId, QueueName};
use crate::kind::{Context, Kinds, Output, ProgressCell};
use crate::machine::{FailureKind, JobStatus, RetryPolicy};
use crate::queue::{Consumer, Lease};

/// What one call of [`Processor::process_one`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Nothing was ready to lease.
    Idle,
    /// One job was taken and handled.
    Processed(Processed),
}

/// The handling of one leased job.
#[derive(Clone, Debug, PartialEq)]
pub struct Processed {
    /// The job.
    pub id: JobId,
    /// Which attempt this was (from 1).
    pub attempt: u32,
    /// How it ended.
    pub result: JobOutcome,
    /// Time from the start of rendering to the job being stored.
    pub duration: Duration,
}

/// How a handled job ended.
#[derive(Clone, Debug, PartialEq)]
pub enum JobOutcome {
    /// Rendered and stored; the job is `complete`.
    Complete,
    /// The attempt failed with a transient error; the job waits for a retry.
    Retrying {
        /// Why the attempt failed.
        reason: String,
    },
    /// The job is `failed` for good.
    Failed {
        /// Why.
        reason: String,
    },
    /// The lease was lost while working (expired and taken over, or the job was deleted); the
    /// result was dropped and nothing about the job was changed by this worker.
    LeaseLost,
}

/// One lease call in this many starts with a later queue than the first (see
/// [`Processor::lease`]).
pub const LATER_QUEUE_SHARE: u64 = 4;

/// Runs jobs: leases them from a [`Consumer`] in the worker's queues, runs each with the
/// renderer of its kind from a [`Kinds`] registry, and stores the outcome.
pub struct Processor {
    consumer: Arc<dyn Consumer>,
    kinds: Kinds,
    queues: Vec<QueueName>,
    lease_for: Duration,
    /// The longest one attempt may run (`HOLIDAPP_JOB_TIMEOUT_SECONDS`); `None` for no limit.
    timeout: Option<Duration>,
    /// Counts lease calls, to rotate which queue is asked first.
    rounds: AtomicU64,
    /// The least time between two progress writes of one job.
    progress_every: Duration,
}

/// The least time between two progress writes of one job, unless configured
/// ([`Processor::with_progress_interval`]).
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processor")
            .field("kinds", &self.kinds)
            .field("queues", &self.queues)
            .field("lease_for", &self.lease_for)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Processor {
    /// A processor for the `default` queue that leases jobs for `lease_for` at a time.
    pub fn new(consumer: Arc<dyn Consumer>, kinds: Kinds, lease_for: Duration) -> Self {
        Processor {
            consumer,
            kinds,
            queues: vec![QueueName::default_queue()],
            lease_for,
            timeout: None,
            rounds: AtomicU64::new(0),
            progress_every: PROGRESS_INTERVAL,
        }
    }

    /// The same processor writing a job's progress at most once per `every` (the reports in
    /// between are folded into the next write: the latest wins).
    pub fn with_progress_interval(mut self, every: Duration) -> Self {
        self.progress_every = every;
        self
    }

    /// The same processor stopping every attempt that runs longer than `timeout` (or than the
    /// job's own [`timeout`](crate::Job::timeout), when shorter): the attempt fails as transient,
    /// so the job is retried while it has attempts left.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The longest an attempt of a job asking for `job_timeout` seconds may run here.
    fn attempt_limit(&self, job_timeout: Option<u32>) -> Option<Duration> {
        let asked = job_timeout.map(|s| Duration::from_secs(u64::from(s)));
        match (self.timeout, asked) {
            (Some(mine), Some(asked)) => Some(mine.min(asked)),
            (mine, asked) => mine.or(asked),
        }
    }

    /// The same processor serving `queues`, in order of preference (see
    /// [`lease`](Processor::lease)). Repeated names count once; an empty list keeps the queues
    /// it had.
    pub fn with_queues(mut self, queues: impl IntoIterator<Item = QueueName>) -> Self {
        let mut unique: Vec<QueueName> = Vec::new();
        for queue in queues {
            if !unique.contains(&queue) {
                unique.push(queue);
            }
        }
        if !unique.is_empty() {
            self.queues = unique;
        }
        self
    }

    /// The lease length this processor asks for.
    pub fn lease_for(&self) -> Duration {
        self.lease_for
    }

    /// The consumer jobs come from.
    pub fn consumer(&self) -> &Arc<dyn Consumer> {
        &self.consumer
    }

    /// The queues served, in order of preference.
    pub fn queues(&self) -> &[QueueName] {
        &self.queues
    }

    /// The kinds this processor runs.
    pub fn kinds(&self) -> &Kinds {
        &self.kinds
    }

    /// Leases the next job for `worker`, then [`execute`](Processor::execute)s it.
    pub async fn process_one(&self, worker: &str) -> Result<Outcome> {
        match self.lease(worker).await? {
            None => Ok(Outcome::Idle),
            Some(lease) => Ok(Outcome::Processed(self.execute(&lease).await?)),
        }
    }

    /// Leases the next ready job of the processor's queues for `worker`, if any.
    ///
    /// Queues are asked in order of preference, the first that has a ready job giving it, so a
    /// busy first queue is served first. So that the later queues are not starved while it stays
    /// busy, one call in [`LATER_QUEUE_SHARE`] asks the later queues first, each in its turn:
    /// with every queue full, the first gets three quarters of the leases and the others share
    /// the rest.
    pub async fn lease(&self, worker: &str) -> Result<Option<Lease>> {
        let round = self.rounds.fetch_add(1, Ordering::Relaxed);
        let start = first_queue(self.queues.len(), round);
        let order = self.queues[start..].iter().chain(&self.queues[..start]);
        for queue in order {
            if let Some(lease) = self.consumer.lease(queue, worker, self.lease_for).await? {
                return Ok(Some(lease));
            }
        }
        Ok(None)
    }

    /// Leases up to `max` ready jobs of the processor's queues for `worker`, in as few calls as
    /// the backend allows: the queues in the order [`lease`](Processor::lease) asks them, each
    /// giving what it has until `max` jobs are leased. Empty when nothing is ready. Should a
    /// later queue's call fail after an earlier one leased jobs, those jobs are answered (the
    /// error shows again on the next call); an error is answered only when nothing was leased.
    pub async fn lease_many(&self, worker: &str, max: usize) -> Result<Vec<Lease>> {
        let round = self.rounds.fetch_add(1, Ordering::Relaxed);
        let start = first_queue(self.queues.len(), round);
        let order = self.queues[start..].iter().chain(&self.queues[..start]);
        let mut leases = Vec::new();
        for queue in order {
            let want = max - leases.len();
            if want == 0 {
                break;
            }
            match self
                .consumer
                .lease_many(queue, worker, self.lease_for, want)
                .await
            {
                Ok(got) => leases.extend(got),
                Err(_) if !leases.is_empty() => break,
                Err(e) => return Err(e),
            }
        }
        Ok(leases)
    }

    /// Runs a leased job with its kind's renderer and stores the outcome: the result and
    /// `complete` on success; on error a retry or `failed`, as the status machine decides for the
    /// error's kind. A job of a kind this processor does not know fails as transient, so that a
    /// worker that knows it can take it on a retry; so does an attempt that runs past its time
    /// limit (see [`with_timeout`](Self::with_timeout)).
    ///
    /// While the backend is unreachable, storing the outcome is tried again with backoff for up
    /// to one lease length: a short outage does not throw finished work away (the fencing token
    /// still refuses it if the job was taken over meanwhile). Answers `Err` only when the outcome
    /// could not be stored by then; the lease then runs out and the job is retried by whoever
    /// requeues expired leases.
    pub async fn execute(&self, lease: &Lease) -> Result<Processed> {
        let started = Instant::now();
        let ran = self.run(lease).await;
        self.store(lease, ran, started).await
    }

    /// The first half of [`execute`](Processor::execute): runs a leased job with its kind's
    /// renderer, within its time limit, and answers what it made. Nothing is stored: pass the
    /// answer to [`store`](Processor::store). A worker splits the two so that a job's slot is
    /// free for the next job while its outcome is being stored.
    pub async fn run(&self, lease: &Lease) -> Ran {
        self.run_in(lease, None).await
    }

    /// [`run`](Processor::run), the render's [`Context`] cancelled when `cancel` is (a worker
    /// cancels it when a heartbeat finds the job cancelled, then drops the render). Progress the
    /// render reports is written meanwhile, at most once per progress interval, under the
    /// lease's fencing check.
    pub async fn run_with(&self, lease: &Lease, cancel: CancellationToken) -> Ran {
        self.run_in(lease, Some(cancel)).await
    }

    async fn run_in(&self, lease: &Lease, cancel: Option<CancellationToken>) -> Ran {
        let job = &lease.job;
        let cell = Arc::new(ProgressCell::default());
        let mut ctx = Context::new(job.id, job.kind.clone(), job.queue.clone(), lease.attempt())
            .with_progress(Arc::clone(&cell));
        if let Some(cancel) = cancel {
            ctx = ctx.with_cancellation(cancel);
        }
        let render = self.kinds.run(&job.kind, &job.params, &ctx);
        // The writer never ends: the render's end ends both.
        let run = async {
            tokio::select! {
                biased;
                ran = render => ran,
                never = self.write_progress(lease, &cell) => match never {},
            }
        };
        let ran = match self.attempt_limit(job.timeout) {
            None => run.await,
            Some(limit) => match tokio::time::timeout(limit, run).await {
                Ok(ran) => ran,
                Err(_) => Err(Error::Transient(format!(
                    "the attempt ran longer than its time limit of {} s",
                    limit.as_secs_f64()
                ))),
            },
        };
        Ran(ran)
    }

    /// The second half of [`execute`](Processor::execute): stores what [`run`](Processor::run)
    /// answered for `lease`, `started` being when the run began (for
    /// [`Processed::duration`]).
    pub async fn store(&self, lease: &Lease, ran: Ran, started: Instant) -> Result<Processed> {
        let result = match ran.0 {
            Ok(output) => {
                let stored = self
                    .retrying_outage(|| self.consumer.complete(lease, output.clone()))
                    .await;
                match stored {
                    Ok(_) => JobOutcome::Complete,
                    Err(Error::LeaseLost) => JobOutcome::LeaseLost,
                    Err(e) => return Err(e),
                }
            }
            Err(error) => {
                let kind = match &error {
                    Error::UnknownKind { .. } => FailureKind::Transient,
                    e if e.is_transient() => FailureKind::Transient,
                    _ => FailureKind::Permanent,
                };
                let reason = match &error {
                    Error::UnknownKind { kind, known } => format!(
                        "this worker has no renderer for kind '{kind}' (it runs: {})",
                        known.join(", ")
                    ),
                    other => other.to_string(),
                };
                match self
                    .retrying_outage(|| self.consumer.fail(lease, &reason, kind))
                    .await
                {
                    Ok(job) if job.status == JobStatus::Failed => JobOutcome::Failed { reason },
                    Ok(_) => JobOutcome::Retrying { reason },
                    Err(Error::LeaseLost) => JobOutcome::LeaseLost,
                    Err(e) => return Err(e),
                }
            }
        };
        Ok(Processed {
            id: lease.id(),
            attempt: lease.attempt(),
            result,
            duration: started.elapsed(),
        })
    }
}

/// What a job's renderer answered, from [`Processor::run`], to be stored by
/// [`Processor::store`].
#[derive(Debug)]
pub struct Ran(Result<Output>);

impl Ran {
    /// Whether the renderer made a result (as opposed to an error).
    pub fn succeeded(&self) -> bool {
        self.0.is_ok()
    }
}

impl Processor {
    /// Writes the progress a render reports, the latest at most once per interval, until the
    /// render ends (which drops this). Stops writing once the lease is lost; a failed write is
    /// only logged: progress is a hint, the next report tries again.
    async fn write_progress(&self, lease: &Lease, cell: &ProgressCell) -> Infallible {
        loop {
            let progress = cell.next().await;
            match self.consumer.progress(lease, &progress).await {
                Ok(()) => {}
                Err(Error::LeaseLost) => return std::future::pending().await,
                Err(e) => tracing::debug!(error = %e, "could not write a progress report"),
            }
            tokio::time::sleep(self.progress_every).await;
        }
    }

    /// Runs `call` and, while it answers [`Error::Unavailable`], runs it again after a backoff
    /// (100 ms doubling up to 2 s), for up to one lease length in all.
    async fn retrying_outage<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let backoff = RetryPolicy {
            max_attempts: u32::MAX,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        };
        let until = Instant::now() + self.lease_for;
        let mut failures = 0;
        loop {
            match call().await {
                Err(Error::Unavailable(message)) => {
                    failures += 1;
                    let delay = backoff.backoff(failures);
                    if Instant::now() + delay >= until {
                        return Err(Error::Unavailable(message));
                    }
                    tracing::debug!(%message, failures, "could not store an outcome; trying again");
                    tokio::time::sleep(delay).await;
                }
                answer => return answer,
            }
        }
    }
}

/// Which of `queues` queues a lease call numbered `round` asks first: the first queue, except
/// on one call in [`LATER_QUEUE_SHARE`], which starts with one of the later queues in turn.
fn first_queue(queues: usize, round: u64) -> usize {
    if queues < 2 || round % LATER_QUEUE_SHARE != LATER_QUEUE_SHARE - 1 {
        return 0;
    }
    let later = (queues - 1) as u64;
    1 + ((round / LATER_QUEUE_SHARE) % later) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_queue_leads_most_rounds_and_every_later_one_gets_its_turn() {
        assert_eq!(
            (0..8).map(|r| first_queue(1, r)).collect::<Vec<_>>(),
            vec![0; 8]
        );
        let starts: Vec<usize> = (0..16).map(|r| first_queue(3, r)).collect();
        assert_eq!(starts, vec![0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2]);
    }
}
