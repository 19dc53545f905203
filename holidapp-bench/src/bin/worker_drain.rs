//! Drain throughput of real `holidapp-worker` processes, 1 and then 2 of them side by side,
//! against a `redis-server` this benchmark starts (no persistence, on a free port):
//!
//! - no-op jobs (`HOLIDAPP_RENDERER=noop`): what the worker and the queue cost per job;
//! - real plots (`HOLIDAPP_RENDERER=plot`): the default 800x600 per-year histogram of 45,000
//!   HGNC-shaped records (the bundled sample repeated with new ids), loaded into Redis first, over
//!   year ranges that differ from job to job; the last result is checked to be an 800x600 PNG.
//!
//! Each run uses a fresh key prefix: it starts the worker processes, waits until each has logged
//! that it started and has run a warm-up job (so each plot worker has loaded the data set, which
//! it does once per process), then starts the clock, bulk-enqueues the jobs (one `enqueue_many`,
//! included in the time) and stops the clock when the store counts every job `complete`; then the
//! workers get SIGTERM. Workers log at `info`, as they ship: one line per job. The worker binary
//! is built first with the benchmark's own profile.
//!
//! `cargo run --release -p holidapp-bench --bin worker_drain [-- --runs N --jobs N --plots N ...]`

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use holidapp_bench::{per_second, plot_job};
use holidapp_core::plot::redis::RedisDataStore;
use holidapp_core::plot::{DataSet, DataStore};
use holidapp_core::redis_backend::RedisBackend;
use holidapp_core::store::total_counts;
use holidapp_core::testing::RedisServer;
use holidapp_core::{Job, JobStore, Producer, QueueSettings, ResultState};

#[derive(Parser)]
struct Args {
    /// No-op jobs per run (0: skip them).
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Plot jobs per run (0: skip the plots).
    #[arg(long, default_value_t = 2000)]
    plots: usize,
    /// Records in the data set the plots are drawn from.
    #[arg(long, default_value_t = 45_000)]
    records: usize,
    /// HOLIDAPP_WORKER_CONCURRENCY of each process for no-op jobs (they wait on Redis, not on
    /// the CPU, so more slots than cores pay off).
    #[arg(long, default_value_t = 32)]
    noop_concurrency: u32,
    /// HOLIDAPP_WORKER_CONCURRENCY of each process for plots (default: the number of cores,
    /// the worker's own default).
    #[arg(long)]
    plot_concurrency: Option<u32>,
    /// Runs of each measure; the median and the best are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// A `holidapp-worker` binary to measure instead of building one (to compare two builds).
    #[arg(long)]
    worker_bin: Option<PathBuf>,
}

/// One kind of job to drain.
struct Workload {
    name: &'static str,
    renderer: &'static str,
    jobs: usize,
    concurrency: u32,
    /// Data set loaded before the jobs are submitted.
    data: Option<DataSet>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let worker_bin = match args.worker_bin.clone() {
        Some(bin) => bin,
        None => build_worker()?,
    };
    let server = RedisServer::start();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    println!(
        "worker_drain: {cores} cores, redis-server on port {}, {} runs each",
        server.port(),
        args.runs
    );

    let workloads = [
        Workload {
            name: "no-op jobs",
            renderer: "noop",
            jobs: args.jobs,
            concurrency: args.noop_concurrency,
            data: None,
        },
        Workload {
            name: "800x600 plots",
            renderer: "plot",
            jobs: args.plots,
            concurrency: args.plot_concurrency.unwrap_or(cores),
            data: if args.plots > 0 {
                Some(holidapp_bench::hgnc_records(args.records)?)
            } else {
                None
            },
        },
    ];
    for workload in workloads.iter().filter(|w| w.jobs > 0) {
        for processes in [1, 2] {
            let mut rates = Vec::with_capacity(args.runs);
            for run in 0..args.runs {
                let prefix = format!("bench:worker_drain:{}:{processes}:{run}", workload.renderer);
                rates.push(drain(&server, &worker_bin, workload, processes, &prefix).await?);
            }
            rates.sort_unstable();
            println!(
                "{:<14} {processes} process(es) x concurrency {:>2}: median {:>7} jobs/s, best {:>7} jobs/s ({} jobs)",
                workload.name,
                workload.concurrency,
                rates[rates.len() / 2],
                rates[rates.len() - 1],
                workload.jobs,
            );
        }
    }
    Ok(())
}

/// Builds `holidapp-worker` with this benchmark's profile and answers its path.
fn build_worker() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let release = !cfg!(debug_assertions);
    let mut command = Command::new(cargo);
    command.args([
        "build",
        "-q",
        "-p",
        "holidapp-worker",
        "--bin",
        "holidapp-worker",
    ]);
    if release {
        command.arg("--release");
    }
    let status = command.status()?;
    anyhow::ensure!(status.success(), "building holidapp-worker failed");
    // This binary sits in the same target directory, profile folder included.
    let dir = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow::anyhow!("the benchmark binary has no directory"))?;
    let bin = dir.join("holidapp-worker");
    anyhow::ensure!(bin.exists(), "{} was not built", bin.display());
    Ok(bin)
}

