//! Failures a real backend cannot be made to produce on demand: every route with the backend
//! down, internal errors, panics and timeouts. The core traits are mocked with mockall.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::http::{Method, StatusCode};
use bytes::Bytes;
use holidapp_core::plot::{DataSet, DataStore, ImageStore, Plots, Record};
use holidapp_core::{
    Backends, Enqueued, Error, Job, JobId, JobStore, ListQuery, MemoryBackend, Page, Producer,
    QueueSettings, QueueStats, Result, ResultState,
};
use holidapp_http::{AppState, Limits};

use crate::support::{TestApp, get, plot_jobs, post_json, request};

mockall::mock! {
    pub Store {}
    #[async_trait]
    impl JobStore for Store {
        async fn get(&self, id: JobId) -> Result<Option<Job>>;
        async fn list(&self, query: &ListQuery) -> Result<Page>;
        async fn result(&self, id: JobId) -> Result<Option<ResultState>>;
        async fn delete(&self, id: JobId) -> Result<bool>;
        async fn cancel(&self, id: JobId) -> Result<Option<Job>>;
        async fn retry(&self, id: JobId) -> Result<Option<Job>>;
        async fn stats(&self) -> Result<Vec<QueueStats>>;
        async fn ping(&self) -> Result<()>;
    }
}

mockall::mock! {
    pub Jobproducer {}
    #[async_trait]
    impl Producer for Jobproducer {
        async fn enqueue(&self, job: &Job) -> Result<Enqueued>;
    }
}

mockall::mock! {
    pub Data {}
    #[async_trait]
    impl DataStore for Data {
        async fn replace(&self, data: DataSet) -> Result<u64>;
        async fn version(&self) -> Result<u64>;
        async fn len(&self) -> Result<u64>;
        async fn page(&self, start: u64, limit: u64) -> Result<Vec<Record>>;
        async fn record(&self, id: &str) -> Result<Option<Record>>;
        async fn ids(&self) -> Result<Vec<String>>;
        async fn load(&self) -> Result<(u64, Arc<DataSet>)>;
        async fn clear(&self) -> Result<bool>;
    }
}

mockall::mock! {
    pub Images {}
    #[async_trait]
    impl ImageStore for Images {
        async fn put_image(&self, png: Bytes) -> Result<()>;
        async fn get_image(&self) -> Result<Option<Bytes>>;
        async fn delete_image(&self) -> Result<bool>;
    }
}

/// What a backend outage looks like, with internals a client must never see.
fn outage() -> Error {
    Error::Unavailable("connection refused by 10.1.2.3:6379".into())
}

/// An app whose job store, producer, data store and image store fail every call with `error()`
/// (the API leases nothing, so the rest of the backend is a real one that is never called).
fn failing_app(error: fn() -> Error) -> TestApp {
    let mut store = MockStore::new();
    store.expect_get().returning(move |_| Err(error()));
    store.expect_list().returning(move |_| Err(error()));
    store.expect_delete().returning(move |_| Err(error()));
    store.expect_result().returning(move |_| Err(error()));
    store.expect_stats().returning(move || Err(error()));
    store.expect_ping().returning(move || Err(error()));
    let mut producer = MockJobproducer::new();
    producer.expect_enqueue().returning(move |_| Err(error()));
    let mut data = MockData::new();
    data.expect_replace().returning(move |_| Err(error()));
    data.expect_version().returning(move || Err(error()));
    data.expect_len().returning(move || Err(error()));
    data.expect_page().returning(move |_, _| Err(error()));
    data.expect_record().returning(move |_| Err(error()));
    data.expect_ids().returning(move || Err(error()));
    data.expect_load().returning(move || Err(error()));
    data.expect_clear().returning(move || Err(error()));
    let mut images = MockImages::new();
    images.expect_put_image().returning(move |_| Err(error()));
    images.expect_get_image().returning(move || Err(error()));
    images.expect_delete_image().returning(move || Err(error()));
    let untouched = Backends::single(Arc::new(MemoryBackend::new(QueueSettings::default())));
    let backends = Backends {
        store: Arc::new(store),
        producer: Arc::new(producer),
        ..untouched
    };
    let plots = Plots::new(Arc::new(data), Arc::new(images));
    TestApp::with(|state| AppState {
        jobs: plot_jobs(&backends, &plots),
        plots: Some(plots),
        ..state
    })
}

/// Every route that reaches the backend, with a request that gets that far.
fn backend_routes() -> Vec<(Method, String, Option<&'static str>)> {
    let id = uuid::Uuid::new_v4();
    let job = r#"{"start": 1990, "end": 2000}"#;
    let tsv = "hgnc_id\tsymbol\nHGNC:5\tA1BG\n";
    vec![
        (Method::POST, "/jobs".into(), Some(job)),
        (Method::GET, "/jobs".into(), None),
        (Method::GET, format!("/jobs/{id}"), None),
        (Method::DELETE, format!("/jobs/{id}"), None),
        (Method::GET, format!("/jobs/{id}/result"), None),
        (Method::GET, format!("/jobs_status?job_id={id}"), None),
        (Method::GET, format!("/job_status?job_id={id}"), None),
        (Method::GET, "/completed_jobs".into(), None),
        (Method::GET, "/incomplete_jobs".into(), None),
        (Method::GET, "/inprogress_jobs".into(), None),
        (Method::GET, format!("/results/{id}"), None),
        (Method::GET, format!("/download/{id}"), None),
        (Method::POST, "/data".into(), Some(tsv)),
        (Method::POST, "/data".into(), None),
        (Method::GET, "/data".into(), None),
        (Method::DELETE, "/data".into(), None),
        (Method::GET, "/data/HGNC:5".into(), None),
        (Method::GET, "/genes".into(), None),
        (Method::GET, "/genes/HGNC:5".into(), None),
        (Method::POST, "/image".into(), None),
        (Method::GET, "/image".into(), None),
        (Method::DELETE, "/image".into(), None),
        (Method::GET, "/readyz".into(), None),
    ]
}

