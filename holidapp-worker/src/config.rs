//! Configuration shared by the `holidapp-worker` and `holidapp-api` binaries.
//!
//! Each struct is a [`clap::Args`] group that a binary flattens into its own parser
//! (`#[command(flatten)]`). Every field reads the environment variable named in the product's
//! configuration table, and a `--flag` of the same name overrides it; `--help` lists both with their
//! defaults. Ranges are checked while parsing, so a bad value stops the binary with a message that
//! names the variable, before anything starts.
//!
//! Only binaries parse these: the library's [`run`](crate::run) takes plain values
//! ([`WorkerConfig`], a [`Processor`](holidapp_core::Processor)).

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::time::Duration;

use std::sync::Arc;

use clap::Args;
use holidapp_core::plot::Plots;
use holidapp_core::plot::parse::DataLimits;
use holidapp_core::plot::redis::{RedisDataStore, RedisImageStore};
use holidapp_core::redis_backend::{MAX_PARTITIONS, RedisBackend, RedisConfig};
use holidapp_core::{
    Backends, Jobs, MemoryBackend, QueueName, QueueSettings, Quotas, RetryPolicy, Schedule,
    Scheduler,
};

use crate::renderers::RendererChoice;
use crate::settings::WorkerConfig;

/// Where the shared store lives: Redis, or nothing (the in-memory backend of `holidapp-api`).
#[derive(Args, Clone, Debug, PartialEq, Eq)]
pub struct BackendArgs {
    /// Redis URL: `redis://[user:password@]host[:port][/db]`, or `rediss://` for TLS. Wins over
    /// REDIS_IP. Unset (and REDIS_IP unset): no Redis. Its value is never shown in `--help`: it
    /// may hold a password.
    #[arg(long, env = "REDIS_URL", value_name = "URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Seed nodes of a Redis Cluster, comma-separated `redis://` URLs (any reachable node is
    /// enough; the client learns the rest). Wins over REDIS_URL and REDIS_IP. Never shown in
    /// `--help`: the URLs may hold a password.
    #[arg(
        long,
        env = "REDIS_CLUSTER_URLS",
        value_name = "URLS",
        hide_env_values = true
    )]
    pub redis_cluster_urls: Option<String>,

    /// Redis host name or address, the course's way to point at Redis (used with REDIS_PORT and
    /// REDIS_DB when REDIS_URL is unset).
    #[arg(long, env = "REDIS_IP", value_name = "HOST")]
    pub redis_ip: Option<String>,

    /// Redis port, with REDIS_IP.
    #[arg(long, env = "REDIS_PORT", default_value_t = 6379, value_name = "PORT")]
    pub redis_port: u16,

    /// Redis logical database number, with REDIS_IP.
    #[arg(long, env = "REDIS_DB", default_value_t = 0, value_name = "N")]
    pub redis_db: u32,

    /// Namespace of every key, so several deployments can share one Redis.
    #[arg(
        long = "prefix",
        env = "HOLIDAPP_PREFIX",
        default_value = "holidapp",
        value_name = "PREFIX",
        value_parser = parse_prefix
    )]
    pub prefix: String,

    /// Logical database of the same Redis server that keeps the image `POST /image` renders,
    /// apart from the data (the course's second Redis "tab"). Unset: the same database. Redis
    /// Cluster has only database 0, so leave it unset there.
    #[arg(
        long = "redis-image-db",
        env = "REDIS_IMAGE_DB",
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(0..=15)
    )]
    pub redis_image_db: Option<u32>,

    /// Replicas that must acknowledge a submit or a completion (Redis `WAIT`) before it is
    /// answered, so that a failover to a replica loses nothing that was answered. 0: answer as
    /// soon as the primary has it.
    #[arg(
        long = "redis-wait-replicas",
        env = "HOLIDAPP_REDIS_WAIT_REPLICAS",
        default_value_t = 0,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(0..=16)
    )]
    pub redis_wait_replicas: u32,

    /// Queues split into partitions, each on a slot tag of its own so that on a Redis Cluster
    /// one queue spreads over the masters: `queue=N` pairs, comma-separated (N from 1 to 64).
    /// Only submitting reads it (new jobs go to the partitions in turn); workers serve every
    /// partition of their queues whatever it says. Ignored without Redis.
    #[arg(
        long = "queue-partitions",
        env = "HOLIDAPP_QUEUE_PARTITIONS",
        default_value = "",
        value_name = "QUEUE=N,...",
        value_parser = parse_partitions
    )]
    pub queue_partitions: PartitionList,

    /// How long a write waits for its replicas' acknowledgement before it is answered 503.
    #[arg(
        long = "redis-wait-timeout-ms",
        env = "HOLIDAPP_REDIS_WAIT_TIMEOUT_MS",
        default_value_t = 1000,
        value_name = "MS",
        value_parser = clap::value_parser!(u64).range(1..=60_000)
    )]
    pub redis_wait_timeout_ms: u64,
}

