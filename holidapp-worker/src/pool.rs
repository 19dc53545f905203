//! The worker itself: [`run`], the fetch loop, job tasks, heartbeats, recovery and shutdown.
//!
//! The crate documentation describes the design; this module is its code.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use holidapp_core::stats::Counter;
use holidapp_core::{
    Consumer, Error, JobId, JobOutcome, Lease, LeaseToken, Maintenance, Processed, Processor,
    StatsSnapshot, WorkerStats,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::backoff::Backoff;
use crate::settings::{ConfigError, WorkerConfig};

/// Everything [`run`] needs: the processing step, the maintenance it runs, its configuration,
/// and the counters it updates.
pub struct Worker {
    /// Leases and runs jobs. Its consumer is the one the worker heartbeats, waits and releases
    /// on, its queues are the worker's, and its lease length is the worker's.
    pub processor: Arc<Processor>,
    /// Where expired leases are recovered and finished jobs past retention purged.
    pub maintenance: Arc<dyn Maintenance>,
    /// How the worker runs.
    pub config: WorkerConfig,
    /// Counters the worker updates; keep a clone to read them while it runs.
    pub stats: Arc<WorkerStats>,
}

impl Worker {
    /// A worker with fresh counters.
    pub fn new(
        processor: Arc<Processor>,
        maintenance: Arc<dyn Maintenance>,
        config: WorkerConfig,
    ) -> Self {
        Worker {
            processor,
            maintenance,
            config,
            stats: Arc::new(WorkerStats::new()),
        }
    }
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("processor", &self.processor)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What a finished [`run`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    /// The counters at the end.
    pub stats: StatsSnapshot,
    /// How the shutdown went.
    pub ending: Ending,
}

/// How a worker's shutdown went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Every in-flight job finished within the grace period.
    Drained,
    /// The grace period ran out; the unfinished jobs were released to the queue.
    GraceExpired,
    /// The force signal cut the grace period short; the unfinished jobs were released.
    Forced,
}

/// Runs a worker until `shutdown` resolves, then stops gracefully: no new jobs, in-flight jobs get
/// the grace period to finish, the rest go back to the queue. Answers an error only for a
/// configuration that cannot run; backend errors are logged and retried, never returned.
pub async fn run(
    worker: Worker,
    shutdown: impl Future<Output = ()>,
) -> Result<Report, ConfigError> {
    run_with_force(worker, shutdown, std::future::pending()).await
}

/// [`run`], with a second signal: when `force` resolves after shutdown has begun, the grace period
/// ends at once and the unfinished jobs are released. (Releasing takes one backend call per job,
/// bounded by a 2 s timeout.) A binary passes its second SIGTERM/SIGINT here.
pub async fn run_with_force(
    worker: Worker,
    shutdown: impl Future<Output = ()>,
    force: impl Future<Output = ()>,
) -> Result<Report, ConfigError> {
    let lease_for = worker.processor.lease_for();
    worker.config.validate(lease_for)?;
    let span = info_span!("worker", worker = %worker.config.identity);
    let shared = Arc::new(Shared {
        consumer: Arc::clone(worker.processor.consumer()),
        slots: Arc::new(Semaphore::new(worker.config.concurrency)),
        processor: worker.processor,
        maintenance: worker.maintenance,
        stats: worker.stats,
        config: worker.config,
        lease_for,
        active: Mutex::new(HashMap::new()),
    });
    async move {
        info!(
            concurrency = shared.config.concurrency,
            lease_ms = millis(lease_for),
            heartbeat_ms = millis(shared.heartbeat_interval()),
            recovery_ms = millis(shared.config.recovery_interval_for(lease_for)),
            grace_ms = millis(shared.config.shutdown_grace),
            "worker started"
        );
        let ending = tokio::select! {
            ending = serve(&shared, shutdown, force) => ending,
            never = heartbeat_loop(&shared) => match never {},
            never = recovery_loop(&shared) => match never {},
            never = purge_loop(&shared) => match never {},
            never = summary_loop(&shared) => match never {},
        };
        let stats = shared.stats.snapshot();
        log_summary("worker stopped", &stats, shared.config.concurrency);
        Ok(Report { stats, ending })
    }
    .instrument(span)
    .await
}

/// How long releasing a job at shutdown may take before the worker gives up on it (its lease then
/// runs out and the queue retries it).
const RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one lease, requeue or purge call may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// State shared by the fetch loop, the job tasks and the background loops.
struct Shared {
    processor: Arc<Processor>,
    /// The processor's consumer, for heartbeats, idle waits and releases.
    consumer: Arc<dyn Consumer>,
    maintenance: Arc<dyn Maintenance>,
    config: WorkerConfig,
    stats: Arc<WorkerStats>,
    lease_for: Duration,
    /// One permit per concurrency slot. A job task holds its permit until it ends, so acquiring
    /// every permit means no job is running: that is how shutdown waits for in-flight jobs.
    slots: Arc<Semaphore>,
    /// The jobs running now, by id. A std mutex: held only to copy or take an entry, never across
    /// an await.
    active: Mutex<HashMap<JobId, Active>>,
}

/// A running job, as the heartbeat and the shutdown see it.
struct Active {
    lease: Lease,
    /// Tells the job task to stop; taken by whoever stops it first.
    stop: Option<oneshot::Sender<StopJob>>,
    /// The last heartbeat found the lease no longer held. One such answer may be the job's own
    /// outcome, stored an instant before (which also ends the lease); if the job is still running
    /// at the next heartbeat, the lease is lost for certain.
    reported_lost: bool,
}

/// Why a job task is told to stop before its job ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StopJob {
    /// Two heartbeats in a row found the lease taken over: drop the job, another worker owns it.
    LeaseLost,
    /// The grace period is over: release the job to the queue.
    Shutdown,
}

