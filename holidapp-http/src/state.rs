//! [`AppState`]: everything a handler needs, handed to [`router`](crate::router) by the caller.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use holidapp_core::{Backends, Clock, JobParams, Renderer, SystemClock};

use crate::metrics::Metrics;

/// What the router serves from. The caller builds it (the `holidapp-api` binary from its
/// configuration, tests from a [`MemoryBackend`](holidapp_core::MemoryBackend) or mocks); the
/// library reads no environment variable.
#[derive(Clone)]
pub struct AppState {
    /// Jobs, queue, data set and image.
    pub backends: Backends,
    /// Validates job parameters at submit time and renders `POST /image`; workers must run the
    /// same renderer, so a job accepted here never fails for parameters it would refuse.
    pub renderer: Arc<dyn Renderer>,
    /// Where `POST /data` with no body loads from: a file path, an http(s) URL, or a bundled
    /// sample (`bundled:hgnc`, `bundled:meteorites`); see [`holidapp_core::parse::load_source`].
    pub data_source: String,
    /// The file `GET /` appends a line to and `GET /visits` returns.
    pub visits_log: PathBuf,
    /// Counters shown by `GET /metrics`; shared so the caller can read them too.
    pub metrics: Arc<Metrics>,
    /// Body sizes, page sizes and the request timeout.
    pub limits: Limits,
    /// The plot `POST /image` renders when its body is empty.
    pub image_params: JobParams,
    /// Where `created_at` of submitted jobs comes from: the backend's clock, so both agree.
    pub clock: Arc<dyn Clock>,
}

impl AppState {
    /// A state with the default limits, the bundled HGNC sample as data source, `visits.log` in
    /// the working directory and the system clock.
    pub fn new(backends: Backends, renderer: Arc<dyn Renderer>) -> Self {
        AppState {
            backends,
            renderer,
            data_source: holidapp_core::parse::BUNDLED_HGNC.to_owned(),
            visits_log: PathBuf::from("visits.log"),
            metrics: Arc::new(Metrics::new()),
            limits: Limits::default(),
            clock: Arc::new(SystemClock),
            image_params: JobParams::new("1900", "2100"),
        }
    }

    /// The same state loading `POST /data` from `source`.
    pub fn with_data_source(mut self, source: impl Into<String>) -> Self {
        self.data_source = source.into();
        self
    }

    /// The same state keeping its visits log at `path`.
    pub fn with_visits_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.visits_log = path.into();
        self
    }

    /// The same state counting into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The same state with other limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The same state rendering `params` for a `POST /image` with no body.
    pub fn with_image_params(mut self, params: JobParams) -> Self {
        self.image_params = params;
        self
    }

    /// The same state reading the time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("data_source", &self.data_source)
            .field("visits_log", &self.visits_log)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Bounds on what one request may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest body of `POST /jobs` (default 16 KiB: parameters are small).
    pub jobs_body: usize,
    /// Largest body of `POST /data` (default 256 MiB: a whole data set).
    pub data_body: usize,
    /// Largest body of every other route (default 64 KiB).
    pub other_body: usize,
    /// How long one request may take before it is answered with a 503 (default 30 s).
    pub request_timeout: Duration,
    /// Records per page of `GET /data` when `limit` is not given (default 1,000).
    pub data_page_default: u64,
    /// The largest `limit` `GET /data` accepts (default 10,000).
    pub data_page_max: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            jobs_body: 16 * 1024,
            data_body: 256 * 1024 * 1024,
            other_body: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            data_page_default: 1_000,
            data_page_max: 10_000,
        }
    }
}
