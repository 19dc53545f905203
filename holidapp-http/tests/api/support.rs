//! An app on the in-memory backend, and helpers to send it requests in process.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use bytes::Bytes;
use holidapp_core::plot::{PlotParams, Plots};
use holidapp_core::{
    Backends, Consumer, Job, Jobs, Kinds, Lease, MemoryBackend, Params, Producer, QueueName,
    QueueSettings,
};
use holidapp_http::{AppState, Limits};
use http_body_util::BodyExt;
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt;

/// A router over a fresh in-memory backend serving the plot product, its kind the default.
pub(crate) struct TestApp {
    pub(crate) router: Router,
    pub(crate) backend: Arc<MemoryBackend>,
    pub(crate) plots: Plots,
    pub(crate) state: AppState,
    pub(crate) dir: TempDir,
}

/// The job use cases over `backends` with the plot kind of `plots` as the default kind, as the
/// binary wires them.
pub(crate) fn plot_jobs(backends: &Backends, plots: &Plots) -> Jobs {
    Jobs::new(backends, Kinds::new().with(plots.renderer())).with_default_kind("plot")
}

impl TestApp {
    pub(crate) fn new() -> Self {
        Self::with(|state| state)
    }

    /// An app whose state is adjusted by `adjust` before the router is built.
    pub(crate) fn with(adjust: impl FnOnce(AppState) -> AppState) -> Self {
        Self::with_settings(QueueSettings::default(), adjust)
    }

    /// An app on a backend with `settings`, its state adjusted by `adjust`.
    pub(crate) fn with_settings(
        settings: QueueSettings,
        adjust: impl FnOnce(AppState) -> AppState,
    ) -> Self {
        let backend = Arc::new(MemoryBackend::new(settings));
        let plots = Plots::in_memory();
        let dir = tempfile::tempdir().expect("temporary directory");
        let state = AppState::new(plot_jobs(&Backends::single(backend.clone()), &plots))
            .with_plots(plots.clone())
            .with_visits_log(dir.path().join("visits.log"));
        let state = adjust(state);
        TestApp {
            router: holidapp_http::router(state.clone()),
            backend,
            plots,
            state,
            dir,
        }
    }

    pub(crate) async fn send(&self, request: Request<Body>) -> Answer {
        send(&self.router, request).await
    }

    /// Submits a job with these parameters through the API and returns its id.
    pub(crate) async fn submit(&self, start: &str, end: &str) -> String {
        let body = serde_json::json!({"start": start, "end": end}).to_string();
        let answer = self.send(post_json("/jobs", body)).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
        answer.json()["id"].as_str().expect("id").to_owned()
    }

    /// Leases the oldest ready job, as a worker would.
    pub(crate) async fn lease(&self) -> Lease {
        self.backend
            .lease(
                &QueueName::default_queue(),
                "10.0.0.7",
                Duration::from_secs(30),
            )
            .await
            .expect("lease")
            .expect("a ready job")
    }

    /// Loads the bundled HGNC sample through the API.
    pub(crate) async fn load_sample(&self) {
        let answer = self.send(request(Method::POST, "/data", None, "")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
}

/// Limits small enough to test the body limits cheaply.
pub(crate) fn small_limits() -> Limits {
    Limits {
        data_body: 64 * 1024,
        ..Limits::default()
    }
}

/// A plot job stored straight into the backend (not through the API).
pub(crate) async fn enqueue(backend: &MemoryBackend, start: &str) -> Job {
    let params = Params::encode(&PlotParams::new(start, "2000")).expect("parameters");
    let job = Job::new(
        "plot",
        QueueName::default_queue(),
        params,
        3,
        chrono::Utc::now(),
    );
    backend.enqueue(&job).await.expect("enqueue");
    job
}

/// What the app answered.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Answer {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub(crate) fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts the answer is the JSON error with this status and code, and returns its message.
    pub(crate) fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status.as_u16(), status, "{}", self.text());
        assert_eq!(self.content_type(), "application/json", "{}", self.text());
        let body = self.json();
        let error = body["error"].as_object().expect("an error object");
        assert_eq!(error.len(), 3, "status, code and message only: {body}");
        assert_eq!(error["status"], status, "{body}");
        assert_eq!(error["code"], code, "{body}");
        let message = error["message"].as_str().expect("a message");
        assert!(!message.is_empty());
        message.to_owned()
    }
}

pub(crate) async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("a readable body").to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub(crate) fn request(
    method: Method,
    uri: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(content_type) = content_type {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    builder.body(body.into()).expect("a valid request")
}

pub(crate) fn get(uri: &str) -> Request<Body> {
    request(Method::GET, uri, None, Body::empty())
}

pub(crate) fn delete(uri: &str) -> Request<Body> {
    request(Method::DELETE, uri, None, Body::empty())
}

pub(crate) fn post_json(uri: &str, body: impl Into<Body>) -> Request<Body> {
    request(Method::POST, uri, Some("application/json"), body)
}

/// A `POST` of a text body (`text/tab-separated-values`), as a data set in any format is sent.
pub(crate) fn post_text(uri: &str, body: impl Into<Body>) -> Request<Body> {
    request(Method::POST, uri, Some("text/tab-separated-values"), body)
}
