//! How many jobs per second the in-memory backend drains through the processing step, with
//! no-op rendering: lease, mark in progress, render nothing, store the result, complete.
//!
//! `cargo run --release -p holidapp-bench --bin memory_drain [-- --jobs N --tasks T]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use holidapp_bench::{noop_plot_kinds, per_second, plot_job};
use holidapp_core::{Job, MemoryBackend, Outcome, Processor, Producer, QueueSettings};

#[derive(Parser)]
struct Args {
    /// Jobs per run.
    #[arg(long, default_value_t = 200_000)]
    jobs: usize,
    /// Concurrent tasks calling `process_one`.
    #[arg(long, default_value_t = 1)]
    tasks: usize,
    /// Runs; the best and the median are reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut rates = Vec::new();
    for _ in 0..args.runs {
        let backend = Arc::new(MemoryBackend::new(QueueSettings::default()));
        let now = chrono::Utc::now();
        let jobs: Vec<Job> = (0..args.jobs)
            .map(|_| plot_job("1990", "2000", now))
            .collect();
        backend.enqueue_all(&jobs).await?;
        let processor = Arc::new(Processor::new(
            backend.clone(),
            noop_plot_kinds(),
            Duration::from_secs(30),
        ));
        let started = Instant::now();
        let tasks: Vec<_> = (0..args.tasks)
            .map(|t| {
                let processor = processor.clone();
                tokio::spawn(async move {
                    let worker = format!("bench-{t}");
                    let mut done = 0usize;
                    while let Outcome::Processed(_) = processor.process_one(&worker).await? {
                        done += 1;
                    }
                    anyhow::Ok(done)
                })
            })
            .collect();
        let mut done = 0;
        for task in tasks {
            done += task.await??;
        }
        let elapsed = started.elapsed();
        anyhow::ensure!(done == args.jobs, "drained {done} of {} jobs", args.jobs);
        rates.push(per_second(done, elapsed));
    }
    rates.sort_unstable();
    println!(
        "memory_drain: {} jobs x {} runs, {} task(s): median {} jobs/s, best {} jobs/s",
        args.jobs,
        args.runs,
        args.tasks,
        rates[rates.len() / 2],
        rates[rates.len() - 1]
    );
    Ok(())
}
