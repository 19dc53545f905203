//! Jobs: submit, list, show, delete, fetch the result; and the course's aliases, each routed to
//! the handler of the route it stands for.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::Duration;

use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use holidapp_core::jobs::{MAX_BATCH, MAX_DELAY};
use holidapp_core::store::{MAX_OFFSET, MAX_PAGE_SIZE};
use holidapp_core::{
    Cursor, Error, Job, JobId, JobStatus, ListQuery, Page, QueueName, ResultState, Statuses,
    Submit, UniqueScope,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use utoipa::IntoParams;

use super::{Ctx, json_bytes};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath, ApiQuery, BasePath, JsonBody};
use crate::schema::{
    BackendDown, BinaryDoc, JobDoc, JobList, JobPage, ShowJob, StatusDoc, SubmitAnswerDoc,
    SubmitDoc,
};

/// The header carrying the cursor of the next page of a listing.
pub(crate) const NEXT_CURSOR: HeaderName = HeaderName::from_static("x-next-cursor");

/// Query of `GET /jobs`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct JobListQuery {
    /// Only jobs in this status: `submitted`, `in progress`, `complete` or `failed`, spelled as
    /// jobs show it.
    #[param(value_type = Option<StatusDoc>)]
    status: Option<JobStatus>,
    /// Only jobs of this kind.
    #[param(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._-]{1,64}$")]
    kind: Option<String>,
    /// Only jobs of this queue.
    #[param(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._-]{1,64}$")]
    queue: Option<String>,
    /// Only jobs older than this cursor: the `x-next-cursor` of the previous page.
    #[param(schema_with = cursor_param)]
    before: Option<String>,
    /// How many of the newest matching jobs to skip, at most 10,000; deeper pages follow the
    /// cursor.
    #[param(schema_with = offset_param)]
    offset: Option<usize>,
    /// Page size.
    #[param(schema_with = limit_param)]
    limit: Option<usize>,
}

/// Query of the list aliases (`/completed_jobs`, `/inprogress_jobs`).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// Only jobs older than this cursor: the `x-next-cursor` of the previous page.
    #[param(schema_with = cursor_param)]
    before: Option<String>,
    /// How many of the newest matching jobs to skip, at most 10,000; deeper pages follow the
    /// cursor.
    #[param(schema_with = offset_param)]
    offset: Option<usize>,
    /// Page size.
    #[param(schema_with = limit_param)]
    limit: Option<usize>,
}

/// Query of `/incomplete_jobs`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct LimitQuery {
    /// Page size.
    #[param(schema_with = limit_param)]
    limit: Option<usize>,
}

/// Query of `/jobs_status` and `/job_status`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct JobIdQuery {
    /// The job's id (a hyphenated UUID).
    #[param(value_type = uuid::Uuid, example = "2d6f2c39-3f0a-4d6e-9a4e-2d1c8a7f5e10")]
    job_id: String,
}

/// The schema of a listing's `before`: a cursor, 0 to 2^64-1.
fn cursor_param() -> utoipa::openapi::Object {
    crate::schema::integer(0, i128::from(u64::MAX))
        .description(Some(
            "Only jobs older than this cursor: the `x-next-cursor` of the previous page.",
        ))
        .build()
}

/// The schema of a listing's `offset`.
fn offset_param() -> utoipa::openapi::Object {
    crate::schema::integer(0, MAX_OFFSET as i128)
        .default(Some(0.into()))
        .description(Some(
            "How many of the newest matching jobs to skip; deeper pages follow the cursor.",
        ))
        .build()
}

/// The schema of a listing's `limit`.
fn limit_param() -> utoipa::openapi::Object {
    crate::schema::integer(1, MAX_PAGE_SIZE as i128)
        .default(Some(ListQuery::default().limit.into()))
        .description(Some("Page size."))
        .build()
}

/// The general body of `POST /jobs`. `null` is the same as an absent field; integers may be
/// written with a zero fraction or an exponent (`3.0`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GeneralBody {
    kind: String,
    #[serde(default)]
    params: serde_json::Value,
    queue: Option<QueueName>,
    #[serde(default, deserialize_with = "holidapp_core::integer::option")]
    max_attempts: Option<u32>,
    unique_key: Option<String>,
    unique_scope: Option<UniqueScope>,
    #[serde(default, deserialize_with = "holidapp_core::integer::option")]
    timeout: Option<u32>,
    #[serde(default, deserialize_with = "holidapp_core::integer::option")]
    priority: Option<i32>,
    delay: Option<f64>,
    run_at: Option<DateTime<Utc>>,
}

