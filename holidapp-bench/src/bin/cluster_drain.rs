//! A partitioned queue drained by real `holidapp-worker` processes on a Redis Cluster this
//! benchmark starts, once of one master and once of three (no replicas, no persistence, free
//! ports), to show how the load spreads over the masters.
//!
//! Each drain enqueues a backlog of no-op jobs (`HOLIDAPP_RENDERER=noop`) into the `default`
//! queue split into partitions (6 by default, `HOLIDAPP_QUEUE_PARTITIONS`), the ids naming the
//! partitions in turn; then the workers start with `REDIS_CLUSTER_URLS` and the clock runs from
//! the first job's lease to the last completion (on Redis's clocks, as in `worker_drain`). For
//! each master it reports the jobs whose partition it serves and its CPU time over the drain
//! (`used_cpu_user + used_cpu_sys` of `INFO cpu`) per such job; for the cluster, the sum per job
//! and the spread of the masters' CPU time (the busiest over the idlest). The sizes run
//! interleaved, in alternating order, for `--runs` rounds; medians and ranges are reported.
//!
//! On a machine with fewer cores than masters plus workers, three masters are not three times
//! faster: the point is that Redis CPU per job stays flat and the masters share the work evenly.
//!
//! `cargo run --release -p holidapp-bench --bin cluster_drain [-- --runs N --jobs N ...]`

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::Utc;
use clap::Parser;
use holidapp_bench::drain::{
    CommandStats, Worker, all_complete, build_worker, drain_time, redis_cpu, stop_all,
};
use holidapp_bench::{per_second, plot_job};
use holidapp_core::redis_backend::RedisBackend;
use holidapp_core::testing::RedisCluster;
use holidapp_core::{Job, Producer, QueueName, QueueSettings};

#[derive(Parser)]
struct Args {
    /// Cluster sizes to compare, in masters (1, or 3 and more), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 3])]
    masters: Vec<usize>,
    /// No-op jobs per drain.
    #[arg(long, default_value_t = 100_000)]
    jobs: usize,
    /// Partitions of the queue.
    #[arg(long, default_value_t = 6)]
    partitions: u16,
    /// Worker processes side by side.
    #[arg(long, default_value_t = 2)]
    processes: usize,
    /// HOLIDAPP_WORKER_CONCURRENCY of each worker (unset: the worker's default).
    #[arg(long)]
    concurrency: Option<u32>,
    /// Rounds; each drains once on every cluster size.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Prints where the masters spent their time in each drain: `INFO commandstats` of all of
    /// them together (commands run by scripts included), per drained job.
    #[arg(long)]
    commandstats: bool,
    /// The `holidapp-worker` binary to run (default: build this workspace's).
    #[arg(long)]
    worker_bin: Option<PathBuf>,
}

/// One master's share of one drain.
#[derive(Clone, Copy, Debug)]
struct Master {
    jobs: usize,
    cpu_seconds: f64,
}

