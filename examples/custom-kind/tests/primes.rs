//! The `primes` kind end to end: submitted, run and read back, on the in-memory backend and on a
//! real Redis.

use holidapp_core::store::total_counts;
use holidapp_core::testing::RedisServer;
use holidapp_core::{Error, Jobs, Kinds, Outcome, Processor, StatusCounts, Submit};
use serde_json::json;

use example_custom_kind::{LEASE, PrimeCount, Primes, PrimesParams, backends, demo, queue};

/// What the demo's three jobs must answer.
fn expected() -> Vec<PrimeCount> {
    vec![
        PrimeCount {
            below: 10,
            count: 4,
            largest: Some(7),
        },
        PrimeCount {
            below: 100,
            count: 25,
            largest: Some(97),
        },
        PrimeCount {
            below: 1_000_000,
            count: 78_498,
            largest: Some(999_983),
        },
    ]
}

#[tokio::test]
async fn the_demo_counts_primes_in_memory_and_refuses_the_job_asking_too_much() {
    let backends = backends(None).await.unwrap();
    let demo = demo(&backends).await.unwrap();

    assert_eq!(demo.counted, expected());
    match &demo.refused {
        Error::InvalidParams(message) => assert!(message.contains("at most"), "{message}"),
        other => panic!("expected InvalidParams, got {other:?}"),
    }
    // Only the three accepted jobs were stored, and all three are complete.
    let counts = total_counts(&backends.store.stats().await.unwrap());
    assert_eq!(
        counts,
        StatusCounts {
            complete: 3,
            ..StatusCounts::default()
        }
    );
}

#[tokio::test]
async fn parameters_the_kind_refuses_are_refused_at_submit_and_nothing_is_queued() {
    let backends = backends(None).await.unwrap();
    let jobs = Jobs::new(&backends, Kinds::new().with(Primes)).with_default_queue(queue());

    // Refused by `validate`.
    let too_large = jobs
        .submit_as::<Primes>(&PrimesParams { below: 10_000_001 })
        .await;
    assert!(
        matches!(too_large, Err(Error::InvalidParams(_))),
        "{too_large:?}"
    );
    // Refused by serde before `validate` runs: a negative bound, a field the kind does not have,
    // a missing field.
    for params in [
        json!({"below": -5}),
        json!({"below": 100, "above": 50}),
        json!({}),
    ] {
        let refused = jobs.submit(Submit::new("primes", params.clone())).await;
        assert!(
            matches!(refused, Err(Error::ParamsShape(_))),
            "{params}: {refused:?}"
        );
    }

    // Nothing was stored, so a worker finds nothing to do.
    assert_eq!(
        total_counts(&backends.store.stats().await.unwrap()),
        StatusCounts::default()
    );
    let processor = Processor::new(backends.consumer.clone(), Kinds::new().with(Primes), LEASE)
        .with_queues([queue()]);
    assert_eq!(processor.process_one("test").await.unwrap(), Outcome::Idle);
}

#[tokio::test]
async fn the_demo_counts_primes_on_redis() {
    // A real redis-server for this test binary, and a key prefix of this test's own.
    let config = RedisServer::shared().config("custom_kind_demo");
    let backends = backends(Some(&config)).await.unwrap();
    let demo = demo(&backends).await.unwrap();

    assert_eq!(demo.counted, expected());
    assert!(matches!(demo.refused, Error::InvalidParams(_)));
    let counts = total_counts(&backends.store.stats().await.unwrap());
    assert_eq!(
        (counts.complete, counts.submitted, counts.failed),
        (3, 0, 0)
    );
}
