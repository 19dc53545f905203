//! Test support: real `redis-server` processes and key prefixes that keep tests apart.
//!
//! Tests of the Redis backend talk to a real server, never to a fake. [`RedisServer::start`]
//! starts one on a free port in a temporary directory and waits until it answers `PING`; it is
//! killed when the value is dropped (and, through a small watchdog process, when the test
//! process dies without dropping it). Tests that only need isolation share one server per test
//! binary ([`RedisServer::shared`]) and each take their own key prefix ([`unique_prefix`]); fault
//! tests start their own server so they can [`stop`](RedisServer::stop),
//! [`kill`](RedisServer::kill) and [`restart`](RedisServer::restart) it.
//!
//! `redis-server` must be on `PATH`; the README's test command installs it when it is missing.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::redis_backend::RedisConfig;

/// How long a starting server may take to answer `PING` (AOF replay included).
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Pause between two readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(5);

/// How many free ports to try when another process takes the one found first.
const PORT_ATTEMPTS: usize = 5;

/// How a [`RedisServer`] is started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedisServerOptions {
    /// Append-only file on, fsynced on every write (`--appendonly yes --appendfsync always`), so
    /// every acknowledged write survives a `SIGKILL` and a [`restart`](RedisServer::restart).
    pub aof: bool,
    /// A password clients must give (`--requirepass`); [`RedisServer::url`] carries it.
    pub password: Option<String>,
    /// The port of a server on `127.0.0.1` this one replicates (`--replicaof`).
    pub replica_of: Option<u16>,
    /// A node of a Redis Cluster (`--cluster-enabled yes`, its cluster bus on a free port of its
    /// own, a node timeout of one second); [`RedisCluster`] starts six and joins them.
    pub cluster: bool,
}

/// A `redis-server` process owned by a test.
///
/// It listens on `127.0.0.1` on a port that was free when it started, keeps its files in a
/// temporary directory, saves no RDB snapshot (`--save ""`) and is killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    /// The cluster bus port of a cluster node.
    bus_port: Option<u16>,
    options: RedisServerOptions,
    dir: TempDir,
    process: Option<Running>,
}

/// The server process and its watchdog.
#[derive(Debug)]
struct Running {
    server: Child,
    // A `sh` that kills the server when its standard input closes, which happens when this
    // process exits, however it exits. Statics (the shared server) are never dropped, so without
    // it every test binary would leave a server behind.
    watchdog: Child,
    // Held open for as long as the server should live.
    _watchdog_stdin: ChildStdin,
}

/// Why one start attempt failed.
enum StartError {
    /// Another process took the port between the probe and the server's bind.
    PortTaken,
    /// Anything else: the message says what, with the server's log.
    Other(String),
}

impl RedisServer {
    /// Starts a server without persistence.
    ///
    /// # Panics
    ///
    /// When `redis-server` is not installed or does not start; this is test support, and a test
    /// cannot run without its server.
    pub fn start() -> Self {
        Self::start_with(RedisServerOptions::default())
    }

    /// Starts a server with the append-only file on and fsynced on every write.
    ///
    /// # Panics
    ///
    /// As [`RedisServer::start`].
    pub fn start_with_aof() -> Self {
        Self::start_with(RedisServerOptions {
            aof: true,
            ..RedisServerOptions::default()
        })
    }