/// Queues and the number of partitions each is split into (`HOLIDAPP_QUEUE_PARTITIONS`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionList(pub Vec<(QueueName, u16)>);

fn parse_partitions(s: &str) -> Result<PartitionList, String> {
    let mut list: Vec<(QueueName, u16)> = Vec::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, n) = pair
            .split_once('=')
            .ok_or_else(|| format!("'{pair}' is not QUEUE=N"))?;
        let queue = QueueName::new(name.trim()).map_err(|e| e.to_string())?;
        let n: u16 = n
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=MAX_PARTITIONS).contains(n))
            .ok_or_else(|| {
                format!("'{pair}': the number of partitions is 1 to {MAX_PARTITIONS}")
            })?;
        if list.iter().any(|(q, _)| *q == queue) {
            return Err(format!("queue '{queue}' is named twice"));
        }
        list.push((queue, n));
    }
    if list.len() > MAX_QUEUES {
        return Err(format!("at most {MAX_QUEUES} queues, not {}", list.len()));
    }
    Ok(PartitionList(list))
}

/// What a shipped binary runs on: the engine's backends and the plot product's stores, on Redis
/// or in memory.
#[derive(Clone, Debug)]
pub struct Services {
    /// The job engine's capabilities.
    pub backends: Backends,
    /// The plot product over its data set and image stores.
    pub plots: Plots,
    /// The Redis backend, when there is one (to check its durability settings).
    pub redis: Option<Arc<RedisBackend>>,
}

impl BackendArgs {
    /// The Redis configuration: the cluster of `REDIS_CLUSTER_URLS` when set, else `REDIS_URL`,
    /// else `REDIS_IP` with `REDIS_PORT` and `REDIS_DB`; `None` when none is set (blank counts
    /// as unset), meaning no Redis.
    pub fn redis_config(&self) -> Option<RedisConfig> {
        let cluster = self
            .redis_cluster_urls
            .as_deref()
            .filter(|urls| urls.split(',').any(|u| !u.trim().is_empty()));
        RedisConfig::from_parts(
            cluster.or(self.redis_url.as_deref()),
            self.redis_ip.as_deref(),
            self.redis_port,
            i64::from(self.redis_db),
            &self.prefix,
        )
        .map(|config| config.with_cluster_urls(cluster))
    }

    /// Connects what the configuration names: Redis (the engine's backend, the data set beside
    /// it, the image in `REDIS_IMAGE_DB` or beside it) when one is configured, else everything in
    /// this process's memory. Nothing is sent to Redis yet: the connection is made on first use.
    pub async fn connect(&self, queue: &QueueArgs, data: &DataArgs) -> Result<Services, String> {
        let Some(redis) = self.redis_config() else {
            let backend = Arc::new(MemoryBackend::new(queue.queue_settings()));
            return Ok(Services {
                backends: Backends::single(backend),
                plots: Plots::in_memory().with_limits(data.limits()),
                redis: None,
            });
        };
        let backend = RedisBackend::connect(&redis, queue.queue_settings())
            .await
            .map_err(|e| format!("cannot use Redis: {e}"))?
            .with_replica_acks(
                self.redis_wait_replicas,
                Duration::from_millis(self.redis_wait_timeout_ms),
            )
            .with_partitions(self.queue_partitions.0.iter().cloned());
        let images = match self.redis_image_db {
            Some(db) => redis
                .open_database(db)
                .map_err(|e| format!("cannot use Redis database {db}: {e}"))?,
            None => backend.conn().clone(),
        };
        let plots = Plots::new(
            Arc::new(RedisDataStore::new(backend.conn().clone(), &redis.prefix)),
            Arc::new(RedisImageStore::new(images, &redis.prefix)),
        )
        .with_limits(data.limits());
        let backend = Arc::new(backend);
        Ok(Services {
            backends: Backends::single(Arc::clone(&backend)),
            plots,
            redis: Some(backend),
        })
    }
}

