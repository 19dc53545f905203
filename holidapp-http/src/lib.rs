//! # holidapp-http
//!
//! The HTTP face of Holidapp: a thin [axum] adapter over `holidapp-core`, and the `holidapp-api`
//! binary built on it. No business rule lives here; every route is a call into the core.
//!
//! ## Architecture
//!
//! - **[`AppState`]** holds what the routes serve from: the job use cases
//!   ([`Jobs`](holidapp_core::Jobs): the store, the producer and the registered kinds, which
//!   check parameters at submit time), the plot product ([`Plots`](holidapp_core::plot::Plots))
//!   when this API serves it, the visits log path, the [`Metrics`] and the [`Limits`]. The caller
//!   builds it: the binary from its configuration, tests and embedding programs from a
//!   [`MemoryBackend`](holidapp_core::MemoryBackend) and kinds of their own. The library reads
//!   no environment variable and installs no signal handler.
//! - **[`router`]** turns the state into an [`axum::Router`]. Each handler parses its request,
//!   calls one core function and maps the answer:
//!
//!   | route | core call |
//!   |---|---|
//!   | `POST /jobs` | `Jobs::submit` (the kind checks the parameters; stored and queued in one step) |
//!   | `GET /jobs`, `/completed_jobs`, `/inprogress_jobs` | `Jobs::list` |
//!   | `GET /incomplete_jobs` | `Jobs::incomplete` |
//!   | `GET /jobs/{id}`, `/jobs_status`, `/job_status` | `Jobs::get` |
//!   | `DELETE /jobs/{id}` | `Jobs::delete` |
//!   | `GET /jobs/{id}/result`, `/results/{id}`, `/download/{id}` | `Jobs::result` (status and result in one read) |
//!   | `POST /data` | `Plots::load` |
//!   | `GET /data`, `/data/{id}`, `/genes`, `/genes/{hgnc_id}`, `DELETE /data` | `DataStore::page`, `record`, `ids`, `clear` |
//!   | `POST /image` | `Plots::render_image` |
//!   | `GET /image`, `DELETE /image` | `ImageStore::get_image`, `delete_image` |
//!   | `GET /readyz` | `JobStore::ping` |
//!   | `GET /metrics` | `Jobs::stats` |
//!   | `GET /workers` | `Jobs::workers` (the worker registry) |
//!   | `GET /events` | `Jobs::events` (followed), `Jobs::past_events` (`follow=false`) |
//!
////!   Every handler is registered with [`utoipa_axum::routes!`], which adds it to the router and
//!   to the OpenAPI document (`GET /openapi.json`, [`openapi`]) in one call, so the two cannot
//!   drift; `GET /help` is rendered from that document too. The course's aliases are routed to
//!   the handler of the route they stand for, and documented as copies of it.
//!
//!   Links the API answers (`Location`, a job's `result`, `Link`) carry the path the router is
//!   mounted under, so an app may nest it (`Router::nest("/api", router)`).
//! - **Errors** are one type, [`ApiError`]: the core's [`Error`](holidapp_core::Error) plus the
//!   HTTP-only cases (malformed JSON, wrong content type, oversized body, unknown route, wrong
//!   method, ...). [`ApiError::status`] is the one place errors become status codes, and every
//!   error answer has the same JSON body, `{"error": {"status", "code", "message"}}`. Axum's own
//!   rejections go through it as well: bodies, paths and queries are read with
//!   [`ApiJson`](extract::ApiJson), [`ApiPath`](extract::ApiPath) and
//!   [`ApiQuery`](extract::ApiQuery), and the 404 and 405 fallbacks answer `ApiError`s. A 500
//!   says only "internal server error"; its cause is logged with the request id.
//!
//!   | core error | status |
//!   |---|---|
//!   | `InvalidParams`, `ParamsShape`, `UnknownKind`, `MalformedJson`, `InvalidData` | 400 |
//!   | `NotFound` | 404 |
//!   | `NoData`, `Conflict`, `IllegalTransition` | 409 |
//!   | `Render` (the parameters select nothing drawable) | 422 |
//!   | `Source` (the configured data source failed) | 502 |
//!   | `Unavailable` (the backend is down) | 503 |
//!   | `LeaseLost`, `Internal` | 500 |
//! - **Middleware**, outermost first: one `observe` layer gives each request an id
//!   (`x-request-id`, kept from the client when it sent a sane one), runs it in a `debug`
//!   tracing span under the request timeout (a 503 `timeout` error when it runs out), counts it
//!   in the [`Metrics`] by route template, method and status, and logs each server error at
//!   `error` with its request id and real cause; inside it a panic catcher turns a handler
//!   panic into a generic 500; inside that, when the state holds a token ([`Auth`]), the
//!   [`auth`] layer answers 401 to each request that lacks the token its route needs. Body
//!   limits are per route: small for `/jobs`, large for `/data`. The hot path takes no lock: counters are atomics in a table built with the router.
//! - **[`serve`]** runs a router on a listener the caller bound, until a shutdown future the
//!   caller owns completes; in-flight requests then finish within a grace period. Slow clients
//!   cannot hold it up: headers must arrive within a time limit and connections are capped
//!   ([`ServeOptions`]).
//!
//! ## Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use holidapp_core::{Backends, Jobs, Kinds, MemoryBackend, QueueSettings};
//! # async fn example(kinds: Kinds) -> std::io::Result<()> {
//! let backend = Arc::new(MemoryBackend::new(QueueSettings::default()));
//! let jobs = Jobs::new(&Backends::single(backend), kinds);
//! let state = holidapp_http::AppState::new(jobs);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! holidapp_http::serve(listener, holidapp_http::router(state), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```

