//! [`AppState`]: everything a handler needs, handed to [`router`](crate::router) by the caller.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use holidapp_core::Jobs;
use holidapp_core::plot::Plots;

use crate::auth::Auth;
use crate::metrics::Metrics;

/// What the router serves from. The caller builds it (the `holidapp-api` binary from its
/// configuration, tests and embedding programs from a
/// [`MemoryBackend`](holidapp_core::MemoryBackend) or mocks); the library reads no environment
/// variable.
#[derive(Clone)]
pub struct AppState {
    /// The job use cases: submit (checked by the registered kinds), read, list, results, delete,
    /// counts.
    pub jobs: Jobs,
    /// The course's plot product, when this API serves it: the data set, image and
    /// course routes (`/data`, `/genes`, `/image`). Without it, those routes do not exist.
    pub plots: Option<Plots>,
    /// The file `GET /` appends a line to and `GET /visits` returns; no visits are recorded
    /// without one.
    pub visits_log: Option<PathBuf>,
    /// Counters shown by `GET /metrics`; shared so the caller can read them too.
    pub metrics: Arc<Metrics>,
    /// Body sizes, page sizes and the request timeout.
    pub limits: Limits,
    /// The tokens requests need (none by default: every route open).
    pub auth: Auth,
    /// Cancelled by the caller when the server begins to shut down: open event streams
    /// (`GET /events`) end then, rather than hold the graceful shutdown until its grace period
    /// runs out. A fresh token (never cancelled) unless [`with_shutdown`](Self::with_shutdown)
    /// gives one.
    pub shutdown: holidapp_core::CancellationToken,
}

impl AppState {
    /// A state serving `jobs`, without the plot product and without a visits log, with the
    /// default limits.
    pub fn new(jobs: Jobs) -> Self {
        AppState {
            jobs,
            plots: None,
            visits_log: None,
            metrics: Arc::new(Metrics::new()),
            limits: Limits::default(),
            auth: Auth::open(),
            shutdown: holidapp_core::CancellationToken::new(),
        }
    }

    /// The same state serving the plot product's routes over `plots`.
    pub fn with_plots(mut self, plots: Plots) -> Self {
        self.plots = Some(plots);
        self
    }

    /// The same state keeping its visits log at `path`.
    pub fn with_visits_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.visits_log = Some(path.into());
        self
    }

    /// The same state counting into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The same state asking for the tokens of `auth`.
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// The same state ending open event streams when `shutdown` is cancelled: cancel it when
    /// the shutdown future given to [`serve`](crate::serve) completes.
    pub fn with_shutdown(mut self, shutdown: holidapp_core::CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// The same state with other limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("jobs", &self.jobs)
            .field("plots", &self.plots)
            .field("visits_log", &self.visits_log)
            .field("limits", &self.limits)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// Bounds on what one request may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest body of `POST /jobs` (default 1 MiB: a batch of up to 1,000 jobs).
    pub jobs_body: usize,
    /// Largest body of `POST /data` (default 32 MiB, the default of `HOLIDAPP_DATA_MAX_BYTES`:
    /// a whole data set).
    pub data_body: usize,
    /// Largest body of every other route (default 64 KiB).
    pub other_body: usize,
    /// How long one request may take before it is answered with a 503 (default 30 s).
    pub request_timeout: Duration,
    /// Records per page of `GET /data` when `limit` is not given (default 1,000).
    pub data_page_default: u64,
    /// The largest `limit` `GET /data` accepts (default 10,000).
    pub data_page_max: u64,
    /// The most event streams (`GET /events`) open at once; past it, `503 too_many_streams`
    /// (default 256). On Redis each open stream waits on a connection of its own.
    pub event_streams: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            jobs_body: 1024 * 1024,
            data_body: 32 * 1024 * 1024,
            other_body: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            data_page_default: 1_000,
            data_page_max: 10_000,
            event_streams: 256,
        }
    }
}
