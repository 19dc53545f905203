//! Benchmarks for Holidapp, one binary each, all run with
//! `cargo run --release -p holidapp-bench --bin <name>`:
//!
//! | binary | measures |
//! |---|---|
//! | `memory_drain` | jobs/s the in-memory backend drains through the processing step (no-op render) |
//! | `render` | ms per 800x600 per-year histogram of 45,000 records |
//! | `redis_queue` | Redis enqueue (single, bulk), drain (20k vs 200k backlog), purge and data load |
//! | `worker_drain` | jobs/s, Redis and worker CPU per job for 1 and 2 `holidapp-worker` processes on Redis, paired against another build's worker with `--baseline-bin` |
//! | `cluster_drain` | jobs/s of `holidapp-worker` processes draining a partitioned queue on a Redis Cluster of 1 and of 3 masters, Redis CPU per job on each master and its spread |
//! | `http_load` | `POST /jobs` requests/s and latency against the in-memory `holidapp-api` |
//!
//! To compare two builds on any of them, build each (a `git worktree` for the old one) and run
//! `scripts/paired_bench.py`: it runs both builds' commands in interleaved rounds, reads one
//! figure from each output, and prints the medians and the median of the paired ratios. For
//! example, the in-memory drain of an old build against this one:
//!
//! ```text
//! scripts/paired_bench.py --runs 5 --metric 'median ([0-9]+) jobs/s' \
//!     --old '../old/target/release/memory_drain --runs 1' \
//!     --new 'target/release/memory_drain --runs 1'
//! ```
//!
//! This library holds what the binaries share.

pub mod drain;

use holidapp_core::plot::{DataSet, PlotParams, Record};
use holidapp_core::{Job, Kinds, Params, QueueName};
use holidapp_worker::NoopRenderer;

/// Jobs per second, rounded.
pub fn per_second(count: usize, elapsed: std::time::Duration) -> u64 {
    (count as f64 / elapsed.as_secs_f64()).round() as u64
}

/// `n` records shaped like HGNC's: the bundled sample's records (every HGNC column) repeated
/// under fresh ids (`HGNC:100000` on), as a 45,000-gene complete set would be.
pub fn hgnc_records(n: usize) -> anyhow::Result<DataSet> {
    let sample = holidapp_core::plot::parse::bundled("hgnc")
        .ok_or_else(|| anyhow::anyhow!("no bundled HGNC data"))?;
    anyhow::ensure!(!sample.is_empty(), "the bundled HGNC data is empty");
    let records = sample
        .records
        .iter()
        .cycle()
        .take(n)
        .enumerate()
        .map(|(i, record)| {
            let id = format!("HGNC:{}", 100_000 + i);
            let mut fields = record.fields.clone();
            fields.insert("hgnc_id".into(), id.clone().into());
            Record { id, fields }
        })
        .collect();
    Ok(DataSet::new(records))
}

/// A `plot` job of the `default` queue for the years `start` to `end`, created `now`.
pub fn plot_job(start: &str, end: &str, now: chrono::DateTime<chrono::Utc>) -> Job {
    // Plot parameters always serialize.
    let params = Params::encode(&PlotParams::new(start, end)).expect("plot parameters");
    Job::new("plot", QueueName::default_queue(), params, 3, now)
}

/// The kind `plot` served by the no-op stand-in: the queue's cost alone.
pub fn noop_plot_kinds() -> Kinds {
    Kinds::new().with_named("plot", NoopRenderer)
}
