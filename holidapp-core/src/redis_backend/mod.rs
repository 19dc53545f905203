//! The Redis backend: every core trait on one Redis, shared by any number of API and worker
//! processes.
//!
//! [`RedisBackend`] implements [`Queue`], [`JobStore`](crate::JobStore),
//! [`DataStore`](crate::DataStore) and [`ImageStore`](crate::ImageStore). It keeps the promises
//! of those traits across processes:
//!
//! - **Every change is one Lua script** (the `.lua` files beside this module, each opening with
//!   its `KEYS` and `ARGV`), loaded once and run by SHA. Status changes are asked of
//!   [`JobStatus::transition`](crate::JobStatus::transition) in Rust; the script is given the
//!   status the job must still have and compares before it sets, so two processes never both
//!   move one job.
//! - **Time comes from the backend's [`Clock`]** and is passed to the scripts, never read from
//!   the Redis server, so tests drive lease expiry, retry delays and retention with a
//!   [`ManualClock`](crate::ManualClock) exactly as they do on the in-memory backend.
//! - **The layout is readable**: a job is a hash (`HGETALL holidapp:job:{id}` shows its fields),
//!   and every key is listed in `docs/redis-layout.md`. Nothing uses `KEYS`; listings read the
//!   indexes the scripts keep, and the queue itself serves as the index of waiting jobs: the
//!   ready list holds jobs never leased in submission order, and jobs back from a lease wait in
//!   a set by submission number that is leased first, so a submit writes no sorted-set entry.
//! - **Outages are short errors**: the connection is a [`ConnectionManager`] that reconnects by
//!   itself, and every call gives up after a timeout (one second unless set with
//!   [`RedisBackend::with_timeout`]) with [`Error::Unavailable`], so an API can answer 503 at once
//!   and recover without a restart.
//! - **Throughput comes from batches**: [`Queue::enqueue_many`] stores
//!   a thousand jobs per script call; [`RedisBackend::lease_many`] and
//!   [`RedisBackend::complete_many`] take and finish many jobs per call; and concurrent
//!   [`lease`](crate::Queue::lease) and [`complete`](crate::Queue::complete) calls from tasks of
//!   one process are gathered into such batches by themselves, each job still fenced on its own.
//! - **Idle workers block, they do not poll**: [`wait_for_work`](crate::Queue::wait_for_work)
//!   waits with `BLPOP` on a wake-up list, on a connection of its own.
//!
//! ```no_run
//! # async fn example() -> holidapp_core::Result<()> {
//! use holidapp_core::redis_backend::{RedisBackend, RedisConfig};
//! use holidapp_core::{Backends, QueueSettings};
//!
//! let config = RedisConfig::from_parts(None, Some("127.0.0.1"), 6379, 0, "holidapp")
//!     .expect("REDIS_IP is set");
//! let backend = RedisBackend::connect(&config, QueueSettings::default()).await?;
//! for warning in backend.check_durability().await? {
//!     eprintln!("warning: {warning}");
//! }
//! let backends = Backends::single(std::sync::Arc::new(backend));
//! # drop(backends);
//! # Ok(())
//! # }
//! ```
//!
//! Scripts derive job keys from the prefix, so the backend needs a single Redis (or a primary
//! with replicas), not Redis Cluster.

mod coalesce;
mod codec;
mod data;
mod jobs;
mod keys;
mod queue;
mod scripts;

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, ErrorKind, RedisError, RedisResult, ServerErrorKind};

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::job::Job;
use crate::queue::{Lease, Queue, QueueSettings};

use coalesce::Coalescer;
use keys::Keys;

/// The key namespace used when none is configured (`HOLIDAPP_PREFIX`).
pub const DEFAULT_PREFIX: &str = "holidapp";

/// How long one call may wait for Redis before answering [`Error::Unavailable`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// Most jobs one [`RedisBackend::lease_many`] call hands out.
pub const MAX_LEASE_BATCH: usize = 1000;

/// How long one chunk of a bulk write (data set load, bulk enqueue) may take.
const BULK_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the Redis backend connects and which key namespace it uses.
///
/// The URL may carry a password (`redis://:secret@host:6379/0`) and select TLS (`rediss://`).
/// `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://` or `rediss://` URL (`REDIS_URL`, or built from `REDIS_IP`, `REDIS_PORT` and
    /// `REDIS_DB`).
    pub url: String,
    /// Key namespace (`HOLIDAPP_PREFIX`, default `holidapp`): every key starts with it and a
    /// colon, so several deployments can share one Redis.
    pub prefix: String,
}

