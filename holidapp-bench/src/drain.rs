//! Worker processes and the figures of a drain, shared by `worker_drain` and `cluster_drain`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use holidapp_core::redis_backend::RedisBackend;
use holidapp_core::store::total_counts;
use holidapp_core::{Job, JobId, JobStore};

/// Redis's CPU time so far (user and system, every thread), in seconds.
pub async fn redis_cpu(conn: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<f64> {
    let info: String = redis::cmd("INFO").arg("cpu").query_async(conn).await?;
    let field = |name: &str| -> anyhow::Result<f64> {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .ok_or_else(|| anyhow::anyhow!("INFO cpu has no {name}"))?
            .trim()
            .parse::<f64>()
            .map_err(Into::into)
    };
    Ok(field("used_cpu_user")? + field("used_cpu_sys")?)
}

/// Builds `holidapp-worker` with the calling benchmark's profile and answers its path.
pub fn build_worker() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let release = !cfg!(debug_assertions);
    let mut command = Command::new(cargo);
    command.args([
        "build",
        "-q",
        "-p",
        "holidapp-worker",
        "--bin",
        "holidapp-worker",
    ]);
    if release {
        command.arg("--release");
    }
    let status = command.status()?;
    anyhow::ensure!(status.success(), "building holidapp-worker failed");
    // The benchmark binary sits in the same target directory, profile folder included.
    let dir = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow::anyhow!("the benchmark binary has no directory"))?;
    let bin = dir.join("holidapp-worker");
    anyhow::ensure!(bin.exists(), "{} was not built", bin.display());
    Ok(bin)
}

/// `INFO commandstats` of one or more Redis servers: calls and microseconds by command.
#[derive(Clone, Debug, Default)]
pub struct CommandStats(BTreeMap<String, (f64, f64)>);

impl CommandStats {
    /// One server's statistics since its last `CONFIG RESETSTAT`.
    pub async fn read(conn: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<Self> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(conn)
            .await?;
        let mut stats = BTreeMap::new();
        for line in info.lines() {
            let Some((name, fields)) = line
                .strip_prefix("cmdstat_")
                .and_then(|l| l.split_once(':'))
            else {
                continue;
            };
            let value = |key: &str| -> f64 {
                fields
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0.0)
            };
            stats.insert(name.to_owned(), (value("calls"), value("usec")));
        }
        Ok(CommandStats(stats))
    }

    /// Adds `other`'s statistics to these, command by command (servers of one cluster).
    pub fn merge(&mut self, other: &CommandStats) {
        for (name, (calls, usec)) in &other.0 {
            let entry = self.0.entry(name.clone()).or_default();
            entry.0 += calls;
            entry.1 += usec;
        }
    }

    /// One line per command, the costliest first: calls and microseconds per job of `jobs`,
    /// and microseconds per call.
    pub fn per_job(&self, jobs: usize) -> String {
        let jobs = jobs as f64;
        let mut rows: Vec<_> = self.0.iter().collect();
        rows.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
        rows.iter()
            .map(|(name, (calls, usec))| {
                format!(
                    "  {name:<14} {:>8.3} calls/job {:>7.3} µs/job {:>6.2} µs/call\n",
                    calls / jobs,
                    usec / jobs,
                    usec / calls.max(1.0)
                )
            })
            .collect()
    }
}

