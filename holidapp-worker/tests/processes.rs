//! The real `holidapp-worker` binary, started as separate processes against a `redis-server` (or
//! a Redis Cluster) each test starts: sharing work, SIGKILL, SIGSTOP/SIGCONT, SIGTERM, a Redis
//! restart, and on a cluster, a drain over partitions and a master failover.
//!
//! Tests wait for conditions by polling the store (or a worker's log) against a deadline; the
//! deadlines are generous because they only bound a failure, never a measurement. A failing test
//! prints its workers' logs; set `TEST_LOG=1` to print them always.

use std::collections::HashMap;
use std::fs::File;
use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use holidapp_core::redis_backend::{RedisBackend, RedisConfig};
use holidapp_core::store::total_counts;
use holidapp_core::testing::{RedisCluster, RedisServer};
use holidapp_core::{
    Job, JobId, JobStatus, JobStore, ListQuery, Name, Params, Producer, QueueName, QueueSettings,
    ResultState, StatusCounts,
};
use tempfile::TempDir;

/// The lease the workers of these tests use: short, so that recovery is quick.
const LEASE_SECONDS: u64 = 2;

/// The recovery interval that follows from it: `min(5 s, lease / 3)`, jittered by up to 20 %.
const RECOVERY: Duration = Duration::from_millis(LEASE_SECONDS * 1000 / 3 * 6 / 5);

/// A Redis server (or cluster), a backend on a key prefix of the test's own, and a directory for
/// worker logs.
struct Rig {
    redis: Redis,
    config: RedisConfig,
    backend: RedisBackend,
    dir: TempDir,
}

/// What a test's workers run on.
enum Redis {
    Single(RedisServer),
    Cluster(RedisCluster),
}

impl From<RedisServer> for Redis {
    fn from(server: RedisServer) -> Self {
        Redis::Single(server)
    }
}

impl From<RedisCluster> for Redis {
    fn from(cluster: RedisCluster) -> Self {
        Redis::Cluster(cluster)
    }
}

impl Rig {
    async fn new(test: &str, redis: impl Into<Redis>) -> Rig {
        let redis = redis.into();
        let config = match &redis {
            Redis::Single(server) => server.config(test),
            Redis::Cluster(cluster) => cluster.config(test),
        };
        let backend = RedisBackend::connect(&config, QueueSettings::default())
            .await
            .expect("connect to the test's redis-server");
        Rig {
            redis,
            config,
            backend,
            dir: tempfile::tempdir().expect("a log directory"),
        }
    }

    /// The single server of a rig that has one.
    fn server(&mut self) -> &mut RedisServer {
        match &mut self.redis {
            Redis::Single(server) => server,
            Redis::Cluster(_) => panic!("this rig runs on a cluster"),
        }
    }

    /// The cluster of a rig that runs on one.
    fn cluster(&mut self) -> &mut RedisCluster {
        match &mut self.redis {
            Redis::Cluster(cluster) => cluster,
            Redis::Single(_) => panic!("this rig runs on one server"),
        }
    }