    /// Starts a server with `options`.
    ///
    /// # Panics
    ///
    /// As [`RedisServer::start`].
    pub fn start_with(options: RedisServerOptions) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("holidapp-redis-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a directory for redis-server: {e}"));
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let bus_port = options.cluster.then(free_port);
            match spawn(port, bus_port, &options, dir.path()) {
                Ok(process) => {
                    return RedisServer {
                        port,
                        bus_port,
                        options,
                        dir,
                        process: Some(process),
                    };
                }
                Err(StartError::PortTaken) => continue,
                Err(StartError::Other(message)) => panic!("{message}"),
            }
        }
        panic!("redis-server could not bind a free port in {PORT_ATTEMPTS} attempts")
    }

    /// One server for the whole test binary, started on first use and never stopped by a test.
    /// Tests that share it keep apart by key prefix ([`unique_prefix`]).
    pub fn shared() -> &'static RedisServer {
        static SHARED: OnceLock<RedisServer> = OnceLock::new();
        SHARED.get_or_init(RedisServer::start)
    }

    /// The server's URL, `redis://127.0.0.1:PORT/` (with `:PASSWORD@` when it has one).
    pub fn url(&self) -> String {
        match &self.options.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// The port the server listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|running| running.server.id())
    }

    /// The directory holding the server's log and append-only file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The options the server was started with.
    pub fn options(&self) -> &RedisServerOptions {
        &self.options
    }

    /// A backend configuration for this server with a key prefix of its own for `test_name`.
    pub fn config(&self, test_name: &str) -> RedisConfig {
        RedisConfig {
            url: self.url(),
            cluster_urls: if self.options.cluster {
                vec![self.url()]
            } else {
                Vec::new()
            },
            prefix: unique_prefix(test_name),
        }
    }

    /// Whether the server process is running (it may have been stopped or killed).
    pub fn is_running(&mut self) -> bool {
        match self.process.as_mut() {
            Some(running) => matches!(running.server.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Stops the server with `SIGTERM` (it flushes its append-only file and exits) and waits for
    /// it to exit. Does nothing when it is not running.
    pub fn stop(&mut self) {
        if let Some(mut running) = self.process.take() {
            running.disarm_watchdog();
            let pid = running.server.id().to_string();
            let signalled = Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .is_ok_and(|s| s.success());
            if !signalled {
                let _ = running.server.kill();
            }
            let _ = running.server.wait();
        }
    }

    /// Kills the server with `SIGKILL`, as a crash would, and waits for it to die. Does nothing
    /// when it is not running.
    pub fn kill(&mut self) {
        if let Some(mut running) = self.process.take() {
            running.disarm_watchdog();
            let _ = running.server.kill();
            let _ = running.server.wait();
        }
    }

    /// Freezes the server with `SIGSTOP`: it keeps its connections open but answers nothing, as
    /// a hung host or a network partition would. [`thaw`](RedisServer::thaw) resumes it.
    pub fn freeze(&mut self) {
        self.signal("-STOP");
    }

    /// Resumes a server frozen by [`freeze`](RedisServer::freeze) with `SIGCONT`.
    pub fn thaw(&mut self) {
        self.signal("-CONT");
    }

    fn signal(&mut self, signal: &str) {
        if let Some(running) = self.process.as_ref() {
            let pid = running.server.id().to_string();
            let sent = Command::new("kill")
                .args([signal, &pid])
                .status()
                .is_ok_and(|s| s.success());
            assert!(sent, "could not send {signal} to redis-server {pid}");
        }
    }

    /// Waits until `n` replicas of this server are in sync (`INFO replication` shows them
    /// online).
    ///
    /// # Panics
    ///
    /// When they are not within a minute, or the server does not answer.
    pub async fn wait_for_replicas(&self, n: usize) {
        let mut conn = redis::Client::open(self.url())
            .and_then(|client| client.get_connection())
            .unwrap_or_else(|e| panic!("cannot connect to redis-server: {e}"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut conn)
                .unwrap_or_else(|e| panic!("INFO replication failed: {e}"));
            if info.matches("state=online").count() >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{n} replicas did not come in sync:\n{info}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the server again on the same port and in the same directory, so it reloads its
    /// append-only file, and waits until it answers. Stops it first if it is running.
    ///
    /// # Panics
    ///
    /// When the server does not come back (for example, another process took its port).
    pub fn restart(&mut self) {
        self.stop();
        match spawn(self.port, self.bus_port, &self.options, self.dir.path()) {
            Ok(process) => self.process = Some(process),
            Err(StartError::PortTaken) => panic!(
                "redis-server could not restart: port {} was taken by another process",
                self.port
            ),
            Err(StartError::Other(message)) => panic!("{message}"),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Running {
    /// Stops the watchdog without letting it signal the server, before the server is stopped
    /// on purpose (its pid could otherwise be reused by the time the watchdog fires).
    fn disarm_watchdog(&mut self) {
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }
}

/// How long a cluster node may be silent before its peers count it failed and a replica takes
/// over (`--cluster-node-timeout`).
const CLUSTER_NODE_TIMEOUT_MS: u64 = 1000;

/// A Redis Cluster of `redis-server` processes owned by a test: masters and their replicas on
/// `127.0.0.1`, each on free ports, joined with `redis-cli --cluster create`, and killed on drop.
///
/// Its nodes are [`RedisServer`]s, so a fault test can [`kill`](RedisServer::kill) a master and
/// watch its replica take over.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `masters` masters with `replicas` replicas each, joins them, and waits until every
    /// node sees every slot served and every replica is in sync. One master with no replica is
    /// a cluster of one node serving every slot (a baseline to compare larger clusters with;
    /// `redis-cli --cluster create` wants three masters).
    ///
    /// # Panics
    ///
    /// When `redis-server` or `redis-cli` is missing, for two masters or one with replicas, or
    /// when the cluster does not come up within a minute.
    pub fn start(masters: usize, replicas: usize) -> Self {
        if (masters, replicas) == (1, 0) {
            let node = RedisServer::start_with(RedisServerOptions {
                cluster: true,
                ..RedisServerOptions::default()
            });
            query_node(&node, &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"])
                .expect("a one-node cluster takes every slot");
            let cluster = RedisCluster { nodes: vec![node] };
            cluster.wait_until_healthy(0);
            return cluster;
        }
        assert!(
            masters >= 3,
            "Redis Cluster needs one master alone or at least three"
        );
        let nodes: Vec<RedisServer> = (0..masters * (1 + replicas))
            .map(|_| {
                RedisServer::start_with(RedisServerOptions {
                    cluster: true,
                    ..RedisServerOptions::default()
                })
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port()));
        }
        let output = create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli --cluster create: {e}"));
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_until_healthy(masters * replicas);
        cluster
    }

    /// One cluster of three masters with one replica each for the whole test binary, started on
    /// first use. Tests that share it keep apart by key prefix.
    pub fn shared() -> &'static RedisCluster {
        static SHARED: OnceLock<RedisCluster> = OnceLock::new();
        SHARED.get_or_init(|| RedisCluster::start(3, 1))
    }

    /// Every node's URL: the seed list for [`RedisConfig::cluster`].
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// A backend configuration for this cluster with a key prefix of its own for `test_name`.
    pub fn config(&self, test_name: &str) -> RedisConfig {
        RedisConfig {
            prefix: unique_prefix(test_name),
            ..RedisConfig::cluster(self.urls())
        }
    }

    /// The nodes, masters and replicas, in the order they were started.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The node at `index` (of [`nodes`](Self::nodes)), to stop, kill or freeze.
    pub fn node_mut(&mut self, index: usize) -> &mut RedisServer {
        &mut self.nodes[index]
    }

    /// The indexes of the running nodes that are masters now (`ROLE`).
    pub fn masters(&mut self) -> Vec<usize> {
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_running())
            .collect();
        running
            .into_iter()
            .filter(|&i| {
                query_node(&self.nodes[i], &["ROLE"]).is_some_and(|role| role.starts_with("master"))
            })
            .collect()
    }

    /// Waits until every running node says the cluster is ok (every slot served) and sees
    /// `replicas` replicas with their links up.
    ///
    /// # Panics
    ///
    /// When that does not happen within a minute.
    pub fn wait_until_healthy(&self, replicas: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut last = String::new();
            let healthy = self
                .nodes
                .iter()
                .filter(|n| n.process.is_some())
                .all(|node| {
                    let info = query_node(node, &["CLUSTER", "INFO"]).unwrap_or_default();
                    let nodes = query_node(node, &["CLUSTER", "NODES"]).unwrap_or_default();
                    let ok = info.contains("cluster_state:ok")
                        && nodes
                            .lines()
                            .filter(|l| l.contains("slave") && !l.contains("fail"))
                            .count()
                            >= replicas;
                    if !ok {
                        last = format!("node {}:\n{info}\n{nodes}", node.port());
                    }
                    ok
                });
            if healthy && self.replicas_in_sync(replicas) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Redis Cluster did not become healthy; last seen:\n{last}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether `replicas` replicas have their link to their master up.
    fn replicas_in_sync(&self, replicas: usize) -> bool {
        self.nodes
            .iter()
            .filter(|n| n.process.is_some())
            .filter_map(|node| query_node(node, &["INFO", "replication"]))
            .filter(|info| info.contains("role:slave") && info.contains("master_link_status:up"))
            .count()
            >= replicas
    }
}

/// One command's answer from `node` as text, through `redis-cli`; `None` when it cannot answer.
fn query_node(node: &RedisServer, args: &[&str]) -> Option<String> {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &node.port().to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A unique key prefix for one test: `test:{name}:{n}-{random}`. Two calls never return the same
/// prefix, in one process or across processes sharing a server.
pub fn unique_prefix(test_name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name: String = test_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("test:{name}:{n}-{:08x}", fastrand::u32(..))
}

/// A port that was free a moment ago (the OS picks it for a bind to port 0).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|e| panic!("cannot find a free port: {e}"))
}

/// Starts `redis-server` on `port` in `dir` and waits until it answers `PING`.
fn spawn(
    port: u16,
    bus_port: Option<u16>,
    options: &RedisServerOptions,
    dir: &Path,
) -> Result<Running, StartError> {
    let log = dir.join("redis.log");
    let mut command = Command::new("redis-server");
    command
        .arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--daemonize", "no", "--save", ""])
        // A replica attached to it syncs at once, not after the default 5 s.
        .args(["--repl-diskless-sync-delay", "0"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(&log)
        .args(if options.aof {
            ["--appendonly", "yes", "--appendfsync", "always"]
        } else {
            ["--appendonly", "no", "--appendfsync", "everysec"]
        })
        .args(
            options
                .password
                .iter()
                .flat_map(|password| ["--requirepass", password.as_str()]),
        )
        .args(bus_port.iter().flat_map(|bus| {
            [
                "--cluster-enabled".to_owned(),
                "yes".to_owned(),
                "--cluster-config-file".to_owned(),
                "nodes.conf".to_owned(),
                "--cluster-node-timeout".to_owned(),
                CLUSTER_NODE_TIMEOUT_MS.to_string(),
                "--cluster-port".to_owned(),
                bus.to_string(),
            ]
        }))
        .args(options.replica_of.iter().flat_map(|master| {
            [
                "--replicaof".to_owned(),
                "127.0.0.1".to_owned(),
                master.to_string(),
            ]
        }))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut server = match command.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(StartError::Other(
                "redis-server is not installed (not found on PATH): run the README's test \
                 command, it installs it"
                    .to_owned(),
            ));
        }
        Err(e) => return Err(StartError::Other(format!("cannot start redis-server: {e}"))),
    };
    let (watchdog, watchdog_stdin) = match start_watchdog(server.id(), dir) {
        Ok(pair) => pair,
        Err(e) => {
            let _ = server.kill();
            let _ = server.wait();
            return Err(StartError::Other(format!(
                "cannot start the redis-server watchdog: {e}"
            )));
        }
    };
    let mut running = Running {
        server,
        watchdog,
        _watchdog_stdin: watchdog_stdin,
    };
    match wait_until_ready(&mut running.server, port, options.password.as_deref(), &log) {
        Ok(()) => Ok(running),
        Err(e) => {
            running.disarm_watchdog();
            let _ = running.server.kill();
            let _ = running.server.wait();
            Err(e)
        }
    }
}

/// A `sh` that kills `pid` with `SIGKILL` and removes `dir` once its standard input closes.
fn start_watchdog(pid: u32, dir: &Path) -> std::io::Result<(Child, ChildStdin)> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"read _line; kill -9 "$0" 2>/dev/null; rm -rf "$1""#)
        .arg(pid.to_string())
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("watchdog has no stdin"))?;
    Ok((child, stdin))
}

/// Polls the server with `PING` until it answers `+PONG`, it exits, or the deadline passes.
fn wait_until_ready(
    server: &mut Child,
    port: u16,
    password: Option<&str>,
    log: &Path,
) -> Result<(), StartError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    loop {
        if let Ok(Some(status)) = server.try_wait() {
            let log_text = std::fs::read_to_string(log).unwrap_or_default();
            if log_text.contains("Address already in use") || log_text.contains("Could not bind") {
                return Err(StartError::PortTaken);
            }
            return Err(StartError::Other(format!(
                "redis-server exited ({status}) before answering; its log:\n{}",
                tail(&log_text, 2000)
            )));
        }
        if ping(addr, password) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let log_text = std::fs::read_to_string(log).unwrap_or_default();
            return Err(StartError::Other(format!(
                "redis-server did not answer PING on port {port} within {READY_TIMEOUT:?}; its \
                 log:\n{}",
                tail(&log_text, 2000)
            )));
        }
        std::thread::sleep(PROBE_INTERVAL);
    }
}

/// Whether a server at `addr` answers `PING` with `PONG` (not `LOADING` or an error), after
/// `AUTH` when it has a password.
fn ping(addr: SocketAddr, password: Option<&str>) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut request = Vec::new();
    let mut expected = Vec::new();
    if let Some(password) = password {
        // A RESP array, so any byte of the password is sent as it is.
        request
            .extend_from_slice(format!("*2\r\n$4\r\nAUTH\r\n${}\r\n", password.len()).as_bytes());
        request.extend_from_slice(password.as_bytes());
        request.extend_from_slice(b"\r\n");
        expected.extend_from_slice(b"+OK\r\n");
    }
    request.extend_from_slice(b"PING\r\n");
    expected.extend_from_slice(b"+PONG\r\n");
    if stream.write_all(&request).is_err() {
        return false;
    }
    let mut reply = vec![0u8; expected.len()];
    stream.read_exact(&mut reply).is_ok() && reply == expected
}

/// The last `max` bytes of `text`, cut at a character boundary.
fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}