impl RedisConfig {
    /// A configuration for `url` with the default prefix.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
        }
    }

    /// Builds the configuration from the environment's parts: `REDIS_URL` wins; otherwise
    /// `REDIS_IP` with `REDIS_PORT` and `REDIS_DB` make `redis://{ip}:{port}/{db}`. `None` when
    /// neither is set (empty values count as unset): the caller then runs without Redis. An
    /// empty prefix means the default.
    pub fn from_parts(
        redis_url: Option<&str>,
        redis_ip: Option<&str>,
        port: u16,
        db: i64,
        prefix: &str,
    ) -> Option<RedisConfig> {
        fn set(v: Option<&str>) -> Option<&str> {
            v.map(str::trim).filter(|v| !v.is_empty())
        }
        let url = match (set(redis_url), set(redis_ip)) {
            (Some(url), _) => url.to_owned(),
            (None, Some(ip)) if ip.contains(':') && !ip.starts_with('[') => {
                format!("redis://[{ip}]:{port}/{db}")
            }
            (None, Some(ip)) => format!("redis://{ip}:{port}/{db}"),
            (None, None) => return None,
        };
        let prefix = prefix.trim();
        Some(RedisConfig {
            url,
            prefix: if prefix.is_empty() {
                DEFAULT_PREFIX.to_owned()
            } else {
                prefix.to_owned()
            },
        })
    }

    /// The URL with any password replaced by `***`, for logs.
    pub fn redacted_url(&self) -> String {
        match (self.url.find("://"), self.url.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                format!("{}***{}", &self.url[..scheme_end + 3], &self.url[at..])
            }
            _ => self.url.clone(),
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted_url())
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// Jobs, queue, data set and image on Redis. Cheap to clone: clones share one connection.
#[derive(Clone)]
pub struct RedisBackend {
    /// The multiplexed connection every call shares; it reconnects by itself after an outage.
    conn: ConnectionManager,
    /// Opens the connections that [`Queue::wait_for_work`](crate::Queue::wait_for_work) blocks
    /// on: a blocking `BLPOP` would stall every other call on the shared connection.
    client: redis::Client,
    /// Idle blocking connections, kept for the next wait. A std mutex: held for a push or a pop,
    /// never across an await.
    waiters: Arc<Mutex<Vec<MultiplexedConnection>>>,
    keys: Arc<Keys>,
    settings: QueueSettings,
    clock: Arc<dyn Clock>,
    timeout: Duration,
    /// Gathers concurrent `lease` calls into `lease_many` calls. `None` in the batching tasks'
    /// own copies, which call the scripts directly.
    leases: Option<Coalescer<LeaseRequest, Option<Lease>>>,
    /// Gathers concurrent `complete` calls into `complete_many` calls.
    completions: Option<Coalescer<(Lease, Vec<u8>), Job>>,
    /// Gathers concurrent `enqueue` calls into one script call.
    enqueues: Option<Coalescer<Job, ()>>,
}

/// One `lease` call waiting for its batch.
struct LeaseRequest {
    worker: String,
    lease_for: Duration,
}

/// Most `enqueue` calls one batch carries.
const ENQUEUE_BATCH: usize = 1000;

