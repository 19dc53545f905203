//! What wraps every request: a request id, a tracing span, the request timeout, the request
//! counters, logging of server errors, and catching panics.
//!
//! [`observe`] is one middleware doing the first five, so a request pays for one layer, not
//! five. It sits outside the panic catcher, so a panic is counted and logged like any 500.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::error::{ApiError, ErrorDetail};
use crate::routes::Ctx;

/// The header carrying the request id, read from the request when a proxy set one and always
/// set on the answer.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a client; longer ones are replaced by our own.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Request ids for requests that come without one: a random per-process prefix and a counter,
/// unique within the process and very likely across processes, without a random draw per
/// request.
#[derive(Debug)]
pub(crate) struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl RequestIds {
    pub(crate) fn new() -> Self {
        RequestIds {
            prefix: fastrand::u32(..),
            next: AtomicU64::new(1),
        }
    }

    fn next(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("{:08x}-{n:x}", self.prefix);
        // Hex digits and a hyphen are always a valid header value.
        HeaderValue::from_maybe_shared(bytes::Bytes::from(id))
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
    }
}

/// Gives the request an id, runs it in a span under the request timeout, counts it, logs server
/// errors with their real cause, and echoes the id on the answer.
pub(crate) async fn observe(State(ctx): State<Ctx>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = match request.headers().get(&REQUEST_ID) {
        Some(id) if id.len() <= MAX_REQUEST_ID_LEN && id.to_str().is_ok() => id.clone(),
        _ => ctx.request_ids.next(),
    };
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route_str = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let span = tracing::info_span!(
        "request",
        request_id = request_id.to_str().unwrap_or(""),
        method = %method,
        route = route_str,
    );
    let limit = ctx.app.limits.request_timeout;
    let mut response =
        match tokio::time::timeout(limit, next.run(request).instrument(span.clone())).await {
            Ok(response) => response,
            Err(_) => ApiError::Timeout(limit).into_response(),
        };
    let status = response.status();
    ctx.app
        .metrics
        .record_request(route.as_ref().map(MatchedPath::as_str), &method, status);
    if status.is_server_error() {
        let detail = response.extensions().get::<ErrorDetail>();
        let _entered = span.enter();
        tracing::error!(
            status = status.as_u16(),
            error = detail.map_or("(no detail)", |d| &d.0),
            "request failed"
        );
    } else {
        let _entered = span.enter();
        tracing::debug!(
            status = status.as_u16(),
            micros = started.elapsed().as_micros() as u64,
            "answered"
        );
    }
    response.headers_mut().insert(REQUEST_ID, request_id);
    response
}

/// The answer for a request no route matches.
pub(crate) async fn route_not_found(uri: Uri) -> ApiError {
    let path = uri.path();
    let shown: String = path.chars().take(100).collect();
    ApiError::RouteNotFound(shown)
}

/// The answer for a route that exists with other methods.
pub(crate) async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.as_str().chars().take(32).collect())
}

/// Turns a handler's panic into a generic 500 whose detail reaches the log through
/// [`ErrorDetail`].
pub(crate) fn panic_response(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a payload that is not text".to_owned()
    };
    ApiError::Panic(message).into_response()
}
