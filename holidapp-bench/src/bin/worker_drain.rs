//! Drain throughput of real `holidapp-worker` processes against a `redis-server` this benchmark
//! starts (no persistence, on a free port), in jobs per second and Redis CPU per job, for this
//! build and, with `--baseline-bin`, paired against another build's worker.
//!
//! - **No-op jobs** (`HOLIDAPP_RENDERER=noop`: what the worker and the queue cost per job), for
//!   each backlog size (20,000 and 200,000 by default), at the worker's **default** settings and
//!   at its **best** setting (`HOLIDAPP_WORKER_CONCURRENCY=32` by default), with 1 and 2 worker
//!   processes. The backlog is enqueued first; then the workers start. The drain's time runs
//!   from the first job's lease (its `started_at`, on Redis's clock) to the last job's
//!   `finished_at`, so process start-up is left out; Redis CPU is `used_cpu_user + used_cpu_sys`
//!   of `INFO cpu` from before the workers start to the moment every job is complete, divided by
//!   the jobs.
//! - **Real plots** (`HOLIDAPP_RENDERER=plot`): the default 800x600 per-year histogram of 45,000
//!   HGNC-shaped records, loaded into Redis first, over year ranges that differ from job to job,
//!   at the worker's default settings. The workers start first and each runs a warm-up job (a
//!   plot worker loads the data set once per process); then the clock starts, the jobs are
//!   bulk-enqueued and the clock stops when every job is complete. The last result is checked to
//!   be an 800x600 PNG. The same plots rendered by the renderer alone, one task per core in this
//!   process, give the ceiling a worker is compared with.
//!
//! Runs are interleaved: in each round every measure runs once with each build, the builds in
//! alternating order, so that both see the same machine. Medians and ranges are reported. Redis
//! is emptied between measures.
//!
//! With `--mix priorities` (or `both`, interleaved with the plain backlog), the no-op backlog has
//! ten priority levels and one job in ten delayed by a second (due by the time the workers
//! start): what leasing by priority and promoting due jobs cost against the plain drain.
//!
//! `cargo run --release -p holidapp-bench --bin worker_drain [-- --runs N --baseline-bin PATH ...]`

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use clap::Parser;
use holidapp_bench::drain::{CommandStats, Worker, all_complete, drain_time, redis_cpu, stop_all};
use holidapp_bench::{per_second, plot_job};
use holidapp_core::plot::redis::RedisDataStore;
use holidapp_core::plot::{DataSet, DataStore, MemoryPlotStore, PlotParams, PlotRenderer};
use holidapp_core::redis_backend::RedisBackend;
use holidapp_core::testing::{RedisServer, RedisServerOptions};
use holidapp_core::{
    Context, Job, JobId, JobStore, Producer, QueueName, QueueSettings, Renderer, ResultState,
};

#[derive(Parser)]
struct Args {
    /// Backlog sizes of no-op jobs, comma-separated (0: skip the no-op jobs).
    #[arg(long, value_delimiter = ',', default_values_t = [20_000usize, 200_000])]
    backlogs: Vec<usize>,
    /// Plot jobs per run (0: skip the plots).
    #[arg(long, default_value_t = 2000)]
    plots: usize,
    /// Records in the data set the plots are drawn from.
    #[arg(long, default_value_t = 45_000)]
    records: usize,
    /// HOLIDAPP_WORKER_CONCURRENCY of the best setting for no-op jobs.
    #[arg(long, default_value_t = 32)]
    best_concurrency: u32,
    /// Worker processes side by side, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2])]
    processes: Vec<usize>,
    /// Rounds; each runs every measure once with each build.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// The `holidapp-worker` binary to measure (default: build this workspace's).
    #[arg(long)]
    worker_bin: Option<PathBuf>,
    /// Another build's `holidapp-worker`, measured in pairs with the first.
    #[arg(long)]
    baseline_bin: Option<PathBuf>,
    /// Prints where Redis spent its time in each drain: `INFO commandstats` (commands run by
    /// scripts included), per drained job.
    #[arg(long)]
    commandstats: bool,
    /// Which no-op backlogs: `plain` (every job of priority 0, none delayed), `priorities` (ten
    /// priority levels, job `i` at level `i % 10`, and every tenth job delayed by a second, so due
    /// by the time the workers start), or `both`, interleaved in each round.
    #[arg(long, value_enum, default_value_t = MixArg::Plain)]
    mix: MixArg,
    /// Replicas of the benchmark's Redis to start, each kept in sync; the workers run with
    /// HOLIDAPP_REDIS_WAIT_REPLICAS set to their number, so every completion waits for them
    /// (a build without the setting ignores it: pair one against a build with it to see its cost).
    #[arg(long, default_value_t = 0)]
    wait_replicas: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum MixArg {
    Plain,
    Priorities,
    Both,
}

/// How a no-op backlog is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Mix {
    /// Priority 0, none delayed.
    Plain,
    /// Ten priority levels, one job in ten delayed by a second.
    Priorities,
}