fn send_route(
    method: &Method,
    uri: &str,
    body: Option<&'static str>,
) -> axum::http::Request<axum::body::Body> {
    match body {
        Some(body) if body.starts_with('{') => post_json(uri, body),
        Some(body) => request(method.clone(), uri, Some("text/tab-separated-values"), body),
        None => request(method.clone(), uri, None, ""),
    }
}

#[tokio::test]
async fn every_route_answers_503_json_when_the_backend_is_down() {
    let app = failing_app(outage);
    for (method, uri, body) in backend_routes() {
        let answer = app.send(send_route(&method, &uri, body)).await;
        let message = answer.assert_error(503, "backend_unavailable");
        assert!(!message.contains("10.1.2.3"), "{method} {uri}: {message}");
    }
    assert_eq!(app.state.metrics.jobs_submitted(), 0);
    // Routes that do not need the backend still answer.
    assert_eq!(app.send(get("/healthz")).await.status, StatusCode::OK);
    assert_eq!(app.send(get("/help")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn internal_errors_are_500_without_internal_text() {
    let app =
        failing_app(|| Error::Internal("unexpected reply from HGETALL holidapp:job:secret".into()));
    for (method, uri, body) in backend_routes() {
        let answer = app.send(send_route(&method, &uri, body)).await;
        let message = answer.assert_error(500, "internal");
        assert!(!message.contains("secret"), "{method} {uri}: {message}");
        assert!(!message.contains("HGETALL"), "{method} {uri}: {message}");
    }
}

#[tokio::test]
async fn metrics_still_answer_when_the_backend_is_down() {
    let app = failing_app(outage);
    app.send(get("/jobs")).await;
    let answer = app.send(get("/metrics")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let text = answer.text();
    assert!(text.lines().any(|l| l == "holidapp_backend_up 0"), "{text}");
    assert!(!text.contains("holidapp_jobs{"), "{text}");
    assert!(
        text.contains(
            "holidapp_http_requests_total{route=\"/jobs\",method=\"GET\",status=\"503\"} 1"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn a_panicking_handler_is_a_generic_500_and_the_app_goes_on() {
    let mut store = MockStore::new();
    store
        .expect_get()
        .returning(|_| panic!("secret invariant broken"));
    store.expect_ping().returning(|| Ok(()));
    store.expect_stats().returning(|| Ok(Vec::new()));
    let memory = Arc::new(MemoryBackend::new(QueueSettings::default()));
    let backends = Backends {
        store: Arc::new(store),
        ..Backends::single(memory)
    };
    let app = TestApp::with(|state| AppState {
        jobs: plot_jobs(&backends, state.plots.as_ref().expect("the plot product")),
        ..state
    });
    let answer = app
        .send(get(&format!("/jobs/{}", uuid::Uuid::new_v4())))
        .await;
    let message = answer.assert_error(500, "internal");
    assert!(!message.contains("secret"), "{message}");
    assert!(!answer.headers["x-request-id"].is_empty());
    assert_eq!(app.send(get("/readyz")).await.status, StatusCode::OK);
    let metrics = app.send(get("/metrics")).await.text();
    assert!(
        metrics.contains(
            "holidapp_http_requests_total{route=\"/jobs/{id}\",method=\"GET\",status=\"500\"} 1"
        ),
        "{metrics}"
    );
}

/// A data store that never answers, as a hung backend.
struct HangingData;

#[async_trait]
impl DataStore for HangingData {
    async fn replace(&self, _data: DataSet) -> Result<u64> {
        std::future::pending().await
    }
    async fn version(&self) -> Result<u64> {
        std::future::pending().await
    }
    async fn len(&self) -> Result<u64> {
        std::future::pending().await
    }
    async fn page(&self, _start: u64, _limit: u64) -> Result<Vec<Record>> {
        std::future::pending().await
    }
    async fn record(&self, _id: &str) -> Result<Option<Record>> {
        std::future::pending().await
    }
    async fn ids(&self) -> Result<Vec<String>> {
        std::future::pending().await
    }
    async fn load(&self) -> Result<(u64, Arc<DataSet>)> {
        std::future::pending().await
    }
    async fn clear(&self) -> Result<bool> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_past_the_timeout_gets_a_503_timeout() {
    let app = TestApp::with(|state| {
        let plots = Plots::new(Arc::new(HangingData), Arc::new(MockImages::new()));
        AppState {
            plots: Some(plots),
            ..state
        }
        .with_limits(Limits {
            request_timeout: Duration::from_secs(5),
            ..Limits::default()
        })
    });
    let answer = app.send(request(Method::POST, "/image", None, "")).await;
    let message = answer.assert_error(503, "timeout");
    assert!(message.contains("5s"), "{message}");
    assert_eq!(app.send(get("/healthz")).await.status, StatusCode::OK);
}
