//! The Redis backend: every capability on one Redis, shared by any number of API and worker
//! processes.
//!
//! [`RedisBackend`] implements [`Producer`](crate::Producer), [`Consumer`](crate::Consumer),
//! [`Maintenance`](crate::Maintenance) and [`JobStore`](crate::JobStore). It keeps the promises
//! of those traits across processes:
//!
//! - **Every change is one Lua script** (the `.lua` files beside this module, each opening with
//!   its `KEYS` and `ARGV`), loaded once and run by SHA. The status machine
//!   ([`machine::decide`](crate::machine::decide)) decides each move in Rust and the script
//!   receives it; the script compares the job's status and fencing token before it sets, so two
//!   processes never both move one job.
//! - **One hash tag per script.** A queue's keys and its jobs' keys share the tag `{xx}`, the
//!   queue's slot tag, which is also the first byte of its job ids: a script touches one Redis
//!   Cluster slot, and a job is found from its id alone.
//! - **One clock: Redis's.** Lease deadlines, retry delays and retention are read from Redis's
//!   own clock (`TIME`, inside the scripts), never from the clock of the process that calls: a
//!   worker whose clock runs ahead cannot expire healthy leases or purge live results. Tests
//!   that want to drive time build the backend [`with_clock`](RedisBackend::with_clock) and pass
//!   a [`ManualClock`](crate::ManualClock), whose time the scripts then take instead, exactly as
//!   on the in-memory backend.
//! - **The layout is readable**: a job is a hash (`HGETALL holidapp:{2d}:job:{id}` shows its
//!   fields), and every key is listed in `docs/redis-layout.md`. Nothing uses `KEYS`; listings
//!   read the indexes the scripts keep, and the queue itself serves as the index of waiting jobs.
//! - **Outages are short errors**: calls go through a [`RedisConn`], which reconnects by itself
//!   and gives up after a deadline (one second unless set with [`RedisBackend::with_timeout`])
//!   with [`Error::Unavailable`], so an API can answer 503 at once and recover without a restart.
//! - **Throughput comes from batches**: [`Producer::enqueue_many`](crate::Producer::enqueue_many)
//!   stores a thousand jobs per script call; [`Consumer::lease_many`](crate::Consumer::lease_many) and
//!   [`RedisBackend::complete_many`] take and finish many jobs per call; and concurrent
//!   [`lease`](crate::Consumer::lease), [`complete`](crate::Consumer::complete) and
//!   [`enqueue`](crate::Producer::enqueue) calls from tasks of one process are gathered into such
//!   batches by themselves, each job still fenced on its own.
//! - **Idle workers block, they do not poll**: [`wait_for_work`](crate::Consumer::wait_for_work)
//!   waits with `BLPOP` on the queues' wake-up lists, on a connection of its own.
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

mod coalesce;
mod codec;
mod conn;
mod events;
mod jobs;
mod keys;
mod queue;
mod scripts;
mod workers;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::{IntoConnectionInfo, RedisResult, Value};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::job::{Job, JobId, QueueName};
use crate::kind::Output;
use crate::queue::{Enqueued, Lease, QueueSettings};

use coalesce::{Abandoned, Coalescer};
use conn::BlockingClient;
pub use conn::{BULK_TIMEOUT, DEFAULT_TIMEOUT, RedisConn, RedisLink, map_error};
use conn::{is_outage, run_raw};
pub use keys::MAX_PARTITIONS;
use keys::{Keys, Partition, QueueKeys};

/// The key namespace used when none is configured (`HOLIDAPP_PREFIX`).
pub const DEFAULT_PREFIX: &str = "holidapp";

/// Most jobs one [`Consumer::lease_many`](crate::Consumer::lease_many) call hands out.
pub const MAX_LEASE_BATCH: usize = 1000;

/// Where the Redis backend connects and which key namespace it uses.
///
/// The URL may carry a password (`redis://:secret@host:6379/0`) and select TLS (`rediss://`).
/// `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://` or `rediss://` URL (`REDIS_URL`, or built from `REDIS_IP`, `REDIS_PORT` and
    /// `REDIS_DB`). Unused when [`cluster_urls`](Self::cluster_urls) is not empty.
    pub url: String,
    /// Seed nodes of a Redis Cluster (`REDIS_CLUSTER_URLS`, comma-separated `redis://` URLs);
    /// when not empty, the backend runs on that cluster and `url` is unused. Any one reachable
    /// node is enough: the client learns the others from it.
    pub cluster_urls: Vec<String>,
    /// Key namespace (`HOLIDAPP_PREFIX`, default `holidapp`): every key starts with it and a
    /// colon, so several deployments can share one Redis.
    pub prefix: String,
}