/// Most `complete` calls one batch carries (their results travel in one script call).
const COMPLETE_BATCH: usize = 128;

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("prefix", &self.keys.prefix)
            .field("settings", &self.settings)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// A backend on `config`, reading time from the system clock.
    ///
    /// Does not fail when Redis is down: the connection is made on first use and remade after
    /// every outage, and calls answer [`Error::Unavailable`] meanwhile (see
    /// [`ping`](crate::JobStore::ping)). Fails only for a URL that cannot be used.
    pub async fn connect(config: &RedisConfig, settings: QueueSettings) -> Result<Self> {
        Self::with_clock(config, settings, Arc::new(SystemClock)).await
    }

    /// A backend on `config` reading time from `clock` (tests pass a
    /// [`ManualClock`](crate::ManualClock)).
    pub async fn with_clock(
        config: &RedisConfig,
        settings: QueueSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let client = redis::Client::open(config.url.as_str()).map_err(|e| {
            Error::Internal(format!(
                "invalid Redis URL '{}': {e}",
                config.redacted_url()
            ))
        })?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(DEFAULT_TIMEOUT))
            // Each call has its own deadline (see `run`); bulk writes need longer than one second.
            .set_response_timeout(None)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(500))
            .set_number_of_retries(3);
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(map_error)?;
        let backend = RedisBackend {
            conn,
            client,
            waiters: Arc::new(Mutex::new(Vec::new())),
            keys: Arc::new(Keys::new(&config.prefix)),
            settings,
            clock,
            timeout: DEFAULT_TIMEOUT,
            leases: None,
            completions: None,
            enqueues: None,
        };
        Ok(backend.start_batching())
    }

    /// The same backend with calls giving up after `timeout` instead of one second.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.start_batching()
    }

    /// Starts the tasks that gather concurrent `lease` and `complete` calls into batches (see
    /// `coalesce`), replacing any started before. Outside a tokio runtime there are no tasks and
    /// every call runs on its own.
    fn start_batching(mut self) -> Self {
        let direct = RedisBackend {
            leases: None,
            completions: None,
            enqueues: None,
            ..self.clone()
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return direct;
        }
        let for_enqueues = direct.clone();
        self.enqueues = Some(Coalescer::spawn(
            ENQUEUE_BATCH,
            move |jobs| {
                let backend = for_enqueues.clone();
                async move { backend.enqueue_batch(jobs).await }
            },
            // A job stored for a caller that stopped waiting stays stored: the call may not
            // have been answered, but it happened.
            |()| {},
        ));
        let for_leases = direct.clone();
        let for_orphans = direct.clone();
        self.leases = Some(Coalescer::spawn(
            MAX_LEASE_BATCH,
            move |requests| {
                let backend = for_leases.clone();
                async move { backend.lease_batch(requests).await }
            },
            // A caller that stopped waiting (a worker shutting down) never gets its job: give
            // it back at once rather than leave it leased until the lease runs out.
            move |lease: Option<Lease>| {
                if let Some(lease) = lease {
                    let backend = for_orphans.clone();
                    tokio::spawn(async move {
                        if let Err(e) = backend.release(&lease).await {
                            tracing::warn!(job = %lease.id(), error = %e, "could not give back a lease nobody took");
                        }
                    });
                }
            },
        ));
        self.completions = Some(Coalescer::spawn(
            COMPLETE_BATCH,
            move |done| {
                let backend = direct.clone();
                async move {
                    let calls = done.len();
                    backend
                        .complete_many(done)
                        .await
                        .unwrap_or_else(|e| coalesce::for_each(&e, calls))
                }
            },
            // A completed job whose caller stopped waiting is complete all the same.
            |_: Job| {},
        ));
        self
    }

    /// Leases for a batch of `lease` calls: one `lease_many` per worker and lease length, in
    /// the order the calls came; calls left without a job get `None`.
    async fn lease_batch(&self, requests: Vec<LeaseRequest>) -> Vec<Result<Option<Lease>>> {
        let mut answers: Vec<Option<Result<Option<Lease>>>> =
            (0..requests.len()).map(|_| None).collect();
        for (i, request) in requests.iter().enumerate() {
            if answers[i].is_some() {
                continue;
            }
            let group: Vec<usize> = (i..requests.len())
                .filter(|&j| {
                    answers[j].is_none()
                        && requests[j].worker == request.worker
                        && requests[j].lease_for == request.lease_for
                })
                .collect();
            match self
                .lease_many(&request.worker, request.lease_for, group.len())
                .await
            {
                Ok(leases) => {
                    let mut leases = leases.into_iter();
                    for j in group {
                        answers[j] = Some(Ok(leases.next()));
                    }
                }
                Err(e) => {
                    for (j, answer) in group
                        .into_iter()
                        .zip(coalesce::for_each(&e, requests.len()))
                    {
                        answers[j] = Some(answer);
                    }
                }
            }
        }
        answers.into_iter().map(|a| a.unwrap_or(Ok(None))).collect()
    }

    /// The settings this backend applies.
    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    /// The key prefix (namespace) of this backend.
    pub fn prefix(&self) -> &str {
        &self.keys.prefix
    }

    /// Checks the server settings that decide whether jobs can be lost, and returns one warning
    /// per problem (empty when all is well): `maxmemory-policy` other than `noeviction` (Redis
    /// may evict jobs under memory pressure), and neither the append-only file nor RDB snapshots
    /// on (a restart loses everything). A server that refuses `CONFIG GET` (some managed
    /// services) gives a warning saying the settings could not be checked.
    pub async fn check_durability(&self) -> Result<Vec<String>> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .cmd("CONFIG")
            .arg("GET")
            .arg("appendonly")
            .cmd("CONFIG")
            .arg("GET")
            .arg("save");
        let replies: RedisResult<Vec<Vec<String>>> = self
            .run_raw(self.timeout, pipe.query_async(&mut conn))
            .await?;
        let replies = match replies {
            Ok(replies) => replies,
            Err(e) if is_outage(&e) => return Err(map_error(e)),
            Err(e) => {
                return Ok(vec![format!(
                    "could not read the Redis configuration to check durability ({e}); make sure \
                     maxmemory-policy is noeviction and persistence (AOF or RDB) is on"
                )]);
            }
        };
        let value = |i: usize| {
            replies
                .get(i)
                .and_then(|pair| pair.get(1))
                .cloned()
                .unwrap_or_default()
        };
        let (policy, appendonly, save) = (value(0), value(1), value(2));
        let mut warnings = Vec::new();
        if policy != "noeviction" {
            warnings.push(format!(
                "Redis maxmemory-policy is '{policy}', not 'noeviction': under memory pressure \
                 Redis may evict jobs and lose them"
            ));
        }
        if appendonly != "yes" && save.trim().is_empty() {
            warnings.push(
                "Redis keeps nothing on disk (appendonly no, no save points): a Redis restart \
                 loses every job; turn on appendonly"
                    .to_owned(),
            );
        }
        Ok(warnings)
    }

    /// Runs one Redis call with the default deadline, mapping its errors.
    async fn run<T>(&self, call: impl Future<Output = RedisResult<T>>) -> Result<T> {
        self.run_with(self.timeout, call).await
    }

    /// Runs one Redis call with the bulk deadline.
    async fn run_bulk<T>(&self, call: impl Future<Output = RedisResult<T>>) -> Result<T> {
        self.run_with(BULK_TIMEOUT.max(self.timeout), call).await
    }

    async fn run_with<T>(
        &self,
        timeout: Duration,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T> {
        self.run_raw(timeout, call).await?.map_err(map_error)
    }

    /// Runs one Redis call with a deadline; a missed deadline is an outage, other errors are the
    /// caller's to map.
    async fn run_raw<T>(
        &self,
        timeout: Duration,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<RedisResult<T>> {
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| Error::Unavailable(format!("Redis did not answer within {timeout:?}")))
    }

    /// A connection for one blocking command: an idle one when `reuse` and there is one, else
    /// new. Answers whether it was reused.
    async fn blocking_connection(&self, reuse: bool) -> Result<(MultiplexedConnection, bool)> {
        if reuse {
            let idle = self.waiters.lock().unwrap_or_else(|e| e.into_inner()).pop();
            if let Some(conn) = idle {
                return Ok((conn, true));
            }
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(None);
        let conn = self
            .run(
                self.client
                    .get_multiplexed_async_connection_with_config(&config),
            )
            .await?;
        Ok((conn, false))
    }

    /// Keeps a blocking connection for the next wait.
    fn return_blocking_connection(&self, conn: MultiplexedConnection) {
        self.waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
    }
}

/// Whether a Redis error means the server cannot be reached or cannot serve right now.
fn is_outage(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
            ) | ErrorKind::AuthenticationFailed
        )
}