/// Sets when and how urgently a job runs on `submit` (the fields both bodies may carry); a delay
/// that is not a number of seconds from 0 to the longest allowed is refused.
fn schedule(
    mut submit: Submit,
    priority: Option<i32>,
    delay: Option<f64>,
    run_at: Option<DateTime<Utc>>,
) -> Result<Submit, ApiError> {
    submit.priority = priority;
    submit.run_at = run_at;
    submit.delay = match delay {
        None => None,
        Some(seconds) => Some(
            Duration::try_from_secs_f64(seconds)
                .ok()
                .filter(|d| *d <= MAX_DELAY)
                .ok_or_else(|| {
                    ApiError::Core(Error::InvalidParams(format!(
                        "delay must be a number of seconds from 0 to {}, got {seconds}",
                        MAX_DELAY.as_secs()
                    )))
                })?,
        ),
    };
    Ok(submit)
}

/// The fields the course's body (the default kind's parameters) may carry beside them, as
/// [`GeneralBody`] reads them.
#[derive(Debug, Default, Deserialize)]
struct Beside {
    queue: Option<QueueName>,
    #[serde(default, deserialize_with = "holidapp_core::integer::option")]
    max_attempts: Option<u32>,
    #[serde(default, deserialize_with = "holidapp_core::integer::option")]
    timeout: Option<u32>,
    #[serde(default, deserialize_with = "holidapp_core::integer::option")]
    priority: Option<i32>,
    delay: Option<f64>,
    run_at: Option<DateTime<Utc>>,
}

/// The header whose value a retried submit repeats so that it finds the job its first try made.
pub(crate) const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// Reads a `POST /jobs` request: the body `{"kind", "params", "queue"?, "max_attempts"?,
/// "timeout"?, "unique_key"?}`, or, without `kind`, the parameters of the service's default kind
/// (the course's `{"start", "end"}`), beside which `queue`, `max_attempts` and `timeout` may be
/// given; and the `Idempotency-Key` header, the job's unique key.
fn submit_request(headers: &HeaderMap, body: serde_json::Value) -> Result<Submit, ApiError> {
    let header_key = match headers.get(&IDEMPOTENCY_KEY) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| {
                    ApiError::InvalidBody(
                        "the Idempotency-Key header must be visible ASCII text".to_owned(),
                    )
                })?
                .to_owned(),
        ),
    };
    let mut submit = submit_body(body)?;
    match (&submit.unique_key, header_key) {
        (Some(body_key), Some(header_key)) if *body_key != header_key => {
            return Err(ApiError::InvalidBody(
                "the Idempotency-Key header and the body's unique_key differ; send one".to_owned(),
            ));
        }
        (None, header_key) => submit.unique_key = header_key,
        _ => {}
    }
    Ok(submit)
}

/// Reads a `POST /jobs` body (see [`submit_request`]).
fn submit_body(body: serde_json::Value) -> Result<Submit, ApiError> {
    let serde_json::Value::Object(mut fields) = body else {
        return Err(ApiError::InvalidBody(
            "the body must be a JSON object: {\"kind\": ..., \"params\": {...}}, or the \
             parameters of the default kind"
                .to_owned(),
        ));
    };
    let shape = |e: serde_json::Error| {
        ApiError::InvalidBody(format!(
            "the JSON body does not have the expected shape: {e}"
        ))
    };
    if fields.contains_key("kind") {
        let body: GeneralBody =
            serde_json::from_value(serde_json::Value::Object(fields)).map_err(shape)?;
        let submit = Submit {
            queue: body.queue,
            max_attempts: body.max_attempts,
            unique_key: body.unique_key,
            unique_scope: body.unique_scope,
            timeout: body.timeout,
            ..Submit::new(body.kind, body.params)
        };
        return schedule(submit, body.priority, body.delay, body.run_at);
    }
    let mut beside = serde_json::Map::new();
    for name in [
        "queue",
        "max_attempts",
        "timeout",
        "priority",
        "delay",
        "run_at",
    ] {
        if let Some(value) = fields.remove(name) {
            beside.insert(name.to_owned(), value);
        }
    }
    let beside: Beside =
        serde_json::from_value(serde_json::Value::Object(beside)).map_err(shape)?;
    let submit = Submit {
        kind: None,
        queue: beside.queue,
        max_attempts: beside.max_attempts,
        timeout: beside.timeout,
        ..Submit::new("", serde_json::Value::Object(fields))
    };
    schedule(submit, beside.priority, beside.delay, beside.run_at)
}

