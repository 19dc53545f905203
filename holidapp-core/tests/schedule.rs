//! Periodic jobs: schedules checked when a scheduler is made, and exactly one job per tick
//! however many schedulers run, with clocks that disagree, through restarts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use holidapp_core::schedule::tick_key;
use holidapp_core::{
    Backends, Clock, Error, Job, JobStore, Jobs, Json, Kinds, ListQuery, MemoryBackend,
    QueueSettings, Renderer, Result, Schedule, Scheduler, async_trait,
};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

#[derive(Serialize, Deserialize)]
struct Report {
    customer: u32,
}

struct Reporter;

#[async_trait]
impl Renderer for Reporter {
    const KIND: &'static str = "report";
    type Params = Report;
    type Output = Json<u32>;

    fn validate(&self, params: &Report) -> Result<()> {
        if params.customer == 0 {
            return Err(Error::InvalidParams("no customer 0".into()));
        }
        Ok(())
    }

    async fn render(&self, params: Report, _: &holidapp_core::Context) -> Result<Json<u32>> {
        Ok(Json(params.customer))
    }
}

/// Tokio's (paused) time, shifted by `offset`: a process clock that may disagree with others.
#[derive(Debug)]
struct Shifted {
    base: DateTime<Utc>,
    start: Instant,
    offset: chrono::Duration,
}

impl Clock for Shifted {
    fn now(&self) -> DateTime<Utc> {
        self.base + chrono::Duration::from_std(self.start.elapsed()).unwrap() + self.offset
    }
}

fn schedules(json: &str) -> Vec<Schedule> {
    Schedule::parse_all(json).unwrap()
}

const EVERY_SECOND: &str = r#"[{"name": "tick", "cron": "* * * * * *",
    "job": {"kind": "report", "params": {"customer": 7}, "priority": 3}}]"#;

async fn all_jobs(backend: &MemoryBackend) -> Vec<Job> {
    let query = ListQuery {
        limit: 1000,
        ..ListQuery::default()
    };
    backend.list(&query).await.unwrap().jobs
}

#[test]
fn bad_schedules_are_refused_naming_the_schedule() {
    let backend = Arc::new(MemoryBackend::new(QueueSettings::default()));
    let jobs = Jobs::new(&Backends::single(backend), Kinds::new().with(Reporter));
    for (json, says) in [
        (
            r#"[{"name": "a", "cron": "every day", "job": {"kind": "report", "params": {"customer": 1}}}]"#,
            "cron",
        ),
        (
            r#"[{"name": "a", "cron": "0 3 * * *", "job": {"kind": "nope", "params": {}}}]"#,
            "unknown",
        ),
        (
            r#"[{"name": "a", "cron": "0 3 * * *", "job": {"kind": "report", "params": {"customer": 0}}}]"#,
            "customer 0",
        ),
        (
            r#"[{"name": "no way", "cron": "0 3 * * *", "job": {"kind": "report", "params": {"customer": 1}}}]"#,
            "name",
        ),
        (
            r#"[{"name": "a", "cron": "0 3 * * *", "job": {"kind": "report", "params": {"customer": 1}}},
            {"name": "a", "cron": "0 4 * * *", "job": {"kind": "report", "params": {"customer": 1}}}]"#,
            "second",
        ),
    ] {
        let message = Scheduler::new(jobs.clone(), schedules(json))
            .unwrap_err()
            .to_string();
        assert!(message.contains(says), "{message}");
    }
    assert!(Schedule::parse_all(r#"[{"name": "a"}]"#).is_err());
    assert!(Schedule::parse_all(r#"{"name": "a"}"#).is_err());
}

#[tokio::test(start_paused = true)]
async fn three_schedulers_with_disagreeing_clocks_submit_one_job_per_tick() {
    let base = Utc::now();
    let start = Instant::now();
    let clock = |seconds: i64| {
        Arc::new(Shifted {
            base,
            start,
            offset: chrono::Duration::milliseconds(seconds),
        })
    };
    let backend = Arc::new(MemoryBackend::with_clock(
        QueueSettings::default(),
        clock(0),
    ));
    let jobs = Jobs::new(
        &Backends::single(backend.clone()),
        Kinds::new().with(Reporter),
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for offset_ms in [-2_300, 0, 3_700] {
        let scheduler = Scheduler::new(jobs.clone(), schedules(EVERY_SECOND))
            .unwrap()
            .with_clock(clock(offset_ms));
        let mut stopped = stopped.clone();
        tasks.push(tokio::spawn(async move {
            scheduler
                .run(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
        }));
    }
    tokio::time::sleep(Duration::from_secs(25)).await;
    stop.send(true).unwrap();
    for task in tasks {
        task.await.unwrap();
    }

    let mut per_tick: BTreeMap<String, usize> = BTreeMap::new();
    for job in all_jobs(&backend).await {
        assert_eq!((job.kind.as_str(), job.priority), ("report", 3));
        *per_tick
            .entry(job.unique_key.expect("a tick key"))
            .or_default() += 1;
    }
    assert!(per_tick.values().all(|&n| n == 1), "{per_tick:?}");
    // Every second from the start (the scheduler 3.7 s ahead ran ticks the others had not seen
    // yet; the one behind submitted nothing new) to the end, none missing.
    let first = base.timestamp() - 2;
    let last = base.timestamp() + 25;
    for second in first + 3..=last {
        let tick = DateTime::from_timestamp(second, 0).unwrap();
        assert!(
            per_tick.contains_key(&tick_key("tick", tick)),
            "tick {tick} missing: {per_tick:?}"
        );
    }
    assert!(per_tick.len() >= 20);
}

#[tokio::test(start_paused = true)]
async fn a_restarted_scheduler_runs_the_latest_missed_tick_once_and_skips_older_ones() {
    let base = Utc::now();
    let start = Instant::now();
    let shifted = Arc::new(Shifted {
        base,
        start,
        offset: chrono::Duration::zero(),
    });
    let backend = Arc::new(MemoryBackend::with_clock(
        QueueSettings::default(),
        shifted.clone(),
    ));
    let jobs = Jobs::new(
        &Backends::single(backend.clone()),
        Kinds::new().with(Reporter),
    );
    let minutely = r#"[{"name": "m", "cron": "0 * * * * *",
        "job": {"kind": "report", "params": {"customer": 1}}}]"#;
    let make = || {
        Scheduler::new(jobs.clone(), schedules(minutely))
            .unwrap()
            .with_clock(shifted.clone())
            .with_catch_up(Duration::from_secs(90))
    };
    // Down for ten minutes: on start, only the latest missed minute runs.
    tokio::time::sleep(Duration::from_secs(600)).await;
    let first = make();
    first.run(async {}).await;
    let jobs_now = all_jobs(&backend).await;
    assert_eq!(jobs_now.len(), 1, "{jobs_now:?}");
    // A second start within the same minute finds that tick submitted.
    make().run(async {}).await;
    assert_eq!(all_jobs(&backend).await.len(), 1);
    // A catch-up window shorter than the time since the last tick runs nothing.
    let strict = Scheduler::new(jobs.clone(), schedules(minutely))
        .unwrap()
        .with_clock(shifted.clone())
        .with_catch_up(Duration::ZERO);
    tokio::time::sleep(Duration::from_secs(1)).await;
    strict.run(async {}).await;
    assert_eq!(all_jobs(&backend).await.len(), 1);
}
