//! How long other Redis clients wait while `GET /jobs` pages through every job.
//!
//! Starts a `redis-server` and a `holidapp-api` on it (the binary given, so two builds can be
//! compared), submits the jobs through `POST /jobs`, then pages through all of them with
//! `GET /jobs?limit=N`, following the `x-next-cursor` header when the API sends one and raising
//! `offset` otherwise (older builds). Meanwhile another client sends `PING` after `PING` on a
//! connection of its own and records each answer's latency: a listing that makes Redis walk many
//! jobs inside one script shows up as a long wait there.
//!
//! `cargo run --release -p holidapp-bench --bin list_latency -- --binary target/release/holidapp-api`

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use hdrhistogram::Histogram;
use holidapp_core::testing::RedisServer;

#[derive(Parser)]
struct Args {
    /// The `holidapp-api` binary to measure.
    #[arg(long)]
    binary: PathBuf,
    /// Jobs to submit, then list.
    #[arg(long, default_value_t = 200_000)]
    jobs: usize,
    /// Page size of the listing.
    #[arg(long, default_value_t = 100)]
    page: usize,
    /// Concurrent submits.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// For an API without cursors, the offset to start paging at: each page walks every job
    /// before its offset, so paging all of 200,000 takes hours; the deepest pages cost the most.
    #[arg(long, default_value_t = 0)]
    from_offset: usize,
}

/// The `holidapp-api` under test, killed on drop.
struct Api {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Api {
    fn start(binary: &PathBuf, redis_url: &str) -> anyhow::Result<Api> {
        let log = std::env::temp_dir().join(format!("holidapp-list-{}.log", std::process::id()));
        let child = Command::new(binary)
            .env_clear()
            .env("HOLIDAPP_BIND", "127.0.0.1:0")
            .env("REDIS_URL", redis_url)
            .env(
                "VISITS_LOG",
                std::env::temp_dir().join("holidapp-list-visits.log"),
            )
            .env("LOG_LEVEL", "warn,holidapp_api=info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting holidapp-api")?;
        let mut api = Api {
            child,
            base: String::new(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&api.log)?;
            if let Some(rest) = text.split("listening on http://").nth(1) {
                let address = rest.split_whitespace().next().unwrap_or("");
                api.base = format!("http://{address}");
                return Ok(api);
            }
            anyhow::ensure!(
                api.child.try_wait()?.is_none(),
                "holidapp-api exited:\n{text}"
            );
            anyhow::ensure!(
                Instant::now() < deadline,
                "holidapp-api did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = RedisServer::start();
    let api = Api::start(&args.binary, &server.url())?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3600))
        .build()?;

    let submitted = Instant::now();
    let per_connection = args.jobs.div_ceil(args.connections);
    let submits = (0..args.connections).map(|c| {
        let http = http.clone();
        let url = format!("{}/jobs", api.base);
        let count = per_connection.min(args.jobs.saturating_sub(c * per_connection));
        async move {
            for i in 0..count {
                let year = 1900 + (i % 100);
                let body = format!(r#"{{"start": "{year}", "end": "2020"}}"#);
                let answer = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                anyhow::ensure!(
                    answer.status() == 201,
                    "submit answered {}",
                    answer.status()
                );
            }
            anyhow::Ok(())
        }
    });
    for done in futures::future::join_all(submits).await {
        done?;
    }
    let submit_time = submitted.elapsed();

    let stop = Arc::new(AtomicBool::new(false));
    let pinger = tokio::spawn({
        let stop = Arc::clone(&stop);
        let client = redis::Client::open(server.url())?;
        async move {
            // No response deadline: a PING that waits for a long script is what is measured.
            let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            let mut waits = Histogram::<u64>::new(3)?;
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let _: String = redis::cmd("PING").query_async(&mut conn).await?;
                waits.record(sent.elapsed().as_micros().max(1) as u64)?;
            }
            anyhow::Ok(waits)
        }
    });

    let listed = Instant::now();
    let mut pages = 0usize;
    let mut jobs = 0usize;
    let mut slowest_page = Duration::ZERO;
    let mut cursor: Option<String> = None;
    let mut offset = 0usize;
    let mut mode = "cursor";
    loop {
        let url = match (&cursor, mode) {
            (Some(before), _) => format!("{}/jobs?limit={}&before={before}", api.base, args.page),
            (None, "offset") => format!("{}/jobs?limit={}&offset={offset}", api.base, args.page),
            (None, _) => format!("{}/jobs?limit={}", api.base, args.page),
        };
        let asked = Instant::now();
        let answer = http.get(&url).send().await?;
        anyhow::ensure!(answer.status() == 200, "{url} answered {}", answer.status());
        let next = answer
            .headers()
            .get("x-next-cursor")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let page: serde_json::Value = answer.json().await?;
        slowest_page = slowest_page.max(asked.elapsed());
        let n = page.as_array().map_or(0, Vec::len);
        pages += 1;
        jobs += n;
        if pages == 1 && next.is_none() && n == args.page {
            // An API without cursors: page by offset.
            mode = "offset";
            offset = args.from_offset.saturating_sub(n);
            jobs += args.from_offset.saturating_sub(n);
        }
        match (mode, next) {
            ("cursor", Some(next)) => cursor = Some(next),
            ("offset", _) if n == args.page => offset += n,
            _ => break,
        }
    }
    let list_time = listed.elapsed();
    stop.store(true, Ordering::Relaxed);
    let waits = pinger.await??;

    println!(
        "list_latency: {} jobs submitted in {:.1} s, listed in {} pages of {} ({mode}) in {:.1} s; \
         slowest page {:.1} ms",
        args.jobs,
        submit_time.as_secs_f64(),
        pages,
        args.page,
        list_time.as_secs_f64(),
        slowest_page.as_secs_f64() * 1000.0
    );
    println!(
        "  another client's PING meanwhile ({} answers): p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        waits.len(),
        waits.value_at_quantile(0.5) as f64 / 1000.0,
        waits.value_at_quantile(0.99) as f64 / 1000.0,
        waits.value_at_quantile(0.999) as f64 / 1000.0,
        waits.max() as f64 / 1000.0
    );
    anyhow::ensure!(jobs == args.jobs, "listed {jobs} of {} jobs", args.jobs);
    Ok(())
}