impl RedisConfig {
    /// A configuration for `url` with the default prefix.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            cluster_urls: Vec::new(),
            prefix: DEFAULT_PREFIX.to_owned(),
        }
    }

    /// A configuration for the Redis Cluster that `urls` (seed nodes) belong to, with the
    /// default prefix.
    pub fn cluster(urls: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let cluster_urls: Vec<String> = urls.into_iter().map(Into::into).collect();
        RedisConfig {
            url: cluster_urls.first().cloned().unwrap_or_default(),
            cluster_urls,
            prefix: DEFAULT_PREFIX.to_owned(),
        }
    }

    /// The same configuration on the cluster named by `urls`, a comma-separated list of seed
    /// node URLs (`REDIS_CLUSTER_URLS`), when it names any; unchanged otherwise.
    pub fn with_cluster_urls(mut self, urls: Option<&str>) -> Self {
        let urls: Vec<String> = urls
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        if !urls.is_empty() {
            self.url = urls[0].clone();
            self.cluster_urls = urls;
        }
        self
    }

    /// Whether this configuration names a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        !self.cluster_urls.is_empty()
    }

    /// The error for a URL the client refused.
    fn invalid(&self, e: redis::RedisError) -> Error {
        Error::Internal(format!("invalid Redis URL '{}': {e}", self.redacted_url()))
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
            cluster_urls: Vec::new(),
            prefix: if prefix.is_empty() {
                DEFAULT_PREFIX.to_owned()
            } else {
                prefix.to_owned()
            },
        })
    }

    /// The URL (or, for a cluster, the comma-separated seed URLs) with any password replaced by
    /// `***`, for logs.
    pub fn redacted_url(&self) -> String {
        fn redact(url: &str) -> String {
            match (url.find("://"), url.rfind('@')) {
                (Some(scheme_end), Some(at)) if at > scheme_end => {
                    format!("{}***{}", &url[..scheme_end + 3], &url[at..])
                }
                _ => url.to_owned(),
            }
        }
        if self.is_cluster() {
            self.cluster_urls
                .iter()
                .map(|u| redact(u))
                .collect::<Vec<_>>()
                .join(",")
        } else {
            redact(&self.url)
        }
    }

    /// A connection to the same server, in logical database `db` (the course's second Redis
    /// "tab", `REDIS_IMAGE_DB`). Fails for a URL that cannot be used, and on a cluster, which
    /// has only database 0.
    pub fn open_database(&self, db: u32) -> Result<RedisConn> {
        if self.is_cluster() {
            return Err(Error::Internal(format!(
                "a Redis Cluster has only database 0; database {db} cannot be used"
            )));
        }
        let info = self
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| self.invalid(e))?;
        let settings = info.redis_settings().clone().set_db(i64::from(db));
        let info = info.set_redis_settings(settings);
        let client = redis::Client::open(info).map_err(map_error)?;
        RedisConn::from_client(client)
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

/// Jobs and their queues on Redis. Cheap to clone: clones share one connection.
#[derive(Clone)]
pub struct RedisBackend {
    /// The multiplexed connection every call shares; it reconnects by itself after an outage.
    conn: RedisConn,
    /// Opens the connections that [`Consumer::wait_for_work`](crate::Consumer::wait_for_work)
    /// and event readers block on: a blocking `BLPOP` would stall every other call on the
    /// shared connection.
    blocking: BlockingClient,
    /// Idle blocking connections, kept for the next wait. A std mutex: held for a push or a pop,
    /// never across an await.
    waiters: Arc<Mutex<Vec<RedisLink>>>,
    keys: Arc<Keys>,
    settings: QueueSettings,
    time: Time,
    /// Queue partitions this process has added to the registry (`{prefix}:queues`), so it adds
    /// each once. A std mutex: held for a lookup or an insert, never across an await.
    registered: Arc<Mutex<HashSet<Partition>>>,
    /// The partition tags of each queue split into more than one partition, for the ids of new
    /// jobs (see [`with_partitions`](Self::with_partitions)).
    splits: Arc<HashMap<QueueName, Vec<u8>>>,
    /// Turns over the partitions that new jobs of a split queue go to, and the partition a
    /// lease of such a queue tries first.
    turn: Arc<AtomicUsize>,
    /// The registry as last read, and when: leases and waits read it at most once per
    /// [`REGISTRY_REFRESH`]. A std mutex, never held across an await.
    known: Arc<Mutex<Option<RegistryRead>>>,
    /// Gathers concurrent `lease` calls into `lease_many` calls. `None` in the batching tasks'
    /// own copies, which call the scripts directly.
    leases: Option<Coalescer<LeaseRequest, Option<Lease>>>,
    /// Gathers concurrent `complete` calls into `complete_many` calls.
    completions: Option<Coalescer<(Lease, Output), Job>>,
    /// Gathers concurrent `enqueue` calls into one script call per queue.
    enqueues: Option<Coalescer<Job, Enqueued>>,
    /// Replicas that must acknowledge a submit or a completion before it is answered, and how
    /// long to wait for them (see [`with_replica_acks`](Self::with_replica_acks)).
    replica_acks: Option<(u32, Duration)>,
}

