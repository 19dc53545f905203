//! Partitioned queues, on one Redis and on a real Redis Cluster (three masters, three
//! replicas): a split queue's jobs spread over its partitions (and, on a cluster, over the
//! masters), a worker that knows nothing of the split serves every partition fairly and takes
//! each job once, and reads by id, listings, counts, events and waits cover every partition.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use holidapp_core::contract::job_in;
use holidapp_core::events::{EventCursor, EventLog};
use holidapp_core::redis_backend::{RedisBackend, RedisConfig};
use holidapp_core::testing::{RedisCluster, RedisServer};
use holidapp_core::{
    Consumer, Job, JobId, JobStatus, JobStore, ListQuery, ManualClock, Output, Producer, QueueName,
    QueueSettings,
};

const LEASE: Duration = Duration::from_secs(30);
const PARTITIONS: u16 = 6;

fn queue() -> QueueName {
    QueueName::new("thumbs").unwrap()
}

async fn backend(config: &RedisConfig) -> RedisBackend {
    RedisBackend::connect(config, QueueSettings::default())
        .await
        .unwrap()
}

/// `n` new jobs of the split queue, with ids from `producer`, as the `Jobs` use cases make them.
fn jobs(producer: &RedisBackend, n: usize) -> Vec<Job> {
    let clock = ManualClock::starting_now();
    (0..n)
        .map(|i| {
            let mut job = job_in(&clock, &queue(), &format!(r#"{{"n":{i}}}"#));
            job.id = producer.new_id(&queue());
            job
        })
        .collect()
}

/// Every partition gets its share; a worker without the setting leases each job once, asking
/// every partition in turn; listings, counts and reads by id see every partition.
async fn a_split_queue_spreads_and_is_served_whole(config: RedisConfig) {
    let producer = backend(&config)
        .await
        .with_partitions([(queue(), PARTITIONS)]);
    let submitted = jobs(&producer, 600);
    for answer in producer.enqueue_many(&submitted).await.unwrap() {
        answer.unwrap();
    }
    let mut per_tag: BTreeMap<u8, usize> = BTreeMap::new();
    for job in &submitted {
        *per_tag.entry(job.id.tag()).or_default() += 1;
    }
    assert_eq!(per_tag.len(), usize::from(PARTITIONS), "{per_tag:?}");
    assert!(per_tag.values().all(|&n| n == 100), "{per_tag:?}");
    assert!(
        per_tag.contains_key(&queue().tag()),
        "the base partition is one of them"
    );

    // A worker knows only the queue's name.
    let worker = backend(&config).await;
    // Fairness: six leases of one job each take one job from each partition.
    let mut first_round = HashSet::new();
    let mut leased = Vec::new();
    for _ in 0..PARTITIONS {
        let lease = worker.lease_many(&queue(), "w", LEASE, 1).await.unwrap();
        assert_eq!(lease.len(), 1);
        first_round.insert(lease[0].id().tag());
        leased.extend(lease);
    }
    assert_eq!(
        first_round.len(),
        usize::from(PARTITIONS),
        "each partition comes first in turn: {first_round:?}"
    );
    loop {
        let batch = worker.lease_many(&queue(), "w", LEASE, 64).await.unwrap();
        if batch.is_empty() {
            break;
        }
        leased.extend(batch);
    }
    let ids: HashSet<JobId> = leased.iter().map(|l| l.id()).collect();
    assert_eq!(leased.len(), 600, "each job leased once");
    assert_eq!(ids, submitted.iter().map(|j| j.id).collect());
    let done = leased
        .into_iter()
        .map(|lease| (lease, Output::new("text/plain", "ok")))
        .collect();
    for finished in worker.complete_many(done).await.unwrap() {
        assert_eq!(finished.unwrap().status, JobStatus::Complete);
    }

    // Counts: one entry for the queue, summed over its partitions.
    let stats = worker.stats().await.unwrap();
    let ours: Vec<_> = stats.iter().filter(|s| s.queue == queue()).collect();
    assert_eq!(ours.len(), 1, "{stats:?}");
    assert_eq!(ours[0].counts.complete, 600);
    assert_eq!(ours[0].completed_total, 600);

    // Listing pages through every job once, from every partition.
    let mut listed = HashSet::new();
    let mut query = ListQuery {
        queue: Some(queue()),
        limit: 100,
        ..ListQuery::default()
    };
    loop {
        let page = worker.list(&query).await.unwrap();
        for job in &page.jobs {
            assert!(listed.insert(job.id), "{} listed twice", job.id);
        }
        match page.next {
            Some(next) => query.before = Some(next),
            None => break,
        }
    }
    assert_eq!(listed, ids);

    // A job is read, cancelled or deleted by its id alone, whatever its partition.
    let other = submitted
        .iter()
        .find(|j| j.id.tag() != queue().tag())
        .unwrap();
    assert_eq!(
        worker.get(other.id).await.unwrap().unwrap().status,
        JobStatus::Complete
    );
    assert!(worker.delete(other.id).await.unwrap());
    assert!(worker.get(other.id).await.unwrap().is_none());

    // Events: every partition's stream is read.
    let mut cursor = EventCursor::start();
    let mut completed = HashSet::new();
    loop {
        let events = worker.read(&cursor, 1000).await.unwrap();
        if events.is_empty() {
            break;
        }
        for event in &events {
            cursor.pass(event);
            if event.status == JobStatus::Complete {
                completed.insert(event.job);
            }
        }
    }
    assert_eq!(completed, ids);
}

/// A worker waiting on the queue wakes for a job submitted to any of its partitions.
async fn a_waiting_worker_wakes_for_any_partition(config: RedisConfig) {
    let producer = Arc::new(
        backend(&config)
            .await
            .with_partitions([(queue(), PARTITIONS)]),
    );
    // One job in every partition, taken at once, so the registry names all of them.
    let first = jobs(&producer, usize::from(PARTITIONS));
    producer.enqueue_all(&first).await.unwrap();
    let worker = Arc::new(backend(&config).await);
    let taken = worker.lease_many(&queue(), "w", LEASE, 100).await.unwrap();
    assert_eq!(taken.len(), usize::from(PARTITIONS));
    // The next job goes to a partition other than the base one.
    let next = loop {
        let job = jobs(&producer, 1).pop().unwrap();
        if job.id.tag() != queue().tag() {
            break job;
        }
    };
    let waiting = {
        let worker = Arc::clone(&worker);
        tokio::spawn(async move {
            worker
                .wait_for_work(&[queue()], Duration::from_secs(3600))
                .await
        })
    };
    producer.enqueue(&next).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the wait ends when the job arrives")
        .unwrap();
    let lease = worker.lease_many(&queue(), "w", LEASE, 10).await.unwrap();
    assert_eq!(lease.iter().map(|l| l.id()).collect::<Vec<_>>(), [next.id]);
}

macro_rules! on_both {
    ($($test:ident),* $(,)?) => {
        mod single {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(holidapp_core::testing::RedisServer::shared().config(stringify!($test))).await;
                }
            )*
        }
        mod cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(holidapp_core::testing::RedisCluster::shared().config(stringify!($test))).await;
                }
            )*
        }
    };
}