/// Periodic jobs: the schedules this process submits (every API and worker process may run the
/// same ones: each tick is submitted once however many do; see `holidapp_core::schedule`).
#[derive(Args, Clone, Debug, PartialEq, Eq)]
pub struct ScheduleArgs {
    /// Periodic jobs, as a JSON array: `[{"name": "nightly", "cron": "0 3 * * *", "job": {"kind":
    /// "plot", "params": {"start": 1990, "end": 2020}}}]`. Cron expressions are in UTC, with five
    /// fields or six (seconds first).
    #[arg(long = "schedules", env = "HOLIDAPP_SCHEDULES", value_name = "JSON")]
    pub schedules: Option<String>,

    /// A file holding the schedules (the same JSON), instead of `HOLIDAPP_SCHEDULES`.
    #[arg(
        long = "schedules-file",
        env = "HOLIDAPP_SCHEDULES_FILE",
        value_name = "PATH",
        conflicts_with = "schedules"
    )]
    pub schedules_file: Option<std::path::PathBuf>,

    /// How late a missed tick may be and still run once when a process starts (or a Redis outage
    /// ends); older missed ticks are skipped.
    #[arg(
        long = "schedule-catch-up-seconds",
        env = "HOLIDAPP_SCHEDULE_CATCH_UP_SECONDS",
        default_value_t = 3600,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(0..=2_592_000)
    )]
    pub catch_up_seconds: u64,
}

/// The largest schedules file read.
const MAX_SCHEDULES_FILE: u64 = 1024 * 1024;

impl ScheduleArgs {
    /// A scheduler submitting the configured schedules through `jobs`; `None` when none are
    /// configured. A schedule that cannot work (bad JSON, cron expression, kind or parameters)
    /// is an error naming it.
    pub fn scheduler(&self, jobs: Jobs) -> Result<Option<Scheduler>, String> {
        let text = match (&self.schedules, &self.schedules_file) {
            (Some(text), _) if !text.trim().is_empty() => text.clone(),
            (_, Some(path)) => {
                use std::io::Read;
                let file = std::fs::File::open(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let mut text = String::new();
                file.take(MAX_SCHEDULES_FILE + 1)
                    .read_to_string(&mut text)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                if text.len() as u64 > MAX_SCHEDULES_FILE {
                    return Err(format!(
                        "{} is over {MAX_SCHEDULES_FILE} bytes",
                        path.display()
                    ));
                }
                text
            }
            _ => return Ok(None),
        };
        let schedules = Schedule::parse_all(&text).map_err(|e| e.to_string())?;
        if schedules.is_empty() {
            return Ok(None);
        }
        Scheduler::new(jobs, schedules)
            .map(|s| Some(s.with_catch_up(Duration::from_secs(self.catch_up_seconds))))
            .map_err(|e| e.to_string())
    }
}

/// Rules of the queue: lease length, attempts, retention.
#[derive(Args, Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueArgs {
    /// Lease length in seconds: how long a job stays with a worker that stops renewing it.
    /// Workers renew every third of it, and a dead worker's job runs again soon after it ends.
    #[arg(
        long = "lease-seconds",
        env = "HOLIDAPP_LEASE_SECONDS",
        default_value_t = 30,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    pub lease_seconds: u64,