impl Shared {
    fn heartbeat_interval(&self) -> Duration {
        self.lease_for / 3
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Active>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells the task running `lease`'s job to stop, if that lease is still the one it runs.
    fn stop_job(&self, id: JobId, token: LeaseToken, why: StopJob) {
        let sender = self
            .active()
            .get_mut(&id)
            .filter(|a| a.lease.token == token)
            .and_then(|a| a.stop.take());
        if let Some(sender) = sender {
            let _ = sender.send(why);
        }
    }

    /// Records a heartbeat's answers and abandons the jobs whose lease was reported lost twice
    /// in a row.
    fn heartbeat_answered(&self, leases: &[Lease], held: &[bool]) {
        let abandon: Vec<(JobId, LeaseToken)> = {
            let mut active = self.active();
            leases
                .iter()
                .zip(held)
                .filter_map(|(lease, &held)| {
                    let job = active
                        .get_mut(&lease.id())
                        .filter(|a| a.lease.token == lease.token)?;
                    let reported_before = std::mem::replace(&mut job.reported_lost, !held);
                    if !held && !reported_before {
                        debug!(job = %lease.id(), "a heartbeat found the lease no longer held");
                    }
                    (!held && reported_before).then_some((lease.id(), lease.token))
                })
                .collect()
        };
        for (id, token) in abandon {
            self.stop_job(id, token, StopJob::LeaseLost);
        }
    }
}

/// The fetch loop, then the shutdown: wait for in-flight jobs, release what is left.
async fn serve(
    shared: &Arc<Shared>,
    shutdown: impl Future<Output = ()>,
    force: impl Future<Output = ()>,
) -> Ending {
    fetch_loop(shared, pin!(shutdown)).await;

    let grace = shared.config.shutdown_grace;
    info!(
        in_flight = shared.active().len(),
        grace_ms = millis(grace),
        "shutting down: no new jobs; in-flight jobs may finish within the grace period"
    );
    let slots = shared.config.concurrency as u32;
    let ending = tokio::select! {
        biased;
        _ = shared.slots.acquire_many(slots) => Ending::Drained,
        _ = force => Ending::Forced,
        _ = tokio::time::sleep(grace) => Ending::GraceExpired,
    };
    if ending != Ending::Drained {
        let unfinished: Vec<(JobId, LeaseToken)> = shared
            .active()
            .values()
            .map(|a| (a.lease.id(), a.lease.token))
            .collect();
        info!(
            jobs = unfinished.len(),
            forced = ending == Ending::Forced,
            "releasing unfinished jobs to the queue"
        );
        for (id, token) in unfinished {
            shared.stop_job(id, token, StopJob::Shutdown);
        }
        let settle = RELEASE_TIMEOUT + Duration::from_secs(1);
        if tokio::time::timeout(settle, shared.slots.acquire_many(slots))
            .await
            .is_err()
        {
            warn!("some jobs did not stop in time; their leases will run out");
        }
    }
    ending
}

/// Leases jobs while a slot is free, until `shutdown` resolves.
///
/// After a lease that found work, the loop asks for as many jobs as there are free slots at once
/// (concurrent calls, which a backend may serve in one round trip); after finding the queue empty,
/// it asks for one, so an idle worker makes one call per idle wait.
async fn fetch_loop(shared: &Arc<Shared>, mut shutdown: Pin<&mut impl Future<Output = ()>>) {
    let mut backoff = Backoff::new(Backoff::CAP);
    let mut found_work = false;
    loop {
        let first = tokio::select! {
            biased;
            _ = shutdown.as_mut() => return,
            permit = Arc::clone(&shared.slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let mut permits = vec![first];
        if found_work {
            permits.extend(std::iter::from_fn(|| {
                Arc::clone(&shared.slots).try_acquire_owned().ok()
            }));
        }
        let calls = permits.iter().map(|_| {
            with_timeout(
                CALL_TIMEOUT,
                shared.processor.lease(&shared.config.identity),
            )
        });
        let mut lease_calls = pin!(futures::future::join_all(calls));
        let answers = tokio::select! {
            biased;
            _ = shutdown.as_mut() => {
                // Let the calls in flight finish: the backend may have handed jobs over already,
                // and they should go back to the queue now rather than when their lease runs out.
                for lease in lease_calls.await.into_iter().flatten().flatten() {
                    release(shared, &lease).await;
                }
                return;
            }
            answers = &mut lease_calls => answers,
        };
        let mut failure = None;
        found_work = true;
        for (permit, answer) in permits.into_iter().zip(answers) {
            match answer {
                Ok(Some(lease)) => start_job(shared, lease, permit),
                Ok(None) => found_work = false,
                Err(e) => {
                    shared.stats.add(Counter::BackendErrors, 1);
                    failure = Some(e);
                }
            }
        }
        if let Some(e) = failure {
            found_work = false;
            let delay = backoff.next_delay();
            warn!(error = %e, retry_in_ms = millis(delay), "could not lease a job");
            tokio::select! {
                biased;
                _ = shutdown.as_mut() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            continue;
        }
        backoff.reset();
        if !found_work {
            let idle = shared.config.idle_wait;
            let wait = tokio::time::timeout(
                idle + Duration::from_secs(1),
                shared
                    .consumer
                    .wait_for_work(shared.processor.queues(), idle),
            );
            tokio::select! {
                biased;
                _ = shutdown.as_mut() => return,
                _ = wait => {}
            }
        }
    }
}

/// Registers a leased job and runs it in its own task, holding `permit` until it ends.
fn start_job(shared: &Arc<Shared>, lease: Lease, permit: OwnedSemaphorePermit) {
    let (stop_tx, stop_rx) = oneshot::channel();
    shared.active().insert(
        lease.id(),
        Active {
            lease: lease.clone(),
            stop: Some(stop_tx),
            reported_lost: false,
        },
    );
    shared.stats.add(Counter::Leased, 1);
    shared.stats.job_started();
    let span = info_span!("job", job = %lease.id(), attempt = lease.attempt());
    let task = run_job(Arc::clone(shared), lease, permit, stop_rx);
    tokio::spawn(task.instrument(span));
}

/// Removes a job from the active set when its task ends, however it ends.
struct ActiveGuard {
    shared: Arc<Shared>,
    id: JobId,
    token: LeaseToken,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let mut active = self.shared.active();
        if active
            .get(&self.id)
            .is_some_and(|a| a.lease.token == self.token)
        {
            active.remove(&self.id);
        }
        drop(active);
        self.shared.stats.job_ended();
        if std::thread::panicking() {
            self.shared.stats.add(Counter::Crashed, 1);
            error!("the job's task panicked; its lease will run out and the queue will retry it");
        }
    }
}

/// Runs one leased job to its end, or until it is told to stop.
async fn run_job(
    shared: Arc<Shared>,
    lease: Lease,
    _permit: OwnedSemaphorePermit,
    stop: oneshot::Receiver<StopJob>,
) {
    let _guard = ActiveGuard {
        shared: Arc::clone(&shared),
        id: lease.id(),
        token: lease.token,
    };
    let started = Instant::now();
    debug!("job started");
    // A dropped sender (never expected) must not end the job: wait for it to finish instead.
    let stopped = async {
        match stop.await {
            Ok(why) => why,
            Err(_) => std::future::pending().await,
        }
    };
    // Biased towards the job: when it has already finished, its outcome is what counts.
    let outcome = tokio::select! {
        biased;
        done = shared.processor.execute(&lease) => done,
        why = stopped => {
            match why {
                StopJob::LeaseLost => {
                    shared.stats.add(Counter::LeaseLost, 1);
                    warn!(
                        elapsed_ms = millis(started.elapsed()),
                        outcome = "lease lost",
                        "heartbeats found the lease taken over; job abandoned"
                    );
                }
                StopJob::Shutdown => release(&shared, &lease).await,
            }
            return;
        }
    };
    record(&shared.stats, outcome);
}

/// Counts and logs how a job's attempt ended.
fn record(stats: &WorkerStats, outcome: holidapp_core::Result<Processed>) {
    let Processed {
        result, duration, ..
    } = match outcome {
        Ok(processed) => processed,
        Err(e) => {
            stats.add(Counter::Unrecorded, 1);
            stats.add(Counter::BackendErrors, 1);
            warn!(
                error = %e,
                outcome = "unrecorded",
                "could not store the job's outcome; its lease will run out and the queue will \
                 retry it"
            );
            return;
        }
    };
    let duration_ms = millis(duration);
    match result {
        JobOutcome::Complete => {
            stats.add(Counter::Completed, 1);
            info!(duration_ms, outcome = "complete", "job done");
        }
        JobOutcome::Retrying { reason } => {
            stats.add(Counter::Retried, 1);
            warn!(duration_ms, outcome = "retrying", %reason, "job attempt failed; the queue will retry it");
        }
        JobOutcome::Failed { reason } => {
            stats.add(Counter::Failed, 1);
            warn!(duration_ms, outcome = "failed", %reason, "job failed");
        }
        JobOutcome::LeaseLost => {
            stats.add(Counter::LeaseLost, 1);
            warn!(
                duration_ms,
                outcome = "lease lost",
                "the outcome was refused: the lease was taken over; result dropped"
            );
        }
    }
}

/// Gives a job back to the queue at once (shutdown), bounded by [`RELEASE_TIMEOUT`].
async fn release(shared: &Shared, lease: &Lease) {
    match with_timeout(RELEASE_TIMEOUT, shared.consumer.release(lease)).await {
        Ok(()) => {
            shared.stats.add(Counter::Released, 1);
            info!(job = %lease.id(), outcome = "released", "job released to the queue");
        }
        Err(Error::LeaseLost) => {
            debug!(job = %lease.id(), "not released: the lease was no longer held");
        }
        Err(e) => {
            shared.stats.add(Counter::BackendErrors, 1);
            warn!(
                job = %lease.id(),
                error = %e,
                "could not release the job; its lease will run out and the queue will retry it"
            );
        }
    }
}

/// Renews every running job's lease in one call, every third of the lease.
async fn heartbeat_loop(shared: &Shared) -> Infallible {
    let every = shared.heartbeat_interval();
    let mut backoff = Backoff::new(every.min(Backoff::CAP));
    let mut wait = every;
    loop {
        tokio::time::sleep(wait).await;
        wait = every;
        let leases: Vec<Lease> = shared.active().values().map(|a| a.lease.clone()).collect();
        if leases.is_empty() {
            continue;
        }
        match with_timeout(every, shared.consumer.renew_many(&leases, shared.lease_for)).await {
            Ok(held) => {
                backoff.reset();
                if held.len() != leases.len() {
                    warn!(
                        asked = leases.len(),
                        answered = held.len(),
                        "the backend answered a renewal for a different number of leases"
                    );
                }
                shared.heartbeat_answered(&leases, &held);
                debug!(leases = leases.len(), "heartbeat");
            }
            Err(e) => {
                shared.stats.add(Counter::BackendErrors, 1);
                wait = backoff.next_delay();
                warn!(
                    error = %e,
                    leases = leases.len(),
                    retry_in_ms = millis(wait),
                    "could not renew leases"
                );
            }
        }
    }
}

/// Sends expired leases (of any worker) back to the queue, on a jittered interval.
async fn recovery_loop(shared: &Shared) -> Infallible {
    let every = shared.config.recovery_interval_for(shared.lease_for);
    let mut backoff = Backoff::new(every);
    let mut wait = jittered(every);
    loop {
        tokio::time::sleep(wait).await;
        wait = jittered(every);
        match with_timeout(CALL_TIMEOUT, shared.maintenance.requeue_expired()).await {
            Ok(report) => {
                backoff.reset();
                shared.stats.add(Counter::Requeued, report.requeued);
                shared.stats.add(Counter::ExpiredFailed, report.failed);
                if report.requeued > 0 || report.failed > 0 {
                    info!(
                        requeued = report.requeued,
                        failed = report.failed,
                        "recovered jobs whose lease had run out"
                    );
                } else {
                    debug!("recovery pass: no lease had run out");
                }
            }
            Err(e) => {
                shared.stats.add(Counter::BackendErrors, 1);
                wait = backoff.next_delay();
                warn!(error = %e, retry_in_ms = millis(wait), "could not requeue expired leases");
            }
        }
    }
}

/// Purges finished jobs past retention, on a jittered interval.
async fn purge_loop(shared: &Shared) -> Infallible {
    let every = shared.config.purge_interval;
    loop {
        tokio::time::sleep(jittered(every)).await;
        match with_timeout(CALL_TIMEOUT, shared.maintenance.purge_expired()).await {
            Ok(0) => debug!("purge pass: no finished job was past retention"),
            Ok(purged) => {
                shared.stats.add(Counter::Purged, purged);
                info!(purged, "purged finished jobs past retention");
            }
            Err(e) => {
                shared.stats.add(Counter::BackendErrors, 1);
                warn!(error = %e, "could not purge expired jobs");
            }
        }
    }
}

/// Logs the counters every summary interval.
async fn summary_loop(shared: &Shared) -> Infallible {
    loop {
        tokio::time::sleep(shared.config.summary_interval).await;
        log_summary(
            "worker summary",
            &shared.stats.snapshot(),
            shared.config.concurrency,
        );
    }
}

fn log_summary(message: &str, s: &StatsSnapshot, concurrency: usize) {
    info!(
        leased = s.leased,
        completed = s.completed,
        retried = s.retried,
        failed = s.failed,
        lease_lost = s.lease_lost,
        released = s.released,
        crashed = s.crashed,
        unrecorded = s.unrecorded,
        requeued = s.requeued,
        backend_errors = s.backend_errors,
        busy = s.busy,
        concurrency,
        "{message}"
    );
}

/// `every`, moved by up to 20 % either way.
fn jittered(every: Duration) -> Duration {
    every.mul_f64(0.8 + 0.4 * fastrand::f64())
}

/// `call`, failing as [`Error::Unavailable`] when it takes longer than `limit`.
async fn with_timeout<T>(
    limit: Duration,
    call: impl Future<Output = holidapp_core::Result<T>>,
) -> holidapp_core::Result<T> {
    match tokio::time::timeout(limit, call).await {
        Ok(answer) => answer,
        Err(_) => Err(Error::Unavailable(format!(
            "no answer within {} ms",
            limit.as_millis()
        ))),
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}