/// What one measure drains and how the workers are set.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Case {
    /// `noop` or `plot`.
    renderer: &'static str,
    jobs: usize,
    mix: Mix,
    /// `default`, or `concurrency N`.
    setting: Setting,
    processes: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Setting {
    Default,
    Concurrency(u32),
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Setting::Default => f.write_str("defaults"),
            Setting::Concurrency(n) => write!(f, "concurrency {n}"),
        }
    }
}

/// One measure's figures.
#[derive(Clone, Copy, Debug)]
struct Measure {
    jobs_per_second: u64,
    redis_cpu_us_per_job: f64,
    /// CPU time of the worker processes (every thread, start-up included) per drained job.
    worker_cpu_us_per_job: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    let current = match args.worker_bin.clone() {
        Some(bin) => bin,
        None => holidapp_bench::drain::build_worker()?,
    };
    let mut builds = vec![("this build", current)];
    if let Some(baseline) = args.baseline_bin.clone() {
        builds.push(("baseline", baseline));
    }
    let server = RedisServer::start();
    let replicas: Vec<RedisServer> = (0..args.wait_replicas)
        .map(|_| {
            RedisServer::start_with(RedisServerOptions {
                replica_of: Some(server.port()),
                ..RedisServerOptions::default()
            })
        })
        .collect();
    if !replicas.is_empty() {
        server.wait_for_replicas(replicas.len()).await;
        println!(
            "worker_drain: {} replica(s) in sync; workers wait for them on every completion",
            replicas.len()
        );
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "worker_drain: {cores} cores, redis-server on port {}, {} rounds",
        server.port(),
        args.runs
    );

    let mixes: &[Mix] = match args.mix {
        MixArg::Plain => &[Mix::Plain],
        MixArg::Priorities => &[Mix::Priorities],
        MixArg::Both => &[Mix::Plain, Mix::Priorities],
    };
    let mut cases = Vec::new();
    for &jobs in args.backlogs.iter().filter(|&&jobs| jobs > 0) {
        for setting in [
            Setting::Default,
            Setting::Concurrency(args.best_concurrency),
        ] {
            for &processes in &args.processes {
                for &mix in mixes {
                    cases.push(Case {
                        renderer: "noop",
                        jobs,
                        mix,
                        setting,
                        processes,
                    });
                }
            }
        }
    }
    let data = if args.plots > 0 {
        for &processes in &args.processes {
            cases.push(Case {
                renderer: "plot",
                jobs: args.plots,
                mix: Mix::Plain,
                setting: Setting::Default,
                processes,
            });
        }
        Some(holidapp_bench::hgnc_records(args.records)?)
    } else {
        None
    };

