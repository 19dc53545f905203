//! What the Redis backend promises beyond the contract suite: a layout a person can read,
//! finished jobs leaving Redis through the purge, durability warnings, passwords in the URL,
//! blocking waits that never stall other calls, and the bundled data sets stored and read back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use holidapp_core::redis_backend::{RedisBackend, RedisConfig};
use holidapp_core::testing::{RedisServer, RedisServerOptions};
use holidapp_core::{
    DataStore, Error, FailureKind, Job, JobParams, JobStore, ListQuery, ManualClock, Queue,
    QueueSettings, parse,
};

const LEASE: Duration = Duration::from_secs(30);

async fn connect(server: &RedisServer, test: &str) -> (RedisBackend, RedisConfig) {
    let config = server.config(test);
    let backend = RedisBackend::connect(&config, QueueSettings::default())
        .await
        .unwrap();
    (backend, config)
}

/// `n` plain jobs, the i-th starting at `i`.
fn numbered_jobs(n: usize) -> Vec<Job> {
    (0..n)
        .map(|i| Job::new(JobParams::new(i.to_string(), "9"), chrono::Utc::now()))
        .collect()
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
    let job = Job::new(
        JobParams::new("1990", "2000").with_option("kind", "categories"),
        chrono::Utc::now(),
    );
    backend.enqueue(&job).await.unwrap();
    let lease = backend.lease("10.244.0.12", LEASE).await.unwrap().unwrap();

    let mut redis = operator(server).await;
    let key = format!("{}:job:{}", config.prefix, job.id);
    let fields: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(fields["id"], job.id.to_string());
    assert_eq!(fields["status"], "in progress");
    assert_eq!(fields["start"], "1990");
    assert_eq!(fields["end"], "2000");
    assert_eq!(fields["plot"], r#"{"kind":"categories"}"#);
    assert_eq!(fields["worker"], "10.244.0.12");
    assert_eq!(fields["attempts"], "1");
    assert_eq!(fields["token"], lease.token.0.to_string());
    for time in ["created_at", "started_at", "lease_deadline"] {
        assert!(
            chrono::DateTime::parse_from_rfc3339(&fields[time]).is_ok(),
            "{time}: {}",
            fields[time]
        );
    }
    let running: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{}:queue:leased", config.prefix))
        .arg(0)
        .arg(-1)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(running, vec![job.id.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_leave_redis_through_the_purge() {
    let server = RedisServer::shared();
    let config = server.config("retention");
    let clock = Arc::new(ManualClock::starting_now());
    let mut settings = QueueSettings {
        result_ttl: Duration::from_secs(600),
        ..QueueSettings::default()
    };
    settings.retry.max_attempts = 1;
    let backend = RedisBackend::with_clock(&config, settings, clock.clone())
        .await
        .unwrap();
    let jobs = numbered_jobs(4);
    backend.enqueue_many(&jobs).await.unwrap();
    // One job finished each way a job can finish, and one still waiting.
    let lease = backend.lease("w", LEASE).await.unwrap().unwrap();
    backend.complete(&lease, b"png".to_vec()).await.unwrap();
    let lease = backend.lease("w", LEASE).await.unwrap().unwrap();
    backend
        .fail(&lease, "bad input", FailureKind::Permanent)
        .await
        .unwrap();
    backend.lease("w", LEASE).await.unwrap().unwrap();
    clock.advance(LEASE + Duration::from_secs(1));
    assert_eq!(backend.requeue_expired().await.unwrap().failed, 1);

    let mut redis = operator(server).await;
    let job_key = |job: &Job| format!("{}:job:{}", config.prefix, job.id);
    let result_key = format!("{}:result:{}", config.prefix, jobs[0].id);
    let mut keys: Vec<String> = jobs.iter().map(job_key).collect();
    keys.push(result_key);
    let mut pipe = redis::pipe();
    for key in &keys {
        pipe.cmd("PTTL").arg(key);
    }
    let ttls: Vec<i64> = pipe.query_async(&mut redis).await.unwrap();
    assert_eq!(ttls, vec![-1; 5], "no key carries a Redis expiry");
    let expiry = format!("{}:index:expiry", config.prefix);
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
    for index in ["index:expiry", "index:complete", "index:failed"] {
        let left: usize = redis::cmd("ZCARD")
            .arg(format!("{}:{index}", config.prefix))
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
        prefix: config.prefix.clone(),
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
        tokio::spawn(async move { backend.wait_for_work(Duration::from_secs(30)).await })
    };
    // While the waiter blocks, the shared connection keeps serving.
    for _ in 0..50 {
        backend.ping().await.unwrap();
        assert_eq!(backend.depth().await.unwrap().ready, 0);
    }
    assert!(!waiter.is_finished(), "the waiter returned with no work");
    backend
        .enqueue(&Job::new(JobParams::new("1", "2"), chrono::Utc::now()))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the enqueue woke the waiter")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_retry_ends_a_wait() {
    let server = RedisServer::shared();
    let config = server.config("wait_retry");
    let clock = Arc::new(ManualClock::starting_now());
    let backend = RedisBackend::with_clock(&config, QueueSettings::default(), clock.clone())
        .await
        .unwrap();
    backend
        .enqueue(&Job::new(JobParams::new("1", "2"), chrono::Utc::now()))
        .await
        .unwrap();
    let lease = backend.lease("w", LEASE).await.unwrap().unwrap();
    backend
        .fail(&lease, "flaky", holidapp_core::FailureKind::Transient)
        .await
        .unwrap();
    clock.advance(Duration::from_secs(120));
    // The retry is due by the backend's clock: no wake-up token is needed.
    tokio::time::timeout(
        Duration::from_secs(10),
        backend.wait_for_work(Duration::from_secs(3600)),
    )
    .await
    .expect("a due retry ends the wait at once");
    assert_eq!(
        backend.lease("w", LEASE).await.unwrap().unwrap().attempt(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bundled_data_sets_round_trip() {
    let server = RedisServer::shared();
    let (backend, _) = connect(server, "bundled").await;
    for name in ["hgnc", "meteorites"] {
        let data = parse::bundled(name).expect("bundled data set");
        assert!(!data.is_empty());
        let count = backend.replace(data.clone()).await.unwrap();
        assert_eq!(count, data.len() as u64);
        let (_, loaded) = backend.load().await.unwrap();
        assert_eq!(*loaded, data, "{name}");
        let last = data.records.last().unwrap();
        assert_eq!(backend.record(&last.id).await.unwrap().as_ref(), Some(last));
        assert_eq!(
            backend.page(1, 2).await.unwrap(),
            data.records[1..3].to_vec()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_record_ids_are_refused_and_change_nothing() {
    let server = RedisServer::shared();
    let (backend, _) = connect(server, "dup").await;
    let data = parse::bundled("meteorites").unwrap();
    backend.replace(data.clone()).await.unwrap();
    let version = backend.version().await.unwrap();
    let mut duplicated = data.clone();
    duplicated.records.push(data.records[0].clone());
    assert!(matches!(
        backend.replace(duplicated).await,
        Err(Error::InvalidData(_))
    ));
    assert_eq!(backend.version().await.unwrap(), version);
    assert_eq!(backend.len().await.unwrap(), data.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_leases_and_completions_fence_each_job_on_its_own() {
    let server = RedisServer::shared();
    let (backend, _) = connect(server, "batch").await;
    let jobs: Vec<Job> = (0..5)
        .map(|i| Job::new(JobParams::new(i.to_string(), "9"), chrono::Utc::now()))
        .collect();
    backend.enqueue_many(&jobs).await.unwrap();
    let leases = backend.lease_many("w", LEASE, 3).await.unwrap();
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
                .map(|l| (l.clone(), l.id().to_string().into_bytes()))
                .collect(),
        )
        .await
        .unwrap();
    assert!(matches!(answers[1], Err(Error::LeaseLost)));
    for i in [0, 2] {
        let done = answers[i].as_ref().unwrap();
        assert_eq!(done.status, holidapp_core::JobStatus::Complete);
        assert_eq!(backend.get(done.id).await.unwrap().as_ref(), Some(done));
        assert_eq!(
            backend.result(done.id).await.unwrap().as_deref(),
            Some(done.id.to_string().as_bytes())
        );
    }
    assert_eq!(backend.complete_many(Vec::new()).await.unwrap().len(), 0);
    assert!(backend.lease_many("w", LEASE, 0).await.unwrap().is_empty());
    // One batch takes the released job first (it was submitted earlier), then the rest.
    let rest: Vec<_> = backend
        .lease_many("w", LEASE, 10)
        .await
        .unwrap()
        .iter()
        .map(|l| l.id())
        .collect();
    assert_eq!(rest, vec![jobs[1].id, jobs[3].id, jobs[4].id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_jobs_list_by_submission_not_by_lease_order() {
    let server = RedisServer::shared();
    let config = server.config("list_running");
    let clock = Arc::new(ManualClock::starting_now());
    let backend = RedisBackend::with_clock(&config, QueueSettings::default(), clock.clone())
        .await
        .unwrap();
    let jobs = numbered_jobs(7);
    backend.enqueue_many(&jobs).await.unwrap();
    let first = backend.lease("w", LEASE).await.unwrap().unwrap();
    backend.release(&first).await.unwrap();
    // Leased in the order 1..6, then 0, each with a later deadline than the one before.
    for _ in 0..7 {
        clock.advance(Duration::from_secs(1));
        backend.lease("w", LEASE).await.unwrap().unwrap();
    }
    let ids = |jobs: Vec<Job>| jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
    let newest_first: Vec<_> = jobs.iter().rev().map(|j| j.id).collect();
    let running = ListQuery::with_status(holidapp_core::JobStatus::InProgress);
    assert_eq!(ids(backend.list(&running).await.unwrap()), newest_first);
    let page = ListQuery {
        offset: 2,
        limit: 3,
        ..running
    };
    assert_eq!(ids(backend.list(&page).await.unwrap()), newest_first[2..5]);
    let all = ListQuery {
        offset: 5,
        ..ListQuery::default()
    };
    assert_eq!(ids(backend.list(&all).await.unwrap()), newest_first[5..]);
    assert_eq!(backend.counts().await.unwrap().in_progress, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_sharing_one_backend_each_get_their_own_answer() {
    let server = RedisServer::shared();
    let (backend, _) = connect(server, "coalesced").await;
    let backend = Arc::new(backend);
    let jobs: Vec<Job> = (0..400)
        .map(|i| Job::new(JobParams::new(i.to_string(), "9"), chrono::Utc::now()))
        .collect();
    backend.enqueue_many(&jobs).await.unwrap();
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
            while let Some(lease) = backend.lease(&worker, lease_for).await.unwrap() {
                assert_eq!(lease.worker, worker);
                let expected =
                    lease.job.started_at.unwrap() + chrono::Duration::from_std(lease_for).unwrap();
                assert_eq!(lease.deadline, expected);
                let finished = backend
                    .complete(&lease, worker.clone().into_bytes())
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
        let result = backend.result(job.id).await.unwrap().unwrap();
        assert_eq!(
            stored.worker.as_deref().map(str::as_bytes),
            Some(&result[..])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enormous_offsets_give_empty_pages_not_errors() {
    let server = RedisServer::shared();
    let (backend, _) = connect(server, "offsets").await;
    backend
        .enqueue(&Job::new(JobParams::new("1", "2"), chrono::Utc::now()))
        .await
        .unwrap();
    for status in [None, Some(holidapp_core::JobStatus::Submitted)] {
        for offset in [usize::MAX, i64::MAX as usize, 1 << 53] {
            let query = ListQuery {
                status,
                offset,
                limit: usize::MAX,
            };
            assert!(backend.list(&query).await.unwrap().is_empty(), "{query:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enqueues_are_each_stored_or_refused_on_their_own() {
    let server = RedisServer::shared();
    let (backend, _) = connect(server, "enqueue_batch").await;
    let backend = Arc::new(backend);
    let earlier: Vec<Job> = (0..20)
        .map(|_| Job::new(JobParams::new("1", "2"), chrono::Utc::now()))
        .collect();
    backend.enqueue_many(&earlier).await.unwrap();
    let mut calls: Vec<Job> = (0..180)
        .map(|_| Job::new(JobParams::new("3", "4"), chrono::Utc::now()))
        .collect();
    // Every tenth call repeats an earlier job; one call is not a new job at all.
    for (i, job) in earlier.iter().enumerate() {
        calls.insert(i * 10, job.clone());
    }
    calls[5].status = holidapp_core::JobStatus::Complete;
    let answers = futures::future::join_all(calls.iter().map(|job| {
        let backend = Arc::clone(&backend);
        let job = job.clone();
        tokio::spawn(async move { backend.enqueue(&job).await })
    }))
    .await;
    let mut stored = 0;
    for (i, answer) in answers.into_iter().enumerate() {
        match answer.unwrap() {
            Ok(()) => stored += 1,
            Err(Error::Conflict(_)) => assert_eq!(i % 10, 0, "call {i} refused"),
            Err(Error::IllegalTransition { .. }) => assert_eq!(i, 5),
            Err(e) => panic!("call {i}: {e}"),
        }
    }
    assert_eq!(stored, 179);
    assert_eq!(backend.depth().await.unwrap().ready, 20 + 179);
    assert_eq!(backend.counts().await.unwrap().submitted, 20 + 179);
}
