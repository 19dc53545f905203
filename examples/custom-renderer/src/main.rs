//! Embedding `holidapp-core` in a program of its own.
//!
//! This program plugs its own [`Renderer`] into the library: a "symbol length" chart that
//! draws, for the genes approved between `start` and `end`, one bar per gene-symbol length. It
//! runs on the in-memory backend, submits a few jobs, drains the queue with the same processing
//! step the real workers run, and writes each result to disk.
//!
//! ```sh
//! cargo run -p example-custom-renderer            # writes PNGs to ./custom-renderer-output
//! cargo run -p example-custom-renderer -- out/    # or to a directory of your choice
//! ```
//!
//! Read it top to bottom: the renderer first, then `main`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use holidapp_core::{
    Clock, DataSet, DataStore, Error, Job, JobOutcome, JobParams, JobStore, MemoryBackend, Outcome,
    Processor, Queue, QueueSettings, Renderer, Result, SystemClock, parse,
};

/// Counts gene symbols by length and draws the counts as bars, into a PNG made by hand.
///
/// A renderer has two duties: `validate` refuses bad parameters when a job is submitted (so a
/// job that was accepted never fails for them), and `render` turns data and parameters into bytes.
struct SymbolLengths {
    width: u32,
    height: u32,
}

impl SymbolLengths {
    fn years(params: &JobParams) -> Result<(i32, i32)> {
        let year = |what: &str, value: &str| {
            value
                .trim()
                .parse::<i32>()
                .map_err(|_| Error::InvalidParams(format!("{what} must be a year, got '{value}'")))
        };
        let (start, end) = (year("start", &params.start)?, year("end", &params.end)?);
        if start > end {
            return Err(Error::InvalidParams(format!(
                "start ({start}) is after end ({end})"
            )));
        }
        Ok((start, end))
    }
}

#[async_trait]
impl Renderer for SymbolLengths {
    fn validate(&self, params: &JobParams) -> Result<()> {
        Self::years(params)?;
        if let Some(key) = params.plot.keys().next() {
            return Err(Error::InvalidParams(format!(
                "this renderer takes no plot options, got '{key}'"
            )));
        }
        Ok(())
    }

    async fn render(&self, data: Arc<DataSet>, params: &JobParams) -> Result<Vec<u8>> {
        let (start, end) = Self::years(params)?;
        let mut counts: BTreeMap<usize, u32> = BTreeMap::new();
        for record in &data.records {
            let approved = record
                .text("date_approved_reserved")
                .and_then(|d| d.get(..4).and_then(|y| y.parse::<i32>().ok()));
            if let (Some(year), Some(symbol)) = (approved, record.text("symbol"))
                && (start..=end).contains(&year)
            {
                *counts.entry(symbol.chars().count()).or_default() += 1;
            }
        }
        if counts.is_empty() {
            return Err(Error::Render(format!(
                "no gene approved between {start} and {end}"
            )));
        }
        Ok(bars_png(self.width, self.height, &counts))
    }
}

/// Draws one dark bar per entry, scaled to the tallest, on a white background.
fn bars_png(width: u32, height: u32, counts: &BTreeMap<usize, u32>) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let mut pixels = vec![255u8; w * h * 3];
    let max = counts.values().copied().max().unwrap_or(1).max(1) as usize;
    let slot = w / counts.len().max(1);
    for (i, &count) in counts.values().enumerate() {
        let bar_height = (h - 10) * count as usize / max;
        for x in i * slot + 2..(i + 1) * slot - 2 {
            for y in h - bar_height..h {
                let p = (y * w + x) * 3;
                pixels[p..p + 3].copy_from_slice(&[31, 119, 180]);
            }
        }
    }
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    // Writing to a Vec cannot fail, and the buffer has exactly width*height*3 bytes.
    if let Ok(mut writer) = encoder.write_header() {
        let _ = writer.write_image_data(&pixels);
    }
    png
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let out: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("custom-renderer-output"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    // 1. A backend and a data set: the in-memory backend and the HGNC sample bundled with the library.
    let backend = Arc::new(MemoryBackend::new(QueueSettings::default()));
    let genes = parse::bundled("hgnc").context("the bundled HGNC sample")?;
    println!("loaded {} genes", backend.replace(genes).await?);

    // 2. Jobs, validated by the same renderer that will run them.
    let renderer = Arc::new(SymbolLengths {
        width: 640,
        height: 320,
    });
    let clock = SystemClock;
    let mut ids = Vec::new();
    for (start, end) in [("1980", "1989"), ("1990", "1999"), ("2000", "2009")] {
        let params = JobParams::new(start, end);
        renderer.validate(&params)?;
        let job = Job::new(params, clock.now());
        backend.enqueue(&job).await?;
        ids.push(job.id);
    }
    let refused = renderer.validate(&JobParams::new("2020", "1990"));
    println!(
        "a bad job is refused at submit time: {}",
        refused.unwrap_err()
    );

    // 3. Drain the queue with the processing step the workers run.
    let processor = Processor::new(
        backend.clone(),
        backend.clone(),
        renderer,
        Duration::from_secs(30),
    );
    while let Outcome::Processed(done) = processor.process_one("example").await? {
        println!(
            "job {} attempt {}: {:?} in {:?}",
            done.id, done.attempt, done.result, done.duration
        );
        anyhow::ensure!(
            done.result == JobOutcome::Complete,
            "job {} did not complete",
            done.id
        );
    }

    // 4. Fetch the results and write them out.
    for id in ids {
        let job = backend.get(id).await?.context("the job exists")?;
        let png = backend
            .result(id)
            .await?
            .context("a complete job has a result")?;
        let path = out.join(format!(
            "symbol-lengths-{}-{}.png",
            job.params.start, job.params.end
        ));
        std::fs::write(&path, &png).with_context(|| format!("writing {}", path.display()))?;
        println!(
            "{} ({}): {} bytes -> {}",
            job.id,
            job.status,
            png.len(),
            path.display()
        );
    }
    Ok(())
}
