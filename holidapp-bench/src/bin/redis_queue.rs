//! Redis backend throughput, against a `redis-server` this benchmark starts (no persistence, on a
//! free port), for no-op jobs with leases and fencing on:
//!
//! - enqueue one by one from one process: concurrent callers sharing one backend, one
//!   `enqueue` call per job (the backend gathers calls made at the same moment into one script
//!   call, as it does for an API under load; `--callers 1` measures one caller alone);
//! - enqueue in bulk (`enqueue_many`);
//! - drain by one process (lease, render nothing, complete under the fencing token) with batch
//!   leases and batch completions, from a 20,000-job backlog and a 200,000-job one; and the same
//!   through the processing step, one `process_one` per job from concurrent tasks of one worker
//!   identity. The small backlog is enqueued and drained ten times over on one server (as many
//!   rounds as make the large backlog), so both figures drain as many jobs, over seconds rather
//!   than a fraction of one, and end with as many finished jobs kept: they differ only in the
//!   backlog each drain starts from;
//! - purge of the large backlog's jobs once finished and past retention (their hashes, results
//!   and index entries: finished jobs carry no Redis TTL, so this is how they leave);
//! - load of 45,000 HGNC-size records (the bundled HGNC sample's records, repeated with new ids).
//!
//! Besides the rates it prints the CPU time `redis-server` and the benchmark spent per job: on a
//! machine shared with other work the rates vary from run to run, the CPU costs much less.
//!
//! `cargo run --release -p holidapp-bench --bin redis_queue [-- --runs N --only bulk,drain ...]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::future::try_join_all;
use holidapp_bench::{noop_plot_kinds, per_second, plot_job};
use holidapp_core::plot::redis::RedisDataStore;
use holidapp_core::plot::{DataSet, DataStore};
use holidapp_core::redis_backend::RedisBackend;
use holidapp_core::testing::RedisServer;
use holidapp_core::{
    Consumer, Context, Job, JobOutput, Maintenance, ManualClock, Outcome, Processor, Producer,
    QueueName, QueueSettings, Renderer,
};
use holidapp_worker::NoopRenderer;

const LEASE: Duration = Duration::from_secs(30);

#[derive(Parser)]
struct Args {
    /// Jobs enqueued one by one.
    #[arg(long, default_value_t = 100_000)]
    single: usize,
    /// Concurrent callers of `enqueue` (one process, one connection).
    #[arg(long, default_value_t = 64)]
    callers: usize,
    /// Jobs enqueued in bulk.
    #[arg(long, default_value_t = 200_000)]
    bulk: usize,
    /// The small drain backlog.
    #[arg(long, default_value_t = 20_000)]
    small: usize,
    /// The large drain backlog.
    #[arg(long, default_value_t = 200_000)]
    large: usize,
    /// Times the small backlog is enqueued and drained in one run (default: large / small).
    #[arg(long)]
    small_rounds: Option<usize>,
    /// Jobs per lease call in the batched drain.
    #[arg(long, default_value_t = 200)]
    batch: usize,
    /// Concurrent lease loops in the batched drain.
    #[arg(long, default_value_t = 4)]
    loops: usize,
    /// Concurrent `process_one` tasks in the per-job drain.
    #[arg(long, default_value_t = 64)]
    tasks: usize,
    /// Records in the data load.
    #[arg(long, default_value_t = 45_000)]
    records: usize,
    /// Runs of each measure; the median and the best are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Also print the server's own time per script call (`INFO commandstats`) after each run.
    #[arg(long)]
    server_stats: bool,
    /// Run only these measures (comma-separated); all of them when absent.
    #[arg(long, value_delimiter = ',', value_enum)]
    only: Vec<Measure>,
}

/// The measures this benchmark takes, in the order it takes them.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Measure {
    /// Enqueue one call per job.
    Single,
    /// Enqueue in bulk.
    Bulk,
    /// Batched drain of both backlogs.
    Drain,
    /// `process_one` drain of both backlogs.
    ProcessOne,
    /// Purge of finished jobs past retention.
    Purge,
    /// Data set load.
    Data,
}