    async fn submit(&self, n: usize) -> Vec<JobId> {
        let jobs: Vec<Job> = (0..n)
            .map(|i| {
                let params = Params::from_json(format!(r#"{{"start":"{i}","end":"2000"}}"#));
                let queue = QueueName::default_queue();
                let mut job = Job::new("plot", queue, params.expect("JSON"), 3, Utc::now());
                // In the queue's next partition, when the test's backend splits it.
                job.id = self.backend.new_id(&job.queue);
                job
            })
            .collect();
        self.backend.enqueue_all(&jobs).await.expect("enqueue");
        jobs.iter().map(|j| j.id).collect()
    }

    /// Submits `n` jobs and waits until workers hold them all.
    async fn submit_and_hold(&self, n: usize) -> Vec<JobId> {
        let ids = self.submit(n).await;
        let what = format!("{n} jobs in progress");
        eventually(Duration::from_secs(20), &what, || async {
            self.counts().await.in_progress == n as u64
        })
        .await;
        ids
    }

    async fn counts(&self) -> StatusCounts {
        total_counts(&self.backend.stats().await.expect("stats"))
    }

    async fn job(&self, id: JobId) -> Job {
        self.backend
            .get(id)
            .await
            .expect("get")
            .expect("the job exists")
    }

    async fn complete_jobs(&self) -> Vec<Job> {
        let mut jobs = Vec::new();
        let mut before = None;
        loop {
            let page = self
                .backend
                .list(&ListQuery {
                    before,
                    limit: 1000,
                    ..ListQuery::with_status(JobStatus::Complete)
                })
                .await
                .expect("list");
            jobs.extend(page.jobs);
            match page.next {
                Some(next) => before = Some(next),
                None => return jobs,
            }
        }
    }

    /// A worker process named `ip` running jobs with `renderer`.
    fn worker(&self, ip: &str, renderer: &str, concurrency: u32) -> WorkerProcess {
        self.worker_with(ip, renderer, concurrency, &[])
    }

    fn worker_with(
        &self,
        ip: &str,
        renderer: &str,
        concurrency: u32,
        extra: &[(&str, &str)],
    ) -> WorkerProcess {
        let log = self.dir.path().join(format!("worker-{ip}.log"));
        let file = File::create(&log).expect("a log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_holidapp-worker"));
        command.env_clear();
        if self.config.is_cluster() {
            command.env("REDIS_CLUSTER_URLS", self.config.cluster_urls.join(","));
        } else {
            command.env("REDIS_URL", &self.config.url);
        }
        command
            .env("HOLIDAPP_PREFIX", &self.config.prefix)
            .env("WORKER_IP", ip)
            .env("HOLIDAPP_RENDERER", renderer)
            .env("HOLIDAPP_WORKER_CONCURRENCY", concurrency.to_string())
            .env("HOLIDAPP_LEASE_SECONDS", LEASE_SECONDS.to_string())
            .env("HOLIDAPP_SHUTDOWN_GRACE_SECONDS", "1")
            .env("LOG_LEVEL", "info")
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        let child = command.spawn().expect("start holidapp-worker");
        WorkerProcess {
            child,
            ip: ip.to_owned(),
            log,
        }
    }
}

/// A running `holidapp-worker`, killed on drop if still running.
struct WorkerProcess {
    child: Child,
    ip: String,
    log: PathBuf,
}

impl WorkerProcess {
    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "could not send {signal} to worker {}", self.ip);
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_for_log(&self, needle: &str) {
        let what = format!("'{needle}' in the log of worker {}", self.ip);
        eventually(Duration::from_secs(20), &what, || async {
            self.log().contains(needle)
        })
        .await;
    }

