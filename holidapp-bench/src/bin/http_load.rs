//! HTTP load on `POST /jobs` against the real `holidapp-api` binary running in memory (no
//! Redis, its embedded worker pool on), or on Redis (`--redis`).
//!
//! It builds `holidapp-api` with this benchmark's profile, starts it on a free port, and opens
//! `--connections` keep-alive HTTP/1.1 connections (hyper's client, one task each, spread over
//! `--client-threads` threads that each run a single-threaded runtime). Each connection sends
//! `POST /jobs` one after the other; after a warm-up, every answer's latency (from sending to
//! the last byte of the body) goes into a histogram. The run stops at `--requests` measured
//! answers or after `--seconds`, whichever comes first. Every answer must be `201 Created`.
//!
//! The load generator and the server share the machine's cores; the CPU time each used is
//! printed so the figures can be read honestly.
//!
//! With `--batch N` each request submits a batch of N jobs (answered 200, every entry checked to
//! be 201), and jobs per second are printed too; `--redis` runs the server on a `redis-server`
//! this benchmark starts, instead of in memory.
//!
//! ```text
//! cargo run --release -p holidapp-bench --bin http_load
//! cargo run --release -p holidapp-bench --bin http_load -- --connections 64 --renderer plot
//! cargo run --release -p holidapp-bench --bin http_load -- --batch 1000 --redis --connections 8
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;

/// The job every request submits.
const BODY: &[u8] = br#"{"start": 1990, "end": 2000}"#;

/// Load on `POST /jobs` of an in-memory `holidapp-api`.
#[derive(Debug, Parser)]
struct Args {
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Measured requests at most (after the warm-up).
    #[arg(long, default_value_t = 1_000_000)]
    requests: u64,
    /// Measured seconds at most (after the warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Warm-up seconds, not measured.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// `HOLIDAPP_RENDERER` of the server: `noop` (its embedded workers finish each job at once,
    /// so the queue drains) or `plot` (the product; with no data loaded every job fails at once
    /// with "no data").
    #[arg(long, default_value = "noop")]
    renderer: String,
    /// Worker threads of the server's embedded pool (`HOLIDAPP_WORKER_CONCURRENCY`).
    #[arg(long, default_value_t = 2)]
    worker_concurrency: u32,
    /// Load `GET /healthz` instead of `POST /jobs`: the cost of the HTTP stack and middleware
    /// alone, for comparison.
    #[arg(long)]
    healthz: bool,
    /// A `holidapp-api` binary to measure instead of the one this benchmark builds.
    #[arg(long, value_name = "PATH")]
    binary: Option<PathBuf>,
    /// Threads of this load generator, each running its share of the connections.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Submit batches: each request a JSON array of this many jobs (1 to 1,000), answered 200
    /// with one entry per job; jobs per second are printed too.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1000))]
    batch: Option<u64>,
    /// Run the server on Redis (a `redis-server` this benchmark starts, without persistence)
    /// instead of in memory; its jobs then wait in Redis, no worker runs them.
    #[arg(long)]
    redis: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    let binary = match &args.binary {
        Some(binary) => binary.clone(),
        None => build_api()?,
    };
    let redis = args.redis.then(holidapp_core::testing::RedisServer::start);
    let server = Server::start(&binary, &args, redis.as_ref())?;
    let server_cpu_before = cpu_seconds(server.child.id())?;
    let own_cpu_before = cpu_seconds(std::process::id())?;
    let report = load(&server.address, &args)?;
    let server_cpu = cpu_seconds(server.child.id())? - server_cpu_before;
    let own_cpu = cpu_seconds(std::process::id())? - own_cpu_before;
    drop(server);