    /// Attempts a job gets unless it asks for another number (transient errors retry with
    /// backoff until then; the last one fails it).
    #[arg(
        long = "max-attempts",
        env = "HOLIDAPP_MAX_ATTEMPTS",
        default_value_t = 3,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=1000)
    )]
    pub max_attempts: u32,

    /// Retention of finished jobs and their results, in seconds.
    #[arg(
        long = "result-ttl-seconds",
        env = "HOLIDAPP_RESULT_TTL_SECONDS",
        default_value_t = 604_800,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(1..=315_360_000)
    )]
    pub result_ttl_seconds: u64,

    /// How long a unique key (a submit's `Idempotency-Key`) holds its job, in seconds: a submit
    /// with the same key within this time, while the job is kept, answers that job.
    #[arg(
        long = "unique-ttl-seconds",
        env = "HOLIDAPP_UNIQUE_TTL_SECONDS",
        default_value_t = 86_400,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(1..=315_360_000)
    )]
    pub unique_ttl_seconds: u64,

    /// Most jobs a queue holds waiting (submitted, not yet running); past it, a submit is
    /// refused with 429 and nothing is stored. Unset: no limit.
    #[arg(
        long = "queue-max-waiting",
        env = "HOLIDAPP_QUEUE_MAX_WAITING",
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub queue_max_waiting: Option<u64>,

    /// Most bytes of results a queue holds; at or past it, a submit is refused with 429 until
    /// retention or deletes free some. Unset: no limit.
    #[arg(
        long = "queue-max-result-bytes",
        env = "HOLIDAPP_QUEUE_MAX_RESULT_BYTES",
        value_name = "BYTES",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub queue_max_result_bytes: Option<u64>,
}

/// Limits on the data set a process loads and holds.
#[derive(Args, Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataArgs {
    /// Largest data set body or source, in bytes (`POST /data`, `DATA_SOURCE`).
    #[arg(
        long = "data-max-bytes",
        env = "HOLIDAPP_DATA_MAX_BYTES",
        default_value_t = DataLimits::default().max_bytes,
        value_name = "BYTES",
        value_parser = clap::value_parser!(u64).range(1..=(1 << 40))
    )]
    pub data_max_bytes: u64,

    /// Most records of a data set, loaded or held for rendering.
    #[arg(
        long = "data-max-records",
        env = "HOLIDAPP_DATA_MAX_RECORDS",
        default_value_t = DataLimits::default().max_records,
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub data_max_records: u64,

    /// Most memory a loaded data set may take once parsed, in bytes (estimated while parsing).
    #[arg(
        long = "data-max-memory",
        env = "HOLIDAPP_DATA_MAX_MEMORY",
        default_value_t = DataLimits::default().max_memory,
        value_name = "BYTES",
        value_parser = clap::value_parser!(u64).range(1..=(1 << 40))
    )]
    pub data_max_memory: u64,
}

impl DataArgs {
    /// The limits these settings make.
    pub fn limits(&self) -> DataLimits {
        DataLimits {
            max_bytes: self.data_max_bytes,
            max_records: self.data_max_records,
            max_memory: self.data_max_memory,
        }
    }
}

impl QueueArgs {
    /// The lease length.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_seconds)
    }

    /// The settings a backend is built with: core's default retry delays, the configured attempt
    /// limit (the default of jobs that name none) and retention.
    pub fn queue_settings(&self) -> QueueSettings {
        QueueSettings {
            retry: RetryPolicy {
                max_attempts: self.max_attempts,
                ..RetryPolicy::default()
            },
            result_ttl: Duration::from_secs(self.result_ttl_seconds),
            unique_ttl: Duration::from_secs(self.unique_ttl_seconds),
            quotas: Quotas {
                max_waiting: self.queue_max_waiting,
                max_result_bytes: self.queue_max_result_bytes,
            },
        }
    }
}

/// How a worker process (or the API's embedded pool) runs jobs.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
pub struct WorkerArgs {
    /// Identity written on every job this worker takes (Kubernetes sets it from `status.podIP`).
    /// Default: the host's own address.
    #[arg(long = "worker-ip", env = "WORKER_IP", value_name = "IP", value_parser = parse_identity)]
    pub worker_ip: Option<String>,