/// Submit a job: its kind checks its parameters, then it is queued.
///
/// The body is `{"kind": ..., "params": {...}, "queue": ...}` (`queue` optional, `default` unless
/// given), or, as the course's clients send it, the parameters of the default kind (`plot`):
/// `{"start": "1990", "end": "2020"}`. Parameters the kind refuses get a 400 that says what is
/// wrong (a kind nobody registered: code `unknown_kind`, naming the known ones), and nothing is
/// queued.
///
/// A client that may send the same submit twice (a retry after a timeout or a 503) sends an
/// `Idempotency-Key` header (1 to 256 visible ASCII characters; or `unique_key` in the general
/// body, 1 to 256 characters but control characters): while the job its first try made is kept
/// (and for at most a day, `HOLIDAPP_UNIQUE_TTL_SECONDS`), a submit with the same key in the
/// same queue answers that job with 200 instead of queueing another.
///
/// A JSON array of such bodies (1 to 1,000) is a batch: each job is read and checked on its own
/// and the valid ones are stored together (one round trip per 1,000 jobs of a queue on Redis). The
/// answer is 200 with one entry per job, in order: `{"status": 201, "job": {...}}` (or 200 for a
/// job holding a kept unique key), or `{"status": 400, "error": {...}}` for a job refused, which
/// stored nothing. A batch takes no `Idempotency-Key` header: each job may carry its `unique_key`.
///
/// `null` is the same as an absent field, and integers may be written with a zero fraction
/// (`3.0`). Two rules no schema states: a plot's `start` must not be after its `end`, and the
/// `Idempotency-Key` header and `unique_key`, when both are given, must be equal.
#[utoipa::path(
    post, path = "/jobs", tag = "jobs",
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, min_length = 1,
        max_length = 256, pattern = "^[\\x21-\\x7e]([\\x20-\\x7e]{0,254}[\\x21-\\x7e])?$",
        example = "order-7",
        description = "The job's unique key: a retried submit with the same key finds the job its first try made")),
    request_body = SubmitDoc,
    responses(
        (status = 201, description = "The job, queued", body = JobDoc,
         headers(("location" = String, description = "The job's URL, /jobs/{id}"))),
        (status = 200, description = "A job submitted before with the same Idempotency-Key (or unique_key) is still kept: nothing was queued, and this is that job; or, for a batch, one entry per job in order, each what a submit of that job alone would have answered", body = SubmitAnswerDoc,
         headers(("location" = String, description = "The job's URL, /jobs/{id} (not for a batch)"))),
        (status = 400, description = "Malformed JSON (code malformed_json); wrong types, missing or unknown fields, an Idempotency-Key that differs from unique_key, a batch that is empty, holds more than 1,000 jobs or comes with an Idempotency-Key (code invalid_body); an unknown kind (code unknown_kind); or parameters the kind refuses, such as a start after the end (code invalid_params)", body = ErrorBody),
        (status = 413, description = "The body is over the route's limit (1 MiB by default)", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 429, description = "The queue is full (its most waiting jobs, or its most bytes of results); nothing was queued (code quota_exceeded)", body = ErrorBody),
        BackendDown,
    )
)]
pub(crate) async fn submit_job(
    State(ctx): State<Ctx>,
    base: BasePath,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    if let serde_json::Value::Array(items) = body {
        return submit_batch(&ctx, &base, &headers, items).await;
    }
    let submitted = ctx
        .app
        .jobs
        .submit_or_find(submit_request(&headers, body)?)
        .await?;
    let status = if submitted.is_created() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let job = submitted.into_job();
    if status == StatusCode::CREATED {
        ctx.app.metrics.record_job_submitted(&job.kind);
    }
    let mut location = Vec::with_capacity(48);
    // Writing to a Vec cannot fail.
    let _ = write!(location, "{}/jobs/{}", base.0, job.id);
    let location = HeaderValue::from_maybe_shared(bytes::Bytes::from(location))
        .map_err(|e| ApiError::Internal(format!("job location header: {e}")))?;
    let mut response = json_bytes(status, job_json(&ctx, &base, &job)?);
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

/// `POST /jobs` with a JSON array: each item read and submitted on its own, stored together;
/// answers one entry per item, in order: `{"status": 201 or 200, "job": ...}` or
/// `{"status": 4xx, "error": {...}}`, what a submit of that item alone would have answered.
async fn submit_batch(
    ctx: &Ctx,
    base: &BasePath,
    headers: &HeaderMap,
    items: Vec<serde_json::Value>,
) -> Result<Response, ApiError> {
    if headers.contains_key(&IDEMPOTENCY_KEY) {
        return Err(ApiError::InvalidBody(
            "a batch takes no Idempotency-Key header; give each job its unique_key".to_owned(),
        ));
    }
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(ApiError::InvalidBody(format!(
            "a batch holds 1 to {MAX_BATCH} jobs, got {}",
            items.len()
        )));
    }
    let read: Vec<Result<Submit, ApiError>> = items.into_iter().map(submit_body).collect();
    let valid: Vec<Submit> = read
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    let mut submitted = ctx.app.jobs.submit_many(valid).await?.into_iter();
    let mut out = Vec::with_capacity(64 + read.len() * 480);
    out.push(b'[');
    for (i, item) in read.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let answer = match item {
            Err(e) => Err(e),
            Ok(_) => match submitted.next() {
                Some(answer) => answer.map_err(ApiError::from),
                None => {
                    return Err(ApiError::Internal(
                        "a batch submit answered fewer jobs than it was given".to_owned(),
                    ));
                }
            },
        };
        match answer {
            Ok(submitted) => {
                let status = if submitted.is_created() { 201 } else { 200 };
                let job = submitted.into_job();
                if status == 201 {
                    ctx.app.metrics.record_job_submitted(&job.kind);
                }
                let _ = write!(out, "{{\"status\":{status},\"job\":");
                write_job(&mut out, ctx, base, &job)?;
                out.push(b'}');
            }
            Err(e) => {
                let body = serde_json::to_vec(&e.body())
                    .map_err(|e| ApiError::Internal(format!("cannot serialize an error: {e}")))?;
                let _ = write!(out, "{{\"status\":{},", e.status().as_u16());
                // `{"error": {...}}` without its opening brace.
                out.extend_from_slice(&body[1..]);
            }
        }
    }
    out.push(b']');
    Ok(json_bytes(StatusCode::OK, out))
}