    let total = report.wall.as_secs_f64();
    let h = &report.latency;
    println!(
        "{}, {} connections, renderer {}, {} embedded workers, {} client threads",
        Target::of(&args).label(),
        args.connections,
        args.renderer,
        args.worker_concurrency,
        args.client_threads
    );
    println!(
        "  {} requests in {:.2} s (+{} s warm-up): {:.0} requests/s",
        h.len(),
        total,
        args.warmup,
        h.len() as f64 / total
    );
    if let Some(batch) = args.batch {
        println!(
            "  batches of {batch} jobs{}: {:.0} jobs/s",
            if args.redis { ", on Redis" } else { "" },
            (h.len() * batch) as f64 / total
        );
    }
    println!(
        "  latency: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.90)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
    );
    println!(
        "  CPU over warm-up and run: server {:.2} cores, load generator {:.2} cores ({} available)",
        server_cpu / (total + report.warmup.as_secs_f64()),
        own_cpu / (total + report.warmup.as_secs_f64()),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    Ok(())
}

/// Microseconds (the histogram's unit) as milliseconds.
fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// What one run measured.
struct Report {
    latency: Histogram<u64>,
    wall: Duration,
    warmup: Duration,
}

/// Runs the load: `--client-threads` threads, each with a single-threaded runtime driving its
/// share of the connections (as wrk runs one event loop per thread), so a request and its answer
/// stay on one thread.
fn load(address: &str, args: &Args) -> anyhow::Result<Report> {
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let measured = Arc::new(AtomicU64::new(0));
    let threads = args.client_threads.clamp(1, args.connections);
    let (opened, connections_ready) = std::sync::mpsc::channel::<anyhow::Result<()>>();
    let mut handles = Vec::with_capacity(threads);
    for thread in 0..threads {
        let share = args.connections / threads + usize::from(thread < args.connections % threads);
        let address = address.to_owned();
        let (measuring, stop, measured) = (
            Arc::clone(&measuring),
            Arc::clone(&stop),
            Arc::clone(&measured),
        );
        let (opened, limit) = (opened.clone(), args.requests);
        let target = Target::of(args);
        handles.push(std::thread::spawn(
            move || -> anyhow::Result<Histogram<u64>> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async move {
                    let mut connections = Vec::with_capacity(share);
                    for _ in 0..share {
                        match Connection::open(&address).await {
                            Ok(connection) => connections.push(connection),
                            Err(e) => {
                                let _ = opened.send(Err(e));
                                return new_histogram();
                            }
                        }
                    }
                    let _ = opened.send(Ok(()));
                    let runs = connections.into_iter().map(|connection| {
                        connection.run(target, &measuring, &stop, &measured, limit)
                    });
                    let mut latency = new_histogram()?;
                    for histogram in futures::future::join_all(runs).await {
                        latency.add(histogram?)?;
                    }
                    Ok(latency)
                })
            },
        ));
    }
    drop(opened);
    for _ in 0..threads {
        let opened = connections_ready
            .recv()
            .map_err(|_| anyhow::anyhow!("a load thread ended before connecting"))
            .and_then(|result| result);
        if let Err(e) = opened {
            stop.store(true, Ordering::Relaxed);
            return Err(e);
        }
    }
    let warmup = Duration::from_secs(args.warmup);
    std::thread::sleep(warmup);
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    while Instant::now() < deadline && measured.load(Ordering::Relaxed) < args.requests {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    let wall = started.elapsed();
    let mut latency = new_histogram()?;
    for handle in handles {
        let histogram = handle
            .join()
            .map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
        latency.add(histogram)?;
    }
    Ok(Report {
        latency,
        wall,
        warmup,
    })
}

fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    // 1 µs to 60 s, 3 significant digits.
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

/// What the load asks for.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// `POST /jobs` with a valid job: the measured route.
    SubmitJob,
    /// `GET /healthz`: the HTTP stack and middleware alone.
    Healthz,
    /// `POST /jobs` with a batch of this many jobs.
    SubmitBatch(u64),
}

impl Target {
    fn of(args: &Args) -> Target {
        match (args.healthz, args.batch) {
            (true, _) => Target::Healthz,
            (false, Some(n)) => Target::SubmitBatch(n),
            (false, None) => Target::SubmitJob,
        }
    }

    fn request(self, host: &str) -> anyhow::Result<Request<Full<Bytes>>> {
        let request = match self {
            Target::SubmitJob => Request::post("/jobs")
                .header(HOST, host)
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from_static(BODY)))?,
            Target::SubmitBatch(n) => {
                let mut body = Vec::with_capacity(2 + n as usize * (BODY.len() + 1));
                body.push(b'[');
                for i in 0..n {
                    if i > 0 {
                        body.push(b',');
                    }
                    body.extend_from_slice(BODY);
                }
                body.push(b']');
                Request::post("/jobs")
                    .header(HOST, host)
                    .header(CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(body)))?
            }
            Target::Healthz => Request::get("/healthz")
                .header(HOST, host)
                .body(Full::new(Bytes::new()))?,
        };
        Ok(request)
    }

    fn expected(self) -> hyper::StatusCode {
        match self {
            Target::SubmitJob => hyper::StatusCode::CREATED,
            Target::Healthz | Target::SubmitBatch(_) => hyper::StatusCode::OK,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Target::SubmitJob => "POST /jobs",
            Target::SubmitBatch(_) => "POST /jobs (batches)",
            Target::Healthz => "GET /healthz",
        }
    }
}

