//! Redis backend throughput, against a `redis-server` this benchmark starts (no persistence, on a
//! free port), for no-op jobs with leases and fencing on:
//!
//! - enqueue one by one from one process (concurrent callers sharing one connection);
//! - enqueue in bulk (`enqueue_many`);
//! - drain by one process (lease, render nothing, complete under the fencing token) with batch
//!   leases and batch completions, from a 20,000-job backlog and a 200,000-job one; and the same
//!   through the processing step, one `process_one` per job from concurrent tasks;
//! - load of 45,000 HGNC-size records (the bundled HGNC sample's records, repeated with new ids).
//!
//! `cargo run --release -p holidapp-bench --bin redis_queue [-- --runs N ...]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::future::try_join_all;
use holidapp_bench::{NoopRenderer, per_second};
use holidapp_core::redis_backend::RedisBackend;
use holidapp_core::testing::RedisServer;
use holidapp_core::{
    DataSet, DataStore, Job, JobParams, Outcome, Processor, Queue, QueueSettings, Record, Renderer,
    parse,
};

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
}

/// Median and best of several rates.
fn summary(mut rates: Vec<u64>) -> String {
    rates.sort_unstable();
    format!(
        "median {:>9} /s, best {:>9} /s",
        rates[rates.len() / 2],
        rates[rates.len() - 1]
    )
}

fn jobs(n: usize) -> Vec<Job> {
    let now = chrono::Utc::now();
    (0..n)
        .map(|_| Job::new(JobParams::new("1990", "2000"), now))
        .collect()
}

async fn fresh(server: &RedisServer, name: &str) -> anyhow::Result<Arc<RedisBackend>> {
    let backend = RedisBackend::connect(&server.config(name), QueueSettings::default()).await?;
    Ok(Arc::new(backend))
}

/// Enqueues `n` jobs one call each, from `callers` concurrent tasks sharing one backend.
async fn enqueue_single(server: &RedisServer, n: usize, callers: usize) -> anyhow::Result<u64> {
    let backend = fresh(server, "single").await?;
    let all = Arc::new(jobs(n));
    let started = Instant::now();
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
    Ok(per_second(n, started.elapsed()))
}

async fn enqueue_bulk(server: &RedisServer, n: usize) -> anyhow::Result<u64> {
    let backend = fresh(server, "bulk").await?;
    let all = jobs(n);
    let started = Instant::now();
    backend.enqueue_many(&all).await?;
    Ok(per_second(n, started.elapsed()))
}

/// Drains a backlog of `n` jobs with `loops` concurrent loops that each lease `batch` jobs in one
/// call, render each (a no-op renderer) and complete them all in one call, each under its own
/// fencing check.
async fn drain_batched(
    server: &RedisServer,
    n: usize,
    batch: usize,
    loops: usize,
) -> anyhow::Result<u64> {
    let backend = fresh(server, "drain").await?;
    backend.enqueue_many(&jobs(n)).await?;
    let started = Instant::now();
    let tasks = (0..loops).map(|l| {
        let backend = backend.clone();
        tokio::spawn(async move {
            let worker = format!("bench-{l}");
            let renderer = NoopRenderer;
            let data = Arc::new(DataSet::default());
            let mut done = 0;
            loop {
                let leases = backend.lease_many(&worker, LEASE, batch).await?;
                if leases.is_empty() {
                    return anyhow::Ok(done);
                }
                let mut results = Vec::with_capacity(leases.len());
                for lease in leases {
                    let png = renderer.render(data.clone(), &lease.job.params).await?;
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
    let rate = per_second(done, started.elapsed());
    anyhow::ensure!(done == n, "drained {done} of {n} jobs");
    Ok(rate)
}

/// Drains a backlog of `n` jobs with `tasks` concurrent `process_one` callers, one job per call.
async fn drain_per_job(server: &RedisServer, n: usize, tasks: usize) -> anyhow::Result<u64> {
    let backend = fresh(server, "drain_one").await?;
    backend.enqueue_many(&jobs(n)).await?;
    let processor = Arc::new(Processor::new(
        backend.clone(),
        backend.clone(),
        Arc::new(NoopRenderer),
        LEASE,
    ));
    let started = Instant::now();
    let tasks = (0..tasks).map(|t| {
        let processor = processor.clone();
        tokio::spawn(async move {
            let worker = format!("bench-{t}");
            let mut done = 0;
            while let Outcome::Processed(_) = processor.process_one(&worker).await? {
                done += 1;
            }
            anyhow::Ok(done)
        })
    });
    let mut done = 0;
    for task in try_join_all(tasks).await? {
        done += task?;
    }
    let rate = per_second(done, started.elapsed());
    anyhow::ensure!(done == n, "drained {done} of {n} jobs");
    Ok(rate)
}

/// `n` HGNC records: the bundled sample's records (every HGNC column) repeated with fresh ids.
fn hgnc_records(n: usize) -> anyhow::Result<DataSet> {
    let sample = parse::bundled("hgnc").ok_or_else(|| anyhow::anyhow!("no bundled HGNC data"))?;
    anyhow::ensure!(!sample.is_empty(), "the bundled HGNC data is empty");
    let records = (0..n)
        .map(|i| {
            let mut fields = sample.records[i % sample.len()].fields.clone();
            let id = format!("HGNC:{}", 100_000 + i);
            fields.insert("hgnc_id".into(), id.clone().into());
            Record { id, fields }
        })
        .collect();
    Ok(DataSet::new(records))
}

async fn load_data(server: &RedisServer, data: &DataSet) -> anyhow::Result<Duration> {
    let backend = fresh(server, "data").await?;
    let started = Instant::now();
    let loaded = backend.replace(data.clone()).await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(loaded == data.len() as u64, "loaded {loaded} records");
    Ok(elapsed)
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
async fn repeat<F, Fut>(runs: usize, stats: bool, mut measure: F) -> anyhow::Result<Vec<u64>>
where
    F: FnMut(Arc<RedisServer>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u64>>,
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runs = args.runs.max(1);
    println!("redis_queue: {runs} run(s) of each, a fresh redis-server per run");

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

    let rates = repeat(runs, args.server_stats, |s| async move {
        enqueue_bulk(&s, args.bulk).await
    })
    .await?;
    println!(
        "enqueue bulk        {:>7} jobs:               {}",
        args.bulk,
        summary(rates)
    );

    for backlog in [args.small, args.large] {
        let rates = repeat(runs, args.server_stats, |s| async move {
            drain_batched(&s, backlog, args.batch, args.loops).await
        })
        .await?;
        println!(
            "drain batched       {backlog:>7} jobs, {} x {:>3}/lease: {}",
            args.loops,
            args.batch,
            summary(rates)
        );
    }

    for backlog in [args.small, args.large] {
        let rates = repeat(runs, args.server_stats, |s| async move {
            drain_per_job(&s, backlog, args.tasks).await
        })
        .await?;
        println!(
            "drain process_one   {backlog:>7} jobs, {:>3} tasks:    {}",
            args.tasks,
            summary(rates)
        );
    }

    let data = hgnc_records(args.records)?;
    let bytes: usize = data
        .records
        .iter()
        .map(|r| serde_json::to_string(r).map_or(0, |s| s.len()))
        .sum();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let server = RedisServer::start();
        times.push(load_data(&server, &data).await?);
    }
    times.sort_unstable();
    println!(
        "data load           {:>7} records ({:.1} MB of JSON): median {:.0} ms, best {:.0} ms",
        data.len(),
        bytes as f64 / 1e6,
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3
    );
    Ok(())
}
