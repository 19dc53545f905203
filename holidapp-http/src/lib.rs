//! # holidapp-http
//!
//! The HTTP face of Holidapp: a thin [axum] adapter over `holidapp-core`, and the `holidapp-api`
//! binary built on it. No business rule lives here; every route is a call into the core.
//!
//! ## Architecture
//!
//! - **[`AppState`]** holds what the routes serve from: the [`Backends`](holidapp_core::Backends)
//!   (job store, queue, data store, image store), the [`Renderer`](holidapp_core::Renderer) that
//!   validates job parameters at submit time and draws `POST /image`, the data source
//!   `POST /data` loads from, the visits log path, the [`Metrics`], the [`Limits`] and a clock.
//!   The caller builds it: the binary from its configuration, tests from a
//!   [`MemoryBackend`](holidapp_core::MemoryBackend) or mocks. The library reads no environment
//!   variable and installs no signal handler.
//! - **[`router`]** turns the state into an [`axum::Router`]. Each route calls the core:
//!
//!   | route | core call |
//!   |---|---|
//!   | `POST /jobs` | `Renderer::validate`, then `Queue::enqueue(&Job::new(params, now))` |
//!   | `GET /jobs`, `/completed_jobs`, `/incomplete_jobs`, `/inprogress_jobs` | `JobStore::list` |
//!   | `GET /jobs/{id}`, `/jobs_status`, `/job_status` | `JobStore::get` |
//!   | `DELETE /jobs/{id}` | `JobStore::delete` |
//!   | `GET /jobs/{id}/result`, `/results/{id}`, `/download/{id}` | `JobStore::get` + `JobStore::result` |
//!   | `POST /data` | `parse::load_source` / `parse::parse_value` / `parse::parse`, then `DataStore::replace` |
//!   | `GET /data`, `/data/{id}`, `/genes`, `/genes/{hgnc_id}`, `DELETE /data` | `DataStore::page`, `record`, `ids`, `clear` |
//!   | `POST /image` | `DataStore::load`, `Renderer::render`, `ImageStore::put_image` |
//!   | `GET /readyz` | `JobStore::ping` |
//!   | `GET /metrics` | `JobStore::counts`, `Queue::depth` |
//!
//!   Every handler is registered with [`utoipa_axum::routes!`], which adds it to the router and
//!   to the OpenAPI document (`GET /openapi.json`, [`openapi`]) in one call, so the two cannot
//!   drift; `GET /help` is rendered from that document too.
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
//!   | `InvalidParams`, `InvalidData` | 400 |
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
//! use holidapp_core::{Backends, MemoryBackend, QueueSettings};
//! # async fn example(renderer: Arc<dyn holidapp_core::Renderer>) -> std::io::Result<()> {
//! let backend = Arc::new(MemoryBackend::new(QueueSettings::default()));
//! let state = holidapp_http::AppState::new(Backends::single(backend), renderer);
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

/// Builds the router serving every route of the API from `state`.
pub fn router(state: AppState) -> Router {
    let (routes, doc) = routes::api_routes(&state.limits).split_for_parts();
    routes::register_routes(&state.metrics, &doc);
    let shared = Arc::new(routes::shared(state, &doc));
    routes
        .fallback(middleware::route_not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(middleware::ObserveLayer::new(Arc::clone(&shared)))
        .with_state(shared)
}

/// The OpenAPI 3 document of the routes [`router`] serves (what `GET /openapi.json` answers).
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes::api_routes(&Limits::default()).into_openapi()
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
