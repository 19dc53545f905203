//! The worker itself: [`run`], the fetch loop, job tasks, heartbeats, recovery and shutdown.
//!
//! The crate documentation describes the design; this module is its code.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use holidapp_core::stats::Counter;
use holidapp_core::workers::{self, WorkerInfo, WorkerRegistry};
use holidapp_core::{
    Consumer, Error, JobId, JobOutcome, Lease, LeaseToken, Maintenance, Processed, Processor,
    Renewal, StatsSnapshot, WorkerStats,
};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, debug_span, error, info, info_span, warn};

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
    /// Where the worker registers and heartbeats its identity, queues and counters
    /// ([`WorkerRegistry`]), when it has one; it leaves when it stops.
    pub registry: Option<Arc<dyn WorkerRegistry>>,
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
            registry: None,
        }
    }

    /// The same worker, registered in `registry` while it runs.
    pub fn with_registry(mut self, registry: Arc<dyn WorkerRegistry>) -> Self {
        self.registry = Some(registry);
        self
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
    let registration = worker.registry.map(|registry| Registration {
        info: WorkerInfo {
            id: WorkerInfo::new_id(&worker.config.identity),
            identity: worker.config.identity.clone(),
            queues: worker.processor.queues().to_vec(),
            concurrency: u32::try_from(worker.config.concurrency).unwrap_or(u32::MAX),
            in_flight: 0,
            leased: 0,
            completed: 0,
            failed: 0,
            retried: 0,
            started_at: chrono::Utc::now(),
            last_seen: chrono::Utc::now(),
        },
        registry,
    });
    let shared = Arc::new(Shared {
        consumer: Arc::clone(worker.processor.consumer()),
        slots: Arc::new(Semaphore::new(worker.config.concurrency)),
        held: Arc::new(Semaphore::new(worker.config.most_held())),
        job_ended: Notify::new(),
        run_nanos: AtomicU64::new(0),
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
            prefetch = shared.config.prefetch,
            lease_ms = millis(lease_for),
            heartbeat_ms = millis(shared.heartbeat_interval()),
            recovery_ms = millis(shared.config.recovery_interval_for(lease_for)),
            grace_ms = millis(shared.config.shutdown_grace),
            "worker started"
        );
        let ending = tokio::select! {
            ending = serve(&shared, shutdown, force) => ending,
            never = registry_loop(&shared, registration.as_ref()) => match never {},
            never = heartbeat_loop(&shared) => match never {},
            never = recovery_loop(&shared) => match never {},
            never = purge_loop(&shared) => match never {},
            never = summary_loop(&shared) => match never {},
        };
        if let Some(registration) = &registration {
            let left = registration.registry.leave(&registration.info.id);
            match tokio::time::timeout(RELEASE_TIMEOUT, left).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!("cannot leave the worker registry: {e}"),
                Err(_) => debug!("cannot leave the worker registry: timed out"),
            }
        }
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

/// How much work the prefetch buffer holds for each slot: as many jobs as the slot is expected
/// to run in this time (from the average run time), up to the configured prefetch. Jobs much
/// longer than this are not fetched ahead at all, so they stay in the queue for idle workers.
const PREFETCH_HORIZON: Duration = Duration::from_millis(20);

/// State shared by the fetch loop, the job tasks and the background loops.
struct Shared {
    processor: Arc<Processor>,
    /// The processor's consumer, for heartbeats, idle waits and releases.
    consumer: Arc<dyn Consumer>,
    maintenance: Arc<dyn Maintenance>,
    config: WorkerConfig,
    stats: Arc<WorkerStats>,
    lease_for: Duration,
    /// One permit per concurrency slot: a job holds one while its renderer runs.
    slots: Arc<Semaphore>,
    /// One permit per lease this worker may hold (`concurrency + prefetch`): a job holds one from
    /// its lease until its outcome is stored or it is released. Acquiring every permit means the
    /// worker holds no lease: that is how shutdown waits for its jobs.
    held: Arc<Semaphore>,
    /// Signalled each time a job lets its lease go, for a fetch loop waiting to top up.
    job_ended: Notify,
    /// Average run time of a job (renderer only), in nanoseconds: an exponentially weighted
    /// average of the last few, 0 before the first.
    run_nanos: AtomicU64,
    /// The leases held now, by job id. A std mutex: held only to copy or change an entry, never
    /// across an await.
    active: Mutex<HashMap<JobId, Active>>,
}

/// A held lease, as the heartbeat and the shutdown see it.
struct Active {
    /// Shared with the job's task rather than copied: a lease carries its whole job.
    lease: Arc<Lease>,
    /// Tells the job task to stop; taken by whoever stops it first.
    stop: Option<oneshot::Sender<StopJob>>,
    /// The render's cancellation ([`Context::cancelled`](holidapp_core::Context::cancelled)).
    cancel: CancellationToken,
    /// Whether the job has started to run (before that it waits in the prefetch buffer).
    running: bool,
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
    /// A heartbeat found the job cancelled: tell the render, drop it, store nothing.
    Cancelled,
}

impl Shared {
    fn heartbeat_interval(&self) -> Duration {
        self.lease_for / 3
    }

    /// How many leases the worker should hold now: one per slot, plus what the slots are
    /// expected to run within [`PREFETCH_HORIZON`] at the average run time so far (none before the
    /// first job ran), up to the configured prefetch.
    fn wanted_held(&self) -> usize {
        let concurrency = self.config.concurrency;
        let run = self.run_nanos.load(Ordering::Relaxed).max(1);
        let ahead = (PREFETCH_HORIZON.as_nanos() as u64 / run).saturating_mul(concurrency as u64);
        let ahead = if self.run_nanos.load(Ordering::Relaxed) == 0 {
            0
        } else {
            usize::try_from(ahead).unwrap_or(usize::MAX)
        };
        concurrency + ahead.min(self.config.prefetch)
    }

    /// Folds one job's run time into the average (weight 1/8: the last few dozen jobs count).
    fn note_run_time(&self, took: Duration) {
        let sample = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).max(1);
        let old = self.run_nanos.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        self.run_nanos.store(new.max(1), Ordering::Relaxed);
    }

    /// How many leases the worker holds now.
    fn held_now(&self) -> usize {
        self.config.most_held() - self.held.available_permits()
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Active>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells the task running `lease`'s job to stop, if that lease is still the one it runs;
    /// for a cancelled job, tells its render first.
    fn stop_job(&self, id: JobId, token: LeaseToken, why: StopJob) {
        let stop = self
            .active()
            .get_mut(&id)
            .filter(|a| a.lease.token == token)
            .and_then(|a| Some((a.stop.take()?, a.cancel.clone())));
        if let Some((sender, cancel)) = stop {
            if why == StopJob::Cancelled {
                cancel.cancel();
            }
            let _ = sender.send(why);
        }
    }

    /// Records a heartbeat's answers: stops the jobs found cancelled at once, and abandons the
    /// jobs whose lease was reported lost twice in a row.
    fn heartbeat_answered(&self, leases: &[Lease], held: &[Renewal]) {
        let stop: Vec<(JobId, LeaseToken, StopJob)> = {
            let mut active = self.active();
            leases
                .iter()
                .zip(held)
                .filter_map(|(lease, &renewal)| {
                    let job = active
                        .get_mut(&lease.id())
                        .filter(|a| a.lease.token == lease.token)?;
                    let lost = renewal == Renewal::Lost;
                    let reported_before = std::mem::replace(&mut job.reported_lost, lost);
                    if lost && !reported_before {
                        debug!(job = %lease.id(), "a heartbeat found the lease no longer held");
                    }
                    match renewal {
                        Renewal::Cancelled => Some(StopJob::Cancelled),
                        Renewal::Lost if reported_before => Some(StopJob::LeaseLost),
                        _ => None,
                    }
                    .map(|why| (lease.id(), lease.token, why))
                })
                .collect()
        };
        for (id, token, why) in stop {
            self.stop_job(id, token, why);
        }
    }
}

/// The fetch loop, then the shutdown: release the jobs not started, wait for the running ones,
/// release what is left.
async fn serve(
    shared: &Arc<Shared>,
    shutdown: impl Future<Output = ()>,
    force: impl Future<Output = ()>,
) -> Ending {
    fetch_loop(shared, pin!(shutdown)).await;

    let grace = shared.config.shutdown_grace;
    let waiting = stop_jobs(shared, |a| !a.running);
    info!(
        in_flight = shared.held_now().saturating_sub(waiting),
        released = waiting,
        grace_ms = millis(grace),
        "shutting down: no new jobs; jobs not started go back to the queue, running jobs may \
         finish within the grace period"
    );
    let all = shared.config.most_held() as u32;
    let ending = tokio::select! {
        biased;
        _ = shared.held.acquire_many(all) => Ending::Drained,
        _ = force => Ending::Forced,
        _ = tokio::time::sleep(grace) => Ending::GraceExpired,
    };
    if ending != Ending::Drained {
        let unfinished = stop_jobs(shared, |_| true);
        info!(
            jobs = unfinished,
            forced = ending == Ending::Forced,
            "releasing unfinished jobs to the queue"
        );
    }
    // Releases, whether of jobs never started or of jobs stopped, take one bounded call each.
    let settle = RELEASE_TIMEOUT + Duration::from_secs(1);
    if tokio::time::timeout(settle, shared.held.acquire_many(all))
        .await
        .is_err()
    {
        warn!("some jobs did not stop in time; their leases will run out");
    }
    ending
}

/// Tells every job task whose lease `which` picks to stop and release its job; answers how many.
fn stop_jobs(shared: &Shared, which: impl Fn(&Active) -> bool) -> usize {
    let picked: Vec<(JobId, LeaseToken)> = shared
        .active()
        .values()
        .filter(|a| which(a))
        .map(|a| (a.lease.id(), a.lease.token))
        .collect();
    for &(id, token) in &picked {
        shared.stop_job(id, token, StopJob::Shutdown);
    }
    picked.len()
}

/// Leases jobs while the worker holds fewer than it wants ([`Shared::wanted_held`]), until
/// `shutdown` resolves.
///
/// Each call asks for the whole shortfall at once ([`Processor::lease_many`]): one round trip for
/// many jobs. While the worker holds what it wants, the loop waits for a job to let its lease go;
/// after finding the queues empty, it waits in
/// [`Consumer::wait_for_work`](holidapp_core::Consumer::wait_for_work).
async fn fetch_loop(shared: &Arc<Shared>, mut shutdown: Pin<&mut impl Future<Output = ()>>) {
    let mut backoff = Backoff::new(Backoff::CAP);
    loop {
        let want = shared.wanted_held().saturating_sub(shared.held_now());
        if want == 0 {
            tokio::select! {
                biased;
                _ = shutdown.as_mut() => return,
                _ = shared.job_ended.notified() => continue,
            }
        }
        let permits = match Arc::clone(&shared.held).try_acquire_many_owned(want as u32) {
            Ok(permits) => permits,
            // Another holder raced us for the permits: wait for one to come back.
            Err(_) => {
                tokio::select! {
                    biased;
                    _ = shutdown.as_mut() => return,
                    _ = shared.job_ended.notified() => continue,
                }
            }
        };
        let call = with_timeout(
            CALL_TIMEOUT,
            shared.processor.lease_many(&shared.config.identity, want),
        );
        let mut call = pin!(call);
        let answer = tokio::select! {
            biased;
            _ = shutdown.as_mut() => {
                // Let the call in flight finish: the backend may have handed jobs over already,
                // and they should go back to the queue now rather than when their lease runs out.
                if let Ok(leases) = call.await {
                    for lease in leases {
                        release(shared, &lease).await;
                    }
                }
                return;
            }
            answer = &mut call => answer,
        };
        let leases = match answer {
            Ok(leases) => leases,
            Err(e) => {
                drop(permits);
                shared.stats.add(Counter::BackendErrors, 1);
                let delay = backoff.next_delay();
                warn!(error = %e, retry_in_ms = millis(delay), "could not lease a job");
                tokio::select! {
                    biased;
                    _ = shutdown.as_mut() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                continue;
            }
        };
        backoff.reset();
        let found = leases.len();
        let mut permits = permits;
        for lease in leases {
            let Some(held) = permits.split(1) else {
                // More jobs than asked for: never expected; hand the rest back.
                release(shared, &lease).await;
                continue;
            };
            start_job(shared, lease, held);
        }
        drop(permits);
        if found < want {
            // The queues are (momentarily) empty: wait for work, unless jobs already started
            // will want topping up first.
            if found > 0 {
                continue;
            }
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

/// Registers a leased job and runs it in its own task, holding `held` until it lets the lease go.
fn start_job(shared: &Arc<Shared>, lease: Lease, held: OwnedSemaphorePermit) {
    let lease = Arc::new(lease);
    let (stop_tx, stop_rx) = oneshot::channel();
    let cancel = CancellationToken::new();
    shared.active().insert(
        lease.id(),
        Active {
            lease: Arc::clone(&lease),
            stop: Some(stop_tx),
            cancel: cancel.clone(),
            running: false,
            reported_lost: false,
        },
    );
    shared.stats.add(Counter::Leased, 1);
    let span = debug_span!("job", job = %lease.id(), attempt = lease.attempt());
    let task = run_job(Arc::clone(shared), lease, held, stop_rx, cancel);
    tokio::spawn(task.instrument(span));
}

/// Removes a job from the active set when its task ends, however it ends.
struct ActiveGuard {
    shared: Arc<Shared>,
    id: JobId,
    token: LeaseToken,
    /// The lease's permit, given back last.
    held: Option<OwnedSemaphorePermit>,
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
        drop(self.held.take());
        self.shared.job_ended.notify_one();
        if std::thread::panicking() {
            self.shared.stats.add(Counter::Crashed, 1);
            error!(
                job = %self.id,
                "the job's task panicked; its lease will run out and the queue will retry it"
            );
        }
    }
}

/// Counts a running job in `busy` while it lives.
struct Busy<'a>(&'a WorkerStats);

impl<'a> Busy<'a> {
    fn start(stats: &'a WorkerStats) -> Self {
        stats.job_started();
        Busy(stats)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.job_ended();
    }
}

/// Runs one leased job to its end, or until it is told to stop: waits for a slot (the job is in
/// the prefetch buffer meanwhile), runs the renderer, gives the slot to the next job, and stores
/// the outcome.
async fn run_job(
    shared: Arc<Shared>,
    lease: Arc<Lease>,
    held: OwnedSemaphorePermit,
    stop: oneshot::Receiver<StopJob>,
    cancel: CancellationToken,
) {
    let _guard = ActiveGuard {
        shared: Arc::clone(&shared),
        id: lease.id(),
        token: lease.token,
        held: Some(held),
    };
    // A dropped sender (never expected) must not end the job: wait for it to finish instead.
    let stopped = async {
        match stop.await {
            Ok(why) => why,
            Err(_) => std::future::pending().await,
        }
    };
    let mut stopped = pin!(stopped);
    let slot = tokio::select! {
        biased;
        why = &mut stopped => return stop_before_end(&shared, &lease, why, None).await,
        slot = Arc::clone(&shared.slots).acquire_owned() => match slot {
            Ok(slot) => slot,
            Err(_) => return,
        },
    };
    if let Some(active) = shared
        .active()
        .get_mut(&lease.id())
        .filter(|a| a.lease.token == lease.token)
    {
        active.running = true;
    }
    let started = Instant::now();
    debug!("job started");
    // Biased towards the job: when it has already finished, its outcome is what counts.
    let ran = {
        let _busy = Busy::start(&shared.stats);
        tokio::select! {
            biased;
            ran = shared.processor.run_with(&lease, cancel.clone()) => ran,
            why = &mut stopped => {
                return stop_before_end(&shared, &lease, why, Some(started)).await;
            }
        }
    };
    // A render that ended because it heard of its cancellation has nothing to store.
    if cancel.is_cancelled() {
        return stop_before_end(&shared, &lease, StopJob::Cancelled, Some(started)).await;
    }
    shared.note_run_time(started.elapsed());
    drop(slot);
    let outcome = tokio::select! {
        biased;
        stored = shared.processor.store(&lease, ran, started.into_std()) => stored,
        why = &mut stopped => {
            return stop_before_end(&shared, &lease, why, Some(started)).await;
        }
    };
    record(&shared.stats, lease.id(), outcome);
}

/// What a job task does when told to stop before its job ended.
async fn stop_before_end(shared: &Shared, lease: &Lease, why: StopJob, started: Option<Instant>) {
    match why {
        StopJob::LeaseLost => {
            shared.stats.add(Counter::LeaseLost, 1);
            warn!(
                job = %lease.id(),
                elapsed_ms = started.map_or(0, |s| millis(s.elapsed())),
                outcome = "lease lost",
                "heartbeats found the lease taken over; job abandoned"
            );
        }
        StopJob::Shutdown => release(shared, lease).await,
        StopJob::Cancelled => {
            shared.stats.add(Counter::Cancelled, 1);
            info!(
                job = %lease.id(),
                elapsed_ms = started.map_or(0, |s| millis(s.elapsed())),
                outcome = "cancelled",
                "the job was cancelled; its render was stopped and nothing is stored"
            );
        }
    }
}

/// Counts and logs how a job's attempt ended: at `debug` for a completed job (the summary line
/// counts them at `info`), at `warn` for the others.
fn record(stats: &WorkerStats, job: JobId, outcome: holidapp_core::Result<Processed>) {
    let Processed {
        result, duration, ..
    } = match outcome {
        Ok(processed) => processed,
        Err(e) => {
            stats.add(Counter::Unrecorded, 1);
            stats.add(Counter::BackendErrors, 1);
            warn!(
                %job,
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
            debug!(duration_ms, outcome = "complete", "job done");
        }
        JobOutcome::Retrying { reason } => {
            stats.add(Counter::Retried, 1);
            warn!(%job, duration_ms, outcome = "retrying", %reason, "job attempt failed; the queue will retry it");
        }
        JobOutcome::Failed { reason } => {
            stats.add(Counter::Failed, 1);
            warn!(%job, duration_ms, outcome = "failed", %reason, "job failed");
        }
        JobOutcome::LeaseLost => {
            stats.add(Counter::LeaseLost, 1);
            warn!(
                %job,
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
            debug!(job = %lease.id(), outcome = "released", "job released to the queue");
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

/// Renews every held lease (running, buffered or being stored) in one call, every third of the
/// lease.
async fn heartbeat_loop(shared: &Shared) -> Infallible {
    let every = shared.heartbeat_interval();
    let mut backoff = Backoff::new(every.min(Backoff::CAP));
    let mut wait = every;
    loop {
        tokio::time::sleep(wait).await;
        wait = every;
        let leases: Vec<Lease> = shared
            .active()
            .values()
            .map(|a| Lease::clone(&a.lease))
            .collect();
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
/// A worker's entry in the worker registry.
struct Registration {
    registry: Arc<dyn WorkerRegistry>,
    /// What it beats, its counters refreshed before each beat.
    info: WorkerInfo,
}

/// Beats the worker's entry every [`BEAT_INTERVAL`](holidapp_core::workers::BEAT_INTERVAL)
/// with its counters; without a registry, waits forever. A failed beat is logged and counted;
/// the next one tries again.
async fn registry_loop(shared: &Shared, registration: Option<&Registration>) -> Infallible {
    let Some(registration) = registration else {
        return std::future::pending().await;
    };
    let mut info = registration.info.clone();
    loop {
        let s = shared.stats.snapshot();
        info.in_flight = s.busy;
        info.leased = s.leased;
        info.completed = s.completed;
        info.failed = s.failed;
        info.retried = s.retried;
        let beat = registration.registry.beat(&info, workers::ENTRY_TTL);
        match tokio::time::timeout(CALL_TIMEOUT, beat).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                shared.stats.add(Counter::BackendErrors, 1);
                debug!("cannot beat the worker registry: {e}");
            }
            Err(_) => {
                shared.stats.add(Counter::BackendErrors, 1);
                debug!("cannot beat the worker registry: timed out");
            }
        }
        tokio::time::sleep(workers::BEAT_INTERVAL).await;
    }
}

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
        cancelled = s.cancelled,
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