#![cfg_attr(docsrs, feature(doc_auto_cfg))]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;

pub mod auth;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod middleware;
mod routes;
mod schema;
pub mod state;
mod visits;

pub use auth::{Auth, Token};
pub use error::ApiError;
pub use metrics::Metrics;
pub use state::{AppState, Limits};

/// Builds the router serving every route of the API from `state` (the plot product's routes
/// when the state has the plot product).
pub fn router(state: AppState) -> Router {
    let (routes, mut doc) =
        routes::api_routes(&state.limits, state.plots.is_some()).split_for_parts();
    routes::finish_document(&mut doc, &routes::DocumentConfig::of(&state));
    routes::register_routes(&state.metrics, &doc);
    state.metrics.register_kinds(state.jobs.kinds().names());
    let auth = state.auth.clone();
    let shared = Arc::new(routes::shared(state, &doc));
    let mut routes = routes
        .fallback(middleware::route_not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed);
    // Without a token the layer would pass every request: leave it out of the hot path.
    if auth.writes_need_token() {
        routes = routes.layer(axum::middleware::from_fn_with_state(auth, auth::guard));
    }
    routes
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(middleware::ObserveLayer::new(Arc::clone(&shared)))
        .with_state(shared)
}

/// The OpenAPI 3 document of the routes [`router`] serves with the plot product, its kind
/// `plot` the only kind and the default one, the default [`Limits`] and no token (what
/// `GET /openapi.json` answers then).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let limits = Limits::default();
    let mut doc = routes::api_routes(&limits, true).into_openapi();
    let config = routes::DocumentConfig {
        limits: &limits,
        kinds: vec!["plot".to_owned()],
        default_kind: Some("plot"),
        plots: true,
        auth: &Auth::open(),
    };
    routes::finish_document(&mut doc, &config);
    doc
}

/// How [`serve_with`] treats connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeOptions {
    /// How long a client may take to send a request's headers (a slow client cannot hold a
    /// connection open by trickling them). Default 10 s.
    pub header_read_timeout: Duration,
    /// The most connections served at once; past it, new ones wait in the listen queue until
    /// one closes. Default 4,096.
    pub max_connections: usize,
    /// After shutdown begins, how long in-flight requests may take before their connections are
    /// dropped (a slow client cannot hold up a shutdown). Default 10 s.
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 4096,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// [`serve_with`] with the default [`ServeOptions`].
pub async fn serve<F>(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    serve_with(listener, router, shutdown, ServeOptions::default()).await
}

/// Serves `router` on `listener` (HTTP/1.1, and HTTP/2 for clients that speak it) until
/// `shutdown` completes, then stops accepting, lets in-flight requests finish within the
/// grace period, and returns.
///
/// The caller binds the listener (port 0 in tests) and owns the shutdown signal; the binary
/// passes a future that completes on SIGTERM or SIGINT. Connections get `TCP_NODELAY`, so small
/// answers are not held back by Nagle's algorithm.
pub async fn serve_with<F>(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: F,
    options: ServeOptions,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto;
    use hyper_util::service::TowerToHyperService;

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let slots = Arc::new(tokio::sync::Semaphore::new(options.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let shutdown = std::pin::pin!(shutdown);
    let mut shutdown = shutdown;
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // wait a moment rather than spin, then go on.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
        let service = TowerToHyperService::new(router.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection ended with an error: {e}");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(options.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_ms = options.shutdown_grace.as_millis() as u64,
            "connections still open after the shutdown grace period were dropped"
        );
    }
    Ok(())
}