/// Maps a Redis error to the core error: outages are [`Error::Unavailable`] (transient), anything
/// else is [`Error::Internal`].
fn map_error(e: RedisError) -> Error {
    if is_outage(&e) {
        Error::Unavailable(format!("Redis: {e}"))
    } else {
        Error::Internal(format!("Redis: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_url_wins_over_the_ip() {
        let config = RedisConfig::from_parts(
            Some("rediss://:pw@cache:6380/2"),
            Some("10.0.0.1"),
            6379,
            0,
            "",
        )
        .unwrap();
        assert_eq!(config.url, "rediss://:pw@cache:6380/2");
        assert_eq!(config.prefix, DEFAULT_PREFIX);
    }

    #[test]
    fn the_ip_port_and_db_make_a_url() {
        let config = RedisConfig::from_parts(None, Some("10.0.0.1"), 6380, 3, "team-a").unwrap();
        assert_eq!(config.url, "redis://10.0.0.1:6380/3");
        assert_eq!(config.prefix, "team-a");
        let v6 = RedisConfig::from_parts(Some(" "), Some("::1"), 6379, 0, "p").unwrap();
        assert_eq!(v6.url, "redis://[::1]:6379/0");
    }

    #[test]
    fn nothing_set_means_no_redis() {
        assert_eq!(RedisConfig::from_parts(None, None, 6379, 0, "p"), None);
        assert_eq!(
            RedisConfig::from_parts(Some(""), Some(""), 6379, 0, "p"),
            None
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let config = RedisConfig::new("redis://user:s3cret@host:6379/0");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("redis://***@host:6379/0"), "{shown}");
        assert_eq!(
            RedisConfig::new("redis://host:6379").redacted_url(),
            "redis://host:6379"
        );
    }

    #[tokio::test]
    async fn a_bad_url_is_refused() {
        let config = RedisConfig::new("http://nope");
        let err = RedisBackend::connect(&config, QueueSettings::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Internal(_)), "{err:?}");
    }
}