/// Where the scripts read the time.
#[derive(Clone)]
enum Time {
    /// Redis's own clock (`TIME` inside each script): one clock for every process.
    Server,
    /// A clock the caller gave (tests drive expiry with a [`ManualClock`](crate::ManualClock)).
    Given(Arc<dyn Clock>),
}

impl Time {
    /// The time argument of a script: empty for Redis's clock, else the given clock's time in ms.
    fn arg(&self) -> String {
        match self {
            Time::Server => String::new(),
            Time::Given(clock) => codec::millis(clock.now()).to_string(),
        }
    }
}

/// One `lease` call waiting for its batch.
struct LeaseRequest {
    queue: QueueName,
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
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// A backend on `config`, reading time from Redis's clock.
    ///
    /// Does not fail when Redis is down: the connection is made on first use and remade after
    /// every outage, and calls answer [`Error::Unavailable`] meanwhile (see
    /// [`ping`](crate::JobStore::ping)). Fails only for a URL that cannot be used.
    pub async fn connect(config: &RedisConfig, settings: QueueSettings) -> Result<Self> {
        Self::open(config, settings, Time::Server)
    }

    /// A backend on `config` reading time from `clock` instead of Redis's clock: tests pass a
    /// [`ManualClock`](crate::ManualClock) to drive lease expiry, retry delays and retention.
    /// Every process sharing the Redis must then share the clock too.
    pub async fn with_clock(
        config: &RedisConfig,
        settings: QueueSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        Self::open(config, settings, Time::Given(clock))
    }

    fn open(config: &RedisConfig, settings: QueueSettings, time: Time) -> Result<Self> {
        let backend = RedisBackend {
            conn: RedisConn::open_for(config)?,
            blocking: BlockingClient::new(config)?,
            waiters: Arc::new(Mutex::new(Vec::new())),
            keys: Arc::new(Keys::new(&config.prefix)),
            settings,
            time,
            registered: Arc::new(Mutex::new(HashSet::new())),
            splits: Arc::new(HashMap::new()),
            turn: Arc::new(AtomicUsize::new(0)),
            known: Arc::new(Mutex::new(None)),
            leases: None,
            completions: None,
            enqueues: None,
            replica_acks: None,
        };
        Ok(backend.start_batching())
    }

