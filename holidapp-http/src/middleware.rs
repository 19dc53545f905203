//! What wraps every request: a request id, a tracing span, the request timeout, the request
//! counters, logging of server errors, and catching panics.
//!
//! One hand-written layer (`observe`) does the first five, so a request pays for one layer, not
//! five. It sits outside the panic catcher, so a panic is counted and logged like any 500.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use tower::{Layer, Service};
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

/// The layer that runs `observe` around every request.
#[derive(Clone)]
pub(crate) struct ObserveLayer {
    ctx: Ctx,
}

impl ObserveLayer {
    pub(crate) fn new(ctx: Ctx) -> Self {
        ObserveLayer { ctx }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            ctx: Arc::clone(&self.ctx),
        }
    }
}

/// The service [`ObserveLayer`] makes. Written by hand rather than with
/// `axum::middleware::from_fn`, which boxes the inner service on every request: this costs one
/// allocation per request, for the future.
#[derive(Clone)]
pub(crate) struct Observe<S> {
    inner: S,
    ctx: Ctx,
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The clone is fresh; the service that was polled ready is the one that gets the call.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(observe(Arc::clone(&self.ctx), request, inner))
    }
}

/// Gives the request an id, runs it in a span under the request timeout, counts it, logs server
/// errors with their real cause, and echoes the id on the answer.
async fn observe<S>(ctx: Ctx, request: Request, mut inner: S) -> Result<Response, Infallible>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let started = Instant::now();
    let request_id = match request.headers().get(&REQUEST_ID) {
        Some(id) if id.len() <= MAX_REQUEST_ID_LEN && id.to_str().is_ok() => id.clone(),
        _ => ctx.request_ids.next(),
    };
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route_str = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    // A debug span: at the default `info` level it costs nothing, and the one line a request
    // logs at `info` or above (a server error) names the request itself.
    let span = tracing::debug_span!(
        "request",
        request_id = response_id(&request_id),
        method = %method,
        route = route_str,
    );
    let limit = ctx.app.limits.request_timeout;
    let answer = tokio::time::timeout(limit, inner.call(request).instrument(span.clone())).await;
    let mut response = match answer {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(_) => ApiError::Timeout(limit).into_response(),
    };
    let status = response.status();
    ctx.app
        .metrics
        .record_request(route.as_ref().map(MatchedPath::as_str), &method, status);
    let _entered = span.enter();
    if status.is_server_error() {
        let detail = response.extensions().get::<ErrorDetail>();
        tracing::error!(
            request_id = response_id(&request_id),
            method = %method,
            route = route_str,
            status = status.as_u16(),
            error = detail.map_or("(no detail)", |d| &d.0),
            "request failed"
        );
    } else {
        tracing::debug!(
            status = status.as_u16(),
            micros = started.elapsed().as_micros() as u64,
            "answered"
        );
    }
    response.headers_mut().insert(REQUEST_ID, request_id);
    Ok(response)
}

/// A request id as text (ids are always visible ASCII: checked when taken from a client).
fn response_id(id: &HeaderValue) -> &str {
    id.to_str().unwrap_or("")
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