    /// The longest one attempt of a job may run, in seconds (a job may ask for less); past it
    /// the attempt fails as transient, so the job is retried while it has attempts left.
    #[arg(
        long = "job-timeout-seconds",
        env = "HOLIDAPP_JOB_TIMEOUT_SECONDS",
        default_value_t = 600,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    pub job_timeout_seconds: u64,

    /// Jobs run at once. Default: the number of CPU cores.
    #[arg(
        long = "concurrency",
        env = "HOLIDAPP_WORKER_CONCURRENCY",
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=1024)
    )]
    pub concurrency: Option<u32>,

    /// The most leased jobs waiting for a free slot in the worker's prefetch buffer (it holds
    /// about 20 ms of work per slot, up to this); 0 to fetch a job only when a slot is free.
    #[arg(
        long = "prefetch",
        env = "HOLIDAPP_WORKER_PREFETCH",
        value_name = "N",
        default_value_t = crate::settings::DEFAULT_PREFETCH as u32,
        value_parser = clap::value_parser!(u32).range(0..=crate::settings::MAX_PREFETCH as i64)
    )]
    pub prefetch: u32,

    /// On SIGTERM/SIGINT, how long in-flight jobs may run before they are released to the queue.
    #[arg(
        long = "shutdown-grace-seconds",
        env = "HOLIDAPP_SHUTDOWN_GRACE_SECONDS",
        default_value_t = 20,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(0..=3600)
    )]
    pub shutdown_grace_seconds: u64,

    /// How often this process purges finished jobs past retention, in seconds.
    #[arg(
        long = "purge-interval-seconds",
        env = "HOLIDAPP_PURGE_INTERVAL_SECONDS",
        default_value_t = 60,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    pub purge_interval_seconds: u64,

    /// Queues this worker serves, comma-separated, in order of preference: the first is asked
    /// first, and one lease in four goes to the later ones in turn so they are never starved.
    #[arg(
        long = "queues",
        env = "HOLIDAPP_QUEUES",
        default_value = "default",
        value_name = "QUEUE,...",
        value_parser = parse_queues
    )]
    pub queues: QueueList,

    /// What a `plot` job's work is: `plot` (the product), or, as a testing and benchmark aid
    /// only, `noop` (store a 1x1 PNG at once) or `sleep:MS` (wait MS milliseconds, then do as
    /// `noop`).
    #[arg(
        long = "renderer",
        env = "HOLIDAPP_RENDERER",
        default_value = "plot",
        value_name = "plot|noop|sleep:MS"
    )]
    pub renderer: RendererChoice,
}

/// The queues a worker serves, in order of preference, without repeats; never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueList(pub Vec<QueueName>);

/// The most queues one worker serves.
const MAX_QUEUES: usize = 32;

fn parse_queues(s: &str) -> Result<QueueList, String> {
    let mut queues: Vec<QueueName> = Vec::new();
    for name in s.split(',').map(str::trim) {
        let queue = QueueName::new(name).map_err(|e| e.to_string())?;
        if queues.contains(&queue) {
            return Err(format!("queue '{queue}' is named twice"));
        }
        queues.push(queue);
    }
    if queues.len() > MAX_QUEUES {
        return Err(format!("at most {MAX_QUEUES} queues, not {}", queues.len()));
    }
    Ok(QueueList(queues))
}

impl WorkerArgs {
    /// The worker identity: `WORKER_IP`, or else [`host_address`].
    pub fn identity(&self) -> String {
        match &self.worker_ip {
            Some(ip) => ip.clone(),
            None => host_address().to_string(),
        }
    }