/// One keep-alive connection to the server.
struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl Connection {
    async fn open(address: &str) -> anyhow::Result<Connection> {
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .with_context(|| format!("connecting to {address}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake")?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("connection error: {e}");
            }
        });
        Ok(Connection {
            sender,
            host: address.to_owned(),
        })
    }

    /// Sends requests until told to stop; answers the latencies measured.
    async fn run(
        mut self,
        target: Target,
        measuring: &AtomicBool,
        stop: &AtomicBool,
        measured: &AtomicU64,
        limit: u64,
    ) -> anyhow::Result<Histogram<u64>> {
        let mut latency = new_histogram()?;
        while !stop.load(Ordering::Relaxed) {
            let request = target.request(&self.host)?;
            let sent = Instant::now();
            self.sender.ready().await.context("connection closed")?;
            let response = self.sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            let elapsed = sent.elapsed();
            anyhow::ensure!(
                status == target.expected(),
                "{target:?} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
            if let Target::SubmitBatch(n) = target {
                // Every entry stored: as many `"status":201` as jobs sent.
                let stored = body.windows(13).filter(|w| w == b"\"status\":201,").count();
                anyhow::ensure!(
                    stored as u64 == n,
                    "a batch of {n} stored {stored}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                );
            }
            if measuring.load(Ordering::Relaxed) {
                if measured.fetch_add(1, Ordering::Relaxed) >= limit {
                    break;
                }
                latency.record(elapsed.as_micros().max(1) as u64)?;
            }
        }
        Ok(latency)
    }
}

/// The `holidapp-api` process under test, killed on drop.
struct Server {
    child: Child,
    address: String,
    log: PathBuf,
}

impl Server {
    fn start(
        binary: &Path,
        args: &Args,
        redis: Option<&holidapp_core::testing::RedisServer>,
    ) -> anyhow::Result<Server> {
        let log =
            std::env::temp_dir().join(format!("holidapp-http-load-{}.log", std::process::id()));
        let dir = std::env::temp_dir();
        let mut command = Command::new(binary);
        command.env_clear();
        if let Some(redis) = redis {
            let config = redis.config("http_load");
            command
                .env("REDIS_URL", &config.url)
                .env("HOLIDAPP_PREFIX", &config.prefix);
        }
        let child = command
            .env("HOLIDAPP_BIND", "127.0.0.1:0")
            .env("VISITS_LOG", dir.join("holidapp-http-load-visits.log"))
            .env("HOLIDAPP_RENDERER", &args.renderer)
            .env(
                "HOLIDAPP_WORKER_CONCURRENCY",
                args.worker_concurrency.to_string(),
            )
            // Per-job worker lines would cost more than the requests; keep the address line.
            .env("LOG_LEVEL", "warn,holidapp_api=info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting holidapp-api")?;
        let mut server = Server {
            child,
            address: String::new(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&server.log)?;
            if let Some(rest) = text.split("listening on http://").nth(1) {
                server.address = rest.split_whitespace().next().unwrap_or("").to_owned();
                return Ok(server);
            }
            anyhow::ensure!(
                server.child.try_wait()?.is_none(),
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

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Builds `holidapp-api` with this benchmark's profile and answers its path.
fn build_api() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args([
        "build",
        "-q",
        "-p",
        "holidapp-http",
        "--bin",
        "holidapp-api",
    ]);
    if !cfg!(debug_assertions) {
        command.arg("--release");
    }
    anyhow::ensure!(command.status()?.success(), "building holidapp-api failed");
    // This binary sits in the same target directory, profile folder included.
    let bin = std::env::current_exe()?
        .parent()
        .context("the benchmark binary has no directory")?
        .join("holidapp-api");
    anyhow::ensure!(bin.exists(), "{} was not built", bin.display());
    Ok(bin)
}

/// CPU seconds (user + system) a process has used, from `/proc/{pid}/stat`.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unexpected /proc stat format")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields
        .get(11..13)
        .context("unexpected /proc stat format")?
        .iter()
        .map(|f| f.parse::<u64>())
        .sum::<Result<u64, _>>()?;
    // Linux reports these in USER_HZ, which is 100 on every common configuration.
    Ok(ticks as f64 / 100.0)
}