/// List jobs, newest first, filtered by status, kind and queue, one bounded page at a time.
///
/// When more jobs follow, the answer carries their cursor (`x-next-cursor`) and a
/// `link: <...>; rel="next"` to the next page.
#[utoipa::path(
    get,
    path = "/jobs",
    tag = "jobs",
    params(JobListQuery),
    responses(JobPage, BackendDown)
)]
pub(crate) async fn list_jobs(
    State(ctx): State<Ctx>,
    base: BasePath,
    ApiQuery(query): ApiQuery<JobListQuery>,
) -> Result<Response, ApiError> {
    let statuses = match query.status {
        None => Statuses::ALL,
        Some(status) => Statuses::only(status),
    };
    let kind = query
        .kind
        .map(|k| holidapp_core::job::check_kind_name(&k).map(|()| k))
        .transpose()
        .map_err(query_error)?;
    let queue = query
        .queue
        .map(QueueName::new)
        .transpose()
        .map_err(query_error)?;
    let list = ListQuery {
        statuses,
        kind,
        queue,
        before: cursor(query.before.as_deref())?,
        offset: offset(query.offset)?,
        limit: page_limit(query.limit)?,
    };
    let page = ctx.app.jobs.list(&list).await?;
    let mut next = vec![("limit", list.limit.to_string())];
    if let Some(status) = query.status {
        next.push(("status", status.as_str().to_owned()));
    }
    if let Some(kind) = &list.kind {
        next.push(("kind", kind.clone()));
    }
    if let Some(queue) = &list.queue {
        next.push(("queue", queue.to_string()));
    }
    page_answer(&ctx, &base, "/jobs", &next, page)
}