    /// The concurrency: as configured, or else the number of CPU cores.
    pub fn concurrency(&self) -> usize {
        match self.concurrency {
            Some(n) => n as usize,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    /// The per-attempt time limit.
    pub fn job_timeout(&self) -> Duration {
        Duration::from_secs(self.job_timeout_seconds)
    }

    /// The shutdown grace period.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }

    /// A [`WorkerConfig`] with these settings and the library's defaults for the rest.
    pub fn worker_config(&self) -> WorkerConfig {
        WorkerConfig {
            shutdown_grace: self.shutdown_grace(),
            prefetch: self.prefetch as usize,
            purge_interval: Duration::from_secs(self.purge_interval_seconds),
            ..WorkerConfig::new(self.identity(), self.concurrency())
        }
    }
}

/// Logging.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
pub struct LogArgs {
    /// Log filter: a level (`error`, `warn`, `info`, `debug`, `trace`) or per-module directives
    /// such as `info,holidapp_worker=debug`.
    #[arg(
        long = "log-level",
        env = "LOG_LEVEL",
        default_value = "info",
        value_name = "FILTER"
    )]
    pub log_level: String,
}

/// Installs the process-wide log subscriber: human-readable lines on standard error, filtered by
/// `filter` (`LOG_LEVEL` syntax). Answers an error for a filter that does not parse, or when a
/// subscriber is already installed.
pub fn init_logging(filter: &str) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| format!("LOG_LEVEL '{filter}' is not a valid log filter: {e}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|e| format!("cannot install the logger: {e}"))
}

/// The address this host uses to reach other machines, or `127.0.0.1` when it has none.
///
/// Found without any lookup service: a UDP socket is "connected" to an address of the
/// documentation range (192.0.2.1), which only asks the kernel which local address its routing
/// table would use. No packet is sent.
pub fn host_address() -> IpAddr {
    let probe = || -> std::io::Result<IpAddr> {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9))?;
        Ok(socket.local_addr()?.ip())
    };
    probe()
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// The longest worker identity accepted; it is written on every job.
const MAX_IDENTITY_LEN: usize = 255;

fn parse_identity(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("must not be blank".into());
    }
    if s.len() > MAX_IDENTITY_LEN || s.chars().any(char::is_control) {
        return Err(format!(
            "must be at most {MAX_IDENTITY_LEN} bytes with no control characters"
        ));
    }
    Ok(s.to_owned())
}

