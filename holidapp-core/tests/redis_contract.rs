//! The backend contract suite, run against the Redis backend: one `redis-server` for this test
//! binary, a key prefix of its own for every test.

use std::sync::Arc;

use holidapp_core::redis_backend::RedisBackend;
use holidapp_core::testing::RedisServer;
use holidapp_core::{ManualClock, QueueSettings};

async fn make(settings: QueueSettings, clock: Arc<ManualClock>) -> Arc<RedisBackend> {
    let config = RedisServer::shared().config("contract");
    let backend = RedisBackend::with_clock(&config, settings, clock)
        .await
        .expect("connect to the test redis-server");
    Arc::new(backend)
}

holidapp_core::backend_contract_suite!(make);