    let mut results: BTreeMap<(Case, usize), Vec<Measure>> = BTreeMap::new();
    let mut alone = Vec::new();
    for round in 0..args.runs {
        if let Some(data) = &data {
            alone.push(render_alone(data, args.plots, cores).await?);
        }
        for case in &cases {
            let mut order: Vec<usize> = (0..builds.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for b in order {
                let measure = measure(
                    &server,
                    &builds[b].1,
                    case,
                    data.as_ref(),
                    args.commandstats,
                    args.wait_replicas,
                )
                .await?;
                results.entry((case.clone(), b)).or_default().push(measure);
            }
        }
        println!("round {} of {} done", round + 1, args.runs);
    }

    println!();
    let mut header = String::from("| jobs | backlog | workers | setting |");
    for (name, _) in &builds {
        write!(
            header,
            " {name}: jobs/s, median [range] | Redis µs/job | worker µs/job |"
        )?;
    }
    if builds.len() == 2 {
        header.push_str(" change |");
    }
    println!("{header}");
    println!("{}", "|---".repeat(header.matches('|').count() - 1) + "|");
    for case in &cases {
        let renderer = match case.mix {
            Mix::Plain => case.renderer.to_owned(),
            Mix::Priorities => format!("{} (10 priorities, 10% delayed)", case.renderer),
        };
        let mut line = format!(
            "| {renderer} | {} | {} | {} |",
            case.jobs, case.processes, case.setting
        );
        let mut medians = Vec::new();
        for b in 0..builds.len() {
            let measures = &results[&(case.clone(), b)];
            let mut rates: Vec<u64> = measures.iter().map(|m| m.jobs_per_second).collect();
            let median_of = |of: fn(&Measure) -> f64| {
                let mut all: Vec<f64> = measures.iter().map(of).collect();
                all.sort_by(f64::total_cmp);
                all[all.len() / 2]
            };
            rates.sort_unstable();
            let median = rates[rates.len() / 2];
            medians.push(median as f64);
            write!(
                line,
                " {median} [{}–{}] | {:.1} | {:.1} |",
                rates[0],
                rates[rates.len() - 1],
                median_of(|m| m.redis_cpu_us_per_job),
                median_of(|m| m.worker_cpu_us_per_job),
            )?;
        }
        if let [now, before] = medians[..] {
            write!(line, " {:+.0} % |", (now / before - 1.0) * 100.0)?;
        }
        println!("{line}");
    }
    if !alone.is_empty() {
        alone.sort_unstable();
        println!(
            "\nthe renderer alone, {cores} tasks in one process: median {} plots/s [{}–{}]",
            alone[alone.len() / 2],
            alone[0],
            alone[alone.len() - 1]
        );
    }
    Ok(())
}

/// One measure of `case` with the worker `bin`, on an emptied Redis.
async fn measure(
    server: &RedisServer,
    bin: &Path,
    case: &Case,
    data: Option<&DataSet>,
    commandstats: bool,
    wait_replicas: u16,
) -> anyhow::Result<Measure> {
    let mut config = server.config("worker_drain");
    config.prefix = "bench".to_owned();
    let backend = RedisBackend::connect(&config, QueueSettings::default()).await?;
    // No response deadline: emptying Redis after a drain of 200,000 jobs takes a while.
    let no_deadline = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut admin = redis::Client::open(config.url.as_str())?
        .get_multiplexed_async_connection_with_config(&no_deadline)
        .await?;
    redis::cmd("FLUSHALL").query_async::<()>(&mut admin).await?;
    let spawn = |processes: usize| -> anyhow::Result<Vec<Worker>> {
        (0..processes)
            .map(|p| {
                let mut env = vec![
                    ("REDIS_URL", config.url.clone()),
                    ("HOLIDAPP_PREFIX", config.prefix.clone()),
                    ("HOLIDAPP_RENDERER", case.renderer.to_owned()),
                ];
                if let Setting::Concurrency(n) = case.setting {
                    env.push(("HOLIDAPP_WORKER_CONCURRENCY", n.to_string()));
                }
                if wait_replicas > 0 {
                    env.push(("HOLIDAPP_REDIS_WAIT_REPLICAS", wait_replicas.to_string()));
                }
                Worker::spawn(bin, &env, p)
            })
            .collect()
    };
    let measure = if case.renderer == "plot" {
        let data = data.ok_or_else(|| anyhow::anyhow!("plots need a data set"))?;
        RedisDataStore::new(backend.conn().clone(), &config.prefix)
            .replace(data.clone())
            .await?;
        let mut workers = spawn(case.processes)?;
        for worker in &workers {
            worker.wait_started().await?;
        }
        let warm = warm_up(&backend, case.processes).await?;
        redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async::<()>(&mut admin)
            .await?;
        let cpu = redis_cpu(&mut admin).await?;
        let jobs = jobs(case.jobs);
        let started = Instant::now();
        backend.enqueue_all(&jobs).await?;
        all_complete(&backend, warm + jobs.len()).await?;
        let elapsed = started.elapsed();
        let cpu = redis_cpu(&mut admin).await? - cpu;
        let worker_cpu = stop_all(&mut workers)?;
        if commandstats {
            print_commandstats(&mut admin, bin, case).await?;
        }
        check_png(&backend, &jobs).await?;
        figures(case.jobs, elapsed, cpu, worker_cpu)
    } else {
        let mut jobs = jobs(case.jobs);
        if case.mix == Mix::Priorities {
            let due = Utc::now() + chrono::Duration::seconds(1);
            for (i, job) in jobs.iter_mut().enumerate() {
                job.priority = (i % 10) as i32;
                if i % 10 == 5 {
                    job.run_at = Some(due);
                }
            }
        }
        backend.enqueue_all(&jobs).await?;
        // The delayed jobs are due before the workers start.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async::<()>(&mut admin)
            .await?;
        let cpu = redis_cpu(&mut admin).await?;
        let mut workers = spawn(case.processes)?;
        all_complete(&backend, jobs.len()).await?;
        let cpu = redis_cpu(&mut admin).await? - cpu;
        let worker_cpu = stop_all(&mut workers)?;
        if commandstats {
            print_commandstats(&mut admin, bin, case).await?;
        }
        figures(
            case.jobs,
            drain_time(&backend, &jobs).await?,
            cpu,
            worker_cpu,
        )
    };
    redis::cmd("FLUSHALL").query_async::<()>(&mut admin).await?;
    Ok(measure)
}

fn figures(jobs: usize, elapsed: Duration, redis_seconds: f64, worker_seconds: f64) -> Measure {
    Measure {
        jobs_per_second: per_second(jobs, elapsed),
        redis_cpu_us_per_job: redis_seconds * 1e6 / jobs as f64,
        worker_cpu_us_per_job: worker_seconds * 1e6 / jobs as f64,
    }
}

/// Prints `INFO commandstats` since the last reset: calls and microseconds per drained job.
async fn print_commandstats(
    conn: &mut redis::aio::MultiplexedConnection,
    bin: &Path,
    case: &Case,
) -> anyhow::Result<()> {
    println!(
        "commandstats, {} ({} jobs, {} x {}):",
        bin.display(),
        case.jobs,
        case.processes,
        case.setting
    );
    print!("{}", CommandStats::read(conn).await?.per_job(case.jobs));
    Ok(())
}

/// Runs warm-up jobs until each of `processes` workers has done one; answers how many were
/// submitted.
async fn warm_up(backend: &RedisBackend, processes: usize) -> anyhow::Result<usize> {
    let mut submitted = 0;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let warm = jobs(processes * 4);
        backend.enqueue_all(&warm).await?;
        submitted += warm.len();
        all_complete(backend, submitted).await?;
        for job in &warm {
            if let Some(worker) = backend.get(job.id).await?.and_then(|j| j.worker) {
                seen.insert(worker);
            }
        }
        if seen.len() == processes {
            return Ok(submitted);
        }
    }
    anyhow::bail!("a worker did no warm-up job")
}