/// Show one job.
#[utoipa::path(
    get, path = "/jobs/{id}", tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "The job's id (a hyphenated UUID)",
        example = "2d6f2c39-3f0a-4d6e-9a4e-2d1c8a7f5e10")),
    responses(ShowJob, BackendDown)
)]
pub(crate) async fn get_job(
    State(ctx): State<Ctx>,
    base: BasePath,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    show(&ctx, &base, &id).await
}

/// Delete a job and its result.
///
/// A job a worker is running cannot be deleted.
#[utoipa::path(
    delete, path = "/jobs/{id}", tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "The job's id (a hyphenated UUID)",
        example = "2d6f2c39-3f0a-4d6e-9a4e-2d1c8a7f5e10")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The id is not a hyphenated UUID (code invalid_job_id)", body = ErrorBody),
        (status = 404, description = "No job has this id", body = ErrorBody),
        (status = 409, description = "The job is in progress", body = ErrorBody),
        BackendDown,
    )
)]
pub(crate) async fn delete_job(
    State(ctx): State<Ctx>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let id = parse_job_id(&id)?;
    if ctx.app.jobs.delete(id).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(job_not_found(id))
    }
}

/// Fetch a job's result, with the content type its kind gave it (a PNG for plots).
///
/// While the job is not finished, or when it failed or was cancelled, the answer is a 409 JSON
/// error saying so.
/// The course's `/results/{id}` and `/download/{id}` are this route.
#[utoipa::path(
    get, path = "/jobs/{id}/result", tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "The job's id (a hyphenated UUID)",
        example = "2d6f2c39-3f0a-4d6e-9a4e-2d1c8a7f5e10")),
    responses(
        (status = 200, description = "The result, with the content type its kind gave it: `image/png` for plots, `application/octet-stream` for bytes of no other type",
         content((inline(BinaryDoc) = "image/png"), (inline(BinaryDoc) = "application/octet-stream"))),
        (status = 400, description = "The id is not a hyphenated UUID (code invalid_job_id)", body = ErrorBody),
        (status = 404, description = "No job has this id: it never existed, was deleted, or expired", body = ErrorBody),
        (status = 409, description = "The job is not finished (code job_not_finished), failed (code job_failed, with the job's error in the message), or was cancelled (code job_cancelled)", body = ErrorBody),
        BackendDown,
    )
)]
pub(crate) async fn job_result(
    State(ctx): State<Ctx>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let id = parse_job_id(&id)?;
    match ctx.app.jobs.result(id).await? {
        None => Err(job_not_found(id)),
        Some(ResultState::Ready(output)) => {
            let content_type = HeaderValue::from_str(output.content_type())
                .unwrap_or(HeaderValue::from_static("application/octet-stream"));
            Ok(([(header::CONTENT_TYPE, content_type)], output.into_bytes()).into_response())
        }
        Some(ResultState::Failed(reason)) => Err(ApiError::JobFailed {
            id: id.to_string(),
            reason,
        }),
        Some(ResultState::Pending(status)) => Err(ApiError::JobNotFinished {
            id: id.to_string(),
            status,
        }),
        Some(ResultState::Cancelled) => Err(ApiError::JobCancelled { id: id.to_string() }),
    }
}

/// Cancel a job that waits or runs.
///
/// A waiting job is `cancelled` at once and never runs. A running job is `cancelled` at once
/// too: its worker hears of it at its next heartbeat (within a third of the lease), stops the
/// render and stores nothing. Cancelling a cancelled job answers it again; a job that is already
/// `complete` or `failed` cannot be cancelled (409).
#[utoipa::path(
    post, path = "/jobs/{id}/cancel", tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "The job's id (a hyphenated UUID)",
        example = "2d6f2c39-3f0a-4d6e-9a4e-2d1c8a7f5e10")),
    responses(
        (status = 200, description = "The job, now cancelled", body = JobDoc),
        (status = 400, description = "The id is not a hyphenated UUID (code invalid_job_id)", body = ErrorBody),
        (status = 404, description = "No job has this id: it never existed, was deleted, or expired", body = ErrorBody),
        (status = 409, description = "The job is already complete or failed (code conflict)", body = ErrorBody),
        BackendDown,
    )
)]
pub(crate) async fn cancel_job(
    State(ctx): State<Ctx>,
    base: BasePath,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let id = parse_job_id(&id)?;
    match ctx.app.jobs.cancel(id).await? {
        Some(job) => Ok(json_bytes(StatusCode::OK, job_json(&ctx, &base, &job)?)),
        None => Err(job_not_found(id)),
    }
}

