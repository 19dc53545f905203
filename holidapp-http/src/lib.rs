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
//!   panic into a generic 500. Body limits are per route: small for `/jobs`, large for `/data`.
//!   The hot path takes no lock: counters are atomics in a table built with the router.
//! - **[`serve`]** runs a router on a listener the caller bound, until a shutdown future the
//!   caller owns completes; in-flight requests then finish, as mini-redis's `server::run` does.
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

use axum::Router;
use axum::serve::ListenerExt;
use tower_http::catch_panic::CatchPanicLayer;

pub mod error;
pub mod extract;
pub mod metrics;
pub mod middleware;
mod routes;
mod schema;
pub mod state;

pub use error::ApiError;
pub use metrics::Metrics;
pub use state::{AppState, Limits};

/// Builds the router serving every route of the API from `state` (the plot product's routes
/// when the state has the plot product).
pub fn router(state: AppState) -> Router {
    let (routes, mut doc) =
        routes::api_routes(&state.limits, state.plots.is_some()).split_for_parts();
    routes::document_aliases(&mut doc);
    routes::register_routes(&state.metrics, &doc);
    state.metrics.register_kinds(state.jobs.kinds().names());
    let shared = Arc::new(routes::shared(state, &doc));
    routes
        .fallback(middleware::route_not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(middleware::ObserveLayer::new(Arc::clone(&shared)))
        .with_state(shared)
}

/// The OpenAPI 3 document of the routes [`router`] serves with the plot product (what
/// `GET /openapi.json` answers).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = routes::api_routes(&Limits::default(), true).into_openapi();
    routes::document_aliases(&mut doc);
    doc
}

/// Serves `router` on `listener` until `shutdown` completes, then lets in-flight requests
/// finish and returns.
///
/// The caller binds the listener (port 0 in tests) and owns the shutdown signal; the binary
/// passes a future that completes on SIGTERM or SIGINT. Connections get `TCP_NODELAY`, so small
/// answers are not held back by Nagle's algorithm.
pub async fn serve<F>(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