/// From the first job's lease to the last completion, on Redis's clock. The backlog is leased
/// highest priority first, oldest first within a priority, so the first job leased is among the
/// first few thousand of the highest priority, and the last to finish among the last few thousand
/// of the lowest.
pub async fn drain_time(backend: &RedisBackend, jobs: &[Job]) -> anyhow::Result<Duration> {
    let highest = jobs.iter().map(|j| j.priority).max().unwrap_or(0);
    let lowest = jobs.iter().map(|j| j.priority).min().unwrap_or(0);
    let head: Vec<JobId> = jobs
        .iter()
        .filter(|j| j.priority == highest)
        .take(2000)
        .map(|j| j.id)
        .collect();
    let tail: Vec<JobId> = jobs
        .iter()
        .rev()
        .filter(|j| j.priority == lowest)
        .take(4000)
        .map(|j| j.id)
        .collect();
    let read =
        |ids: Vec<JobId>| futures::future::try_join_all(ids.into_iter().map(|id| backend.get(id)));
    let started = read(head)
        .await?
        .into_iter()
        .filter_map(|j| j.and_then(|j| j.started_at))
        .min()
        .ok_or_else(|| anyhow::anyhow!("the first jobs have no start time"))?;
    let finished = read(tail)
        .await?
        .into_iter()
        .filter_map(|j| j.and_then(|j| j.finished_at))
        .max()
        .ok_or_else(|| anyhow::anyhow!("no job has finished"))?;
    (finished - started)
        .to_std()
        .map(|d| d.max(Duration::from_millis(1)))
        .map_err(|_| anyhow::anyhow!("the last job finished before the first started"))
}

/// Waits until the store counts `n` jobs `complete`; fails if any job failed.
pub async fn all_complete(backend: &RedisBackend, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let counts = total_counts(&backend.stats().await?);
        if counts.complete == n as u64 {
            return Ok(());
        }
        anyhow::ensure!(
            counts.failed == 0,
            "{} jobs failed; see a worker's log",
            counts.failed
        );
        anyhow::ensure!(Instant::now() < deadline, "the drain took over 10 minutes");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Stops the workers and answers the CPU seconds they used, all of them together.
pub fn stop_all(workers: &mut [Worker]) -> anyhow::Result<f64> {
    let mut cpu = 0.0;
    for worker in workers.iter_mut() {
        cpu += worker.cpu_seconds()?;
        worker.stop()?;
    }
    Ok(cpu)
}

/// Clock ticks per second, the unit of CPU times in `/proc`.
fn clock_ticks() -> anyhow::Result<f64> {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    if let Some(ticks) = TICKS.get() {
        return Ok(*ticks);
    }
    let out = Command::new("getconf").arg("CLK_TCK").output()?;
    let ticks: f64 = String::from_utf8(out.stdout)?.trim().parse()?;
    anyhow::ensure!(ticks > 0.0, "getconf CLK_TCK answered {ticks}");
    Ok(*TICKS.get_or_init(|| ticks))
}

/// A worker process of the benchmark, killed on drop if still running.
pub struct Worker {
    child: Child,
    log: PathBuf,
}

impl Worker {
    /// Starts worker number `p` of `bin` with `env` as its whole environment (and
    /// `WORKER_IP=bench-<p>`), its log in a temporary file.
    pub fn spawn(bin: &Path, env: &[(&str, String)], p: usize) -> anyhow::Result<Self> {
        let log = std::env::temp_dir().join(format!(
            "holidapp-worker-drain-{}-{p}.log",
            std::process::id()
        ));
        let mut command = Command::new(bin);
        command
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("WORKER_IP", format!("bench-{p}"));
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        Ok(Worker { child, log })
    }

    /// Waits until the worker logs that it started.
    pub async fn wait_started(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(&self.log)?.contains("worker started") {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the worker did not start:\n{}",
                std::fs::read_to_string(&self.log)?
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// User and system CPU time of the process so far, every thread included, from
    /// `/proc/<pid>/stat` (in clock ticks of `getconf CLK_TCK`).
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        // The fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |i: usize| -> anyhow::Result<f64> {
            Ok(fields
                .get(i)
                .ok_or_else(|| anyhow::anyhow!("short /proc stat: {stat}"))?
                .parse::<f64>()?)
        };
        // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
        Ok((ticks(11)? + ticks(12)?) / clock_ticks()?)
    }

    /// Stops the worker with SIGTERM; fails unless it exits cleanly.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let status = self.child.wait()?;
        anyhow::ensure!(
            status.success(),
            "a worker exited with {status}:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
        Ok(())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