/// Run a failed job again.
///
/// The job keeps its id and parameters, goes back to `submitted` with its attempts counted from
/// zero (its error and finish time cleared), and is leased ahead of the jobs submitted after it.
/// Only a `failed` job can be retried (409 otherwise).
#[utoipa::path(
    post, path = "/jobs/{id}/retry", tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "The job's id (a hyphenated UUID)",
        example = "2d6f2c39-3f0a-4d6e-9a4e-2d1c8a7f5e10")),
    responses(
        (status = 200, description = "The job, waiting again", body = JobDoc),
        (status = 400, description = "The id is not a hyphenated UUID (code invalid_job_id)", body = ErrorBody),
        (status = 404, description = "No job has this id: it never existed, was deleted, or expired", body = ErrorBody),
        (status = 409, description = "The job is not failed (code conflict)", body = ErrorBody),
        BackendDown,
    )
)]
pub(crate) async fn retry_job(
    State(ctx): State<Ctx>,
    base: BasePath,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let id = parse_job_id(&id)?;
    match ctx.app.jobs.retry(id).await? {
        Some(job) => Ok(json_bytes(StatusCode::OK, job_json(&ctx, &base, &job)?)),
        None => Err(job_not_found(id)),
    }
}

/// Course alias of `GET /jobs/{id}`, the id in the query (`/jobs_status` and `/job_status`).
#[utoipa::path(
    get,
    path = "/jobs_status",
    tag = "course aliases",
    params(JobIdQuery),
    responses(ShowJob, BackendDown)
)]
pub(crate) async fn jobs_status(
    State(ctx): State<Ctx>,
    base: BasePath,
    ApiQuery(query): ApiQuery<JobIdQuery>,
) -> Result<Response, ApiError> {
    show(&ctx, &base, &query.job_id).await
}

/// Course alias of `GET /jobs?status=complete` (and `/inprogress_jobs` of
/// `GET /jobs?status=in progress`).
#[utoipa::path(
    get,
    path = "/completed_jobs",
    tag = "course aliases",
    params(PageQuery),
    responses(JobPage, BackendDown)
)]
pub(crate) async fn jobs_in_status(
    State(ctx): State<Ctx>,
    base: BasePath,
    Extension(Alias { path, status }): Extension<Alias>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let list = ListQuery {
        before: cursor(query.before.as_deref())?,
        offset: offset(query.offset)?,
        limit: page_limit(query.limit)?,
        ..ListQuery::with_status(status)
    };
    let page = ctx.app.jobs.list(&list).await?;
    page_answer(
        &ctx,
        &base,
        path,
        &[("limit", list.limit.to_string())],
        page,
    )
}

/// Which listing an alias route serves: its path and status.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Alias {
    /// The alias's own path, for its next-page link.
    pub(crate) path: &'static str,
    /// The status it lists.
    pub(crate) status: JobStatus,
}

/// Course alias: jobs not finished yet (`submitted` and `in progress`), newest first.
#[utoipa::path(
    get,
    path = "/incomplete_jobs",
    tag = "course aliases",
    params(LimitQuery),
    responses(JobList, BackendDown)
)]
pub(crate) async fn incomplete_jobs(
    State(ctx): State<Ctx>,
    base: BasePath,
    ApiQuery(query): ApiQuery<LimitQuery>,
) -> Result<Response, ApiError> {
    let page = ctx.app.jobs.incomplete(page_limit(query.limit)?).await?;
    Ok(json_bytes(
        StatusCode::OK,
        jobs_json(&ctx, &base, &page.jobs)?,
    ))
}

async fn show(ctx: &Ctx, base: &BasePath, raw_id: &str) -> Result<Response, ApiError> {
    let id = parse_job_id(raw_id)?;
    match ctx.app.jobs.get(id).await? {
        Some(job) => Ok(json_bytes(StatusCode::OK, job_json(ctx, base, &job)?)),
        None => Err(job_not_found(id)),
    }
}

