//! [`RedisConn`]: a shared, self-reconnecting connection, to one Redis or to a Redis Cluster,
//! with a deadline on every call and one mapping of Redis errors to core errors.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, RedisFuture, RedisResult,
    ServerErrorKind, Value,
};

use super::RedisConfig;
use crate::error::{Error, Result};

/// How long one call may wait for Redis before answering [`Error::Unavailable`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long one bulk call (a chunk of a bulk write, a large read) may take.
pub const BULK_TIMEOUT: Duration = Duration::from_secs(15);

/// A multiplexed connection to one Redis or to a Redis Cluster, shared by every clone. It is
/// made on first use and remade after every outage; meanwhile each call gives up after its
/// deadline with [`Error::Unavailable`], so a caller can answer at once and recover without a
/// restart. On a cluster, the `redis` crate's cluster client routes each command to the master
/// of its slot and follows `MOVED`, `ASK` and failovers by itself.
///
/// The [`RedisBackend`](super::RedisBackend) runs on one, and stores built beside it (the plot
/// product's data set and image stores) use it through
/// [`RedisBackend::conn`](super::RedisBackend::conn), or open their own with
/// [`RedisConn::open`] (another logical database).
#[derive(Clone)]
pub struct RedisConn {
    link: RedisLink,
    timeout: Duration,
}

/// The connection under a [`RedisConn`], to hand to the `redis` crate's `query_async` and
/// `invoke_async`: one Redis through a [`ConnectionManager`], or a cluster through a
/// [`ClusterConnection`] opened on first use. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct RedisLink(Link);

#[derive(Clone)]
enum Link {
    /// One Redis, reconnecting by itself.
    Single(ConnectionManager),
    /// One Redis on a connection that is not remade (a blocking command's own).
    Plain(MultiplexedConnection),
    /// A Redis Cluster.
    Cluster(Arc<LazyCluster>),
}

/// A cluster connection made on the first call, and retried on the next call while it cannot
/// be made (every seed node down), so that opening never fails for an outage.
struct LazyCluster {
    client: ClusterClient,
    conn: tokio::sync::OnceCell<ClusterConnection>,
}

impl LazyCluster {
    async fn get(&self) -> RedisResult<ClusterConnection> {
        self.conn
            .get_or_try_init(|| self.client.get_async_connection())
            .await
            .cloned()
    }
}

impl RedisLink {
    /// Whether this connection is to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.0, Link::Cluster(_))
    }
}