impl Args {
    fn runs(&self, measure: Measure) -> bool {
        self.only.is_empty() || self.only.contains(&measure)
    }

    /// Rounds of (enqueue, drain) for `backlog`: one for the large backlog, enough for the small
    /// one to drain as many jobs in all.
    fn rounds(&self, backlog: usize) -> usize {
        if backlog >= self.large {
            return 1;
        }
        self.small_rounds
            .unwrap_or(self.large / backlog.max(1))
            .max(1)
    }
}

/// One timed run: its rate, and the CPU time the server and this process spent per job.
///
/// On a machine where other work competes for the cores the rate varies from run to run; the CPU
/// times per job vary much less and say what each side costs.
#[derive(Clone, Copy)]
struct Measurement {
    rate: u64,
    server_us: f64,
    client_us: f64,
}

/// CPU seconds (user + system) a process has used so far, from `/proc/{pid}/stat`.
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // Fields after the command name (which ends with the last ')'): utime and stime are the
    // 12th and 13th, in clock ticks of 1/100 s on Linux.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => f64::NAN,
    }
}

/// Wall clock and both processes' CPU time from the start of a measured section.
struct Timer {
    started: Instant,
    server_pid: String,
    server_cpu: f64,
    client_cpu: f64,
}

impl Timer {
    fn start(server: &RedisServer) -> Self {
        let server_pid = server.pid().map_or_else(String::new, |pid| pid.to_string());
        Timer {
            started: Instant::now(),
            server_cpu: cpu_seconds(&server_pid),
            client_cpu: cpu_seconds("self"),
            server_pid,
        }
    }

    /// The time spent since the start.
    fn stop(&self) -> Span {
        Span {
            elapsed: self.started.elapsed(),
            server_cpu: cpu_seconds(&self.server_pid) - self.server_cpu,
            client_cpu: cpu_seconds("self") - self.client_cpu,
        }
    }

    /// The measurement for `jobs` jobs done since the start.
    fn finish(&self, jobs: usize) -> Measurement {
        self.stop().measure(jobs)
    }
}

/// Wall clock and CPU seconds of one or more timed sections, added up.
#[derive(Clone, Copy, Default)]
struct Span {
    elapsed: Duration,
    server_cpu: f64,
    client_cpu: f64,
}

impl std::ops::AddAssign for Span {
    fn add_assign(&mut self, other: Span) {
        self.elapsed += other.elapsed;
        self.server_cpu += other.server_cpu;
        self.client_cpu += other.client_cpu;
    }
}

impl Span {
    /// The measurement for `jobs` jobs done in this time.
    fn measure(&self, jobs: usize) -> Measurement {
        let per_job = |seconds: f64| seconds * 1e6 / jobs.max(1) as f64;
        Measurement {
            rate: per_second(jobs, self.elapsed),
            server_us: per_job(self.server_cpu),
            client_us: per_job(self.client_cpu),
        }
    }
}

/// Median and best rate of several runs, with the median CPU cost per job of each side.
fn summary(mut runs: Vec<Measurement>) -> String {
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let server_us = median(&mut runs.iter().map(|m| m.server_us).collect());
    let client_us = median(&mut runs.iter().map(|m| m.client_us).collect());
    runs.sort_unstable_by_key(|m| m.rate);
    format!(
        "median {:>7} /s, best {:>7} /s  (CPU per job: redis-server {server_us:.1} us, this \
         process {client_us:.1} us)",
        runs[runs.len() / 2].rate,
        runs[runs.len() - 1].rate
    )
}

fn jobs(n: usize) -> Vec<Job> {
    let now = chrono::Utc::now();
    (0..n).map(|_| plot_job("1990", "2000", now)).collect()
}

async fn fresh(server: &RedisServer, name: &str) -> anyhow::Result<Arc<RedisBackend>> {
    let backend = RedisBackend::connect(&server.config(name), QueueSettings::default()).await?;
    Ok(Arc::new(backend))
}