/// A page's answer: the jobs, and the next page's cursor and link when one follows.
fn page_answer(
    ctx: &Ctx,
    base: &BasePath,
    path: &str,
    query: &[(&str, String)],
    page: Page,
) -> Result<Response, ApiError> {
    let mut response = json_bytes(StatusCode::OK, jobs_json(ctx, base, &page.jobs)?);
    if let Some(next) = page.next {
        let headers: &mut HeaderMap = response.headers_mut();
        headers.insert(NEXT_CURSOR, HeaderValue::from(next.0));
        let mut link = format!("<{}{path}?before={next}", base.0);
        for (name, value) in query {
            link.push('&');
            link.push_str(name);
            link.push('=');
            link.push_str(&url_escape(value));
        }
        link.push_str(">; rel=\"next\"");
        if let Ok(link) = HeaderValue::from_str(&link) {
            headers.insert(header::LINK, link);
        }
    }
    Ok(response)
}

/// `value` with every byte but unreserved URL characters percent-encoded.
fn url_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = std::fmt::Write::write_fmt(&mut out, format_args!("%{byte:02X}"));
        }
    }
    out
}

/// A page size from the query: the default when absent, refused outside `1..=MAX_PAGE_SIZE`.
fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(ListQuery::default().limit),
        Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::InvalidQuery(format!(
            "limit must be between 1 and {MAX_PAGE_SIZE}, got {n}"
        ))),
    }
}

/// An offset from the query, refused past [`MAX_OFFSET`].
fn offset(offset: Option<usize>) -> Result<usize, ApiError> {
    match offset {
        None => Ok(0),
        Some(n) if n <= MAX_OFFSET => Ok(n),
        Some(n) => Err(ApiError::InvalidQuery(format!(
            "offset must be at most {MAX_OFFSET}, got {n}; follow the next link (before=) to \
             page deeper"
        ))),
    }
}

/// A cursor from the query.
fn cursor(before: Option<&str>) -> Result<Option<Cursor>, ApiError> {
    before
        .map(str::parse::<Cursor>)
        .transpose()
        .map_err(query_error)
}

/// A core error about a query parameter, as a query error (without the core's "invalid job
/// parameters" wording, which is about bodies).
fn query_error(e: Error) -> ApiError {
    match e {
        Error::InvalidParams(message) => ApiError::InvalidQuery(message),
        other => other.into(),
    }
}

/// A job id from a path or query parameter: a hyphenated UUID (see [`JobId`]'s `FromStr`).
pub(crate) fn parse_job_id(raw: &str) -> Result<JobId, ApiError> {
    raw.parse::<JobId>()
        .map_err(|_| ApiError::InvalidJobId(truncate_id(raw)))
}

/// The first 64 characters of a hostile id, with control characters escaped, for a message.
fn truncate_id(raw: &str) -> String {
    let mut s: String = raw.chars().take(64).collect();
    if raw.chars().nth(64).is_some() {
        s.push('…');
    }
    s.escape_debug().to_string()
}

fn job_not_found(id: JobId) -> ApiError {
    ApiError::NotFound(format!(
        "no job has id {id}; it never existed, was deleted, or expired"
    ))
}

/// The fields of a job's JSON; parameters shown at the top level never take these names.
const JOB_FIELDS: [&str; 19] = [
    "id",
    "kind",
    "queue",
    "status",
    "params",
    "max_attempts",
    "attempts",
    "worker",
    "created_at",
    "started_at",
    "finished_at",
    "error",
    "result_type",
    "unique_key",
    "timeout",
    "progress",
    "priority",
    "run_at",
    "result",
];

/// A job's JSON: the core `Job` as serialized, its parameters' fields at the top level too for
/// kinds that show them there, and `"result"`, where its result can be fetched.
fn job_json(ctx: &Ctx, base: &BasePath, job: &Job) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(448);
    write_job(&mut out, ctx, base, job)?;
    Ok(out)
}

fn jobs_json(ctx: &Ctx, base: &BasePath, jobs: &[Job]) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(2 + jobs.len() * 448);
    out.push(b'[');
    for (i, job) in jobs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_job(&mut out, ctx, base, job)?;
    }
    out.push(b']');
    Ok(out)
}