/// One drain's figures.
#[derive(Clone, Debug)]
struct Measure {
    jobs_per_second: u64,
    /// By port.
    masters: BTreeMap<u16, Master>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    anyhow::ensure!(
        (1..=holidapp_core::redis_backend::MAX_PARTITIONS).contains(&args.partitions),
        "--partitions is 1 to {}",
        holidapp_core::redis_backend::MAX_PARTITIONS
    );
    let bin = match args.worker_bin.clone() {
        Some(bin) => bin,
        None => build_worker()?,
    };
    let clusters: Vec<(usize, RedisCluster)> = args
        .masters
        .iter()
        .map(|&m| (m, RedisCluster::start(m, 0)))
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "cluster_drain: {cores} cores, {} no-op jobs over {} partitions, {} worker processes, {} rounds",
        args.jobs, args.partitions, args.processes, args.runs
    );

    let mut results: BTreeMap<usize, Vec<Measure>> = BTreeMap::new();
    for round in 0..args.runs {
        let mut order: Vec<usize> = (0..clusters.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let (masters, cluster) = &clusters[i];
            let measure = measure(cluster, &bin, &args).await?;
            results.entry(*masters).or_default().push(measure);
        }
        println!("round {} of {} done", round + 1, args.runs);
    }

    println!();
    println!(
        "| masters | jobs/s, median [range] | Redis CPU µs/job, all masters | per master: share of the jobs, CPU µs per job it served | CPU spread, busiest/idlest |"
    );
    println!("|---|---|---|---|---|");
    for (masters, measures) in &results {
        let mut rates: Vec<u64> = measures.iter().map(|m| m.jobs_per_second).collect();
        rates.sort_unstable();
        let total_us: Vec<f64> = measures
            .iter()
            .map(|m| {
                m.masters.values().map(|x| x.cpu_seconds).sum::<f64>() * 1e6 / args.jobs as f64
            })
            .collect();
        let spread: Vec<f64> = measures
            .iter()
            .map(|m| {
                let cpu = m.masters.values().map(|x| x.cpu_seconds);
                let max = cpu.clone().fold(f64::MIN, f64::max);
                let min = cpu.fold(f64::MAX, f64::min);
                max / min.max(1e-9)
            })
            .collect();
        // Per master, over the rounds: its share of the jobs and its CPU per job it served.
        let mut per_master: BTreeMap<u16, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
        for m in measures {
            for (port, x) in &m.masters {
                let entry = per_master.entry(*port).or_default();
                entry.0.push(x.jobs as f64 / args.jobs as f64 * 100.0);
                entry.1.push(x.cpu_seconds * 1e6 / x.jobs.max(1) as f64);
            }
        }
        let masters_text: Vec<String> = per_master
            .into_values()
            .map(|(share, us)| format!("{:.0} %, {:.1} µs", median(share), median(us)))
            .collect();
        println!(
            "| {masters} | {} [{}–{}] | {:.1} | {} | {:.2} |",
            rates[rates.len() / 2],
            rates[0],
            rates[rates.len() - 1],
            median(total_us),
            masters_text.join("; "),
            median(spread),
        );
    }
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// One drain on `cluster`, emptied before and after.
async fn measure(cluster: &RedisCluster, bin: &Path, args: &Args) -> anyhow::Result<Measure> {
    let config = cluster.config("cluster_drain");
    let queue = QueueName::default_queue();
    let backend = RedisBackend::connect(&config, QueueSettings::default())
        .await?
        .with_partitions([(queue.clone(), args.partitions)]);
    // No response deadline: emptying a master after a large drain takes a while.
    let no_deadline = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut nodes = Vec::new();
    for node in cluster.nodes() {
        let conn = redis::Client::open(node.url())?
            .get_multiplexed_async_connection_with_config(&no_deadline)
            .await?;
        nodes.push((node.port(), conn));
    }
    for (_, conn) in &mut nodes {
        redis::cmd("FLUSHALL").query_async::<()>(conn).await?;
    }

    let now = Utc::now();
    let jobs: Vec<Job> = (0..args.jobs)
        .map(|_| {
            let mut job = plot_job("1990", "2010", now);
            job.id = backend.new_id(&queue);
            job
        })
        .collect();
    backend.enqueue_all(&jobs).await?;
    let served = jobs_per_master(&mut nodes[0].1, &jobs).await?;

    let mut before = Vec::new();
    for (_, conn) in &mut nodes {
        redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async::<()>(conn)
            .await?;
        before.push(redis_cpu(conn).await?);
    }
    let mut env = vec![
        ("REDIS_CLUSTER_URLS", cluster.urls().join(",")),
        ("HOLIDAPP_PREFIX", config.prefix.clone()),
        ("HOLIDAPP_RENDERER", "noop".to_owned()),
        (
            "HOLIDAPP_QUEUE_PARTITIONS",
            format!("{queue}={}", args.partitions),
        ),
    ];
    if let Some(n) = args.concurrency {
        env.push(("HOLIDAPP_WORKER_CONCURRENCY", n.to_string()));
    }
    let mut workers = (0..args.processes)
        .map(|p| Worker::spawn(bin, &env, p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    all_complete(&backend, jobs.len()).await?;
    let mut masters = BTreeMap::new();
    for ((port, conn), before) in nodes.iter_mut().zip(before) {
        let cpu_seconds = redis_cpu(conn).await? - before;
        let jobs = served.get(port).copied().unwrap_or(0);
        masters.insert(*port, Master { jobs, cpu_seconds });
    }
    stop_all(&mut workers)?;
    if args.commandstats {
        let mut stats = CommandStats::default();
        for (_, conn) in &mut nodes {
            stats.merge(&CommandStats::read(conn).await?);
        }
        println!(
            "commandstats, {} masters, {} jobs:\n{}",
            nodes.len(),
            jobs.len(),
            stats.per_job(jobs.len())
        );
    }
    let elapsed = drain_time(&backend, &jobs).await?;
    for (_, conn) in &mut nodes {
        redis::cmd("FLUSHALL").query_async::<()>(conn).await?;
    }
    Ok(Measure {
        jobs_per_second: per_second(jobs.len(), elapsed),
        masters,
    })
}

/// How many of `jobs` each master holds, by port: a job's keys carry its partition's tag
/// (`{xx}`, the id's tag in hex), whose slot one master serves.
async fn jobs_per_master(
    node: &mut redis::aio::MultiplexedConnection,
    jobs: &[Job],
) -> anyhow::Result<BTreeMap<u16, usize>> {
    let mut per_tag: BTreeMap<u8, usize> = BTreeMap::new();
    for job in jobs {
        *per_tag.entry(job.id.tag()).or_default() += 1;
    }
    // `[start, end, [host, port, id, ..], replicas..]` for each range of slots.
    let ranges: Vec<Vec<redis::Value>> =
        redis::cmd("CLUSTER").arg("SLOTS").query_async(node).await?;
    let int = |v: &redis::Value| match v {
        redis::Value::Int(n) => Ok(*n),
        other => Err(anyhow::anyhow!(
            "CLUSTER SLOTS answered {other:?} for a number"
        )),
    };
    let mut per_master = BTreeMap::new();
    for (tag, n) in per_tag {
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(format!("{{{tag:02x}}}"))
            .query_async(node)
            .await?;
        let mut port = None;
        for range in &ranges {
            if let [start, end, redis::Value::Array(master), ..] = &range[..]
                && (int(start)?..=int(end)?).contains(&slot)
            {
                port = Some(u16::try_from(int(&master[1])?)?);
            }
        }
        let port = port.ok_or_else(|| anyhow::anyhow!("no master serves slot {slot}"))?;
        *per_master.entry(port).or_default() += n;
    }
    Ok(per_master)
}