/// The same plots rendered by the plot renderer alone, `cores` at a time: plots per second.
async fn render_alone(data: &DataSet, plots: usize, cores: usize) -> anyhow::Result<u64> {
    let store = Arc::new(MemoryPlotStore::new());
    store.replace(data.clone()).await?;
    let renderer = Arc::new(PlotRenderer::new(store));
    let queue = QueueName::default_queue();
    let params = |i: usize| {
        let start = 1975 + (i % 30);
        PlotParams::new(start.to_string(), (start + 20).to_string())
    };
    let ctx = Context::new(JobId::new_in(&queue), "plot", queue.clone(), 1);
    renderer.render(params(0), &ctx).await?;
    let started = Instant::now();
    let tasks = (0..cores).map(|c| {
        let renderer = Arc::clone(&renderer);
        let ctx = ctx.clone();
        tokio::spawn(async move {
            for i in (c..plots).step_by(cores) {
                renderer.render(params(i), &ctx).await?;
            }
            anyhow::Ok(())
        })
    });
    for task in futures::future::join_all(tasks).await {
        task??;
    }
    Ok(per_second(plots, started.elapsed()))
}

/// Checks that the last plot job's result is an 800x600 PNG.
async fn check_png(backend: &RedisBackend, jobs: &[Job]) -> anyhow::Result<()> {
    let png = match jobs.last() {
        Some(job) => backend.result(job.id).await?,
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
    Ok(())
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
    let now = Utc::now();
    (0..n)
        .map(|i| {
            let start = 1975 + (i % 30);
            plot_job(&start.to_string(), &(start + 20).to_string(), now)
        })
        .collect()
}
