//! `holidapp-worker`: runs Holidapp jobs from a shared Redis queue.
//!
//! Reads its configuration from the environment (or flags; `--help` lists them), connects to
//! Redis, and runs [`holidapp_worker::run_with_force`] until SIGTERM or SIGINT. The first signal
//! stops it gracefully (in-flight jobs get `HOLIDAPP_SHUTDOWN_GRACE_SECONDS` to finish, the rest
//! go back to the queue); a second one cuts the grace period short. It exits 0 after a shutdown,
//! and 2 when its configuration cannot work, including when no Redis is configured: a separate
//! worker process cannot share the API's in-memory store.

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use holidapp_core::redis_backend::RedisConfig;
use holidapp_core::{Jobs, Processor};
use holidapp_worker::config::{
    BackendArgs, DataArgs, LogArgs, QueueArgs, ScheduleArgs, WorkerArgs, init_logging,
};
use holidapp_worker::{Worker, run_with_force};
use tokio::sync::{oneshot, watch};
use tracing::{error, info, warn};

/// Runs Holidapp jobs from the Redis queues shared with `holidapp-api`: renders each job's plot
/// and stores the PNG, many jobs at once, many processes side by side.
///
/// Every setting is an environment variable (shown in brackets) that a flag overrides. Redis must
/// be configured (REDIS_URL, or REDIS_IP): for a one-process setup without Redis, run
/// `holidapp-api` alone, which has workers of its own.
#[derive(Parser, Debug)]
#[command(name = "holidapp-worker", version)]
struct Cli {
    #[command(flatten)]
    backend: BackendArgs,

    #[command(flatten)]
    queue: QueueArgs,

    #[command(flatten)]
    worker: WorkerArgs,

    #[command(flatten)]
    data: DataArgs,

    #[command(flatten)]
    schedules: ScheduleArgs,

    #[command(flatten)]
    log: LogArgs,
}

/// Exit code for a configuration that cannot work.
const BAD_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(message) = init_logging(&cli.log.log_level) {
        eprintln!("holidapp-worker: {message}");
        return ExitCode::from(BAD_CONFIG);
    }
    let Some(redis) = cli.backend.redis_config() else {
        error!(
            "no Redis configured: set REDIS_URL (or REDIS_IP). A worker process cannot share the \
             in-memory store of holidapp-api; without Redis, run holidapp-api alone, which runs \
             jobs in its own process"
        );
        return ExitCode::from(BAD_CONFIG);
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(work(cli, redis));
    // A job abandoned at shutdown may still be drawing on a blocking thread; its result is no
    // longer wanted, so do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

async fn work(cli: Cli, redis: RedisConfig) -> ExitCode {
    let services = match cli.backend.connect(&cli.queue, &cli.data).await {
        Ok(services) => services,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(BAD_CONFIG);
        }
    };
    info!(
        url = %redis.redacted_url(),
        prefix = %redis.prefix,
        renderer = %cli.worker.renderer,
        queues = ?cli.worker.queues.0,
        "backend: Redis"
    );
    if let Some(backend) = &services.redis {
        match backend.check_durability().await {
            Ok(warnings) => {
                for warning in warnings {
                    warn!("Redis durability: {warning}");
                }
            }
            Err(e) => warn!(
                "cannot check Redis durability settings yet (will keep trying to reach Redis): {e}"
            ),
        }
    }
    let kinds = cli.worker.renderer.kinds(&services.plots);
    let jobs =
        Jobs::new(&services.backends, kinds.clone()).with_max_attempts(cli.queue.max_attempts);
    let scheduler = match cli.schedules.scheduler(jobs) {
        Ok(scheduler) => scheduler,
        Err(e) => {
            error!("schedules: {e}");
            return ExitCode::from(BAD_CONFIG);
        }
    };
    let processor = Processor::new(services.backends.consumer.clone(), kinds, cli.queue.lease())
        .with_queues(cli.worker.queues.0.clone())
        .with_timeout(cli.worker.job_timeout());
    let worker = Worker::new(
        Arc::new(processor),
        services.backends.maintenance.clone(),
        cli.worker.worker_config(),
    )
    .with_registry(services.backends.workers.clone());
    let (shutdown, force) = match signals() {
        Ok(signals) => signals,
        Err(e) => {
            error!("cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The first signal stops both the worker and the scheduler.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut stop: watch::Receiver<bool>| async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    if let Some(scheduler) = scheduler {
        info!(
            schedules = ?scheduler.schedules().map(|s| &s.name).collect::<Vec<_>>(),
            "running schedules"
        );
        let stop = stopped(stop_rx.clone());
        tokio::spawn(async move { scheduler.run(stop).await });
    }
    match run_with_force(worker, stopped(stop_rx), force).await {
        Ok(report) => {
            info!(ending = ?report.ending, "stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!("{e}");
            ExitCode::from(BAD_CONFIG)
        }
    }
}

/// Two futures: the first resolves on the first SIGTERM or SIGINT, the second on the next one.
fn signals() -> std::io::Result<(impl Future<Output = ()>, impl Future<Output = ()>)> {
    let mut signals = Signals::new()?;
    let (first_tx, first_rx) = oneshot::channel::<()>();
    let (second_tx, second_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let name = signals.next().await;
        info!(
            signal = name,
            "stopping: no new jobs; send the signal again to stop at once"
        );
        let _ = first_tx.send(());
        let name = signals.next().await;
        warn!(
            signal = name,
            "second signal: releasing unfinished jobs and stopping now"
        );
        let _ = second_tx.send(());
    });
    // The task above never ends before the process does; a closed channel would mean it did, and
    // is not a reason to stop.
    let wait = |rx: oneshot::Receiver<()>| async move {
        if rx.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    Ok((wait(first_rx), wait(second_rx)))
}

/// SIGTERM (what Kubernetes and `docker stop` send) and SIGINT (Ctrl-C).
#[cfg(unix)]
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Ctrl-C, where there are no Unix signals.
#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Signals)
    }

    async fn next(&mut self) -> &'static str {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