impl ConnectionLike for RedisLink {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.0 {
            Link::Single(manager) => manager.req_packed_command(cmd),
            Link::Plain(conn) => conn.req_packed_command(cmd),
            Link::Cluster(lazy) => Box::pin(async move {
                let mut conn = lazy.get().await?;
                conn.req_packed_command(cmd).await
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.0 {
            Link::Single(manager) => manager.req_packed_commands(pipeline, offset, count),
            Link::Plain(conn) => conn.req_packed_commands(pipeline, offset, count),
            Link::Cluster(lazy) => Box::pin(async move {
                let mut conn = lazy.get().await?;
                conn.req_packed_commands(pipeline, offset, count).await
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.0 {
            Link::Single(manager) => manager.get_db(),
            Link::Plain(conn) => conn.get_db(),
            Link::Cluster(_) => 0,
        }
    }
}

/// Opens the connections blocking commands (`BLPOP`, `XREAD BLOCK`) run on, one per command at a
/// time: a blocking command holds its connection until it ends, so it must not share the
/// connection every other call goes through.
#[derive(Clone)]
pub(super) enum BlockingClient {
    /// To one Redis.
    Single(Box<redis::Client>),
    /// To a Redis Cluster: each connection is a cluster connection of its own.
    Cluster(Box<ClusterClient>),
}

/// How long a blocking command's connection waits for its answer (the commands themselves block
/// for at most a few seconds).
const BLOCKING_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

impl BlockingClient {
    /// The client for `config`.
    pub(super) fn new(config: &RedisConfig) -> Result<Self> {
        if config.is_cluster() {
            cluster_client(&config.cluster_urls, BLOCKING_RESPONSE_TIMEOUT)
                .map(|client| BlockingClient::Cluster(Box::new(client)))
                .map_err(|e| config.invalid(e))
        } else {
            redis::Client::open(config.url.as_str())
                .map(|client| BlockingClient::Single(Box::new(client)))
                .map_err(|e| config.invalid(e))
        }
    }

    /// A new connection, made within `timeout`.
    pub(super) async fn connect(&self, timeout: Duration) -> Result<RedisLink> {
        match self {
            BlockingClient::Single(client) => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(None);
                let call = client.get_multiplexed_async_connection_with_config(&config);
                run_raw(timeout, call)
                    .await?
                    .map(|conn| RedisLink(Link::Plain(conn)))
                    .map_err(map_error)
            }
            BlockingClient::Cluster(client) => {
                let lazy = LazyCluster {
                    client: ClusterClient::clone(client),
                    conn: tokio::sync::OnceCell::new(),
                };
                run_raw(timeout, lazy.get()).await?.map_err(map_error)?;
                Ok(RedisLink(Link::Cluster(Arc::new(lazy))))
            }
        }
    }
}

/// A cluster client for `urls` (seed nodes; the client learns the rest from them) whose calls
/// wait at most `response_timeout` for an answer.
pub(super) fn cluster_client(
    urls: &[String],
    response_timeout: Duration,
) -> RedisResult<ClusterClient> {
    ClusterClientBuilder::new(urls.iter().map(String::as_str))
        .connection_timeout(DEFAULT_TIMEOUT)
        .response_timeout(response_timeout)
        .build()
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConn")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisConn {
    /// A connection to `config`'s URL. Does not fail when Redis is down (the connection is made
    /// on first use); fails only for a URL that cannot be used.
    pub fn open(config: &RedisConfig) -> Result<Self> {
        Self::open_for(config)
    }

    pub(super) fn open_for(config: &RedisConfig) -> Result<Self> {
        if config.is_cluster() {
            let client = cluster_client(&config.cluster_urls, BULK_TIMEOUT)
                .map_err(|e| config.invalid(e))?;
            return Ok(Self::from_cluster_client(client));
        }
        let client = redis::Client::open(config.url.as_str()).map_err(|e| config.invalid(e))?;
        Self::from_client(client)
    }

    /// A connection through `client`, to a cluster, made on first use.
    pub(super) fn from_cluster_client(client: ClusterClient) -> Self {
        RedisConn {
            link: RedisLink(Link::Cluster(Arc::new(LazyCluster {
                client,
                conn: tokio::sync::OnceCell::new(),
            }))),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub(super) fn from_client(client: redis::Client) -> Result<Self> {
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(DEFAULT_TIMEOUT))
            // Each call has its own deadline (see `run_with`); bulk calls need longer than one
            // second.
            .set_response_timeout(None)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(500))
            .set_number_of_retries(3);
        let manager =
            ConnectionManager::new_lazy_with_config(client, manager_config).map_err(map_error)?;
        Ok(RedisConn {
            link: RedisLink(Link::Single(manager)),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The same connection with calls giving up after `timeout` instead of one second.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The deadline of one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The underlying connection, for a command that needs it directly.
    pub fn link(&self) -> RedisLink {
        self.link.clone()
    }

    /// Whether this connection is to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.link.is_cluster()
    }

    /// Runs one command with the default deadline.
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        let mut conn = self.link.clone();
        self.run(cmd.query_async(&mut conn)).await
    }

    /// Runs a short pipeline (a command or two) with the default deadline.
    pub async fn query_pipeline<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T> {
        let mut conn = self.link.clone();
        self.run(pipe.query_async(&mut conn)).await
    }

    /// Runs a pipeline with the bulk deadline.
    pub async fn query_bulk<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T> {
        let mut conn = self.link.clone();
        self.run_bulk(pipe.query_async(&mut conn)).await
    }

    /// Runs a script invocation with the default deadline.
    pub async fn invoke<T: FromRedisValue>(
        &self,
        script: &redis::ScriptInvocation<'_>,
    ) -> Result<T> {
        let mut conn = self.link.clone();
        self.run(script.invoke_async(&mut conn)).await
    }

    /// Runs one Redis call with the default deadline, mapping its errors.
    pub async fn run<T>(&self, call: impl Future<Output = RedisResult<T>>) -> Result<T> {
        self.run_with(self.timeout, call).await
    }

    /// Runs one Redis call with the bulk deadline.
    pub async fn run_bulk<T>(&self, call: impl Future<Output = RedisResult<T>>) -> Result<T> {
        self.run_with(BULK_TIMEOUT.max(self.timeout), call).await
    }

    /// Runs one Redis call with a deadline of `timeout`, mapping its errors.
    pub async fn run_with<T>(
        &self,
        timeout: Duration,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T> {
        run_raw(timeout, call).await?.map_err(map_error)
    }
}

impl RedisConn {
    /// Runs the commands of `before` (their replies are not read; an error in any fails the
    /// call), then `script`, in one round trip on one connection, with the bulk deadline; with
    /// `acks`, `WAIT` for that many replicas within that time as well (see
    /// [`invoke_acked`](Self::invoke_acked)). Answers the script's reply. `before` must be safe
    /// to run twice: a server that does not know the script yet gets it loaded, and the whole
    /// pipeline runs once more.
    pub(super) async fn invoke_after<T: FromRedisValue>(
        &self,
        before: &redis::Pipeline,
        script: &redis::ScriptInvocation<'_>,
        acks: Option<(u32, Duration)>,
    ) -> Result<T> {
        self.invoke_piped(before, script, acks, BULK_TIMEOUT.max(self.timeout))
            .await
    }

    /// Runs `script` and, on the same connection right after it, `WAIT replicas wait`: answers
    /// the script's reply only once `replicas` replicas have acknowledged every write this
    /// connection made, the script's included; fewer within `wait` is [`Error::Unavailable`]
    /// (the writes reached the primary and may still be replicated; they were not acknowledged).
    /// Both go in one pipeline, so a reconnection between them cannot make the `WAIT` answer for
    /// another connection's writes.
    pub(super) async fn invoke_acked<T: FromRedisValue>(
        &self,
        script: &redis::ScriptInvocation<'_>,
        replicas: u32,
        wait: Duration,
    ) -> Result<T> {
        self.invoke_piped(&redis::pipe(), script, Some((replicas, wait)), self.timeout)
            .await
    }

    /// `before`, `script` and, with `acks`, `WAIT`, as one pipeline within `deadline` (plus the
    /// wait): the script loaded and the pipeline run once more when the server does not know it.
    async fn invoke_piped<T: FromRedisValue>(
        &self,
        before: &redis::Pipeline,
        script: &redis::ScriptInvocation<'_>,
        acks: Option<(u32, Duration)>,
        mut deadline: Duration,
    ) -> Result<T> {
        let mut pipe = before.clone();
        pipe.invoke_script(script);
        if let Some((replicas, wait)) = acks {
            pipe.cmd("WAIT")
                .arg(replicas)
                .arg(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1));
            deadline += wait;
        }
        let mut conn = self.link.clone();
        let mut reply: RedisResult<Vec<Value>> =
            run_raw(deadline, pipe.query_async(&mut conn)).await?;
        if matches!(&reply, Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript)) {
            // First use on this server (or after a restart): load it, then once more.
            self.run(script.load_async(&mut conn)).await?;
            reply = run_raw(deadline, pipe.query_async(&mut conn)).await?;
        }
        let mut replies = reply.map_err(map_error)?.into_iter();
        let value = replies
            .next()
            .ok_or_else(|| Error::Internal("a script pipeline answered nothing".into()))?;
        if let Some((replicas, wait)) = acks {
            let acked: u32 = match replies.next() {
                Some(v) => redis::from_redis_value(v).map_err(unexpected)?,
                None => 0,
            };
            if acked < replicas {
                return Err(Error::Unavailable(format!(
                    "Redis: {acked} of {replicas} replicas acknowledged the write within {wait:?}"
                )));
            }
        }
        redis::from_redis_value(value).map_err(unexpected)
    }
}

/// A reply of a shape the caller did not expect.
fn unexpected(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("Redis answered an unexpected reply: {e}"))
}

/// Runs one Redis call with a deadline; a missed deadline is an outage, other errors are the
/// caller's to map.
pub(super) async fn run_raw<T>(
    timeout: Duration,
    call: impl Future<Output = RedisResult<T>>,
) -> Result<RedisResult<T>> {
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| Error::Unavailable(format!("Redis did not answer within {timeout:?}")))
}

/// Whether a Redis error means the server cannot be reached or cannot serve right now: down,
/// loading, read-only, at its `maxmemory` (`OOM`, which a script's error may carry inside), or
/// busy running a long script (`BUSY`).
pub(super) fn is_outage(e: &RedisError) -> bool {
    server_says_cannot_serve(e)
        || e.is_io_error()
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

/// Whether the server refused for lack of memory (`OOM`, which a script's error may carry in its
/// text) or because it is busy (`BUSY`), on its own or inside a pipeline's answers.
fn server_says_cannot_serve(e: &RedisError) -> bool {
    let refuses = |code: &str, detail: Option<&str>| {
        matches!(code, "OOM" | "BUSY")
            || detail.is_some_and(|d| d.contains("OOM command not allowed"))
    };
    if let Some(code) = e.code()
        && refuses(code, e.detail())
    {
        return true;
    }
    e.clone().into_server_errors().is_some_and(|items| {
        items
            .iter()
            .any(|(_, item)| refuses(item.code(), item.details()))
    })
}

/// Maps a Redis error to the core error: outages are [`Error::Unavailable`] (transient), anything
/// else is [`Error::Internal`].
pub fn map_error(e: RedisError) -> Error {
    if is_outage(&e) {
        Error::Unavailable(format!("Redis: {e}"))
    } else {
        Error::Internal(format!("Redis: {e}"))
    }
}
