//! What the Redis backend promises beyond the contract suite: a layout a person can read, with
//! one hash tag per queue, finished jobs leaving Redis through the purge, durability warnings,
//! passwords in the URL, blocking waits that never stall other calls, and batches and
//! concurrent calls that keep every job apart.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use holidapp_core::contract::job_in;
use holidapp_core::redis_backend::{RedisBackend, RedisConfig};
use holidapp_core::testing::{RedisServer, RedisServerOptions};
use holidapp_core::{
    Consumer, Cursor, Enqueued, Error, FailureKind, Job, JobStatus, JobStore, ListQuery,
    Maintenance, ManualClock, Output, Producer, QueueName, QueueSettings, ResultState, Statuses,
};

const LEASE: Duration = Duration::from_secs(30);

async fn connect(server: &RedisServer, test: &str) -> (RedisBackend, RedisConfig) {
    let config = server.config(test);
    let backend = RedisBackend::connect(&config, QueueSettings::default())
        .await
        .unwrap();
    (backend, config)
}

/// A backend on `server` for `test`, on a manual clock that starts now.
async fn on_a_manual_clock(
    server: &RedisServer,
    test: &str,
) -> (RedisBackend, RedisConfig, Arc<ManualClock>) {
    let config = server.config(test);
    let clock = Arc::new(ManualClock::starting_now());
    let backend = RedisBackend::with_clock(&config, QueueSettings::default(), clock.clone())
        .await
        .unwrap();
    (backend, config, clock)
}

