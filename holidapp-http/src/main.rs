//! `holidapp-api`: the Holidapp HTTP API.
//!
//! Configuration comes from the environment (or the matching flags; `--help` lists them with
//! their defaults). With Redis configured (`REDIS_URL` or `REDIS_IP`) it serves from Redis and
//! jobs are run by separate `holidapp-worker` processes. Without Redis it keeps everything in
//! memory and runs a worker pool in this process, so one command gives a complete system.
//!
//! SIGTERM or SIGINT stops it gracefully: no new connections, in-flight requests finish, and the
//! embedded worker pool finishes (or releases) its jobs within `HOLIDAPP_SHUTDOWN_GRACE_SECONDS`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use holidapp_core::plot::PlotRenderer;
use holidapp_core::{Jobs, Kinds, Processor, Renderer};
use holidapp_worker::Worker;
use holidapp_worker::config::{
    BackendArgs, DataArgs, LogArgs, QueueArgs, ScheduleArgs, WorkerArgs, init_logging,
};
use tokio::sync::watch;

/// The allocator: mimalloc (version 2) rather than the C library's. Under load, glibc's `malloc`
/// spent about a ninth of this server's time sorting its free lists for each request's futures,
/// which are larger than its per-thread cache takes; mimalloc keeps free lists per thread and per
/// size. `docs/operations.md` gives the measure and the memory it costs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The Holidapp HTTP API: submit analysis jobs, follow them, fetch their results.
///
/// Without Redis configured it runs everything in this process: the in-memory backend and a
/// worker pool.
#[derive(Debug, Parser)]
#[command(name = "holidapp-api", version)]
struct Config {
    /// Address to listen on. Port 0 picks a free port; the address is logged either way.
    #[arg(
        long = "bind",
        env = "HOLIDAPP_BIND",
        default_value = "127.0.0.1:5000",
        value_name = "ADDR"
    )]
    bind: SocketAddr,

    /// Where `POST /data` with no body loads from: a file path, an http(s) URL, or a bundled
    /// sample (`bundled:hgnc`, `bundled:meteorites`).
    #[arg(
        long = "data-source",
        env = "DATA_SOURCE",
        default_value = holidapp_core::plot::parse::BUNDLED_HGNC,
        value_name = "SOURCE"
    )]
    data_source: String,

    /// How long a client may take to send a request's headers, in seconds.
    #[arg(
        long = "header-timeout-seconds",
        env = "HOLIDAPP_HEADER_TIMEOUT_SECONDS",
        default_value_t = 10,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    header_timeout_seconds: u64,

    /// The most client connections served at once; more wait in the listen queue.
    #[arg(
        long = "max-connections",
        env = "HOLIDAPP_MAX_CONNECTIONS",
        default_value_t = 4096,
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..=1_000_000)
    )]
    max_connections: u64,

    /// The visits log: `GET /` appends a line (rotated past 1 MiB), `GET /visits` returns its
    /// newest lines.
    #[arg(
        long = "visits-log",
        env = "VISITS_LOG",
        default_value = "visits.log",
        value_name = "PATH"
    )]
    visits_log: PathBuf,

    /// The API token: when set, every request that may change state needs
    /// `Authorization: Bearer <token>` (16 to 1,024 printable characters; empty means unset).
    /// Give it in the environment, not as a flag, which other users of the machine can read.
    #[arg(
        long = "api-token",
        env = "HOLIDAPP_API_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    api_token: Option<String>,

    /// The read token: when set (with the API token), reads need it or the API token as well,
    /// except the probes and the dashboard's page.
    #[arg(
        long = "read-token",
        env = "HOLIDAPP_READ_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    read_token: Option<String>,

    #[command(flatten)]
    log: LogArgs,

    #[command(flatten)]
    backend: BackendArgs,

    #[command(flatten)]
    queue: QueueArgs,

    /// Settings of the embedded worker pool (used only without Redis), and the renderer of the
    /// kind `plot` (which also checks parameters at submit time).
    #[command(flatten)]
    worker: WorkerArgs,

    #[command(flatten)]
    data: DataArgs,

    #[command(flatten)]
    schedules: ScheduleArgs,
}

