//! How long the built-in plot renderer takes for an 800x600 per-year histogram of 45,000
//! HGNC-like records (the target: under 13 ms, ten times faster than matplotlib's 135 ms).
//!
//! The data set is the bundled HGNC sample replicated with fresh ids. Two paths are timed:
//!
//! - [`Renderer::render`] of the kind `plot`, the path a worker takes job after job on one loaded
//!   data set (the data set's version checked, the hop to a blocking thread): the renderer has
//!   kept the data set and its date column since the warm-up, so this is the plot, its text and
//!   the PNG encoding;
//! - [`render_png`], which reads the field from every record each time: what the first job after
//!   a new data set costs.
//!
//! Run: `cargo run --release -p holidapp-bench --bin render [-- --iterations 500]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use holidapp_core::plot::{
    DataStore, MemoryPlotStore, PlotParams, PlotRenderer, PlotSpec, render_png,
};
use holidapp_core::{Context, JobId, QueueName, Renderer};

#[derive(Parser, Debug)]
#[command(about = "Times the 800x600 per-year histogram of a 45,000-record data set")]
struct Args {
    /// Records in the data set.
    #[arg(long, default_value_t = 45_000)]
    records: usize,
    /// Timed renders per path.
    #[arg(long, default_value_t = 300)]
    iterations: usize,
    /// Untimed renders first.
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// First year of the histogram.
    #[arg(long, default_value_t = 1980)]
    start: i32,
    /// Last year of the histogram.
    #[arg(long, default_value_t = 2020)]
    end: i32,
}

/// Mean, median and 99th percentile of some durations, in milliseconds.
fn summary(mut times: Vec<Duration>) -> String {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = times.iter().map(|d| ms(*d)).sum::<f64>() / times.len() as f64;
    let at = |q: f64| ms(times[((times.len() - 1) as f64 * q).round() as usize]);
    format!(
        "mean {mean:.2} ms, median {:.2} ms, p99 {:.2} ms, min {:.2} ms ({} renders)",
        at(0.5),
        at(0.99),
        ms(times[0]),
        times.len()
    )
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.iterations > 0, "--iterations must be at least 1");
    let data = holidapp_bench::hgnc_records(args.records)?;
    let store = Arc::new(MemoryPlotStore::new());
    store.replace(data).await?;
    let (_, data) = store.load().await?;
    let params = PlotParams::new(args.start.to_string(), args.end.to_string());
    let renderer = PlotRenderer::new(store);
    renderer.validate(&params)?;
    let spec = PlotSpec::from_params(&params)?;
    let queue = QueueName::default_queue();
    let ctx = Context::new(JobId::new_in(&queue), "plot", queue, 1);

    let mut png = Vec::new();
    for _ in 0..args.warmup {
        png = renderer.render(params.clone(), &ctx).await?.0.to_vec();
    }

    let mut through_renderer = Vec::with_capacity(args.iterations);
    for _ in 0..args.iterations {
        let started = Instant::now();
        png = renderer.render(params.clone(), &ctx).await?.0.to_vec();
        through_renderer.push(started.elapsed());
    }

    let mut on_this_thread = Vec::with_capacity(args.iterations);
    for _ in 0..args.iterations {
        let started = Instant::now();
        let bytes = render_png(&data, &spec)?;
        on_this_thread.push(started.elapsed());
        anyhow::ensure!(bytes == png, "renders of the same input differ");
    }

    println!(
        "800x600 per-year histogram of date_approved_reserved, {}-{}, {} records",
        args.start,
        args.end,
        data.len()
    );
    println!(
        "Renderer::render (same data set, columns kept):     {}",
        summary(through_renderer)
    );
    println!(
        "render_png (every record read again):              {}",
        summary(on_this_thread)
    );
    println!("PNG size: {} bytes", png.len());
    println!("target: under 13 ms per render");
    Ok(())
}