/// `n` jobs in the `default` queue, the i-th with parameters `{"n": i}`.
fn numbered_jobs(n: usize) -> Vec<Job> {
    let clock = ManualClock::starting_now();
    (0..n)
        .map(|i| {
            job_in(
                &clock,
                &QueueName::default_queue(),
                &format!(r#"{{"n":{i}}}"#),
            )
        })
        .collect()
}

fn default() -> QueueName {
    QueueName::default_queue()
}

fn bytes(data: impl Into<bytes::Bytes>) -> Output {
    Output::new("application/octet-stream", data)
}

/// A plain connection for looking at keys the way an operator would with `redis-cli`.
async fn operator(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_a_hash_a_person_can_read() {
    let server = RedisServer::shared();
    let (backend, config) = connect(server, "layout").await;
    let thumbnails = QueueName::new("thumbnails").unwrap();
    let job = job_in(
        &ManualClock::starting_now(),
        &thumbnails,
        r#"{"url":"https://example.org/a.png","width":64}"#,
    );
    backend.enqueue(&job).await.unwrap();
    let lease = backend
        .lease(&thumbnails, "10.244.0.12", LEASE)
        .await
        .unwrap()
        .unwrap();

    let mut redis = operator(server).await;
    // The id names the hash tag: its first two hex digits.
    let tag = &job.id.to_string()[..2];
    assert_eq!(*tag, format!("{:02x}", thumbnails.tag()));
    let key = format!("{}:{{{tag}}}:job:{}", config.prefix, job.id);
    let fields: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(!fields.contains_key("id"), "the key names the id");
    assert_eq!(fields["kind"], "contract");
    assert_eq!(fields["queue"], "thumbnails");
    assert_eq!(fields["status"], "in progress");
    assert_eq!(
        fields["params"],
        r#"{"url":"https://example.org/a.png","width":64}"#
    );
    assert_eq!(fields["worker"], "10.244.0.12");
    assert_eq!(fields["attempts"], "1");
    assert_eq!(fields["max_attempts"], "3");
    assert_eq!(fields["token"], lease.token.0.to_string());
    assert!(
        !fields.contains_key("lease_deadline"),
        "the deadline is the leased set's score"
    );
    for time in ["created_at", "started_at"] {
        assert!(
            chrono::DateTime::parse_from_rfc3339(&fields[time]).is_ok(),
            "{time}: {}",
            fields[time]
        );
    }
    let running: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{}:{{{tag}}}:q:thumbnails:leased", config.prefix))
        .arg(0)
        .arg(-1)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(running, vec![job.id.to_string()]);
    let deadline: i64 = redis::cmd("ZSCORE")
        .arg(format!("{}:{{{tag}}}:q:thumbnails:leased", config.prefix))
        .arg(job.id.to_string())
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(deadline, lease.deadline.timestamp_millis());
    let queues: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{}:queues", config.prefix))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(queues, vec!["thumbnails".to_owned()]);
    // Every key the backend wrote for this queue carries its tag (one Redis Cluster slot), but
    // the queue registry, which no script touches.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", config.prefix))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(keys.len() >= 5, "{keys:?}");
    for key in keys {
        assert!(
            key.contains(&format!("{{{tag}}}")) || key.ends_with(":queues"),
            "{key}"
        );
    }
}

/// The fencing token counter never runs behind the clock: a counter that lost its last steps, as
/// on a replica promoted before it received them, hands out no token a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_counter_that_lost_its_last_steps_gives_no_token_twice() {
    let server = RedisServer::shared();
    let (backend, config, clock) = on_a_manual_clock(server, "token-floor").await;
    let jobs = numbered_jobs(2);
    backend.enqueue_all(&jobs).await.unwrap();
    let first = backend
        .lease(&default(), "w", LEASE)
        .await
        .unwrap()
        .unwrap();
    let tag = &jobs[0].id.to_string()[..2];
    let mut redis = operator(server).await;
    redis::cmd("DEL")
        .arg(format!("{}:{{{tag}}}:token", config.prefix))
        .query_async::<()>(&mut redis)
        .await
        .unwrap();
    // A failover takes at least a node timeout.
    clock.advance(Duration::from_secs(1));
    let second = backend
        .lease(&default(), "w", LEASE)
        .await
        .unwrap()
        .unwrap();
    assert!(
        second.token.0 > first.token.0,
        "token {} after the counter's loss, {} before it",
        second.token.0,
        first.token.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_leave_redis_through_the_purge() {
    let server = RedisServer::shared();
    let config = server.config("retention");
    let clock = Arc::new(ManualClock::starting_now());
    let settings = QueueSettings {
        result_ttl: Duration::from_secs(600),
        ..QueueSettings::default()
    };
    let backend = RedisBackend::with_clock(&config, settings, clock.clone())
        .await
        .unwrap();
    let mut jobs = numbered_jobs(4);
    for job in &mut jobs {
        job.max_attempts = 1;
    }
    backend.enqueue_all(&jobs).await.unwrap();
    // One job finished each way a job can finish, and one still waiting.
    let lease = backend
        .lease(&default(), "w", LEASE)
        .await
        .unwrap()
        .unwrap();
    backend.complete(&lease, bytes("png")).await.unwrap();
    let lease = backend
        .lease(&default(), "w", LEASE)
        .await
        .unwrap()
        .unwrap();
    backend
        .fail(&lease, "bad input", FailureKind::Permanent)
        .await
        .unwrap();
    backend
        .lease(&default(), "w", LEASE)
        .await
        .unwrap()
        .unwrap();
    clock.advance(LEASE + Duration::from_secs(1));
    assert_eq!(backend.requeue_expired().await.unwrap().failed, 1);

    let mut redis = operator(server).await;
    let tag = format!("{{{:02x}}}", default().tag());
    let job_key = |job: &Job| format!("{}:{tag}:job:{}", config.prefix, job.id);
    let result_key = format!("{}:{tag}:result:{}", config.prefix, jobs[0].id);
    let mut keys: Vec<String> = jobs.iter().map(job_key).collect();
    keys.push(result_key);
    let mut pipe = redis::pipe();
    for key in &keys {
        pipe.cmd("PTTL").arg(key);
    }
    let ttls: Vec<i64> = pipe.query_async(&mut redis).await.unwrap();
    assert_eq!(ttls, vec![-1; 5], "no key carries a Redis expiry");
    let expiry = format!("{}:{tag}:q:default:expiry", config.prefix);
    let filed: usize = redis::cmd("ZCARD")
        .arg(&expiry)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(filed, 3, "each finished job is filed for the purge");

    clock.advance(Duration::from_secs(600));
    assert_eq!(backend.purge_expired().await.unwrap(), 3);
    let existing: usize = redis::cmd("EXISTS")
        .arg(&keys)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(existing, 1, "only the waiting job's hash is left");
    for index in ["expiry", "complete", "failed"] {
        let left: usize = redis::cmd("ZCARD")
            .arg(format!("{}:{tag}:q:default:{index}", config.prefix))
            .query_async(&mut redis)
            .await
            .unwrap();
        assert_eq!(left, 0, "{index} keeps no purged id");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durability_warnings_name_what_can_lose_jobs() {
    let plain = RedisServer::start();
    let (backend, _) = connect(&plain, "durability").await;
    let warnings = backend.check_durability().await.unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("nothing on disk"), "{warnings:?}");

    let mut redis = operator(&plain).await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("allkeys-lru")
        .query_async(&mut redis)
        .await
        .unwrap();
    let warnings = backend.check_durability().await.unwrap();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("allkeys-lru"), "{warnings:?}");

    let persistent = RedisServer::start_with_aof();
    let (backend, _) = connect(&persistent, "durability").await;
    assert_eq!(
        backend.check_durability().await.unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_the_url_is_used_and_a_wrong_one_refused() {
    let server = RedisServer::start_with(RedisServerOptions {
        password: Some("s3cret pass".to_owned()),
        ..RedisServerOptions::default()
    });
    let (backend, config) = connect(&server, "auth").await;
    backend.ping().await.unwrap();
    assert!(server.url().contains("s3cret"));
    assert!(!format!("{config:?}").contains("s3cret"));

    let wrong = RedisConfig {
        url: format!("redis://:nope@127.0.0.1:{}/", server.port()),
        ..config.clone()
    };
    let refused = RedisBackend::connect(&wrong, QueueSettings::default())
        .await
        .unwrap();
    let err = refused.ping().await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_wait_does_not_stall_other_calls() {
    let server = RedisServer::shared();
    let (backend, _) = connect(server, "wait").await;
    let backend = Arc::new(backend);
    let waiter = {
        let backend = Arc::clone(&backend);
        tokio::spawn(async move {
            backend
                .wait_for_work(&[default()], Duration::from_secs(30))
                .await
        })
    };
    // Blocked: Redis counts a client waiting in BLPOP.
    let mut redis = operator(server).await;
    loop {
        let info: String = redis::cmd("INFO")
            .arg("clients")
            .query_async(&mut redis)
            .await
            .unwrap();
        if !info.contains("blocked_clients:0") {
            break;
        }
        tokio::task::yield_now().await;
    }
    // While the waiter blocks, the shared connection keeps serving.
    for _ in 0..50 {
        backend.ping().await.unwrap();
        assert!(backend.stats().await.unwrap().iter().all(|q| q.ready == 0));
    }
    assert!(!waiter.is_finished(), "the waiter returned with no work");
    backend.enqueue(&numbered_jobs(1)[0]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the enqueue woke the waiter")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_retry_ends_a_wait() {
    let server = RedisServer::shared();
    let (backend, _, clock) = on_a_manual_clock(server, "wait_retry").await;
    backend.enqueue(&numbered_jobs(1)[0]).await.unwrap();
    let lease = backend
        .lease(&default(), "w", LEASE)
        .await
        .unwrap()
        .unwrap();
    backend
        .fail(&lease, "flaky", FailureKind::Transient)
        .await
        .unwrap();
    clock.advance(Duration::from_secs(120));
    // The retry is due by the backend's clock: no wake-up token is needed.
    tokio::time::timeout(
        Duration::from_secs(10),
        backend.wait_for_work(&[default()], Duration::from_secs(3600)),
    )
    .await
    .expect("a due retry ends the wait at once");
    assert_eq!(
        backend
            .lease(&default(), "w", LEASE)
            .await
            .unwrap()
            .unwrap()
            .attempt(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_leases_and_completions_fence_each_job_on_its_own() {
    let server = RedisServer::shared();
    let (backend, _) = connect(server, "batch").await;
    let jobs = numbered_jobs(5);
    backend.enqueue_all(&jobs).await.unwrap();
    let leases = backend.lease_many(&default(), "w", LEASE, 3).await.unwrap();
    let leased: Vec<_> = leases.iter().map(|l| l.id()).collect();
    assert_eq!(leased, jobs[..3].iter().map(|j| j.id).collect::<Vec<_>>());
    let tokens: std::collections::HashSet<_> = leases.iter().map(|l| l.token).collect();
    assert_eq!(tokens.len(), 3, "each lease has its own token");
    assert!(leases.iter().all(|l| l.attempt() == 1 && l.worker == "w"));

    backend.release(&leases[1]).await.unwrap();
    let answers = backend
        .complete_many(
            leases
                .iter()
                .map(|l| (l.clone(), bytes(l.id().to_string())))
                .collect(),
        )
        .await
        .unwrap();
    assert!(matches!(answers[1], Err(Error::LeaseLost)));
    for i in [0, 2] {
        let done = answers[i].as_ref().unwrap();
        assert_eq!(done.status, JobStatus::Complete);
        assert_eq!(backend.get(done.id).await.unwrap().as_ref(), Some(done));
        assert_eq!(
            backend.result(done.id).await.unwrap(),
            Some(ResultState::Ready(bytes(done.id.to_string())))
        );
    }
    assert_eq!(backend.complete_many(Vec::new()).await.unwrap().len(), 0);
    assert!(
        backend
            .lease_many(&default(), "w", LEASE, 0)
            .await
            .unwrap()
            .is_empty()
    );
    // One batch takes the released job first (it was submitted earlier), then the rest.
    let rest: Vec<_> = backend
        .lease_many(&default(), "w", LEASE, 10)
        .await
        .unwrap()
        .iter()
        .map(|l| l.id())
        .collect();
    assert_eq!(rest, vec![jobs[1].id, jobs[3].id, jobs[4].id]);
}

/// A lease given twice in one batch of completions (two tasks finishing the same job at once)
/// completes the job once, with the first result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_twice_in_one_batch_completes_once() {
    let server = RedisServer::shared();
    let (backend, _) = connect(server, "twice-in-a-batch").await;
    let jobs = numbered_jobs(1);
    backend.enqueue_all(&jobs).await.unwrap();
    let lease = backend
        .lease(&default(), "w", LEASE)
        .await
        .unwrap()
        .unwrap();
    let answers = backend
        .complete_many(vec![
            (lease.clone(), bytes("first")),
            (lease.clone(), bytes("second")),
        ])
        .await
        .unwrap();
    assert_eq!(answers[0].as_ref().unwrap().status, JobStatus::Complete);
    assert!(matches!(answers[1], Err(Error::LeaseLost)), "{answers:?}");
    assert_eq!(
        backend.result(lease.id()).await.unwrap(),
        Some(ResultState::Ready(bytes("first")))
    );
    let stats = backend.stats().await.unwrap();
    assert_eq!(
        (stats[0].counts.complete, stats[0].completed_total),
        (1, 1),
        "{stats:?}"
    );
}

/// A large result travels to Redis as a plain write to a staging key of its lease, which the
/// completion renames into place: the stored result outlives the staging key's time limit, a
/// lease given twice in one batch completes with its first result, and no staging key is left
/// behind, by a completion or by a lease lost meanwhile. Small results are stored the same way
/// as seen from outside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_results_are_renamed_into_place_and_kept_without_a_time_limit() {
    let server = RedisServer::shared();
    let (backend, config) = connect(server, "staging").await;
    let mut redis = operator(server).await;
    let jobs = numbered_jobs(3);
    backend.enqueue_all(&jobs).await.unwrap();
    let large = backend
        .lease(&default(), "w", LEASE)
        .await
        .unwrap()
        .unwrap();
    let lost = backend
        .lease(&default(), "w", LEASE)
        .await
        .unwrap()
        .unwrap();
    let small = backend
        .lease(&default(), "w", LEASE)
        .await
        .unwrap()
        .unwrap();
    backend.release(&lost).await.unwrap();
    let first = bytes(vec![b'1'; 64 * 1024]);
    let answers = backend
        .complete_many(vec![
            (large.clone(), first.clone()),
            (large.clone(), bytes(vec![b'2'; 64 * 1024])),
            (lost.clone(), bytes(vec![b'3'; 64 * 1024])),
            (small.clone(), bytes("small")),
        ])
        .await
        .unwrap();
    assert_eq!(answers[0].as_ref().unwrap().status, JobStatus::Complete);
    assert!(matches!(answers[1], Err(Error::LeaseLost)), "{answers:?}");
    assert!(matches!(answers[2], Err(Error::LeaseLost)), "{answers:?}");
    assert_eq!(answers[3].as_ref().unwrap().status, JobStatus::Complete);
    assert_eq!(
        backend.result(large.id()).await.unwrap(),
        Some(ResultState::Ready(first))
    );
    assert_eq!(
        backend.result(small.id()).await.unwrap(),
        Some(ResultState::Ready(bytes("small")))
    );
    let mut results: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*:result:*", config.prefix))
        .query_async(&mut redis)
        .await
        .unwrap();
    results.sort();
    let mut expected = vec![large.id().to_string(), small.id().to_string()];
    expected.sort();
    let ids: Vec<&str> = results
        .iter()
        .map(|key| key.rsplit(':').next().unwrap())
        .collect();
    assert_eq!(ids, expected, "{results:?}");
    for key in &results {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut redis)
            .await
            .unwrap();
        assert_eq!(ttl, -1, "{key}: a stored result has no time limit");
    }
    let counters: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*:q:default:counters", config.prefix))
        .query_async(&mut redis)
        .await
        .unwrap();
    let result_bytes: u64 = redis::cmd("HGET")
        .arg(&counters[0])
        .arg("result_bytes")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(result_bytes, 64 * 1024 + 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_jobs_list_by_submission_not_by_lease_order() {
    let server = RedisServer::shared();
    let (backend, _, clock) = on_a_manual_clock(server, "list_running").await;
    let jobs = numbered_jobs(7);
    backend.enqueue_all(&jobs).await.unwrap();
    let first = backend
        .lease(&default(), "w", LEASE)
        .await
        .unwrap()
        .unwrap();
    backend.release(&first).await.unwrap();
    // Leased in the order 0, then 1..6 (the released job goes first), each with a later
    // deadline than the one before.
    for _ in 0..7 {
        clock.advance(Duration::from_secs(1));
        backend
            .lease(&default(), "w", LEASE)
            .await
            .unwrap()
            .unwrap();
    }
    let ids = |page: holidapp_core::Page| page.jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
    let newest_first: Vec<_> = jobs.iter().rev().map(|j| j.id).collect();
    let running = ListQuery::with_status(JobStatus::InProgress);
    assert_eq!(ids(backend.list(&running).await.unwrap()), newest_first);
    let page = ListQuery {
        offset: 2,
        limit: 3,
        ..running.clone()
    };
    assert_eq!(ids(backend.list(&page).await.unwrap()), newest_first[2..5]);
    let all = ListQuery {
        offset: 5,
        ..ListQuery::default()
    };
    assert_eq!(ids(backend.list(&all).await.unwrap()), newest_first[5..]);
    let stats = backend.stats().await.unwrap();
    assert_eq!(stats[0].counts.in_progress, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_sharing_one_backend_each_get_their_own_answer() {
    let server = RedisServer::shared();
    let (backend, _) = connect(server, "coalesced").await;
    let backend = Arc::new(backend);
    let jobs = numbered_jobs(400);
    backend.enqueue_all(&jobs).await.unwrap();
    // Sixteen tasks of one process, half of them naming one worker and half their own, with
    // two lease lengths: calls made at the same moment travel together but keep their own
    // worker, deadline and token.
    let tasks = (0..16).map(|n| {
        let backend = Arc::clone(&backend);
        tokio::spawn(async move {
            let worker = if n % 2 == 0 {
                "shared".to_owned()
            } else {
                format!("own-{n}")
            };
            let lease_for = LEASE * (1 + n % 3);
            let mut done = Vec::new();
            while let Some(lease) = backend.lease(&default(), &worker, lease_for).await.unwrap() {
                assert_eq!(lease.worker, worker);
                let expected =
                    lease.job.started_at.unwrap() + chrono::Duration::from_std(lease_for).unwrap();
                assert_eq!(lease.deadline, expected);
                let finished = backend
                    .complete(&lease, bytes(worker.clone()))
                    .await
                    .unwrap();
                assert_eq!(finished.worker.as_deref(), Some(worker.as_str()));
                done.push((lease.id(), lease.token));
            }
            done
        })
    });
    let mut tokens = std::collections::HashSet::new();
    let mut ids = std::collections::HashSet::new();
    for task in futures::future::join_all(tasks).await {
        for (id, token) in task.unwrap() {
            assert!(ids.insert(id), "job {id} leased twice");
            assert!(tokens.insert(token), "token reused");
        }
    }
    assert_eq!(ids.len(), 400);
    for job in &jobs {
        let stored = backend.get(job.id).await.unwrap().unwrap();
        let result = backend.result(job.id).await.unwrap();
        assert_eq!(
            result,
            Some(ResultState::Ready(bytes(
                stored.worker.unwrap().to_string()
            )))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enormous_offsets_and_cursors_give_empty_pages_not_errors() {
    let server = RedisServer::shared();
    let (backend, _) = connect(server, "offsets").await;
    backend.enqueue(&numbered_jobs(1)[0]).await.unwrap();
    for statuses in [Statuses::ALL, Statuses::only(JobStatus::Submitted)] {
        for offset in [usize::MAX, i64::MAX as usize, 1 << 53] {
            let query = ListQuery {
                statuses,
                offset,
                limit: usize::MAX,
                ..ListQuery::default()
            };
            assert!(
                backend.list(&query).await.unwrap().jobs.is_empty(),
                "{query:?}"
            );
        }
        for before in [0, 1, 255, 256] {
            let query = ListQuery {
                statuses,
                before: Some(Cursor(before)),
                ..ListQuery::default()
            };
            let page = backend.list(&query).await.unwrap();
            assert!(page.jobs.is_empty() && page.next.is_none(), "{query:?}");
        }
    }
    let far = ListQuery {
        before: Some(Cursor(u64::MAX)),
        ..ListQuery::default()
    };
    assert_eq!(backend.list(&far).await.unwrap().jobs.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enqueues_are_each_stored_or_refused_on_their_own() {
    let server = RedisServer::shared();
    let (backend, _) = connect(server, "enqueue_batch").await;
    let backend = Arc::new(backend);
    let earlier = numbered_jobs(20);
    backend.enqueue_all(&earlier).await.unwrap();
    // Calls to two queues at once: each batch splits them by queue.
    let clock = ManualClock::starting_now();
    let queues = [QueueName::new("other").unwrap(), default()];
    let mut calls: Vec<Job> = (0..180)
        .map(|i| job_in(&clock, &queues[usize::from(i % 3 != 0)], "{}"))
        .collect();
    // Every tenth call repeats an earlier job; one call is not a new job at all.
    for (i, job) in earlier.iter().enumerate() {
        calls.insert(i * 10, job.clone());
    }
    calls[5].status = JobStatus::Complete;
    let answers = futures::future::join_all(calls.iter().map(|job| {
        let backend = Arc::clone(&backend);
        let job = job.clone();
        tokio::spawn(async move { backend.enqueue(&job).await })
    }))
    .await;
    let mut stored = 0;
    for (i, answer) in answers.into_iter().enumerate() {
        match answer.unwrap() {
            Ok(Enqueued::Stored) => stored += 1,
            Err(Error::Conflict(_)) => assert_eq!(i % 10, 0, "call {i} refused"),
            Err(Error::IllegalTransition { .. }) => assert_eq!(i, 5),
            other => panic!("call {i}: {other:?}"),
        }
    }
    assert_eq!(stored, 179);
    let stats = backend.stats().await.unwrap();
    let total: u64 = stats.iter().map(|q| q.ready).sum();
    assert_eq!(total, 20 + 179);
    assert_eq!(stats.len(), 2, "{stats:?}");
    assert_eq!(
        holidapp_core::store::total_counts(&stats).submitted,
        20 + 179
    );
}

/// A Redis at its `maxmemory` (with `noeviction`) refuses writes with `OOM`, and a Redis busy
/// running a long script answers `BUSY`: both are outages (`Unavailable`: a 503, retried), not
/// internal errors, and nothing is half-written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_and_busy_redis_are_outages() {
    let server = RedisServer::start();
    let (backend, _) = connect(&server, "oom-busy").await;
    let mut redis = operator(&server).await;
    let clock = ManualClock::starting_now();
    let stored = job_in(&clock, &default(), "{}");
    backend.enqueue(&stored).await.unwrap();

    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1")
        .query_async(&mut redis)
        .await
        .unwrap();
    let refused = job_in(&clock, &default(), "{}");
    match backend.enqueue(&refused).await {
        Err(Error::Unavailable(message)) => assert!(message.contains("OOM"), "{message}"),
        other => panic!("expected an outage, got {other:?}"),
    }
    assert!(
        backend.get(stored.id).await.unwrap().is_some(),
        "reads go on"
    );
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("0")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(
        backend.get(refused.id).await.unwrap(),
        None,
        "nothing half-written"
    );
    backend.enqueue(&refused).await.unwrap();

    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("busy-reply-threshold")
        .arg("10")
        .query_async(&mut redis)
        .await
        .unwrap();
    let mut spinning = operator(&server).await;
    let spin = tokio::spawn(async move {
        redis::cmd("EVAL")
            .arg("while true do end")
            .arg(0)
            .query_async::<redis::Value>(&mut spinning)
            .await
    });
    // The script runs until killed; other clients get BUSY once it has run 10 ms.
    let busy = loop {
        match backend.get(stored.id).await {
            Err(Error::Unavailable(message)) if message.contains("BUSY") => break message,
            Err(Error::Unavailable(_)) | Ok(_) => tokio::task::yield_now().await,
            Err(other) => panic!("expected an outage, got {other:?}"),
        }
    };
    assert!(busy.contains("BUSY"), "{busy}");
    let () = redis::cmd("SCRIPT")
        .arg("KILL")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(spin.await.unwrap().is_err(), "the script was killed");
    assert!(backend.get(stored.id).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_replica_acks_a_write_no_replica_acknowledges_is_not_answered() {
    let server = RedisServer::start();
    let (plain, _) = connect(&server, "no-replica").await;
    let backend = plain
        .clone()
        .with_replica_acks(1, Duration::from_millis(50));
    let [job] = &numbered_jobs(1)[..] else {
        unreachable!()
    };
    let refused = backend.enqueue(job).await;
    assert!(
        matches!(&refused, Err(Error::Unavailable(m)) if m.contains("0 of 1 replicas")),
        "{refused:?}"
    );
    // It reached the primary all the same: a worker can run it; its completion is not answered
    // either.
    let lease = plain.lease(&default(), "w", LEASE).await.unwrap().unwrap();
    assert_eq!(lease.id(), job.id);
    let completed = backend.complete(&lease, bytes("x")).await;
    assert!(
        matches!(&completed, Err(Error::Unavailable(_))),
        "{completed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_replica_acks_a_failover_loses_nothing_that_was_answered() {
    let mut primary = RedisServer::start();
    let replica = RedisServer::start_with(RedisServerOptions {
        replica_of: Some(primary.port()),
        ..RedisServerOptions::default()
    });
    primary.wait_for_replicas(1).await;
    let (backend, config) = connect(&primary, "failover").await;
    let backend = backend.with_replica_acks(1, Duration::from_secs(5));
    let jobs = numbered_jobs(300);
    // Submitted one by one and in a batch, then half of them completed: each answered.
    for job in &jobs[..100] {
        assert_eq!(backend.enqueue(job).await.unwrap(), Enqueued::Stored);
    }
    for answer in backend.enqueue_many(&jobs[100..]).await.unwrap() {
        assert_eq!(answer.unwrap(), Enqueued::Stored);
    }
    let leases = backend
        .lease_many(&default(), "w", LEASE, 150)
        .await
        .unwrap();
    assert_eq!(leases.len(), 150);
    for lease in &leases {
        backend.complete(lease, bytes("done")).await.unwrap();
    }
    // The primary dies at once; the replica takes over.
    primary.kill();
    let mut promoted = operator(&replica).await;
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut promoted)
        .await
        .unwrap();
    let after = RedisBackend::connect(
        &RedisConfig {
            url: replica.url(),
            ..config
        },
        QueueSettings::default(),
    )
    .await
    .unwrap();
    for (i, job) in jobs.iter().enumerate() {
        let stored = after
            .get(job.id)
            .await
            .unwrap()
            .expect("an answered submit");
        let expected = if i < 150 {
            JobStatus::Complete
        } else {
            JobStatus::Submitted
        };
        assert_eq!(stored.status, expected, "job {i}");
    }
    let result = after.result(jobs[0].id).await.unwrap();
    assert!(
        matches!(&result, Some(ResultState::Ready(o)) if o.bytes().as_ref() == b"done"),
        "{result:?}"
    );
}