/// Enqueues `n` jobs one call each, from `callers` concurrent tasks sharing one backend.
async fn enqueue_single(
    server: &RedisServer,
    n: usize,
    callers: usize,
) -> anyhow::Result<Measurement> {
    let backend = fresh(server, "single").await?;
    let all = Arc::new(jobs(n));
    let timer = Timer::start(server);
    let tasks = (0..callers).map(|c| {
        let backend = backend.clone();
        let all = all.clone();
        tokio::spawn(async move {
            for job in all.iter().skip(c).step_by(callers) {
                backend.enqueue(job).await?;
            }
            anyhow::Ok(())
        })
    });
    for task in try_join_all(tasks).await? {
        task?;
    }
    Ok(timer.finish(n))
}

async fn enqueue_bulk(server: &RedisServer, n: usize) -> anyhow::Result<Measurement> {
    let backend = fresh(server, "bulk").await?;
    let all = jobs(n);
    let timer = Timer::start(server);
    backend.enqueue_all(&all).await?;
    Ok(timer.finish(n))
}

/// `rounds` times over on one backend: enqueues `backlog` jobs, then times `drain` emptying the
/// queue. Measures the drains only, all of them together.
async fn drain_rounds<F, Fut>(
    server: &RedisServer,
    name: &str,
    backlog: usize,
    rounds: usize,
    mut drain: F,
) -> anyhow::Result<Measurement>
where
    F: FnMut(Arc<RedisBackend>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<usize>>,
{
    let backend = fresh(server, name).await?;
    let mut spent = Span::default();
    for _ in 0..rounds {
        backend.enqueue_all(&jobs(backlog)).await?;
        let timer = Timer::start(server);
        let done = drain(backend.clone()).await?;
        spent += timer.stop();
        anyhow::ensure!(done == backlog, "drained {done} of {backlog} jobs");
    }
    Ok(spent.measure(backlog * rounds))
}

/// Drains the queue with `loops` concurrent loops that each lease `batch` jobs in one call,
/// render each (a no-op renderer) and complete them all in one call, each under its own fencing
/// check; returns how many jobs it completed.
async fn drain_batched(
    backend: Arc<RedisBackend>,
    batch: usize,
    loops: usize,
) -> anyhow::Result<usize> {
    let tasks = (0..loops).map(|l| {
        let backend = backend.clone();
        tokio::spawn(async move {
            let worker = format!("bench-{l}");
            let renderer = NoopRenderer;
            let queue = QueueName::default_queue();
            let mut done = 0;
            loop {
                let leases = backend.lease_many(&queue, &worker, LEASE, batch).await?;
                if leases.is_empty() {
                    return anyhow::Ok(done);
                }
                let mut results = Vec::with_capacity(leases.len());
                for lease in leases {
                    let ctx = Context::new(lease.id(), "plot", queue.clone(), lease.attempt());
                    let params = lease.job.params.decode()?;
                    let png = renderer.render(params, &ctx).await?.into_output()?;
                    results.push((lease, png));
                }
                for completed in backend.complete_many(results).await? {
                    completed?;
                    done += 1;
                }
            }
        })
    });
    let mut done = 0;
    for task in try_join_all(tasks).await? {
        done += task?;
    }
    Ok(done)
}

/// Drains the queue with `tasks` concurrent `process_one` callers, one job per call; returns how
/// many jobs they processed.
async fn drain_per_job(backend: Arc<RedisBackend>, tasks: usize) -> anyhow::Result<usize> {
    let processor = Arc::new(Processor::new(backend, noop_plot_kinds(), LEASE));
    // One process, one identity (its WORKER_IP), many tasks.
    let tasks = (0..tasks).map(|_| {
        let processor = processor.clone();
        tokio::spawn(async move {
            let worker = "10.0.0.1";
            let mut done = 0;
            while let Outcome::Processed(_) = processor.process_one(worker).await? {
                done += 1;
            }
            anyhow::Ok(done)
        })
    });
    let mut done = 0;
    for task in try_join_all(tasks).await? {
        done += task?;
    }
    Ok(done)
}

/// Drains a `n`-job backlog, then times the purge of all of them once past retention.
async fn purge(
    server: &RedisServer,
    n: usize,
    batch: usize,
    loops: usize,
) -> anyhow::Result<Measurement> {
    let clock = Arc::new(ManualClock::starting_now());
    let settings = QueueSettings::default();
    let retention = settings.result_ttl;
    let backend =
        Arc::new(RedisBackend::with_clock(&server.config("purge"), settings, clock.clone()).await?);
    backend.enqueue_all(&jobs(n)).await?;
    let done = drain_batched(backend.clone(), batch, loops).await?;
    anyhow::ensure!(done == n, "drained {done} of {n} jobs");
    clock.advance(retention + Duration::from_secs(1));
    let timer = Timer::start(server);
    let purged = backend.purge_expired().await?;
    let measured = timer.finish(n);
    anyhow::ensure!(purged == n as u64, "purged {purged} of {n} jobs");
    Ok(measured)
}

async fn load_data(server: &RedisServer, data: &DataSet) -> anyhow::Result<Measurement> {
    let config = server.config("data");
    let backend = RedisBackend::connect(&config, QueueSettings::default()).await?;
    let store = RedisDataStore::new(backend.conn().clone(), &config.prefix);
    let data = data.clone();
    let timer = Timer::start(server);
    let loaded = store.replace(data).await?;
    let measured = timer.finish(loaded as usize);
    anyhow::ensure!(loaded > 0, "loaded no records");
    Ok(measured)
}

/// The server's own time per call of each command it ran, from `INFO commandstats`.
async fn server_stats(server: &RedisServer) -> anyhow::Result<String> {
    let mut conn = redis::Client::open(server.url())?
        .get_multiplexed_async_connection()
        .await?;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await?;
    let lines: Vec<String> = info
        .lines()
        .filter_map(|line| line.strip_prefix("cmdstat_"))
        .filter(|line| !line.starts_with("info") && !line.starts_with("script"))
        .map(|line| {
            let mut fields = line.split([':', ',']);
            let name = fields.next().unwrap_or_default();
            let field = |key: &str| {
                line.split([':', ','])
                    .find_map(|f| f.strip_prefix(key))
                    .unwrap_or("?")
                    .to_owned()
            };
            format!(
                "{name} {} calls, {} us/call",
                field("calls="),
                field("usec_per_call=")
            )
        })
        .collect();
    Ok(lines.join("; "))
}

/// Runs `measure` `runs` times, each on a fresh server so earlier runs leave no keys behind.
async fn repeat<F, Fut>(
    runs: usize,
    stats: bool,
    mut measure: F,
) -> anyhow::Result<Vec<Measurement>>
where
    F: FnMut(Arc<RedisServer>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Measurement>>,
{
    let mut rates = Vec::with_capacity(runs);
    for _ in 0..runs {
        let server = Arc::new(RedisServer::start());
        rates.push(measure(server.clone()).await?);
        if stats {
            println!("    server: {}", server_stats(&server).await?);
        }
    }
    Ok(rates)
}

/// Runs `measure` on the small and the large backlog in turn, `runs` times, each on a fresh server:
/// alternating keeps slow spells of a shared machine from landing on one backlog only. Prints one
/// line per backlog and the large backlog's rate relative to the small one's.
async fn paired<F, Fut>(args: &Args, label: &str, mut measure: F) -> anyhow::Result<()>
where
    F: FnMut(Arc<RedisServer>, usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Measurement>>,
{
    let backlogs = [args.small, args.large];
    let mut rates: [Vec<Measurement>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..args.runs.max(1) {
        for (i, &backlog) in backlogs.iter().enumerate() {
            let server = Arc::new(RedisServer::start());
            rates[i].push(measure(server.clone(), backlog).await?);
            if args.server_stats {
                println!("    server: {}", server_stats(&server).await?);
            }
        }
    }
    let mut ratios: Vec<f64> = rates[0]
        .iter()
        .zip(&rates[1])
        .map(|(small, large)| large.rate as f64 / small.rate.max(1) as f64)
        .collect();
    ratios.sort_by(f64::total_cmp);
    let [small, large] = rates;
    for (backlog, rates) in backlogs.into_iter().zip([small, large]) {
        let rounds = args.rounds(backlog);
        let times = if rounds > 1 {
            format!(" x{rounds}")
        } else {
            String::new()
        };
        println!("{label} {backlog:>7} jobs{times:<4}: {}", summary(rates));
    }
    println!(
        "{label} {:>7} vs {}: median of the paired rate ratios {:+.1}% (from {:+.1}% to {:+.1}%)",
        backlogs[1],
        backlogs[0],
        (ratios[ratios.len() / 2] - 1.0) * 100.0,
        (ratios[0] - 1.0) * 100.0,
        (ratios[ratios.len() - 1] - 1.0) * 100.0,
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runs = args.runs.max(1);
    println!("redis_queue: {runs} run(s) of each, a fresh redis-server per run");

    if args.runs(Measure::Single) {
        let rates = repeat(runs, args.server_stats, |s| async move {
            enqueue_single(&s, args.single, args.callers).await
        })
        .await?;
        println!(
            "enqueue one by one  {:>7} jobs, {:>3} callers:  {}",
            args.single,
            args.callers,
            summary(rates)
        );
    }

    if args.runs(Measure::Bulk) {
        let rates = repeat(runs, args.server_stats, |s| async move {
            enqueue_bulk(&s, args.bulk).await
        })
        .await?;
        println!(
            "enqueue bulk        {:>7} jobs:               {}",
            args.bulk,
            summary(rates)
        );
    }

    if args.runs(Measure::Drain) {
        let label = format!("drain batched, {} x {:>3}/lease,", args.loops, args.batch);
        let (batch, loops) = (args.batch, args.loops);
        paired(&args, &label, |s, backlog| {
            let rounds = args.rounds(backlog);
            async move {
                drain_rounds(&s, "drain", backlog, rounds, |b| {
                    drain_batched(b, batch, loops)
                })
                .await
            }
        })
        .await?;
    }

    if args.runs(Measure::ProcessOne) {
        let label = format!("drain process_one, {:>3} tasks,  ", args.tasks);
        let tasks = args.tasks;
        paired(&args, &label, |s, backlog| {
            let rounds = args.rounds(backlog);
            async move {
                drain_rounds(&s, "drain_one", backlog, rounds, |b| {
                    drain_per_job(b, tasks)
                })
                .await
            }
        })
        .await?;
    }

    if args.runs(Measure::Purge) {
        let rates = repeat(runs, args.server_stats, |s| async move {
            purge(&s, args.large, args.batch, args.loops).await
        })
        .await?;
        println!(
            "purge finished      {:>7} jobs:               {}",
            args.large,
            summary(rates)
        );
    }

    if !args.runs(Measure::Data) {
        return Ok(());
    }
    let data = Arc::new(holidapp_bench::hgnc_records(args.records)?);
    let bytes: usize = data
        .records
        .iter()
        .map(|r| serde_json::to_string(r).map_or(0, |s| s.len()))
        .sum();
    let runs_data = repeat(runs, args.server_stats, |s| {
        let data = data.clone();
        async move { load_data(&s, &data).await }
    })
    .await?;
    let mut millis: Vec<f64> = runs_data
        .iter()
        .map(|m| data.len() as f64 / m.rate.max(1) as f64 * 1e3)
        .collect();
    millis.sort_by(f64::total_cmp);
    println!(
        "data load           {:>7} records, {:.1} MB of JSON: median {:.0} ms, best {:.0} ms; records {}",
        data.len(),
        bytes as f64 / 1e6,
        millis[millis.len() / 2],
        millis[0],
        summary(runs_data)
    );
    Ok(())
}
