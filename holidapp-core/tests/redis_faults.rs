//! Fault tests of the Redis backend against real `redis-server` processes: stale lease holders,
//! a server killed and restarted with its append-only file, a server down or hung, and many
//! lessees racing for the same jobs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use holidapp_core::contract::job_in;
use holidapp_core::redis_backend::{RedisBackend, RedisConfig};
use holidapp_core::store::total_counts;
use holidapp_core::testing::RedisServer;
use holidapp_core::{
    Clock, Consumer, Error, FailureKind, Job, JobId, JobStatus, JobStore, Maintenance, ManualClock,
    Output, Producer, QueueName, QueueSettings, Renewal, ResultState,
};

const LEASE: Duration = Duration::from_secs(30);

/// The API must answer 503 within 2 s, so every call must give up well before that.
const OUTAGE_ANSWER_LIMIT: Duration = Duration::from_secs(2);

fn jobs(n: usize) -> Vec<Job> {
    jobs_of(n, 3)
}

/// `n` jobs of the `default` queue, each allowed `max_attempts` attempts.
fn jobs_of(n: usize, max_attempts: u32) -> Vec<Job> {
    let clock = ManualClock::starting_now();
    (0..n)
        .map(|i| {
            let mut job = job_in(&clock, &default(), &format!(r#"{{"n":{i}}}"#));
            job.max_attempts = max_attempts;
            job
        })
        .collect()
}

fn default() -> QueueName {
    QueueName::default_queue()
}

fn bytes(data: impl Into<bytes::Bytes>) -> Output {
    Output::new("application/octet-stream", data)
}

fn ready(data: impl Into<bytes::Bytes>) -> Option<ResultState> {
    Some(ResultState::Ready(bytes(data)))
}

/// Polls `ping` until the backend reaches the server again, or fails the test after 15 s.
async fn wait_until_reachable(backend: &RedisBackend) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match backend.ping().await {
            Ok(()) => return,
            Err(e) if Instant::now() < deadline => {
                assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the backend did not reconnect: {e}"),
        }
    }
}

/// Runs `call` and checks it answers `Unavailable` within the outage limit.
async fn assert_unavailable_quickly<T: std::fmt::Debug>(
    what: &str,
    call: impl std::future::Future<Output = holidapp_core::Result<T>>,
) {
    let started = Instant::now();
    let result = call.await;
    let took = started.elapsed();
    assert!(
        matches!(result, Err(Error::Unavailable(_))),
        "{what}: expected Unavailable, got {result:?}"
    );
    assert!(
        took < OUTAGE_ANSWER_LIMIT,
        "{what}: answered after {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_lessee_cannot_touch_a_job_taken_over_by_another() {
    let server = RedisServer::shared();
    let config = server.config("stale_lessee");
    let clock = Arc::new(ManualClock::starting_now());
    // Two processes' worth of backends: separate connections, one namespace, one clock.
    let old = RedisBackend::with_clock(&config, QueueSettings::default(), clock.clone())
        .await
        .unwrap();
    let new = RedisBackend::with_clock(&config, QueueSettings::default(), clock.clone())
        .await
        .unwrap();
    let job = jobs(1).remove(0);
    old.enqueue(&job).await.unwrap();
    let stale = old
        .lease(&default(), "10.0.0.1", LEASE)
        .await
        .unwrap()
        .unwrap();

    clock.advance(LEASE + Duration::from_secs(1));
    let report = new.requeue_expired().await.unwrap();
    assert_eq!((report.requeued, report.failed), (1, 0));
    let current = new
        .lease(&default(), "10.0.0.2", LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.id(), job.id);
    assert_ne!(current.token, stale.token);

    assert!(matches!(
        old.complete(&stale, bytes("stale")).await,
        Err(Error::LeaseLost)
    ));
    assert!(matches!(
        old.fail(&stale, "stale", FailureKind::Permanent).await,
        Err(Error::LeaseLost)
    ));
    assert!(matches!(
        old.renew(&stale, LEASE).await,
        Err(Error::LeaseLost)
    ));
    assert_eq!(
        old.renew_many(&[stale.clone(), current.clone()], LEASE)
            .await
            .unwrap(),
        vec![Renewal::Lost, Renewal::Held]
    );
    assert!(matches!(old.release(&stale).await, Err(Error::LeaseLost)));

    let stored = new.get(job.id).await.unwrap().unwrap();
    assert_eq!(stored.status, JobStatus::InProgress);
    assert_eq!(stored.worker.as_deref(), Some("10.0.0.2"));
    assert_eq!(stored.attempts, 2);
    assert_eq!(
        new.result(job.id).await.unwrap(),
        Some(ResultState::Pending(JobStatus::InProgress))
    );

    new.complete(&current, bytes("fresh")).await.unwrap();
    assert_eq!(old.result(job.id).await.unwrap(), ready("fresh"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_jobs_survive_a_kill_and_restart_with_aof() {
    let mut server = RedisServer::start_with_aof();
    let config = server.config("aof");
    let backend = RedisBackend::connect(&config, QueueSettings::default())
        .await
        .unwrap();
    let all = jobs(1000);
    for job in &all[..300] {
        backend.enqueue(job).await.unwrap();
    }
    backend.enqueue_all(&all[300..]).await.unwrap();
    let leases = backend
        .lease_many(&default(), "10.0.0.1", LEASE, 100)
        .await
        .unwrap();
    assert_eq!(leases.len(), 100);
    for lease in &leases[..50] {
        backend
            .complete(lease, bytes(lease.id().to_string()))
            .await
            .unwrap();
    }

    server.kill();
    assert!(!server.is_running());
    server.restart();
    wait_until_reachable(&backend).await;

    // Every acknowledged job is back, in the state it was left in.
    let mut by_status: HashMap<JobStatus, usize> = HashMap::new();
    for job in &all {
        let stored = backend
            .get(job.id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("job {} was lost", job.id));
        *by_status.entry(stored.status).or_default() += 1;
    }
    assert_eq!(by_status[&JobStatus::Complete], 50);
    assert_eq!(by_status[&JobStatus::InProgress], 50);
    assert_eq!(by_status[&JobStatus::Submitted], 900);
    for lease in &leases[..50] {
        let result = backend.result(lease.id()).await.unwrap();
        assert_eq!(result, ready(lease.id().to_string()));
    }

    // The leases held across the crash are still the current ones, and the rest drains.
    for lease in &leases[50..] {
        backend.complete(lease, bytes("1")).await.unwrap();
    }
    let mut drained = 0;
    while let Some(lease) = backend.lease(&default(), "10.0.0.2", LEASE).await.unwrap() {
        backend.complete(&lease, bytes("2")).await.unwrap();
        drained += 1;
    }
    assert_eq!(drained, 900);
    let counts = total_counts(&backend.stats().await.unwrap());
    assert_eq!(
        (counts.submitted, counts.in_progress, counts.complete),
        (0, 0, 1000)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_redis_answers_unavailable_quickly_and_the_backend_recovers() {
    let mut server = RedisServer::start_with_aof();
    let config = server.config("down");
    let backend = RedisBackend::connect(&config, QueueSettings::default())
        .await
        .unwrap();
    let job = jobs(1).remove(0);
    backend.enqueue(&job).await.unwrap();

    server.stop();
    let other = jobs(1).remove(0);
    assert_unavailable_quickly("ping", backend.ping()).await;
    assert_unavailable_quickly("get", backend.get(job.id)).await;
    assert_unavailable_quickly("enqueue", backend.enqueue(&other)).await;
    assert_unavailable_quickly("lease", backend.lease(&default(), "w", LEASE)).await;
    assert_unavailable_quickly("stats", backend.stats()).await;
    // Idle workers wait rather than spin while Redis is down, and still come back in time.
    let started = Instant::now();
    backend
        .wait_for_work(&[default()], Duration::from_millis(300))
        .await;
    assert!(started.elapsed() >= Duration::from_millis(300));

    // A backend made while Redis is down is made all the same and fails the same way.
    let late = RedisBackend::connect(&config, QueueSettings::default())
        .await
        .unwrap();
    assert_unavailable_quickly("ping on a new backend", late.ping()).await;

    server.restart();
    wait_until_reachable(&backend).await;
    wait_until_reachable(&late).await;
    // The enqueue refused during the outage left nothing behind, so it can be made now.
    backend.enqueue(&other).await.unwrap();
    let lease = backend
        .lease(&default(), "w", LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        lease.id(),
        job.id,
        "the job enqueued before the outage comes first"
    );
    backend.complete(&lease, bytes("1")).await.unwrap();
    assert_eq!(
        late.get(other.id).await.unwrap().unwrap().status,
        JobStatus::Submitted
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_answers_unavailable_within_the_timeout() {
    let mut server = RedisServer::start();
    let config = server.config("hung");
    let backend = RedisBackend::connect(&config, QueueSettings::default())
        .await
        .unwrap();
    backend.ping().await.unwrap();

    server.freeze();
    assert_unavailable_quickly("ping while hung", backend.ping()).await;
    assert_unavailable_quickly("lease while hung", backend.lease(&default(), "w", LEASE)).await;
    let job = jobs(1).remove(0);
    assert_unavailable_quickly("enqueue while hung", backend.enqueue(&job)).await;
    assert_unavailable_quickly("get while hung", backend.get(job.id)).await;
    server.thaw();

    wait_until_reachable(&backend).await;
    // The enqueue that timed out may or may not have reached Redis: a job is stored whole or not
    // at all, so submitting it again is either stored or refused as a duplicate.
    if backend.get(job.id).await.unwrap().is_some() {
        backend.delete(job.id).await.unwrap();
    }
    backend.enqueue(&job).await.unwrap();
    assert_eq!(
        backend
            .lease(&default(), "w", LEASE)
            .await
            .unwrap()
            .unwrap()
            .id(),
        job.id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_lessees_racing_for_1000_jobs_complete_each_exactly_once() {
    let server = RedisServer::start();
    let config = server.config("race");
    let producer = RedisBackend::connect(&config, QueueSettings::default())
        .await
        .unwrap();
    let all = jobs(1000);
    producer.enqueue_all(&all).await.unwrap();

    let lessees = (0..8).map(|n| {
        let config: RedisConfig = config.clone();
        tokio::spawn(async move {
            // Each lessee has its own backend, so its own connection, as a process would.
            let backend = RedisBackend::connect(&config, QueueSettings::default())
                .await
                .unwrap();
            let worker = format!("10.0.0.{n}");
            let mut completed = Vec::new();
            let mut released = std::collections::HashSet::new();
            loop {
                // Half take one job at a time, half take batches.
                let leases = if n % 2 == 0 {
                    backend
                        .lease(&default(), &worker, LEASE)
                        .await
                        .unwrap()
                        .into_iter()
                        .collect()
                } else {
                    backend
                        .lease_many(&default(), &worker, LEASE, 7)
                        .await
                        .unwrap()
                };
                if leases.is_empty() {
                    return completed;
                }
                for (i, lease) in leases.iter().enumerate() {
                    // Now and then give a job back, so jobs are leased more than once; never the
                    // same job twice (a released job is leased first again, so a lessee that
                    // kept giving it back could take it forever once the others have left).
                    if (i + n) % 11 == 3 && released.insert(lease.id()) {
                        backend.release(lease).await.unwrap();
                        continue;
                    }
                    let done = backend
                        .complete(lease, bytes(worker.clone()))
                        .await
                        .unwrap();
                    assert_eq!(done.worker.as_deref(), Some(worker.as_str()));
                    assert!(matches!(
                        backend.complete(lease, bytes("again")).await,
                        Err(Error::LeaseLost)
                    ));
                    completed.push(lease.id());
                }
            }
        })
    });
    let mut completions: HashMap<JobId, usize> = HashMap::new();
    let mut per_lessee = Vec::new();
    for lessee in futures::future::join_all(lessees).await {
        let done = lessee.unwrap();
        per_lessee.push(done.len());
        for id in done {
            *completions.entry(id).or_default() += 1;
        }
    }
    assert_eq!(completions.len(), 1000, "every job completed");
    assert!(
        completions.values().all(|&n| n == 1),
        "a job completed twice"
    );
    assert!(
        per_lessee.iter().filter(|&&n| n > 0).count() > 1,
        "{per_lessee:?}"
    );
    let counts = total_counts(&producer.stats().await.unwrap());
    assert_eq!(
        (counts.submitted, counts.in_progress, counts.complete),
        (0, 0, 1000)
    );
    for job in &all {
        let stored = producer.get(job.id).await.unwrap().unwrap();
        let result = producer.result(job.id).await.unwrap();
        assert_eq!(result, ready(stored.worker.unwrap().to_string()));
    }
}

/// Six processes requeue expired leases at once; returns the summed report.
async fn requeue_from_six_processes(
    config: &RedisConfig,
    settings: QueueSettings,
    clock: &Arc<ManualClock>,
) -> (u64, u64) {
    let callers = (0..6).map(|_| {
        let config = config.clone();
        let clock = clock.clone();
        tokio::spawn(async move {
            let backend = RedisBackend::with_clock(&config, settings, clock)
                .await
                .unwrap();
            backend.requeue_expired().await.unwrap()
        })
    });
    let mut total = (0, 0);
    for report in futures::future::join_all(callers).await {
        let report = report.unwrap();
        total.0 += report.requeued;
        total.1 += report.failed;
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_processes_requeueing_handle_each_expired_lease_once() {
    let server = RedisServer::shared();
    let config = server.config("requeue_race");
    let clock = Arc::new(ManualClock::starting_now());
    let settings = QueueSettings::default();
    let backend = RedisBackend::with_clock(&config, settings, clock.clone())
        .await
        .unwrap();
    backend.enqueue_all(&jobs_of(600, 2)).await.unwrap();

    let first = backend
        .lease_many(&default(), "w", LEASE, 600)
        .await
        .unwrap();
    assert_eq!(first.len(), 600);
    clock.advance(LEASE + Duration::from_secs(1));
    assert_eq!(
        requeue_from_six_processes(&config, settings, &clock).await,
        (600, 0),
        "each expired lease requeued once"
    );
    assert_eq!(backend.stats().await.unwrap()[0].ready, 600);

    let second = backend
        .lease_many(&default(), "w", LEASE, 600)
        .await
        .unwrap();
    assert_eq!(second.len(), 600);
    clock.advance(LEASE + Duration::from_secs(1));
    assert_eq!(
        requeue_from_six_processes(&config, settings, &clock).await,
        (0, 600),
        "each lease expired on the last attempt failed once"
    );
    let stored = backend.get(second[0].id()).await.unwrap().unwrap();
    assert_eq!(stored.status, JobStatus::Failed);
    assert_eq!(
        stored.error.as_deref(),
        Some("lease expired on attempt 2 of 2")
    );
    assert_eq!(stored.finished_at, Some(clock.now()));
    let counts = total_counts(&backend.stats().await.unwrap());
    assert_eq!((counts.in_progress, counts.failed), (0, 600));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_whose_caller_stopped_waiting_is_given_back() {
    let mut server = RedisServer::start();
    let config = server.config("orphan");
    let backend = RedisBackend::connect(&config, QueueSettings::default())
        .await
        .unwrap();
    let job = jobs(1).remove(0);
    backend.enqueue(&job).await.unwrap();

    // The lease call goes out while Redis is frozen, and its caller gives up before Redis
    // answers (a worker shutting down drops its pending lease).
    server.freeze();
    let gave_up = tokio::time::timeout(
        Duration::from_millis(100),
        backend.lease(&default(), "w", LEASE),
    )
    .await;
    assert!(gave_up.is_err(), "{gave_up:?}");
    server.thaw();

    // Redis then leases the job to nobody; the backend gives it back at once.
    let mut redis = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let token_key = format!("{}:{{{:02x}}}:token", config.prefix, default().tag());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tokens: Option<u64> = redis::cmd("GET")
            .arg(&token_key)
            .query_async(&mut redis)
            .await
            .unwrap();
        let stored = backend.get(job.id).await.unwrap().unwrap();
        // The counter exists once the frozen lease has taken its token.
        if tokens.is_some() && stored.status == JobStatus::Submitted {
            assert_eq!(stored.attempts, 0, "the attempt is not counted");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the orphaned lease was not given back: {stored:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(backend.stats().await.unwrap()[0].counts.in_progress, 0);
    let lease = backend
        .lease(&default(), "w2", LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((lease.id(), lease.attempt()), (job.id, 1));
}