fn parse_prefix(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
    {
        return Err("may contain only ASCII letters, digits, '-', '_', '.' and ':'".into());
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser, Debug)]
    struct All {
        #[command(flatten)]
        backend: BackendArgs,
        #[command(flatten)]
        queue: QueueArgs,
        #[command(flatten)]
        worker: WorkerArgs,
        #[command(flatten)]
        log: LogArgs,
    }

    fn parse(args: &[&str]) -> Result<All, clap::Error> {
        All::try_parse_from(std::iter::once("test").chain(args.iter().copied()))
    }

    #[test]
    fn flags_override_and_ranges_are_checked() {
        let all = parse(&[
            "--redis-url",
            "",
            "--redis-ip",
            "10.0.0.7",
            "--lease-seconds",
            "2",
            "--max-attempts",
            "5",
            "--worker-ip",
            "w1",
            "--concurrency",
            "3",
            "--shutdown-grace-seconds",
            "1",
            "--renderer",
            "sleep:250",
            "--queues",
            "urgent, default",
            "--redis-image-db",
            "1",
        ])
        .unwrap();
        assert_eq!(
            all.worker.queues.0,
            vec![
                QueueName::new("urgent").unwrap(),
                QueueName::default_queue()
            ]
        );
        assert_eq!(all.backend.redis_image_db, Some(1));
        let redis = all.backend.redis_config().unwrap();
        assert_eq!(redis.url, "redis://10.0.0.7:6379/0");
        assert_eq!(redis.prefix, "holidapp");
        assert_eq!(all.queue.lease(), Duration::from_secs(2));
        assert_eq!(all.queue.queue_settings().retry.max_attempts, 5);
        let config = all.worker.worker_config();
        assert_eq!(config.identity, "w1");
        assert_eq!(config.concurrency, 3);
        assert_eq!(config.shutdown_grace, Duration::from_secs(1));
        assert_eq!(
            all.worker.renderer,
            RendererChoice::Sleep(Duration::from_millis(250))
        );

        for bad in [
            &["--concurrency", "0"][..],
            &["--lease-seconds", "0"],
            &["--max-attempts", "0"],
            &["--redis-port", "70000"],
            &["--prefix", "has space"],
            &["--worker-ip", "  "],
            &["--renderer", "sleep:fast"],
            &["--queues", "a,a"],
            &["--queues", "a,,b"],
            &["--queues", "no space"],
            &["--redis-image-db", "16"],
            &["--queue-partitions", "default"],
            &["--queue-partitions", "default=0"],
            &["--queue-partitions", "default=65"],
            &["--queue-partitions", "a=2,a=3"],
            &["--queue-partitions", "bad name=2"],
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains(bad[0]), "the error names the flag: {err}");
        }
    }

    #[test]
    fn no_redis_unless_a_url_or_host_is_given() {
        let all = parse(&[]).unwrap();
        // A shell that points at Redis (REDIS_URL exported) must not fail the test.
        if ["REDIS_URL", "REDIS_IP", "REDIS_CLUSTER_URLS"]
            .iter()
            .all(|v| std::env::var_os(v).is_none())
        {
            assert_eq!(all.backend.redis_config(), None);
        }
        let blank = parse(&["--redis-url", " ", "--redis-ip", ""]).unwrap();
        assert_eq!(blank.backend.redis_config(), None);
        let url = parse(&[
            "--redis-url",
            "rediss://:pw@cache:6380/2",
            "--redis-ip",
            "10.0.0.7",
        ]);
        assert_eq!(
            url.unwrap().backend.redis_config().unwrap().url,
            "rediss://:pw@cache:6380/2"
        );
        // The cluster's seed nodes win over both, blanks between commas skipped.
        let cluster = parse(&[
            "--redis-cluster-urls",
            "redis://:pw@n1:6379, ,redis://n2:6379",
            "--redis-url",
            "redis://single:6379",
            "--prefix",
            "team",
        ])
        .unwrap()
        .backend
        .redis_config()
        .unwrap();
        assert_eq!(
            cluster.cluster_urls,
            vec!["redis://:pw@n1:6379", "redis://n2:6379"]
        );
        assert!(cluster.is_cluster());
        assert_eq!(cluster.prefix, "team");
        assert_eq!(
            cluster.redacted_url(),
            "redis://***@n1:6379,redis://n2:6379"
        );
        let blank_cluster = parse(&["--redis-cluster-urls", " , ", "--redis-url", "redis://s"])
            .unwrap()
            .backend
            .redis_config()
            .unwrap();
        assert!(!blank_cluster.is_cluster());
        assert_eq!(blank_cluster.url, "redis://s");
        assert_eq!(all.backend.prefix, "holidapp");
        assert_eq!(all.backend.redis_port, 6379);
        assert_eq!(all.queue.lease_seconds, 30);
        assert_eq!(all.queue.result_ttl_seconds, 604_800);
        assert_eq!(all.worker.shutdown_grace_seconds, 20);
        assert_eq!(all.worker.renderer, RendererChoice::Plot);
        assert_eq!(all.worker.queues.0, vec![QueueName::default_queue()]);
        assert_eq!(all.backend.redis_image_db, None);
        assert_eq!(all.backend.queue_partitions, PartitionList::default());
        let split = parse(&["--queue-partitions", " default=6, thumbs=1 ,"]).unwrap();
        assert_eq!(
            split.backend.queue_partitions.0,
            vec![
                (QueueName::default_queue(), 6),
                (QueueName::new("thumbs").unwrap(), 1)
            ]
        );
        assert!(all.worker.concurrency() >= 1);
        assert!(!all.worker.identity().is_empty());
    }

    #[test]
    fn host_address_is_never_unspecified() {
        assert!(!host_address().is_unspecified());
    }

    #[test]
    fn bad_log_filters_are_refused_with_the_variable_name() {
        let err = init_logging("info,=[").unwrap_err();
        assert!(err.contains("LOG_LEVEL"), "{err}");
    }
}