    /// Waits for the process to exit; answers its status and how long it took.
    async fn wait_exit(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return (status, started.elapsed());
            }
            assert!(
                started.elapsed() < limit,
                "worker {} still running after {limit:?}; log:\n{}",
                self.ip,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the worker with SIGTERM and answers the counters of its final summary line.
    async fn stop(&mut self) -> HashMap<String, u64> {
        self.signal("-TERM");
        let (status, _) = self.wait_exit(Duration::from_secs(20)).await;
        assert_eq!(status.code(), Some(0), "log:\n{}", self.log());
        self.summary()
    }

    /// The counters of the "worker stopped" line: `completed=3 lease_lost=0 ...`.
    fn summary(&self) -> HashMap<String, u64> {
        let log = self.log();
        let line = log
            .lines()
            .find(|l| l.contains("worker stopped"))
            .unwrap_or_else(|| panic!("no final summary in the log:\n{log}"));
        line.split_whitespace()
            .filter_map(|field| {
                let (key, value) = field.split_once('=')?;
                Some((key.to_owned(), value.parse().ok()?))
            })
            .collect()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() || std::env::var_os("TEST_LOG").is_some() {
            eprintln!("---- log of worker {}\n{}", self.ip, self.log());
        }
    }
}

/// Polls `condition` every 20 ms until it holds; panics after `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_worker_refuses_to_start_with_a_clear_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_holidapp-worker"))
        .env_clear()
        .output()
        .expect("run holidapp-worker");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("REDIS_URL") && stderr.contains("holidapp-api"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_200_jobs_each_done_exactly_once() {
    let rig = Rig::new("share", RedisServer::start()).await;
    let mut a = rig.worker("10.0.0.1", "sleep:20", 2);
    let mut b = rig.worker("10.0.0.2", "sleep:20", 2);
    a.wait_for_log("worker started").await;
    b.wait_for_log("worker started").await;

    let ids = rig.submit(200).await;
    eventually(Duration::from_secs(60), "200 complete jobs", || async {
        rig.counts().await.complete == 200
    })
    .await;
    let (done_a, done_b) = (a.stop().await, b.stop().await);

    let counts = rig.counts().await;
    assert_eq!(
        (counts.submitted, counts.in_progress, counts.failed),
        (0, 0, 0)
    );
    let jobs = rig.complete_jobs().await;
    assert_eq!(jobs.len(), ids.len());
    let mut by_worker: HashMap<Name, u64> = HashMap::new();
    for job in &jobs {
        assert_eq!(job.attempts, 1, "job {} ran more than once", job.id);
        *by_worker.entry(job.worker.clone().unwrap()).or_default() += 1;
    }
    // Each job names the worker that did it: the per-worker counts match what each process says
    // it completed, and both did a share.
    assert_eq!(
        by_worker.get("10.0.0.1").copied(),
        Some(done_a["completed"])
    );
    assert_eq!(
        by_worker.get("10.0.0.2").copied(),
        Some(done_b["completed"])
    );
    assert!(
        done_a["completed"] > 0 && done_b["completed"] > 0,
        "{by_worker:?}"
    );
    assert_eq!(done_a["lease_lost"] + done_b["lease_lost"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_of_a_killed_worker_complete_on_the_other() {
    let rig = Rig::new("sigkill", RedisServer::start()).await;
    // The doomed worker takes four long jobs alone.
    let doomed = rig.worker("10.0.0.1", "sleep:600000", 4);
    let held = rig.submit_and_hold(4).await;
    let mut survivor = rig.worker("10.0.0.2", "noop", 2);
    survivor.wait_for_log("worker started").await;
    let others = rig.submit(20).await;

    drop(doomed); // SIGKILL
    let killed = Instant::now();
    eventually(
        Duration::from_secs(LEASE_SECONDS) + RECOVERY + Duration::from_secs(10),
        "every job complete",
        || async { rig.counts().await.complete == 24 },
    )
    .await;
    let recovered_in = killed.elapsed();

    let counts = rig.counts().await;
    assert_eq!(
        (counts.submitted, counts.in_progress, counts.failed),
        (0, 0, 0)
    );
    for id in held {
        let job = rig.job(id).await;
        assert_eq!(job.worker.as_deref(), Some("10.0.0.2"));
        assert_eq!(job.attempts, 2);
    }
    for id in others {
        assert_eq!(rig.job(id).await.attempts, 1);
    }
    let summary = survivor.stop().await;
    assert_eq!(summary["completed"], 24);
    assert_eq!(summary["requeued"], 4);
    eprintln!("jobs of the killed worker completed {recovered_in:?} after the kill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_with_a_full_prefetch_buffer_loses_nothing() {
    let rig = Rig::new("prefetch-kill", RedisServer::start()).await;
    // Short jobs, one slot: the worker leases far ahead of what it runs.
    let ids = rig.submit(20_000).await;
    let doomed = rig.worker_with(
        "10.0.0.1",
        "noop",
        1,
        &[("HOLIDAPP_WORKER_PREFETCH", "400")],
    );
    eventually(
        Duration::from_secs(60),
        "1,000 complete jobs and a buffer of 50 or more",
        || async {
            let counts = rig.counts().await;
            counts.complete >= 1000 && counts.in_progress >= 50
        },
    )
    .await;
    drop(doomed); // SIGKILL
    let held = rig.counts().await.in_progress;
    assert!(held > 1, "the worker held {held} leases with one slot");

    let mut survivor = rig.worker("10.0.0.2", "noop", 1);
    eventually(
        Duration::from_secs(LEASE_SECONDS) + RECOVERY + Duration::from_secs(30),
        "every job complete",
        || async { rig.counts().await.complete == ids.len() as u64 },
    )
    .await;
    let summary = survivor.stop().await;
    let counts = rig.counts().await;
    assert_eq!(
        (counts.submitted, counts.in_progress, counts.failed),
        (0, 0, 0)
    );
    // Exactly the jobs held at the kill came back after their lease, each run a second time.
    assert_eq!(summary["requeued"], held);
    let twice = rig
        .complete_jobs()
        .await
        .iter()
        .filter(|job| job.attempts == 2)
        .count() as u64;
    assert_eq!(twice, held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_paused_past_its_lease_has_its_stale_results_refused() {
    let rig = Rig::new("sigstop", RedisServer::start()).await;
    let mut paused = rig.worker("10.0.0.1", "sleep:3000", 2);
    let ids = rig.submit_and_hold(2).await;

    paused.signal("-STOP");
    let mut other = rig.worker("10.0.0.2", "noop", 2);
    eventually(
        Duration::from_secs(LEASE_SECONDS) + RECOVERY + Duration::from_secs(15),
        "both jobs complete on the other worker",
        || async { rig.counts().await.complete == 2 },
    )
    .await;
    paused.signal("-CONT");

    // Once awake, the paused worker learns its leases are gone (from a heartbeat, or when its
    // results are refused) and stores nothing.
    eventually(
        Duration::from_secs(20),
        "both stale jobs dropped",
        || async { paused.log().matches("outcome=\"lease lost\"").count() == 2 },
    )
    .await;
    let stale = paused.stop().await;
    let fresh = other.stop().await;
    assert_eq!((stale["completed"], stale["lease_lost"]), (0, 2));
    assert_eq!(fresh["completed"], 2);
    for id in ids {
        let job = rig.job(id).await;
        assert_eq!(job.status, JobStatus::Complete);
        assert_eq!(job.worker.as_deref(), Some("10.0.0.2"));
        assert_eq!(job.attempts, 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_job_within_the_grace_period_finish() {
    let rig = Rig::new("sigterm-finish", RedisServer::start()).await;
    // A 1.5 s job, within a 10 s grace and longer than a third of the lease: heartbeats run.
    let mut worker = rig.worker_with(
        "10.0.0.1",
        "sleep:1500",
        1,
        &[("HOLIDAPP_SHUTDOWN_GRACE_SECONDS", "10")],
    );
    let [id] = rig.submit_and_hold(1).await[..] else {
        unreachable!()
    };

    worker.signal("-TERM");
    // Out within the grace period, exit code 0.
    let (status, _) = worker.wait_exit(Duration::from_secs(10)).await;

    assert_eq!(status.code(), Some(0));
    let job = rig.job(id).await;
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!(job.worker.as_deref(), Some("10.0.0.1"));
    let summary = worker.summary();
    assert_eq!((summary["completed"], summary["released"]), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_a_job_longer_than_the_grace_period_to_another_worker() {
    let rig = Rig::new("sigterm-release", RedisServer::start()).await;
    let mut worker = rig.worker("10.0.0.1", "sleep:600000", 1);
    let [id] = rig.submit_and_hold(1).await[..] else {
        unreachable!()
    };

    worker.signal("-TERM");
    let (status, took) = worker.wait_exit(Duration::from_secs(10)).await;

    // Out within the 1 s grace (plus the release call), exit code 0.
    assert_eq!(status.code(), Some(0));
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert_eq!(worker.summary()["released"], 1);
    // Back in the queue at once: the lease (renewed until the release) has not run out.
    let job = rig.job(id).await;
    assert_eq!(job.status, JobStatus::Submitted);

    let mut next = rig.worker("10.0.0.2", "noop", 1);
    eventually(
        Duration::from_secs(20),
        "the released job complete",
        || async { rig.job(id).await.status == JobStatus::Complete },
    )
    .await;
    assert_eq!(rig.job(id).await.worker.as_deref(), Some("10.0.0.2"));
    next.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_carries_on_after_redis_restarts() {
    let mut rig = Rig::new("restart", RedisServer::start_with_aof()).await;
    let mut worker = rig.worker_with(
        "10.0.0.1",
        "sleep:20",
        2,
        &[("HOLIDAPP_MAX_ATTEMPTS", "10")],
    );
    rig.submit(150).await;
    eventually(Duration::from_secs(30), "some jobs complete", || async {
        rig.counts().await.complete >= 20
    })
    .await;

    // Down long enough for the fetch loop to fail, back off and fail again.
    rig.server().stop();
    eventually(
        Duration::from_secs(20),
        "two failed lease attempts",
        || async { worker.log().matches("could not lease a job").count() >= 2 },
    )
    .await;
    rig.server().restart();

    eventually(Duration::from_secs(60), "every job complete", || async {
        // The test's own connection reconnects too; a failed call is just a "not yet".
        rig.backend
            .stats()
            .await
            .map(|stats| total_counts(&stats))
            .is_ok_and(|c| c.complete == 150 && c.in_progress == 0)
    })
    .await;
    let summary = worker.stop().await;
    assert!(summary["backend_errors"] > 0, "{summary:?}");
    // Every job was this worker's. A completion that reached Redis just before it stopped, its
    // answer lost with the connection, is sent again after the restart and refused (a job is
    // completed once): the worker counts it as a lost lease though the job is complete.
    assert!(
        summary["completed"] + summary["lease_lost"] >= 150 - summary["unrecorded"],
        "{summary:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_cuts_the_grace_period_short() {
    let rig = Rig::new("second-signal", RedisServer::start()).await;
    let mut worker = rig.worker_with(
        "10.0.0.1",
        "sleep:600000",
        1,
        &[("HOLIDAPP_SHUTDOWN_GRACE_SECONDS", "600")],
    );
    let [id] = rig.submit_and_hold(1).await[..] else {
        unreachable!()
    };

    worker.signal("-TERM");
    worker.wait_for_log("shutting down").await;
    worker.signal("-TERM");
    let (status, _) = worker.wait_exit(Duration::from_secs(10)).await;

    assert_eq!(status.code(), Some(0));
    assert!(worker.log().contains("ending=Forced"), "{}", worker.log());
    assert_eq!(worker.summary()["released"], 1);
    assert_eq!(rig.job(id).await.status, JobStatus::Submitted);
}

#[test]
fn help_never_shows_the_redis_password() {
    let output = Command::new(env!("CARGO_BIN_EXE_holidapp-worker"))
        .arg("--help")
        .env("REDIS_URL", "redis://:s3cret-Pa55@redis.internal:6379/0")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(help.contains("[env: REDIS_URL]"), "{help}");
    assert!(
        !help.contains("s3cret"),
        "--help shows the password:\n{help}"
    );
    assert!(
        !help.contains("redis.internal"),
        "--help shows the URL:\n{help}"
    );
}

/// libfaketime's multi-threaded library, which shifts the clock of the process it is preloaded
/// into (Debian package `faketime`, which the test command installs).
fn libfaketime() -> PathBuf {
    let arch = std::env::consts::ARCH;
    let candidates = [
        format!("/usr/lib/{arch}-linux-gnu/faketime/libfaketimeMT.so.1"),
        "/usr/lib/faketime/libfaketimeMT.so.1".to_owned(),
        "/usr/local/lib/faketime/libfaketimeMT.so.1".to_owned(),
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .unwrap_or_else(|| {
            panic!("libfaketime not found in {candidates:?}: apt-get install faketime")
        })
}

/// A worker whose clock runs five hours ahead (libfaketime) runs its recovery and purge passes
/// against the same Redis as a healthy lease and a fresh result: Redis's clock decides, so it
/// neither takes the lease away nor purges the result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_clock_runs_ahead_expires_nothing_early() {
    use holidapp_core::{Consumer, Output};
    let server = RedisServer::start();
    let config = server.config("clock-skew");
    let settings = QueueSettings {
        result_ttl: Duration::from_secs(3600),
        ..QueueSettings::default()
    };
    let backend = RedisBackend::connect(&config, settings).await.unwrap();
    let rig = Rig {
        redis: server.into(),
        config,
        backend,
        dir: tempfile::tempdir().unwrap(),
    };
    let queue = QueueName::default_queue();
    let [running, done] = rig.submit(2).await[..] else {
        unreachable!()
    };
    let lease_for = Duration::from_secs(120);
    let healthy = rig
        .backend
        .lease(&queue, "10.0.0.9", lease_for)
        .await
        .unwrap()
        .unwrap();
    let finished = rig
        .backend
        .lease(&queue, "10.0.0.9", lease_for)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((healthy.id(), finished.id()), (running, done));
    rig.backend
        .complete(&finished, Output::new("text/plain", "kept"))
        .await
        .unwrap();

    // Its own queue is another one: it only runs the passes that span every queue.
    let log = rig.dir.path().join("worker-ahead.log");
    let mut worker = WorkerProcess {
        child: Command::new(env!("CARGO_BIN_EXE_holidapp-worker"))
            .env_clear()
            .env("LD_PRELOAD", libfaketime())
            .env("FAKETIME", "+5h")
            .env("REDIS_URL", &rig.config.url)
            .env("HOLIDAPP_PREFIX", &rig.config.prefix)
            .env("WORKER_IP", "10.0.0.5")
            .env("HOLIDAPP_QUEUES", "elsewhere")
            .env("HOLIDAPP_LEASE_SECONDS", "1")
            .env("HOLIDAPP_PURGE_INTERVAL_SECONDS", "1")
            .env("HOLIDAPP_RESULT_TTL_SECONDS", "3600")
            .env("LOG_LEVEL", "info,holidapp_worker=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("start holidapp-worker"),
        ip: "10.0.0.5".into(),
        log,
    };
    eventually(
        Duration::from_secs(30),
        "two passes of each kind",
        || async {
            let log = worker.log();
            log.matches("recovery pass").count() >= 2 && log.matches("purge pass").count() >= 2
        },
    )
    .await;
    let log = worker.log();
    assert!(!log.contains("recovered jobs"), "{log}");
    assert!(!log.contains("purged finished jobs"), "{log}");

    let still = rig.job(running).await;
    assert_eq!(still.status, JobStatus::InProgress);
    assert_eq!(still.worker.as_deref(), Some("10.0.0.9"));
    rig.backend
        .renew(&healthy, lease_for)
        .await
        .expect("the lease is still held");
    match rig.backend.result(done).await.unwrap() {
        Some(holidapp_core::ResultState::Ready(output)) => assert_eq!(output.bytes(), "kept"),
        other => panic!("the result is gone: {other:?}"),
    }
    worker.stop().await;
}

/// Redis goes down while a job renders and comes back before the lease runs out: the worker
/// stores the finished job's result once Redis answers again, so the job completes on its first
/// attempt instead of running again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_survives_a_redis_outage_before_its_completion() {
    let mut rig = Rig::new("outage-completion", RedisServer::start_with_aof()).await;
    let mut worker = rig.worker_with(
        "10.0.0.1",
        "sleep:1500",
        1,
        &[
            ("HOLIDAPP_LEASE_SECONDS", "30"),
            ("LOG_LEVEL", "info,holidapp_core=debug"),
        ],
    );
    let [id] = rig.submit_and_hold(1).await[..] else {
        unreachable!()
    };
    rig.server().stop();
    worker
        .wait_for_log("could not store an outcome; trying again")
        .await;
    rig.server().restart();
    eventually(Duration::from_secs(30), "the job complete", || async {
        rig.backend
            .get(id)
            .await
            .is_ok_and(|job| job.is_some_and(|j| j.status == JobStatus::Complete))
    })
    .await;
    let job = rig.job(id).await;
    assert_eq!(job.attempts, 1, "the job ran again: {job:?}");
    let summary = worker.stop().await;
    assert_eq!(summary["completed"], 1, "{summary:?}");
    assert_eq!(summary["unrecorded"], 0, "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cancelled_while_a_worker_runs_it_stops_frees_its_slot_and_stores_nothing() {
    let rig = Rig::new("cancel-running", RedisServer::start()).await;
    let mut worker = rig.worker("10.0.0.1", "sleep:600000", 1);
    let [first] = rig.submit_and_hold(1).await[..] else {
        unreachable!()
    };
    eventually(Duration::from_secs(10), "the job's progress", || async {
        rig.job(first)
            .await
            .progress
            .is_some_and(|p| p.message == "sleeping")
    })
    .await;
    let [second] = rig.submit(1).await[..] else {
        unreachable!()
    };

    let cancelled = rig.backend.cancel(first).await.expect("cancel");
    assert_eq!(cancelled.map(|j| j.status), Some(JobStatus::Cancelled));
    // Within a heartbeat (a third of the 2 s lease) the worker stops the render; its one slot
    // then takes the next job.
    worker.wait_for_log("the job was cancelled").await;
    eventually(Duration::from_secs(10), "the next job running", || async {
        rig.job(second).await.status == JobStatus::InProgress
    })
    .await;
    assert_eq!(rig.job(first).await.status, JobStatus::Cancelled);
    assert_eq!(
        rig.backend.result(first).await.expect("result"),
        Some(ResultState::Cancelled)
    );
    let summary = worker.stop().await;
    assert_eq!(
        (
            summary["cancelled"],
            summary["completed"],
            summary["lease_lost"]
        ),
        (1, 0, 0),
        "{summary:?}"
    );
    assert_eq!(rig.job(first).await.status, JobStatus::Cancelled);
}

/// Three worker processes run the same every-second schedule, one with its clock 2 s ahead
/// (libfaketime) and one restarted half way: over more than 20 ticks, each tick is exactly one
/// job, and none is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_run_by_three_processes_submits_one_job_per_tick() {
    let rig = Rig::new("cron", RedisServer::start()).await;
    let schedules = r#"[{"name": "every-second", "cron": "* * * * * *",
        "job": {"kind": "plot", "params": {"start": 1990, "end": 2000}, "priority": 2}}]"#;
    let with = [("HOLIDAPP_SCHEDULES", schedules)];
    let faketime = libfaketime();
    let ahead = [
        ("HOLIDAPP_SCHEDULES", schedules),
        ("LD_PRELOAD", faketime.to_str().expect("a UTF-8 path")),
        ("FAKETIME", "+2s"),
        ("FAKETIME_DONT_RESET", "1"),
    ];
    let started = Utc::now();
    let mut a = rig.worker_with("10.0.0.1", "noop", 2, &with);
    let mut b = rig.worker_with("10.0.0.2", "noop", 2, &ahead);
    let mut c = rig.worker_with("10.0.0.3", "noop", 2, &with);
    for worker in [&a, &b, &c] {
        worker.wait_for_log("running schedules").await;
    }
    eventually(Duration::from_secs(30), "ten ticks", || async {
        rig.counts().await.complete >= 10
    })
    .await;
    c.stop().await;
    let mut c = rig.worker_with("10.0.0.3", "noop", 2, &with);
    eventually(Duration::from_secs(60), "thirty-two ticks", || async {
        rig.counts().await.complete >= 32
    })
    .await;
    for worker in [&mut a, &mut b, &mut c] {
        worker.stop().await;
    }
    let stopped = Utc::now();

    let jobs = rig.complete_jobs().await;
    let mut ticks: HashMap<String, usize> = HashMap::new();
    for job in &jobs {
        assert_eq!(job.priority, 2);
        *ticks
            .entry(job.unique_key.clone().expect("a tick key"))
            .or_default() += 1;
    }
    assert!(
        ticks.values().all(|&n| n == 1),
        "a tick ran twice: {ticks:?}"
    );
    // Every second from a little after the start to a little before the end has its job.
    let first = started.timestamp() + 3;
    let last = stopped.timestamp() - 2;
    assert!(last - first >= 20, "{first}..{last}");
    for second in first..=last {
        let tick = chrono::DateTime::from_timestamp(second, 0).expect("a time");
        let key = holidapp_core::schedule::tick_key("every-second", tick);
        assert!(ticks.contains_key(&key), "no job for {key}: {ticks:?}");
    }
}

/// One worker slot (concurrency 1, no prefetch) drains a backlog of mixed priorities while more
/// jobs arrive: no job is ever started while a job of higher priority was waiting (an inversion
/// count of zero).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_slot_takes_the_highest_priority_waiting_every_time() {
    let rig = Rig::new("priorities", RedisServer::start()).await;
    let job = |i: usize, priority: i32| {
        let params = Params::from_json(format!(r#"{{"start":"{i}","end":"2000"}}"#));
        let mut job = Job::new(
            "plot",
            QueueName::default_queue(),
            params.expect("JSON"),
            3,
            Utc::now(),
        );
        job.priority = priority;
        job
    };
    let backlog: Vec<Job> = (0..150).map(|i| job(i, (i * 7 % 11) as i32 - 5)).collect();
    rig.backend.enqueue_all(&backlog).await.expect("enqueue");
    let mut worker = rig.worker_with(
        "10.0.0.1",
        "sleep:10",
        1,
        &[("HOLIDAPP_WORKER_PREFETCH", "0")],
    );
    // More jobs arrive while it drains, a few at a time, some outranking everything waiting.
    for round in 0..10 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        let more: Vec<Job> = (0..5)
            .map(|i| job(1000 + round * 5 + i, ((round * 5 + i) * 5 % 13) as i32 - 6))
            .collect();
        rig.backend.enqueue_all(&more).await.expect("enqueue");
    }
    eventually(Duration::from_secs(60), "every job complete", || async {
        rig.counts().await.complete == 200
    })
    .await;
    worker.stop().await;

    let jobs = rig.complete_jobs().await;
    assert_eq!(jobs.len(), 200);
    // A job `b` waiting (stored well before) when a job `a` of lower priority was leased.
    let margin = chrono::Duration::milliseconds(50);
    let mut inversions = Vec::new();
    for a in &jobs {
        let a_started = a.started_at.expect("started");
        for b in &jobs {
            let b_started = b.started_at.expect("started");
            if b.priority > a.priority && a_started < b_started && b.created_at + margin < a_started
            {
                inversions.push((a.priority, b.priority));
            }
        }
    }
    assert!(
        inversions.is_empty(),
        "{} inversions: {inversions:?}",
        inversions.len()
    );
    let distinct: std::collections::HashSet<i32> = jobs.iter().map(|j| j.priority).collect();
    assert!(distinct.len() >= 10, "{distinct:?}");
}

/// The ids of `jobs` new `plot` jobs from the rig's backend (in its queue's partitions in turn).
fn new_jobs(rig: &Rig, from: usize, n: usize) -> Vec<Job> {
    (from..from + n)
        .map(|i| {
            let params = Params::from_json(format!(r#"{{"start":"{i}","end":"2000"}}"#));
            let queue = QueueName::default_queue();
            let mut job = Job::new("plot", queue, params.expect("JSON"), 10, Utc::now());
            job.id = rig.backend.new_id(&job.queue);
            job
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_drain_20000_jobs_over_six_partitions_of_a_cluster_each_once() {
    let mut rig = Rig::new("cluster-drain", RedisCluster::start(3, 1)).await;
    rig.backend = rig
        .backend
        .clone()
        .with_partitions([(QueueName::default_queue(), 6)]);
    let mut a = rig.worker("10.0.0.1", "noop", 4);
    let mut b = rig.worker("10.0.0.2", "noop", 4);
    a.wait_for_log("worker started").await;
    b.wait_for_log("worker started").await;

    let ids = rig.submit(20_000).await;
    let tags: std::collections::HashSet<u8> = ids.iter().map(|id| id.tag()).collect();
    assert_eq!(tags.len(), 6, "the jobs went to six partitions");
    eventually(Duration::from_secs(180), "20,000 complete jobs", || async {
        rig.counts().await.complete == 20_000
    })
    .await;
    let (done_a, done_b) = (a.stop().await, b.stop().await);

    let counts = rig.counts().await;
    assert_eq!(
        (counts.submitted, counts.in_progress, counts.failed),
        (0, 0, 0)
    );
    let jobs = rig.complete_jobs().await;
    assert_eq!(jobs.len(), ids.len());
    for job in &jobs {
        assert_eq!(job.attempts, 1, "job {} ran more than once", job.id);
    }
    let listed: std::collections::HashSet<JobId> = jobs.iter().map(|j| j.id).collect();
    assert_eq!(listed, ids.iter().copied().collect());
    assert_eq!(done_a["completed"] + done_b["completed"], 20_000);
    assert!(
        done_a["completed"] > 0 && done_b["completed"] > 0,
        "{done_a:?} {done_b:?}"
    );
    assert_eq!(done_a["lease_lost"] + done_b["lease_lost"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_mid_drain_loses_no_acknowledged_job() {
    use holidapp_core::events::{EventCursor, EventLog};
    use std::collections::{HashMap as Map, HashSet};

    let mut rig = Rig::new("cluster-failover", RedisCluster::start(3, 1)).await;
    // Submits are acknowledged once a replica has them, as the workers' completions are.
    rig.backend = rig
        .backend
        .clone()
        .with_partitions([(QueueName::default_queue(), 6)])
        .with_replica_acks(1, Duration::from_secs(1));
    let acks = [
        ("HOLIDAPP_REDIS_WAIT_REPLICAS", "1"),
        ("HOLIDAPP_MAX_ATTEMPTS", "10"),
    ];
    let mut a = rig.worker_with("10.0.0.1", "sleep:20", 8, &acks);
    let mut b = rig.worker_with("10.0.0.2", "sleep:20", 8, &acks);
    let first = new_jobs(&rig, 0, 2000);
    rig.backend.enqueue_all(&first).await.expect("enqueue");
    let mut acknowledged: HashSet<JobId> = first.iter().map(|j| j.id).collect();
    eventually(Duration::from_secs(60), "400 complete jobs", || async {
        rig.counts().await.complete >= 400
    })
    .await;

    // Cut a master off its replica and submit a batch: what that master stores now reaches no
    // replica until the link is remade, so it must not be acknowledged. Then SIGKILL the master
    // mid-drain; its replica takes over. Meanwhile more jobs are submitted: a batch answered
    // without error is acknowledged, the others may or may not be stored.
    let master = rig.cluster().masters()[0];
    let mut node = redis::Client::open(rig.cluster().nodes()[master].url())
        .and_then(|client| client.get_connection())
        .expect("connect to the master");
    let _: redis::Value = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .query(&mut node)
        .expect("CLIENT KILL");
    let cut_off = new_jobs(&rig, 5_000, 60);
    if rig.backend.enqueue_all(&cut_off).await.is_ok() {
        acknowledged.extend(cut_off.iter().map(|j| j.id));
    }
    rig.cluster().node_mut(master).kill();
    let mut answered_errors = 0;
    for round in 0..30 {
        let more = new_jobs(&rig, 10_000 + round * 20, 20);
        match rig.backend.enqueue_all(&more).await {
            Ok(_) => acknowledged.extend(more.iter().map(|j| j.id)),
            Err(_) => answered_errors += 1,
        }
    }
    rig.cluster().wait_until_healthy(2);
    // The killed node comes back (as the orchestrator restarts a pod) and rejoins as a replica
    // of the master that replaced it, so every master has a replica to acknowledge writes again.
    rig.cluster().node_mut(master).restart();
    rig.cluster().wait_until_healthy(3);

    // None stuck: everything stored ends complete.
    eventually(
        Duration::from_secs(180),
        "every stored job complete",
        || async {
            rig.backend
                .stats()
                .await
                .map(|stats| total_counts(&stats))
                .is_ok_and(|c| c.submitted == 0 && c.in_progress == 0 && c.complete > 0)
        },
    )
    .await;
    a.stop().await;
    b.stop().await;
    let complete: HashSet<JobId> = rig.complete_jobs().await.iter().map(|j| j.id).collect();
    let lost: Vec<&JobId> = acknowledged.difference(&complete).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged jobs were lost (of {}): {lost:?}",
        lost.len(),
        acknowledged.len()
    );
    assert_eq!(rig.counts().await.failed, 0);

    // None ran again after its completion: in the history that survived, no job is taken
    // after it completed.
    let mut cursor = EventCursor::start();
    let mut completed_at: Map<JobId, usize> = Map::new();
    let mut rerun = Vec::new();
    let mut seen = 0;
    loop {
        let events = rig.backend.read(&cursor, 1000).await.expect("events");
        if events.is_empty() {
            break;
        }
        for event in &events {
            cursor.pass(event);
            seen += 1;
            match event.status {
                JobStatus::Complete => {
                    completed_at.entry(event.job).or_insert(seen);
                }
                JobStatus::InProgress if completed_at.contains_key(&event.job) => {
                    rerun.push(event.job);
                }
                _ => {}
            }
        }
    }
    assert!(rerun.is_empty(), "taken again after completing: {rerun:?}");
    // Each partition's stream keeps about its last 1,000 entries, so the oldest completions
    // may have been trimmed; most of the history is there.
    assert!(
        completed_at.len() * 2 > complete.len(),
        "{} of {} completions in the event history",
        completed_at.len(),
        complete.len()
    );
    eprintln!(
        "{} jobs acknowledged, {} complete ({} with their completion in the history), \
         {answered_errors} submit batches refused during the failover",
        acknowledged.len(),
        complete.len(),
        completed_at.len()
    );
}