/// One measured drain: answers jobs per second.
async fn drain(
    server: &RedisServer,
    worker_bin: &Path,
    workload: &Workload,
    processes: usize,
    prefix: &str,
) -> anyhow::Result<u64> {
    let mut config = server.config("worker_drain");
    config.prefix = prefix.to_owned();
    let backend = RedisBackend::connect(&config, QueueSettings::default()).await?;
    if let Some(data) = &workload.data {
        RedisDataStore::new(backend.conn().clone(), &config.prefix)
            .replace(data.clone())
            .await?;
    }
    let mut workers = Vec::with_capacity(processes);
    for p in 0..processes {
        let log = std::env::temp_dir().join(format!(
            "holidapp-worker-drain-{}-{p}.log",
            std::process::id()
        ));
        let child = Command::new(worker_bin)
            .env_clear()
            .env("REDIS_URL", &config.url)
            .env("HOLIDAPP_PREFIX", &config.prefix)
            .env("WORKER_IP", format!("bench-{p}"))
            .env("HOLIDAPP_RENDERER", workload.renderer)
            .env(
                "HOLIDAPP_WORKER_CONCURRENCY",
                workload.concurrency.to_string(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        workers.push(Worker { child, log });
    }
    for worker in &workers {
        worker.wait_started().await?;
    }

    // Warm up: every process runs a job first, so a plot worker has loaded the data set (once per
    // process, cached by its version) before the clock starts.
    let mut submitted = 0;
    for _ in 0..10 {
        if workers.iter().all(Worker::has_done_a_job) {
            break;
        }
        let warm = processes * workload.concurrency as usize;
        backend.enqueue_all(&jobs(warm)).await?;
        submitted += warm;
        all_complete(&backend, submitted).await?;
    }
    anyhow::ensure!(
        workers.iter().all(Worker::has_done_a_job),
        "a worker did no warm-up job"
    );

    let jobs = jobs(workload.jobs);
    let started = Instant::now();
    backend.enqueue_all(&jobs).await?;
    all_complete(&backend, submitted + jobs.len()).await?;
    let rate = per_second(jobs.len(), started.elapsed());
    for worker in &mut workers {
        worker.stop()?;
    }
    if workload.data.is_some() {
        let last = jobs.last().map(|j| j.id);
        let png = match last {
            Some(id) => backend.result(id).await?,
            None => None,
        };
        let size = match &png {
            Some(ResultState::Ready(output)) => png_size(output.bytes()),
            _ => None,
        };
        anyhow::ensure!(
            size == Some((800, 600)),
            "a plot job's result is not an 800x600 PNG"
        );
    }
    Ok(rate)
}

/// Width and height from a PNG's header.
fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    if !png.starts_with(b"\x89PNG\r\n\x1a\n") || png.get(12..16)? != b"IHDR" {
        return None;
    }
    let word = |at: usize| Some(u32::from_be_bytes(png.get(at..at + 4)?.try_into().ok()?));
    Some((word(16)?, word(20)?))
}

/// `n` jobs asking for the default plot (a per-year histogram) over 20-year ranges that move
/// from job to job, so consecutive plots differ.
fn jobs(n: usize) -> Vec<Job> {
    let now = chrono::Utc::now();
    (0..n)
        .map(|i| {
            let start = 1975 + (i % 30);
            plot_job(&start.to_string(), &(start + 20).to_string(), now)
        })
        .collect()
}

/// Waits until the store counts `n` jobs `complete`; fails if any job failed.
async fn all_complete(backend: &RedisBackend, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let counts = total_counts(&backend.stats().await?);
        if counts.complete == n as u64 {
            return Ok(());
        }
        anyhow::ensure!(
            counts.failed == 0,
            "{} jobs failed; see a worker's log",
            counts.failed
        );
        anyhow::ensure!(Instant::now() < deadline, "the drain took over 10 minutes");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A worker process of the benchmark, killed on drop if still running.
struct Worker {
    child: Child,
    log: PathBuf,
}

impl Worker {
    async fn wait_started(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(&self.log)?.contains("worker started") {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the worker did not start:\n{}",
                std::fs::read_to_string(&self.log)?
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    fn has_done_a_job(&self) -> bool {
        std::fs::read_to_string(&self.log).is_ok_and(|log| log.contains("job done"))
    }

    fn stop(&mut self) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let status = self.child.wait()?;
        anyhow::ensure!(status.success(), "a worker exited with {status}");
        Ok(())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
