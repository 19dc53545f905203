//! The plot product's store contract, run against the in-memory stores and the Redis stores
//! (one `redis-server` for this test binary, a key prefix of its own for every test), the image
//! in the same database and in another one (`REDIS_IMAGE_DB`).

use std::sync::Arc;

use holidapp_core::QueueSettings;
use holidapp_core::plot::Plots;
use holidapp_core::plot::redis::{RedisDataStore, RedisImageStore};
use holidapp_core::redis_backend::{RedisBackend, RedisConn};
use holidapp_core::testing::RedisServer;

mod memory {
    async fn make() -> holidapp_core::plot::Plots {
        holidapp_core::plot::Plots::in_memory()
    }

    holidapp_core::plot_store_contract_suite!(make);
}

/// Redis stores on the backend's own connection, or the image on database `image_db`; and
/// their key prefix.
async fn on_redis(image_db: Option<u32>) -> (Plots, String) {
    let config = RedisServer::shared().config("plots");
    let backend = RedisBackend::connect(&config, QueueSettings::default())
        .await
        .expect("connect to the test redis-server");
    let image_conn: RedisConn = match image_db {
        Some(db) => config.open_database(db).expect("a usable URL"),
        None => backend.conn().clone(),
    };
    let plots = Plots::new(
        Arc::new(RedisDataStore::new(backend.conn().clone(), &config.prefix)),
        Arc::new(RedisImageStore::new(image_conn, &config.prefix)),
    );
    (plots, config.prefix)
}

mod on_redis {
    async fn make() -> holidapp_core::plot::Plots {
        super::on_redis(None).await.0
    }

    holidapp_core::plot_store_contract_suite!(make);
}

mod redis_image_db {
    async fn make() -> holidapp_core::plot::Plots {
        super::on_redis(Some(1)).await.0
    }

    holidapp_core::plot_store_contract_suite!(make);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_db_keeps_the_image_apart_from_the_data() {
    let server = RedisServer::shared();
    let (plots, prefix) = on_redis(Some(1)).await;
    plots
        .images()
        .put_image(bytes::Bytes::from_static(b"png"))
        .await
        .unwrap();
    let mut db1 = redis::Client::open(format!("{}1", server.url()))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut db0 = redis::Client::open(format!("{}0", server.url()))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = format!("{prefix}:image");
    let exists = |db: &mut redis::aio::MultiplexedConnection| {
        let mut db = db.clone();
        let key = key.clone();
        async move {
            redis::cmd("EXISTS")
                .arg(&key)
                .query_async::<u32>(&mut db)
                .await
                .unwrap()
        }
    };
    assert_eq!(exists(&mut db1).await, 1, "the image is in database 1");
    assert_eq!(exists(&mut db0).await, 0, "and not in database 0");
}
