//! The backend contract suite, run against the Redis backend on a real Redis Cluster: three
//! masters and three replicas started for this test binary, a key prefix of its own for every
//! test. Every script touches one slot, and every read or wait that spans queues is split by
//! slot, so the whole suite passes there as it does on one Redis.

use std::sync::Arc;

use holidapp_core::redis_backend::RedisBackend;
use holidapp_core::testing::RedisCluster;
use holidapp_core::{ManualClock, QueueSettings};

async fn make(settings: QueueSettings, clock: Arc<ManualClock>) -> Arc<RedisBackend> {
    let config = RedisCluster::shared().config("cluster-contract");
    let backend = RedisBackend::with_clock(&config, settings, clock)
        .await
        .expect("connect to the test cluster");
    Arc::new(backend)
}

holidapp_core::backend_contract_suite!(make);
