//! Periodic jobs: [`Schedule`]s (a name, a cron expression and the job each tick submits) and the
//! [`Scheduler`] that submits them.
//!
//! **Exactly one job per tick, without a leader.** Every process that runs a scheduler (each API
//! and worker process may) computes the same ticks: the times the cron expression names, in UTC,
//! which do not depend on any process's clock. Each tick's job carries the unique key
//! `schedule:{name}:{tick}` (RFC 3339), held for [`Scheduler::key_hold`], so whichever process
//! submits a tick first stores its job and every other submit of that tick finds it and stores
//! nothing. Clocks that disagree only change *when* a process submits a tick, not which tick it
//! is; restarts change nothing either.
//!
//! **Missed ticks.** A scheduler that starts (or wakes from a long pause) submits the latest tick
//! it missed if that tick is at most [`Scheduler::with_catch_up`] old (one hour unless set), and
//! skips older ones: after an outage a periodic job runs once, not once per tick missed. The
//! unique key makes that catch-up a no-op when another process already submitted the tick.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use croner::Cron;
use serde::Deserialize;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::job::{QueueName, UniqueScope, check_kind_name, truncate};
use crate::jobs::{Jobs, Submit, Submitted};

/// A periodic job: each tick of `cron` submits `job`.
///
/// From JSON (`HOLIDAPP_SCHEDULES`):
///
/// ```json
/// [{"name": "nightly-histogram", "cron": "0 3 * * *",
///   "job": {"kind": "plot", "params": {"start": 1990, "end": 2020}, "queue": "reports"}}]
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// The schedule's name (the rules of a queue name): part of each tick's unique key, so two
    /// schedules never share a tick.
    pub name: String,
    /// When it ticks, in UTC: five fields (`minute hour day-of-month month day-of-week`) or six,
    /// seconds first (`*/10 * * * * *`), as `croner` reads them.
    pub cron: String,
    /// The job each tick submits.
    pub job: ScheduledJob,
}

/// The job a schedule submits.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledJob {
    /// Its kind.
    pub kind: String,
    /// Its parameters, checked by the kind at start and at each tick.
    #[serde(default)]
    pub params: serde_json::Value,
    /// Its queue (`default` unless given).
    #[serde(default)]
    pub queue: Option<QueueName>,
    /// Its priority.
    #[serde(default)]
    pub priority: Option<i32>,
    /// Its attempts.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Its per-attempt time limit, in seconds.
    #[serde(default)]
    pub timeout: Option<u32>,
}

impl Schedule {
    /// Schedules from JSON text: an array of schedules.
    pub fn parse_all(text: &str) -> Result<Vec<Schedule>> {
        serde_json::from_str(text).map_err(|e| {
            Error::InvalidParams(format!(
                "schedules must be a JSON array of {{\"name\", \"cron\", \"job\"}}: {e}"
            ))
        })
    }

    /// The job of the tick at `tick`: the schedule's job, its unique key naming the tick.
    fn submit_at(&self, tick: DateTime<Utc>, hold: UniqueScope) -> Submit {
        let job = &self.job;
        Submit {
            queue: job.queue.clone(),
            max_attempts: job.max_attempts,
            timeout: job.timeout,
            priority: job.priority,
            ..Submit::new(job.kind.clone(), job.params.clone())
        }
        .with_unique_key(tick_key(&self.name, tick))
        .unique_for(hold)
    }
}

/// The unique key of a schedule's tick.
pub fn tick_key(name: &str, tick: DateTime<Utc>) -> String {
    format!(
        "schedule:{name}:{}",
        tick.to_rfc3339_opts(SecondsFormat::Secs, true)
    )
}

/// Submits the jobs of [`Schedule`]s at their ticks (see the [module docs](self)).
pub struct Scheduler {
    jobs: Jobs,
    schedules: Vec<(Schedule, Cron)>,
    clock: Arc<dyn Clock>,
    catch_up: Duration,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field(
                "schedules",
                &self.schedules.iter().map(|(s, _)| s).collect::<Vec<_>>(),
            )
            .field("catch_up", &self.catch_up)
            .finish_non_exhaustive()
    }
}

/// How long a missed tick may be late and still run, unless set otherwise.
pub const CATCH_UP: Duration = Duration::from_secs(3600);

/// The most schedules one scheduler runs.
pub const MAX_SCHEDULES: usize = 1000;