fn main() -> ExitCode {
    let config = Config::parse();
    if let Err(message) = init_logging(&config.log.log_level) {
        eprintln!("holidapp-api: {message}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// The tokens of the configuration: unset or empty values mean none; a read token needs an API
/// token.
fn auth(api_token: Option<&str>, read_token: Option<&str>) -> Result<holidapp_http::Auth, String> {
    fn given(value: Option<&str>) -> Option<&str> {
        value.filter(|v| !v.is_empty())
    }
    let token = |name: &str, value: &str| {
        holidapp_http::Token::new(value).map_err(|e| format!("{name}: {e}"))
    };
    match (given(api_token), given(read_token)) {
        (None, None) => Ok(holidapp_http::Auth::open()),
        (None, Some(_)) => Err("HOLIDAPP_READ_TOKEN needs HOLIDAPP_API_TOKEN as well: \
             a service whose reads are closed and writes open makes no sense"
            .to_owned()),
        (Some(write), read) => {
            let mut auth =
                holidapp_http::Auth::open().with_write_token(token("HOLIDAPP_API_TOKEN", write)?);
            if let Some(read) = read {
                auth = auth.with_read_token(token("HOLIDAPP_READ_TOKEN", read)?);
            }
            Ok(auth)
        }
    }
}

async fn run(config: Config) -> Result<(), String> {
    let auth = auth(config.api_token.as_deref(), config.read_token.as_deref())?;
    if auth.writes_need_token() {
        tracing::info!(
            reads_need_token = auth.reads_need_token(),
            "requests that change state need the API token"
        );
    } else {
        tracing::warn!("no HOLIDAPP_API_TOKEN: anyone who reaches this API can change its state");
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let shutdown = holidapp_core::CancellationToken::new();
    let mut embedded_pool = None;
    let mut metrics = holidapp_http::Metrics::new();

    let services = config.backend.connect(&config.queue, &config.data).await?;
    let plots = services.plots.clone().with_source(config.data_source);
    // The API checks and shows jobs with the real kinds; only the embedded workers may run a
    // stand-in renderer (`HOLIDAPP_RENDERER`).
    let product_kinds = Kinds::new().with(plots.renderer());
    let kinds = config.worker.renderer.kinds(&plots);
    match &services.redis {
        Some(backend) => {
            tracing::info!(
                prefix = %backend.prefix(),
                "backend: Redis; run holidapp-worker processes to execute jobs"
            );
            match backend.check_durability().await {
                Ok(warnings) => {
                    for warning in warnings {
                        tracing::warn!("Redis durability: {warning}");
                    }
                }
                Err(e) => tracing::warn!("cannot check Redis durability settings yet: {e}"),
            }
        }
        None => {
            let processor = Processor::new(
                services.backends.consumer.clone(),
                kinds.clone(),
                config.queue.lease(),
            )
            .with_queues(config.worker.queues.0.clone())
            .with_timeout(config.worker.job_timeout());
            let worker = Worker::new(
                Arc::new(processor),
                services.backends.maintenance.clone(),
                config.worker.worker_config(),
            )
            .with_registry(services.backends.workers.clone());
            tracing::info!(
                concurrency = worker.config.concurrency,
                renderer = %config.worker.renderer,
                queues = ?config.worker.queues.0,
                "backend: in memory (no Redis configured), with an embedded worker pool"
            );
            metrics = metrics.with_workers(Arc::clone(&worker.stats));
            let stopped = stopped(stop_rx.clone());
            embedded_pool = Some(tokio::spawn(holidapp_worker::run(worker, stopped)));
        }
    }

    let jobs = Jobs::new(&services.backends, product_kinds)
        .with_default_kind(<PlotRenderer as Renderer>::KIND)
        .with_max_attempts(config.queue.max_attempts);
    if let Some(scheduler) = config
        .schedules
        .scheduler(jobs.clone())
        .map_err(|e| format!("schedules: {e}"))?
    {
        tracing::info!(
            schedules = ?scheduler.schedules().map(|s| &s.name).collect::<Vec<_>>(),
            "running schedules"
        );
        let stop = stopped(stop_rx.clone());
        tokio::spawn(async move { scheduler.run(stop).await });
    }
    let limits = holidapp_http::Limits {
        data_body: usize::try_from(config.data.data_max_bytes).unwrap_or(usize::MAX),
        ..holidapp_http::Limits::default()
    };
    let state = holidapp_http::AppState::new(jobs)
        .with_limits(limits)
        .with_plots(plots)
        .with_metrics(Arc::new(metrics))
        .with_visits_log(config.visits_log)
        .with_auth(auth)
        .with_shutdown(shutdown.clone());
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
    let address = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    tracing::info!("listening on http://{address}");

    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests and jobs");
        let _ = stop_tx.send(true);
        shutdown.cancel();
    });
    let options = holidapp_http::ServeOptions {
        header_read_timeout: Duration::from_secs(config.header_timeout_seconds),
        max_connections: usize::try_from(config.max_connections).unwrap_or(usize::MAX),
        ..holidapp_http::ServeOptions::default()
    };
    let served = holidapp_http::serve_with(
        listener,
        holidapp_http::router(state),
        stopped(stop_rx.clone()),
        options,
    )
    .await;
    if let Some(pool) = embedded_pool {
        match pool.await {
            Ok(Ok(report)) => tracing::info!(?report, "embedded worker pool stopped"),
            Ok(Err(e)) => return Err(format!("embedded worker pool: {e}")),
            Err(e) => return Err(format!("embedded worker pool: {e}")),
        }
    }
    served.map_err(|e| format!("server error: {e}"))?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes once the stop flag is set.
async fn stopped(mut stop: watch::Receiver<bool>) {
    // An error means the sender is gone, which only happens at exit: stop as well.
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for SIGINT: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
