//! The router on a real socket: `serve` answers, and a shutdown lets in-flight requests finish.

use std::sync::Arc;

use async_trait::async_trait;
use holidapp_core::{DataSet, DataStore, JobParams, Renderer, Result};
use holidapp_http::AppState;
use tokio::sync::{Notify, oneshot};

use crate::support::TestApp;

/// A renderer that tells when rendering started and finishes only when released.
struct GatedRenderer {
    started: Notify,
    release: Notify,
}

#[async_trait]
impl Renderer for GatedRenderer {
    fn validate(&self, _params: &JobParams) -> Result<()> {
        Ok(())
    }

    async fn render(&self, _data: Arc<DataSet>, _params: &JobParams) -> Result<Vec<u8>> {
        self.started.notify_one();
        self.release.notified().await;
        Ok(holidapp_worker::BLANK_PNG.to_vec())
    }
}

#[tokio::test]
async fn shutdown_lets_the_in_flight_request_finish() {
    let gate = Arc::new(GatedRenderer {
        started: Notify::new(),
        release: Notify::new(),
    });
    let renderer = Arc::clone(&gate);
    let app = TestApp::with(|state| AppState { renderer, ..state });
    app.backend
        .replace(holidapp_core::parse::bundled("hgnc").unwrap())
        .await
        .unwrap();

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