    /// The same backend with calls giving up after `timeout` instead of one second.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.conn = self.conn.with_timeout(timeout);
        self.start_batching()
    }

    /// The same backend answering a submit or a completion only once `replicas` replicas have
    /// acknowledged it (Redis's `WAIT`, sent with the script on the same connection), waiting
    /// at most `wait` for them: a failover to a replica then loses nothing that was answered.
    /// A write the replicas do not acknowledge in time answers [`Error::Unavailable`]; it
    /// reached the primary, so a submit retried with the same unique key finds it. `replicas`
    /// 0 turns this off (the default).
    pub fn with_replica_acks(mut self, replicas: u32, wait: Duration) -> Self {
        self.replica_acks = (replicas > 0).then_some((replicas, wait));
        self.start_batching()
    }

    /// The same backend splitting each queue named in `partitions` into that many partitions
    /// (at most [`MAX_PARTITIONS`]; 1 is no split): new jobs of the queue go to its partitions in
    /// turn, each partition under a slot tag of its own, so that on a Redis Cluster one queue
    /// spreads over the masters. The tags are chosen from the queue's name and the number alone,
    /// so every process that submits agrees on them.
    ///
    /// Only submitting needs this setting. A partition is recorded in the queue registry with
    /// its first job, and leases, waits, listings, counts, events and recovery follow the
    /// registry: a worker serves every partition of its queues whatever its own setting, and
    /// changing the number (up or down) strands no job.
    pub fn with_partitions(
        mut self,
        partitions: impl IntoIterator<Item = (QueueName, u16)>,
    ) -> Self {
        let splits: HashMap<QueueName, Vec<u8>> = partitions
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(queue, n)| {
                let tags = keys::partition_tags(&queue, n);
                (queue, tags)
            })
            .collect();
        self.splits = Arc::new(splits);
        self.start_batching()
    }

    /// The connection this backend runs on, for stores built beside it.
    pub fn conn(&self) -> &RedisConn {
        &self.conn
    }

    /// The settings this backend applies.
    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    /// The key prefix (namespace) of this backend.
    pub fn prefix(&self) -> &str {
        &self.keys.prefix
    }

    /// Starts the tasks that gather concurrent `lease`, `complete` and `enqueue` calls into
    /// batches (see `coalesce`), replacing any started before. Outside a tokio runtime there are
    /// no tasks and every call runs on its own.
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
            // have been answered, but it happened. (A call whose caller had left before its
            // batch ran is not made at all.)
            Abandoned::Skip,
            |_: Enqueued| {},
        ));
        let for_leases = direct.clone();
        let for_orphans = direct.clone();
        self.leases = Some(Coalescer::spawn(
            MAX_LEASE_BATCH,
            move |requests| {
                let backend = for_leases.clone();
                async move { backend.lease_batch(requests).await }
            },
            Abandoned::Skip,
            // A caller that stopped waiting (a worker shutting down) never gets its job: give
            // it back at once rather than leave it leased until the lease runs out.
            move |lease: Option<Lease>| {
                if let Some(lease) = lease {
                    let backend = for_orphans.clone();
                    tokio::spawn(async move {
                        use crate::queue::Consumer;
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
                async move { backend.complete_batch(done).await }
            },
            // A finished job is stored even when its worker stopped waiting: the work is done.
            Abandoned::Run,
            // A completed job whose caller stopped waiting is complete all the same.
            |_: Job| {},
        ));
        self
    }

    /// Adds a `TIME` to the end of `pipe` when time is Redis's, so a read learns the time in
    /// the same round trip; [`time_of`](Self::time_of) takes its answer.
    fn ask_time(&self, pipe: &mut redis::Pipeline) {
        if let Time::Server = self.time {
            pipe.cmd("TIME");
        }
    }

    /// The time of a read, in ms since the epoch: the answer to the `TIME` that
    /// [`ask_time`](Self::ask_time) added (taken off the end of `replies`), or the given clock's.
    fn time_of(&self, replies: &mut Vec<redis::Value>) -> Result<i64> {
        match &self.time {
            Time::Given(clock) => Ok(codec::millis(clock.now())),
            Time::Server => codec::time_reply(
                replies
                    .pop()
                    .ok_or_else(|| Error::Internal("Redis answered no TIME".into()))?,
            ),
        }
    }

    /// The keys of one partition of a queue.
    fn partition_keys(&self, partition: &Partition) -> QueueKeys {
        self.keys.partition(partition)
    }

    /// A fresh id for a new job of `queue`: in the queue's next partition in turn when it is
    /// split, else in its only one.
    fn new_job_id(&self, queue: &QueueName) -> JobId {
        match self.splits.get(queue) {
            Some(tags) if !tags.is_empty() => {
                let turn = self.turn.fetch_add(1, Ordering::Relaxed);
                JobId::new_with_tag(tags[turn % tags.len()])
            }
            _ => JobId::new_in(queue),
        }
    }

    /// Adds `partitions` to the queue registry, once per process, so that leases, waits,
    /// listings, counts and recovery find them.
    async fn register(&self, partitions: impl Iterator<Item = Partition>) -> Result<()> {
        let new: Vec<Partition> = {
            let registered = self.registered.lock().unwrap_or_else(|e| e.into_inner());
            let mut new: Vec<Partition> = partitions.filter(|p| !registered.contains(p)).collect();
            new.sort();
            new.dedup();
            new
        };
        if new.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = new.iter().map(Partition::name).collect();
        let _: i64 = self
            .conn
            .query(redis::cmd("SADD").arg(&self.keys.queues).arg(&names))
            .await?;
        // This process's own view follows at once; others' within a refresh.
        if let Some((_, known)) = self
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            let mut all: Vec<Partition> =
                known.iter().cloned().chain(new.iter().cloned()).collect();
            all.sort();
            all.dedup();
            *known = Arc::new(all);
        }
        self.registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(new);
        Ok(())
    }

    /// Every queue partition in the registry, sorted by queue and tag, read now. Names that are
    /// not partition names (written by something else) are skipped.
    async fn known_partitions(&self) -> Result<Arc<Vec<Partition>>> {
        let names: Vec<String> = self
            .conn
            .query(redis::cmd("SMEMBERS").arg(&self.keys.queues))
            .await?;
        let mut partitions: Vec<Partition> =
            names.iter().filter_map(|n| Partition::parse(n)).collect();
        partitions.sort();
        let partitions = Arc::new(partitions);
        *self.known.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), Arc::clone(&partitions)));
        Ok(partitions)
    }

    /// The partitions of `queue`: its base partition first, then the others in the registry as
    /// read at most [`REGISTRY_REFRESH`] ago (this process's own additions at once).
    async fn partitions_of(&self, queue: &QueueName) -> Result<Vec<Partition>> {
        let cached = self
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|(read, _)| read.elapsed() < REGISTRY_REFRESH)
            .map(|(_, known)| Arc::clone(known));
        let known = match cached {
            Some(known) => known,
            None => self.known_partitions().await?,
        };
        let base = Partition::base(queue);
        let mut partitions = vec![base.clone()];
        partitions.extend(
            known
                .iter()
                .filter(|p| p.queue == *queue && **p != base)
                .cloned(),
        );
        Ok(partitions)
    }

    /// The partitions of `queues`, in the order of the queues.
    async fn partitions_of_all(&self, queues: &[QueueName]) -> Result<Vec<Partition>> {
        let mut all = Vec::new();
        for queue in queues {
            all.extend(self.partitions_of(queue).await?);
        }
        Ok(all)
    }

    /// Checks the server settings that decide whether jobs can be lost, and returns one warning
    /// per problem (empty when all is well): `maxmemory-policy` other than `noeviction` (Redis
    /// may evict jobs under memory pressure), and neither the append-only file nor RDB snapshots
    /// on (a restart loses everything). A server that refuses `CONFIG GET` (some managed
    /// services) gives a warning saying the settings could not be checked.
    pub async fn check_durability(&self) -> Result<Vec<String>> {
        let mut conn = self.conn.link();
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
        let replies: RedisResult<Vec<Vec<String>>> =
            run_raw(self.conn.timeout(), pipe.query_async(&mut conn)).await?;
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

    /// A connection for one blocking command: an idle one when `reuse` and there is one, else
    /// new. Answers whether it was reused.
    async fn blocking_connection(&self, reuse: bool) -> Result<(RedisLink, bool)> {
        if reuse {
            let idle = self.waiters.lock().unwrap_or_else(|e| e.into_inner()).pop();
            if let Some(conn) = idle {
                return Ok((conn, true));
            }
        }
        let conn = self.blocking.connect(self.conn.timeout()).await?;
        Ok((conn, false))
    }

    /// Keeps a blocking connection for the next wait (up to [`IDLE_BLOCKING`] of them).
    fn return_blocking_connection(&self, conn: RedisLink) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        if waiters.len() < IDLE_BLOCKING {
            waiters.push(conn);
        }
    }

    /// Runs one blocking command (a `BLPOP` or an `XREAD BLOCK` on keys of one slot) that the
    /// server ends after at most `wait`, on a connection of its own, and answers when it ends.
    async fn block_on(&self, command: &redis::Cmd, wait: Duration) -> Result<()> {
        let mut reuse = true;
        loop {
            let (mut blocking, reused) = self.blocking_connection(reuse).await?;
            let call = command.query_async::<Value>(&mut blocking);
            // The server ends the command at `wait`; the extra second covers one that cannot.
            match tokio::time::timeout(wait + Duration::from_secs(1), call).await {
                Ok(Ok(_)) => {
                    self.return_blocking_connection(blocking);
                    return Ok(());
                }
                // An idle connection may have died with a server restart: try a new one once.
                Ok(Err(e)) if reused && is_outage(&e) => reuse = false,
                Ok(Err(e)) => return Err(map_error(e)),
                Err(_) => {
                    return Err(Error::Unavailable(
                        "Redis did not end a blocking wait".into(),
                    ));
                }
            }
        }
    }

    /// Runs blocking commands, each on keys of one slot, at once, and answers when the first
    /// ends. On one Redis the caller gives one command for every key; on a cluster, where one
    /// command cannot name keys of two slots, one per slot. The others then run to their end
    /// (at most `wait`) in the background and keep their connections for later waits.
    async fn block_on_any(&self, commands: Vec<redis::Cmd>, wait: Duration) -> Result<()> {
        if commands.len() <= 1 {
            return match commands.first() {
                Some(command) => self.block_on(command, wait).await,
                None => Ok(()),
            };
        }
        let tasks = commands.into_iter().map(|command| {
            let backend = self.clone();
            tokio::spawn(async move { backend.block_on(&command, wait).await })
        });
        let (first, _, _others) = futures::future::select_all(tasks).await;
        first.map_err(|e| Error::Internal(format!("a blocking wait failed: {e}")))?
    }

    /// Runs `commands`, each on keys of the slot tag it comes with, and answers their replies
    /// in the order given, with the time of the read (see [`ask_time`](Self::ask_time)). On one
    /// Redis they go in one pipeline; on a cluster, in one pipeline per tag, sent at once, and
    /// the time is that of the first tag's node (the nodes' clocks are taken to agree, as
    /// retention and deadlines already assume). `bulk` gives the calls the bulk deadline.
    async fn query_by_tag(
        &self,
        commands: Vec<(u8, redis::Cmd)>,
        bulk: bool,
    ) -> Result<(Vec<Value>, i64)> {
        let run = |pipe: redis::Pipeline| async move {
            let mut replies: Vec<Value> = if bulk {
                self.conn.query_bulk(&pipe).await?
            } else {
                self.conn.query_pipeline(&pipe).await?
            };
            let now = self.time_of(&mut replies)?;
            Ok::<_, Error>((replies, now))
        };
        if !self.conn.is_cluster() || commands.is_empty() {
            let mut pipe = redis::pipe();
            for (_, command) in &commands {
                pipe.add_command(command.clone());
            }
            self.ask_time(&mut pipe);
            return run(pipe).await;
        }
        // The commands of each tag, with their places in the answer.
        let mut groups: Vec<(u8, Vec<usize>, redis::Pipeline)> = Vec::new();
        for (i, (tag, command)) in commands.into_iter().enumerate() {
            let group = match groups.iter().position(|(t, _, _)| *t == tag) {
                Some(g) => g,
                None => {
                    groups.push((tag, Vec::new(), redis::pipe()));
                    groups.len() - 1
                }
            };
            groups[group].1.push(i);
            groups[group].2.add_command(command);
        }
        let count: usize = groups.iter().map(|(_, places, _)| places.len()).sum();
        let answers =
            futures::future::try_join_all(groups.into_iter().map(|(_, places, mut pipe)| {
                self.ask_time(&mut pipe);
                let call = run(pipe);
                async move { Ok::<_, Error>((places, call.await?)) }
            }))
            .await?;
        let mut replies = vec![Value::Nil; count];
        let mut now = None;
        for (places, (answer, time)) in answers {
            if answer.len() != places.len() {
                return Err(Error::Internal(format!(
                    "Redis answered {} replies to {} commands",
                    answer.len(),
                    places.len()
                )));
            }
            now.get_or_insert(time);
            for (place, reply) in places.into_iter().zip(answer) {
                replies[place] = reply;
            }
        }
        let now = now.ok_or_else(|| Error::Internal("Redis answered no time".into()))?;
        Ok((replies, now))
    }
}

/// The queue registry as read at a time.
type RegistryRead = (Instant, Arc<Vec<Partition>>);

/// How old the registry read that leases and waits go by may be: a partition another process
/// adds is served within this much (or, by a worker blocked waiting, within its wait).
const REGISTRY_REFRESH: Duration = Duration::from_secs(1);

/// Most idle blocking connections a backend keeps.
const IDLE_BLOCKING: usize = 64;

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
        assert!(config.open_database(1).is_err());
    }
}
