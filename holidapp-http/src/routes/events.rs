//! `GET /events`: the job events as Server-Sent Events, resumable with `Last-Event-ID`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use holidapp_core::events::{EventCursor, EventFilter, Followed, JobEvent};
use holidapp_core::{JobId, QueueName};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use super::Ctx;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;
use crate::schema::BackendDown;

/// How long a stream stays silent before the server sends the cursor again (which keeps proxies
/// from closing an idle connection, and moves a client's `Last-Event-ID` past events its filter
/// skipped).
const QUIET: Duration = Duration::from_secs(15);

/// The longest resume point the query may carry (the header may carry more).
const MAX_QUERY_RESUME: usize = 2048;

/// The header a reconnecting `EventSource` sends.
const LAST_EVENT_ID: &str = "last-event-id";

/// Query of `GET /events`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsQuery {
    /// Only the events of this job.
    #[param(value_type = Option<uuid::Uuid>)]
    job: Option<String>,
    /// Only the events of jobs of this queue.
    #[param(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._-]{1,64}$")]
    queue: Option<String>,
    /// Only the events of jobs of this kind.
    #[param(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._-]{1,64}$")]
    kind: Option<String>,
    /// Where to resume: the `id` of the last event received (as `Last-Event-ID`, which wins when
    /// both are sent; for clients that cannot set the header). Without either, the stream starts
    /// with the events that happen from now on.
    #[param(
        max_length = 2048,
        pattern = "^(0|(\\*|[A-Za-z0-9._-]{1,64}):[0-9]{1,19}-[0-9]{1,19}-[0-9]{1,9}(,(\\*|[A-Za-z0-9._-]{1,64}):[0-9]{1,19}-[0-9]{1,19}-[0-9]{1,9})*)$"
    )]
    last_event_id: Option<String>,
    /// `false`: answer the retained events after the resume point (all of them without one), at
    /// most 1,000, and end, instead of following new ones (default `true`). The last message, a
    /// `ping`, carries the resume point after all of them.
    follow: Option<bool>,
}

/// One event's `data`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = JobEvent)]
pub(crate) struct EventData<'a> {
    /// The job.
    #[schema(value_type = uuid::Uuid)]
    job: String,
    /// The job's kind.
    #[schema(value_type = String)]
    kind: &'a str,
    /// The job's queue.
    #[schema(value_type = String)]
    queue: &'a str,
    /// The status it moved to.
    #[schema(value_type = crate::schema::StatusDoc)]
    status: &'a str,
    /// The worker that made the change: for a lease, an outcome, a retry or a release.
    #[schema(value_type = Option<String>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    worker: Option<&'a str>,
    /// When (RFC 3339).
    #[schema(format = DateTime, value_type = String)]
    at: String,
}

fn event_data(event: &JobEvent) -> EventData<'_> {
    EventData {
        job: event.job.to_string(),
        kind: &event.kind,
        queue: event.queue.as_str(),
        status: event.status.as_str(),
        worker: event.worker.as_deref(),
        at: event
            .at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    }
}

/// The SSE message of one followed item.
fn message(item: holidapp_core::Result<Followed>) -> Result<Event, Infallible> {
    Ok(match item {
        Ok(Followed::Event(event, cursor)) => {
            let data = serde_json::to_string(&event_data(&event)).unwrap_or_default();
            Event::default()
                .event("job")
                .id(cursor.to_string())
                .data(data)
        }
        // A named event with empty data: an EventSource updates its last event id and, without
        // a listener for `ping`, does nothing else.
        Ok(Followed::Quiet(cursor)) => Event::default()
            .event("ping")
            .id(cursor.to_string())
            .data("{}"),
        Err(e) => {
            tracing::warn!("the event stream ended: {e}");
            Event::default()
                .event("error")
                .data(r#"{"error": "the event log could not be read; reconnect"}"#)
        }
    })
}

/// Follow job events as Server-Sent Events.
///
/// Every status change of every job is an event (`event: job`), its `data` the JSON of
/// `JobEvent`, its `id` the resume point after it. A client that reconnects with
/// `Last-Event-ID` (browsers' `EventSource` does it by itself) gets every retained event it has
/// not seen, once, then new ones as they come. The first message, and one after every 15 s
/// without an event, is an `event: ping` (data `{}`) whose `id` is the resume point so far. Retention: the last 10,000 events in memory; on Redis,
/// the last ~1,000 writes of each queue (each one job, or a batch of them).
#[utoipa::path(
    get, path = "/events", tag = "jobs",
    params(EventsQuery),
    responses(
        (status = 200, description = "The event stream (text/event-stream), each event's data a JobEvent", content_type = "text/event-stream", body = String),
        (status = 400, description = "A filter or resume point that cannot be read", body = ErrorBody),
        (status = 503, description = "Too many event streams are open on this server (code too_many_streams)", body = ErrorBody),
        BackendDown,
    )
)]
pub(crate) async fn events(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    let filter = EventFilter {
        job: query
            .job
            .as_deref()
            .map(|id| {
                id.parse::<JobId>()
                    .map_err(|_| ApiError::InvalidQuery(format!("job: '{id}' is not a job id")))
            })
            .transpose()?,
        queue: query
            .queue
            .map(QueueName::new)
            .transpose()
            .map_err(|e| ApiError::InvalidQuery(format!("queue: {e}")))?,
        kind: match query.kind {
            Some(kind) => {
                holidapp_core::job::check_kind_name(&kind)
                    .map_err(|e| ApiError::InvalidQuery(format!("kind: {e}")))?;
                Some(kind)
            }
            None => None,
        },
    };
    let resume = match headers.get(LAST_EVENT_ID) {
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::InvalidQuery("Last-Event-ID is not text".into()))?
                .to_owned(),
        ),
        None => match query.last_event_id {
            Some(id) if id.is_empty() => {
                return Err(ApiError::InvalidQuery(
                    "last_event_id: empty; leave it out to start from now".into(),
                ));
            }
            Some(id) if id.chars().count() > MAX_QUERY_RESUME => {
                return Err(ApiError::InvalidQuery(format!(
                    "last_event_id: at most {MAX_QUERY_RESUME} characters; send a longer one as \
                     the Last-Event-ID header"
                )));
            }
            other => other,
        },
    };
    let after = resume
        .filter(|id| !id.is_empty())
        .map(|id| {
            id.parse::<EventCursor>()
                .map_err(|e| ApiError::InvalidQuery(format!("Last-Event-ID: {e}")))
        })
        .transpose()?;
    let permit = ctx
        .event_streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::TooManyStreams)?;
    let response = if query.follow == Some(false) {
        drop(permit);
        let (events, cursor) = ctx.app.jobs.past_events(after, &filter).await?;
        let mut out = Vec::with_capacity(events.len() + 1);
        for (event, at) in events {
            out.push(message(Ok(Followed::Event(event, at))));
        }
        // Last, the resume point after everything read, filtered out or not.
        out.push(message(Ok(Followed::Quiet(cursor))));
        Sse::new(futures::stream::iter(out)).into_response()
    } else {
        let stream = ctx
            .app
            .jobs
            .events(after, filter, QUIET)
            .map(move |m| {
                // The stream holds its place among the open ones until it is dropped.
                let _ = &permit;
                message(m)
            })
            // A shutdown ends the stream, so an open stream does not hold the server's graceful
            // shutdown for its whole grace period (a client resumes on another replica).
            .take_until(ctx.app.shutdown.clone().cancelled_owned());
        Sse::new(stream).into_response()
    };
    let mut response = response;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Tells nginx-like proxies not to buffer the stream.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}
