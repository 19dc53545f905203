//! # The Holidapp API inside an app of your own
//!
//! This example is an [axum] app with routes of its own (`GET /` and `GET /hello`) that also
//! offers the Holidapp job API, mounted under `/api` with [`Router::nest`]. Everything runs in one
//! process: the jobs live in the in-memory backend, and a worker pool started beside the server
//! ([`EmbeddedWorker`]) runs them. The API serves one kind of this app's own, `reverse`
//! ([`Reverse`]), and nothing of the plot product: `/api/data`, `/api/image` and the like do not
//! exist here.
//!
//! Run it with:
//!
//! ```sh
//! cargo run -p example-embed-router            # listens on 127.0.0.1:3000 (PORT to change it)
//! ```
//!
//! and, in another terminal:
//!
//! ```sh
//! curl -s localhost:3000/hello?name=Ada
//! curl -s -X POST localhost:3000/api/jobs -H 'content-type: application/json' \
//!      -d '{"kind": "reverse", "params": {"text": "stressed"}}'
//! # -> {"id":"…","kind":"reverse","status":"submitted",…,"result":"/api/jobs/…/result"}
//! curl -s localhost:3000/api/jobs/<id>/result   # -> desserts
//! ```
//!
//! The API knows where it is mounted: the `Location` header and the `result` link it answers
//! start with `/api`.
//!
//! `src/main.rs` binds the port and waits for Ctrl-C; [`services`], [`app`] and
//! [`EmbeddedWorker`] are here so that the tests in `tests/` drive the very same app.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::routing::get;
use holidapp_core::{
    Backends, Context, Error, Jobs, Kinds, MemoryBackend, Processor, QueueSettings, Renderer,
    Result, async_trait,
};
use holidapp_http::AppState;
use holidapp_worker::{ConfigError, Report, Worker, WorkerConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The parameters of a `reverse` job: `{"text": "stressed"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReverseParams {
    /// The text to reverse.
    pub text: String,
}

/// The longest text a `reverse` job takes, in characters.
pub const MAX_TEXT: usize = 1000;

/// The `reverse` kind: answers its text backwards, as `text/plain`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reverse;

#[async_trait]
impl Renderer for Reverse {
    const KIND: &'static str = "reverse";
    type Params = ReverseParams;
    // A `String` result is stored as `text/plain; charset=utf-8`, and
    // `GET /api/jobs/{id}/result` answers it with that content type.
    type Output = String;

    fn validate(&self, params: &ReverseParams) -> Result<()> {
        let length = params.text.chars().count();
        if length == 0 || length > MAX_TEXT {
            return Err(Error::InvalidParams(format!(
                "`text` must have 1 to {MAX_TEXT} characters, not {length}"
            )));
        }
        Ok(())
    }

    async fn render(&self, params: ReverseParams, _ctx: &Context) -> Result<String> {
        Ok(params.text.chars().rev().collect())
    }
}

/// How long the embedded worker holds a job before it could be taken over.
pub const LEASE: Duration = Duration::from_secs(30);

/// What the app runs on: the job use cases the API serves, and the worker that runs the jobs.
/// Both share one in-memory backend.
#[derive(Debug)]
pub struct Services {
    /// Submit, read, list, delete jobs: what the API calls.
    pub jobs: Jobs,
    /// Runs the jobs; start it with [`EmbeddedWorker::spawn`].
    pub worker: Worker,
}

/// Builds the in-memory backend, the kinds this app serves, the job use cases and a worker.
pub fn services() -> Services {
    let backends = Backends::single(Arc::new(MemoryBackend::new(QueueSettings::default())));
    // The kinds this app registers are the only ones the API accepts: a job of any other kind
    // is refused with 400 `unknown_kind`.
    let kinds = Kinds::new().with(Reverse);
    let jobs = Jobs::new(&backends, kinds.clone());
    let processor = Processor::new(backends.consumer.clone(), kinds, LEASE);
    let worker = Worker::new(
        Arc::new(processor),
        backends.maintenance.clone(),
        // The identity is written on every job the worker takes; two jobs at a time.
        WorkerConfig::new("embedded", 2),
    );
    Services { jobs, worker }
}

/// The whole app: its own routes, and the Holidapp API under `/api`.
pub fn app(jobs: Jobs) -> Router {
    // `AppState::new` serves the job routes only; the plot product's routes (`/data`, `/image`,
    // `/genes`) would need `with_plots`, so they do not exist here, and neither does a visits
    // log (`with_visits_log`).
    let state = AppState::new(jobs);
    Router::new()
        .route("/", get(home))
        .route("/hello", get(hello))
        .nest("/api", holidapp_http::router(state))
}

/// `GET /`: this app's own home page.
async fn home() -> &'static str {
    "An app of its own, with the Holidapp job API under /api.\n\
     Try GET /hello?name=you, or POST /api/jobs with \
     {\"kind\": \"reverse\", \"params\": {\"text\": \"stressed\"}}.\n"
}

/// The query of `GET /hello`.
#[derive(Debug, Deserialize)]
struct HelloQuery {
    name: Option<String>,
}

/// `GET /hello?name=...`: another route of the app's own, beside the API.
async fn hello(Query(query): Query<HelloQuery>) -> String {
    format!("Hello, {}!", query.name.as_deref().unwrap_or("world"))
}

/// A worker pool running in a background task of this process, and the means to stop it.
#[derive(Debug)]
pub struct EmbeddedWorker {
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::result::Result<Report, ConfigError>>,
}

impl EmbeddedWorker {
    /// Starts `worker` in a task of its own: it runs jobs until [`stop`](EmbeddedWorker::stop).
    pub fn spawn(worker: Worker) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        // `run` takes the future that ends it: here, the stop message (or its sender being
        // dropped, so a forgotten worker stops too).
        let task = tokio::spawn(holidapp_worker::run(worker, async {
            let _ = stopped.await;
        }));
        EmbeddedWorker { stop, task }
    }

    /// Stops the worker: it takes no new job, lets the running ones finish (or hands them back
    /// to the queue after its grace period), and answers what it did.
    pub async fn stop(self) -> anyhow::Result<Report> {
        let _ = self.stop.send(());
        Ok(self.task.await??)
    }
}