on_both!(
    a_split_queue_spreads_and_is_served_whole,
    a_waiting_worker_wakes_for_any_partition,
);

/// On a cluster of three masters, a queue of six partitions puts two on each master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_partitions_land_two_on_each_of_three_masters() {
    let cluster = RedisCluster::shared();
    let producer = backend(&cluster.config("spread"))
        .await
        .with_partitions([(queue(), PARTITIONS)]);
    let tags: HashSet<u8> = jobs(&producer, 60).iter().map(|j| j.id.tag()).collect();
    assert_eq!(tags.len(), usize::from(PARTITIONS));
    let mut node = redis::Client::open(cluster.urls()[0].as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    // Slot ranges and the port of the master serving each: `[start, end, [host, port, id, ..],
    // replicas..]`.
    let reply: Vec<Vec<redis::Value>> =
        redis::cmd("CLUSTER").arg("SLOTS").query(&mut node).unwrap();
    let int = |v: &redis::Value| match v {
        redis::Value::Int(n) => *n,
        other => panic!("CLUSTER SLOTS answered {other:?} for a number"),
    };
    let ranges: Vec<(i64, i64, i64)> = reply
        .iter()
        .map(|range| {
            let redis::Value::Array(master) = &range[2] else {
                panic!("CLUSTER SLOTS answered {range:?}");
            };
            (int(&range[0]), int(&range[1]), int(&master[1]))
        })
        .collect();
    let mut per_master: BTreeMap<i64, usize> = BTreeMap::new();
    for tag in tags {
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(format!("{{{tag:02x}}}"))
            .query(&mut node)
            .unwrap();
        let &(_, _, port) = ranges
            .iter()
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
            .expect("every slot is served");
        *per_master.entry(port).or_default() += 1;
    }
    assert_eq!(per_master.len(), 3, "{per_master:?}");
    assert!(per_master.values().all(|&n| n == 2), "{per_master:?}");
    // Keep the single server's helper in use for the single-Redis variants above.
    let _ = RedisServer::shared;
}
