//! The processing step: what a worker does with one job.
//!
//! [`Processor::process_one`] leases the next job, renders it and stores its result, or records
//! the failure so the queue can retry it or fail it. It is the unit everything else is built on:
//! the `holidapp-worker` run loop calls it (split into [`Processor::lease`] and
//! [`Processor::execute`], so it can keep the lease alive in between), the embedded mode calls it,
//! and tests call it to drain a queue step by step without sleeping.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::dataset::DataSet;
use crate::error::{Error, Result};
use crate::job::{JobId, JobStatus};
use crate::queue::{FailureKind, Lease, Queue};
use crate::render::Renderer;
use crate::store::DataStore;

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

/// Runs jobs: leases them from a [`Queue`], renders them with a [`Renderer`] over the data set of
/// a [`DataStore`], and stores the outcome.
///
/// It keeps the parsed data set in memory and reloads it only when the store's
/// [`version`](DataStore::version) changes, so a worker does not re-read 45,000 records per job.
pub struct Processor {
    queue: Arc<dyn Queue>,
    data: Arc<dyn DataStore>,
    renderer: Arc<dyn Renderer>,
    lease_for: Duration,
    // A tokio mutex: held across the await that loads the data set, so concurrent jobs that find
    // the cache stale load it once, not once each.
    cache: tokio::sync::Mutex<Option<(u64, Arc<DataSet>)>>,
}

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processor")
            .field("lease_for", &self.lease_for)
            .finish_non_exhaustive()
    }
}

impl Processor {
    /// A processor that leases jobs for `lease_for` at a time.
    pub fn new(
        queue: Arc<dyn Queue>,
        data: Arc<dyn DataStore>,
        renderer: Arc<dyn Renderer>,
        lease_for: Duration,
    ) -> Self {
        Processor {
            queue,
            data,
            renderer,
            lease_for,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// The lease length this processor asks for.
    pub fn lease_for(&self) -> Duration {
        self.lease_for
    }

    /// The queue jobs come from.
    pub fn queue(&self) -> &Arc<dyn Queue> {
        &self.queue
    }

    /// Leases the next job for `worker`, then [`execute`](Processor::execute)s it.
    pub async fn process_one(&self, worker: &str) -> Result<Outcome> {
        match self.lease(worker).await? {
            None => Ok(Outcome::Idle),
            Some(lease) => Ok(Outcome::Processed(self.execute(&lease).await?)),
        }
    }

    /// Leases the next ready job for `worker`, if any.
    pub async fn lease(&self, worker: &str) -> Result<Option<Lease>> {
        self.queue.lease(worker, self.lease_for).await
    }

    /// Renders a leased job and stores the outcome: the result and `complete` on success; on
    /// error a retry or `failed`, as the queue's retry policy decides for the error's kind.
    ///
    /// Answers `Err` only when the outcome itself could not be stored (the backend is down); the
    /// lease then runs out and the job is retried by whoever requeues expired leases.
    pub async fn execute(&self, lease: &Lease) -> Result<Processed> {
        let started = Instant::now();
        let rendered = match self.data_for_render().await {
            Ok(data) => self.renderer.render(data, &lease.job.params).await,
            Err(e) => Err(e),
        };
        let result = match rendered {
            Ok(png) => match self.queue.complete(lease, png).await {
                Ok(_) => JobOutcome::Complete,
                Err(Error::LeaseLost) => JobOutcome::LeaseLost,
                Err(e) => return Err(e),
            },
            Err(error) => {
                let kind = if error.is_transient() {
                    FailureKind::Transient
                } else {
                    FailureKind::Permanent
                };
                let reason = error.to_string();
                match self.queue.fail(lease, &reason, kind).await {
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

    /// The current data set, from the cache when its version is unchanged.
    async fn data_for_render(&self) -> Result<Arc<DataSet>> {
        if !self.renderer.needs_data() {
            return Ok(Arc::new(DataSet::default()));
        }
        let version = self.data.version().await?;
        if version == 0 {
            return Err(Error::NoData);
        }
        let mut cache = self.cache.lock().await;
        if let Some((_, data)) = cache.as_ref().filter(|(cached, _)| *cached == version) {
            return Ok(Arc::clone(data));
        }
        let (version, data) = self.data.load().await?;
        if data.is_empty() {
            return Err(Error::NoData);
        }
        *cache = Some((version, Arc::clone(&data)));
        Ok(data)
    }
}