impl Scheduler {
    /// A scheduler submitting through `jobs`, on the system clock. Each schedule is checked: its
    /// name, its cron expression, and its job (the kind checks the parameters); the first one
    /// refused is the error, naming the schedule.
    pub fn new(jobs: Jobs, schedules: Vec<Schedule>) -> Result<Self> {
        if schedules.len() > MAX_SCHEDULES {
            return Err(Error::InvalidParams(format!(
                "at most {MAX_SCHEDULES} schedules, got {}",
                schedules.len()
            )));
        }
        let mut checked: Vec<(Schedule, Cron)> = Vec::with_capacity(schedules.len());
        for schedule in schedules {
            let named = |e: Error| {
                Error::InvalidParams(format!("schedule '{}': {e}", truncate(&schedule.name, 64)))
            };
            check_kind_name(&schedule.name)
                .map_err(|_| named(Error::InvalidParams("a bad name".into())))?;
            if checked.iter().any(|(s, _)| s.name == schedule.name) {
                return Err(named(Error::InvalidParams(
                    "a second schedule of that name".into(),
                )));
            }
            let cron: Cron = schedule.cron.parse().map_err(|e| {
                named(Error::InvalidParams(format!(
                    "'{}' is not a cron expression: {e}",
                    truncate(&schedule.cron, 64)
                )))
            })?;
            jobs.prepare(schedule.submit_at(Utc::now(), UniqueScope::Active))
                .map_err(named)?;
            checked.push((schedule, cron));
        }
        Ok(Scheduler {
            jobs,
            schedules: checked,
            clock: Arc::new(SystemClock),
            catch_up: CATCH_UP,
        })
    }

    /// The same scheduler reading time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The same scheduler running a missed tick only when it is at most `catch_up` late.
    pub fn with_catch_up(mut self, catch_up: Duration) -> Self {
        self.catch_up = catch_up;
        self
    }

    /// The schedules it runs.
    pub fn schedules(&self) -> impl Iterator<Item = &Schedule> {
        self.schedules.iter().map(|(s, _)| s)
    }

    /// How long a tick's unique key holds: longer than any process can be late with the tick
    /// (the catch-up window), with a day to spare.
    pub fn key_hold(&self) -> UniqueScope {
        let seconds = (self.catch_up + Duration::from_secs(86_400)).as_secs();
        UniqueScope::For(
            u32::try_from(seconds)
                .unwrap_or(u32::MAX)
                .min(crate::job::MAX_UNIQUE_FOR),
        )
    }

    /// Submits the job of schedule `index`'s tick at `tick` (unless some process did already).
    pub async fn submit_tick(&self, index: usize, tick: DateTime<Utc>) -> Result<Submitted> {
        let (schedule, _) = self
            .schedules
            .get(index)
            .ok_or_else(|| Error::Internal(format!("no schedule number {index}")))?;
        self.jobs
            .submit_or_find(schedule.submit_at(tick, self.key_hold()))
            .await
    }

    /// The first tick of schedule `index` after `after`.
    fn next_tick(&self, index: usize, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let (_, cron) = self.schedules.get(index)?;
        cron.find_next_occurrence(&after, false).ok()
    }

    /// The latest tick of each schedule at or before `now` and no older than the catch-up window.
    fn missed_ticks(&self, now: DateTime<Utc>) -> Vec<Option<DateTime<Utc>>> {
        let window = chrono::Duration::from_std(self.catch_up).unwrap_or(chrono::Duration::MAX);
        self.schedules
            .iter()
            .map(|(_, cron)| {
                cron.find_previous_occurrence(&now, true)
                    .ok()
                    .filter(|tick| now - *tick <= window)
            })
            .collect()
    }

    /// Submits ticks until `shutdown` resolves: first the latest missed tick of each schedule
    /// (within the catch-up window), then each tick as it comes, by this scheduler's clock. A
    /// submit that fails (the backend is down) is tried again, every second, while the tick is
    /// within the catch-up window; it is logged, and never stops the scheduler.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = pin!(shutdown);
        let mut pending: Vec<Option<DateTime<Utc>>> = self.missed_ticks(self.clock.now());
        loop {
            // Submit every tick that is due.
            let now = self.clock.now();
            let mut retry = false;
            for (index, tick) in pending.iter_mut().enumerate() {
                let Some(at) = *tick else { continue };
                if at > now {
                    continue;
                }
                match self.submit_tick(index, at).await {
                    Ok(submitted) => {
                        let name = &self.schedules[index].0.name;
                        if submitted.is_created() {
                            tracing::info!(schedule = %name, tick = %at, job = %submitted.job().id, "scheduled job submitted");
                        } else {
                            tracing::debug!(schedule = %name, tick = %at, "tick already submitted");
                        }
                        *tick = self.next_tick(index, at);
                    }
                    Err(e) => {
                        let late = chrono::Duration::from_std(self.catch_up)
                            .is_ok_and(|window| now - at > window);
                        tracing::warn!(schedule = %self.schedules[index].0.name, tick = %at, error = %e, late, "could not submit a scheduled job");
                        if late {
                            *tick = self.next_tick(index, now);
                        } else {
                            retry = true;
                        }
                    }
                }
            }
            for (index, tick) in pending.iter_mut().enumerate() {
                if tick.is_none() {
                    *tick = self.next_tick(index, now);
                }
            }
            let next = pending.iter().flatten().min().copied();
            let wait = match (retry, next) {
                (true, _) => Duration::from_secs(1),
                (false, None) => Duration::from_secs(3600),
                (false, Some(at)) => (at - self.clock.now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    // Re-read the clock at least once a minute: it may have been set.
                    .min(Duration::from_secs(60)),
            };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
