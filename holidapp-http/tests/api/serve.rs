//! The router on a real socket: `serve` answers, and a shutdown lets in-flight requests finish.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use holidapp_core::Result;
use holidapp_core::plot::parse::bundled;
use holidapp_core::plot::{DataSet, DataStore, MemoryPlotStore, Plots, Record};
use holidapp_http::AppState;
use tokio::sync::{Notify, oneshot};

use crate::support::TestApp;

/// A data store that tells when a render first asks for the data set's version, and answers
/// only when released.
struct GatedData {
    inner: MemoryPlotStore,
    gated: AtomicBool,
    started: Notify,
    release: Notify,
}

#[async_trait]
impl DataStore for GatedData {
    async fn replace(&self, data: DataSet) -> Result<u64> {
        self.inner.replace(data).await
    }
    async fn version(&self) -> Result<u64> {
        if !self.gated.swap(true, Ordering::SeqCst) {
            self.started.notify_one();
            self.release.notified().await;
        }
        self.inner.version().await
    }
    async fn len(&self) -> Result<u64> {
        self.inner.len().await
    }
    async fn page(&self, start: u64, limit: u64) -> Result<Vec<Record>> {
        self.inner.page(start, limit).await
    }
    async fn record(&self, id: &str) -> Result<Option<Record>> {
        self.inner.record(id).await
    }
    async fn ids(&self) -> Result<Vec<String>> {
        self.inner.ids().await
    }
    async fn load(&self) -> Result<(u64, Arc<DataSet>)> {
        self.inner.load().await
    }
    async fn clear(&self) -> Result<bool> {
        self.inner.clear().await
    }
}

#[tokio::test]
async fn shutdown_lets_the_in_flight_request_finish() {
    let gate = Arc::new(GatedData {
        inner: MemoryPlotStore::new(),
        gated: AtomicBool::new(false),
        started: Notify::new(),
        release: Notify::new(),
    });
    gate.replace(bundled("hgnc").unwrap()).await.unwrap();
    let data = Arc::clone(&gate);
    let app = TestApp::with(|state| AppState {
        plots: Some(Plots::new(data, Arc::new(MemoryPlotStore::new()))),
        ..state
    });

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(holidapp_http::serve(
        listener,
        app.router.clone(),
        async move {
            let _ = stopped.await;
        },
    ));

    let client = reqwest::Client::new();
    let health = client
        .get(format!("http://{address}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));

    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { client.post(format!("http://{address}/image")).send().await }
    });
    gate.started.notified().await;
    stop.send(()).unwrap();
    // The server stops accepting while the request is still being rendered...
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while tokio::net::TcpStream::connect(address).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "still accepting after shutdown"
        );
        tokio::task::yield_now().await;
    }
    // ...and the request in flight still gets its answer.
    gate.release.notify_one();
    let answer = in_flight.await.unwrap().unwrap();
    assert_eq!(answer.status(), 201);
    server.await.unwrap().unwrap();
}