fn write_job(out: &mut Vec<u8>, ctx: &Ctx, base: &BasePath, job: &Job) -> Result<(), ApiError> {
    let internal =
        |e: serde_json::Error| ApiError::Internal(format!("cannot serialize job {}: {e}", job.id));
    serde_json::to_writer(&mut *out, job).map_err(internal)?;
    // A `Job` always serializes as an object: drop its closing brace and add fields.
    if out.last() != Some(&b'}') {
        return Err(ApiError::Internal(format!(
            "job {} did not serialize as a JSON object",
            job.id
        )));
    }
    out.pop();
    if ctx.app.jobs.kinds().params_at_top_level(&job.kind) {
        // Keys borrowed from the parameters' text when they hold no escape (the usual case),
        // else owned.
        let mut write_fields = |fields: &mut dyn Iterator<Item = (&str, &RawValue)>| {
            for (name, value) in fields {
                if !JOB_FIELDS.contains(&name) {
                    out.push(b',');
                    serde_json::to_writer(&mut *out, name).map_err(internal)?;
                    out.push(b':');
                    out.extend_from_slice(value.get().as_bytes());
                }
            }
            Ok::<(), ApiError>(())
        };
        let text = job.params.as_json();
        if let Ok(fields) = serde_json::from_str::<BTreeMap<&str, &RawValue>>(text) {
            write_fields(&mut fields.into_iter())?;
        } else if let Ok(fields) = serde_json::from_str::<BTreeMap<String, &RawValue>>(text) {
            write_fields(&mut fields.iter().map(|(k, v)| (k.as_str(), *v)))?;
        }
    }
    let _ = write!(out, ",\"result\":\"{}/jobs/{}/result\"}}", base.0, job.id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_limits_and_offsets_are_bounded() {
        assert_eq!(page_limit(None).unwrap(), 100);
        assert_eq!(page_limit(Some(1000)).unwrap(), 1000);
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(1001)).is_err());
        assert_eq!(offset(Some(MAX_OFFSET)).unwrap(), MAX_OFFSET);
        assert!(offset(Some(MAX_OFFSET + 1)).is_err());
    }

    #[test]
    fn hostile_ids_are_refused_with_a_bounded_message() {
        let e = parse_job_id(&"\0".repeat(10_000)).unwrap_err();
        assert_eq!(e.code(), "invalid_job_id");
        assert!(e.to_string().len() < 600);
    }

    #[test]
    fn bodies_name_a_kind_or_are_the_default_kinds_parameters() {
        let none = HeaderMap::new();
        let general = submit_request(
            &none,
            serde_json::json!({
                "kind": "thumb", "params": {"w": 1}, "queue": "img", "max_attempts": 2,
                "timeout": 30, "unique_key": "order-7"
            }),
        )
        .unwrap();
        assert_eq!(general.timeout, Some(30));
        assert_eq!(general.unique_key.as_deref(), Some("order-7"));
        assert_eq!(general.kind.as_deref(), Some("thumb"));
        assert_eq!(general.params, serde_json::json!({"w": 1}));
        assert_eq!(general.queue.unwrap().as_str(), "img");
        assert_eq!(general.max_attempts, Some(2));
        let mut keyed = HeaderMap::new();
        keyed.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("retry-1"));
        let course = submit_request(
            &keyed,
            serde_json::json!({"start": "1990", "end": 2000, "queue": "plots", "timeout": 5}),
        )
        .unwrap();
        assert_eq!(course.unique_key.as_deref(), Some("retry-1"));
        assert_eq!(course.timeout, Some(5));
        assert_eq!(course.kind, None);
        assert_eq!(
            course.params,
            serde_json::json!({"start": "1990", "end": 2000})
        );
        assert_eq!(course.queue.unwrap().as_str(), "plots");
        for bad in [
            serde_json::json!(["not an object"]),
            serde_json::json!({"kind": "k", "extra": 1}),
            serde_json::json!({"kind": 3}),
            serde_json::json!({"start": 1, "queue": "no way"}),
        ] {
            assert_eq!(
                submit_request(&none, bad).unwrap_err().code(),
                "invalid_body"
            );
        }
        let differing = serde_json::json!({"kind": "k", "unique_key": "other"});
        assert_eq!(
            submit_request(&keyed, differing).unwrap_err().code(),
            "invalid_body"
        );
    }
}
