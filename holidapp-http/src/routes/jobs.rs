//! Jobs: submit, list, show, delete, fetch the result; and the course's aliases.

use std::io::Write as _;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use holidapp_core::store::MAX_PAGE_SIZE;
use holidapp_core::{Error, Job, JobId, JobParams, JobStatus, ListQuery};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{Ctx, json_bytes, png};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::schema::{BackendDown, JobDoc, JobPage, JobParamsDoc, JobResult, ShowJob};

/// Query of `GET /jobs`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct JobListQuery {
    /// Only jobs in this status: `submitted`, `in progress` (or `in_progress`), `complete`,
    /// `failed`.
    status: Option<String>,
    /// How many of the newest matching jobs to skip (default 0).
    offset: Option<usize>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<usize>,
}

/// Query of the list aliases (`/completed_jobs`, ...).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// How many of the newest matching jobs to skip (default 0).
    offset: Option<usize>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<usize>,
}

/// Query of `/incomplete_jobs`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct LimitQuery {
    /// Page size, 1 to 1000 (default 100).
    limit: Option<usize>,
}

/// Query of `/jobs_status` and `/job_status`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct JobIdQuery {
    /// The job's id.
    job_id: String,
}

/// Submit a job: validate its parameters and queue it.
///
/// The parameters are checked by the same renderer the workers run; parameters it refuses get a
/// 400 that says what is wrong, and nothing is queued.
#[utoipa::path(
    post, path = "/jobs", tag = "jobs",
    request_body = JobParamsDoc,
    responses(
        (status = 201, description = "The job, queued", body = JobDoc,
         headers(("location" = String, description = "The job's URL, /jobs/{id}"))),
        (status = 400, description = "Malformed JSON, wrong types, missing or unknown fields, or parameters the renderer refuses", body = ErrorBody),
        (status = 413, description = "The body is over the route's limit (16 KiB by default)", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        BackendDown,
    )
)]
pub(crate) async fn submit_job(
    State(ctx): State<Ctx>,
    ApiJson(params): ApiJson<JobParams>,
) -> Result<Response, ApiError> {
    ctx.app.renderer.validate(&params)?;
    let job = Job::new(params, ctx.app.clock.now());
    ctx.app.backends.queue.enqueue(&job).await?;
    ctx.app.metrics.record_job_submitted();
    let mut location = Vec::with_capacity(42);
    // Writing to a Vec cannot fail.
    let _ = write!(location, "/jobs/{}", job.id);
    let location = HeaderValue::from_maybe_shared(bytes::Bytes::from(location))
        .map_err(|e| ApiError::Internal(format!("job location header: {e}")))?;
    let mut response = json_bytes(StatusCode::CREATED, job_json(&job)?);
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

/// List jobs, newest first, optionally of one status, one bounded page at a time.
#[utoipa::path(
    get,
    path = "/jobs",
    tag = "jobs",
    params(JobListQuery),
    responses(JobPage, BackendDown)
)]
pub(crate) async fn list_jobs(
    State(ctx): State<Ctx>,
    ApiQuery(query): ApiQuery<JobListQuery>,
) -> Result<Response, ApiError> {
    let status = match query.status.as_deref() {
        None => None,
        Some(s) => Some(s.parse::<JobStatus>().map_err(query_error)?),
    };
    let query = ListQuery {
        status,
        offset: query.offset.unwrap_or(0),
        limit: page_limit(query.limit)?,
    };
    list(&ctx, &query).await
}

/// Show one job.
#[utoipa::path(
    get, path = "/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job's id (a UUID)")),
    responses(ShowJob, BackendDown)
)]
pub(crate) async fn get_job(
    State(ctx): State<Ctx>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    show(&ctx, &id).await
}

/// Delete a job and its result.
///
/// A job a worker is running cannot be deleted.
#[utoipa::path(
    delete, path = "/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job's id (a UUID)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
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
    if ctx.app.backends.jobs.delete(id).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(job_not_found(id))
    }
}

/// Fetch a job's result, the PNG.
///
/// While the job is not finished, or when it failed, the answer is a 409 JSON error saying so.
#[utoipa::path(
    get, path = "/jobs/{id}/result", tag = "jobs",
    params(("id" = String, Path, description = "The job's id (a UUID)")),
    responses(JobResult, BackendDown)
)]
pub(crate) async fn job_result(
    State(ctx): State<Ctx>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    result(&ctx, &id).await
}

/// Course alias of `GET /jobs/{id}`.
#[utoipa::path(
    get,
    path = "/jobs_status",
    tag = "course aliases",
    params(JobIdQuery),
    responses(ShowJob, BackendDown)
)]
pub(crate) async fn jobs_status(
    State(ctx): State<Ctx>,
    ApiQuery(query): ApiQuery<JobIdQuery>,
) -> Result<Response, ApiError> {
    show(&ctx, &query.job_id).await
}

/// Course alias of `GET /jobs/{id}`.
#[utoipa::path(
    get,
    path = "/job_status",
    tag = "course aliases",
    params(JobIdQuery),
    responses(ShowJob, BackendDown)
)]
pub(crate) async fn job_status(
    State(ctx): State<Ctx>,
    ApiQuery(query): ApiQuery<JobIdQuery>,
) -> Result<Response, ApiError> {
    show(&ctx, &query.job_id).await
}

/// Course alias of `GET /jobs?status=complete`.
#[utoipa::path(
    get,
    path = "/completed_jobs",
    tag = "course aliases",
    params(PageQuery),
    responses(JobPage, BackendDown)
)]
pub(crate) async fn completed_jobs(
    State(ctx): State<Ctx>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    list_status(&ctx, JobStatus::Complete, query).await
}

/// Course alias: jobs not finished yet (`submitted` and `in progress`), newest first.
#[utoipa::path(
    get,
    path = "/incomplete_jobs",
    tag = "course aliases",
    params(LimitQuery),
    responses(JobPage, BackendDown)
)]
pub(crate) async fn incomplete_jobs(
    State(ctx): State<Ctx>,
    ApiQuery(query): ApiQuery<LimitQuery>,
) -> Result<Response, ApiError> {
    let limit = page_limit(query.limit)?;
    let jobs = &ctx.app.backends.jobs;
    let mut found = jobs
        .list(&ListQuery {
            status: Some(JobStatus::Submitted),
            offset: 0,
            limit,
        })
        .await?;
    found.extend(
        jobs.list(&ListQuery {
            status: Some(JobStatus::InProgress),
            offset: 0,
            limit,
        })
        .await?,
    );
    found.sort_by_key(|job| std::cmp::Reverse(job.created_at));
    found.truncate(limit);
    Ok(json_bytes(StatusCode::OK, jobs_json(&found)?))
}

/// Course alias of `GET /jobs?status=in progress`.
#[utoipa::path(
    get,
    path = "/inprogress_jobs",
    tag = "course aliases",
    params(PageQuery),
    responses(JobPage, BackendDown)
)]
pub(crate) async fn inprogress_jobs(
    State(ctx): State<Ctx>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    list_status(&ctx, JobStatus::InProgress, query).await
}

/// Course alias of `GET /jobs/{id}/result`.
#[utoipa::path(
    get, path = "/results/{id}", tag = "course aliases",
    params(("id" = String, Path, description = "The job's id (a UUID)")),
    responses(JobResult, BackendDown)
)]
pub(crate) async fn results(
    State(ctx): State<Ctx>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    result(&ctx, &id).await
}

/// Course alias of `GET /jobs/{id}/result`.
#[utoipa::path(
    get, path = "/download/{id}", tag = "course aliases",
    params(("id" = String, Path, description = "The job's id (a UUID)")),
    responses(JobResult, BackendDown)
)]
pub(crate) async fn download(
    State(ctx): State<Ctx>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    result(&ctx, &id).await
}

async fn show(ctx: &Ctx, raw_id: &str) -> Result<Response, ApiError> {
    let id = parse_job_id(raw_id)?;
    match ctx.app.backends.jobs.get(id).await? {
        Some(job) => Ok(json_bytes(StatusCode::OK, job_json(&job)?)),
        None => Err(job_not_found(id)),
    }
}

async fn result(ctx: &Ctx, raw_id: &str) -> Result<Response, ApiError> {
    let id = parse_job_id(raw_id)?;
    let jobs = &ctx.app.backends.jobs;
    let job = jobs.get(id).await?.ok_or_else(|| job_not_found(id))?;
    match job.status {
        JobStatus::Complete => match jobs.result(id).await? {
            Some(bytes) => Ok(png(bytes)),
            // The job expired between the two reads.
            None => Err(job_not_found(id)),
        },
        JobStatus::Failed => Err(ApiError::JobFailed {
            id: id.to_string(),
            reason: job
                .error
                .unwrap_or_else(|| "no reason was recorded".to_owned()),
        }),
        status => Err(ApiError::JobNotFinished {
            id: id.to_string(),
            status,
        }),
    }
}

async fn list_status(ctx: &Ctx, status: JobStatus, query: PageQuery) -> Result<Response, ApiError> {
    let query = ListQuery {
        status: Some(status),
        offset: query.offset.unwrap_or(0),
        limit: page_limit(query.limit)?,
    };
    list(ctx, &query).await
}

async fn list(ctx: &Ctx, query: &ListQuery) -> Result<Response, ApiError> {
    let found = ctx.app.backends.jobs.list(query).await?;
    Ok(json_bytes(StatusCode::OK, jobs_json(&found)?))
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

/// A core error about a query parameter, as a query error (without the core's "invalid job
/// parameters" wording, which is about bodies).
fn query_error(e: Error) -> ApiError {
    match e {
        Error::InvalidParams(message) => ApiError::InvalidQuery(message),
        other => other.into(),
    }
}

/// A job id from a path or query parameter.
pub(crate) fn parse_job_id(raw: &str) -> Result<JobId, ApiError> {
    uuid::Uuid::try_parse(raw)
        .map(JobId::from)
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

/// A job's JSON: the core `Job` as serialized, plus `"result"`, where its result can be
/// fetched.
fn job_json(job: &Job) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(384);
    write_job(&mut out, job)?;
    Ok(out)
}

fn jobs_json(jobs: &[Job]) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(2 + jobs.len() * 384);
    out.push(b'[');
    for (i, job) in jobs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_job(&mut out, job)?;
    }
    out.push(b']');
    Ok(out)
}

fn write_job(out: &mut Vec<u8>, job: &Job) -> Result<(), ApiError> {
    serde_json::to_writer(&mut *out, job)
        .map_err(|e| ApiError::Internal(format!("cannot serialize job {}: {e}", job.id)))?;
    // A `Job` always serializes as an object: drop its closing brace and add the field.
    if out.last() != Some(&b'}') {
        return Err(ApiError::Internal(format!(
            "job {} did not serialize as a JSON object",
            job.id
        )));
    }
    out.pop();
    let _ = write!(out, ",\"result\":\"/jobs/{}/result\"}}", job.id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_json_is_the_core_job_plus_its_result_url() {
        let job = Job::new(
            JobParams::new("1990", "2000").with_option("kind", "histogram"),
            chrono::Utc::now(),
        );
        let value: serde_json::Value = serde_json::from_slice(&job_json(&job).unwrap()).unwrap();
        let mut expected = serde_json::to_value(&job).unwrap();
        expected
            .as_object_mut()
            .unwrap()
            .insert("result".into(), format!("/jobs/{}/result", job.id).into());
        assert_eq!(value, expected);
        let list: serde_json::Value =
            serde_json::from_slice(&jobs_json(&[job.clone(), job]).unwrap()).unwrap();
        assert_eq!(list.as_array().unwrap().len(), 2);
        assert_eq!(list[1], expected);
    }

    #[test]
    fn page_limits_are_bounded() {
        assert_eq!(page_limit(None).unwrap(), 100);
        assert_eq!(page_limit(Some(1000)).unwrap(), 1000);
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(1001)).is_err());
    }

    #[test]
    fn hostile_ids_are_refused_with_a_bounded_message() {
        let e = parse_job_id(&"\0".repeat(10_000)).unwrap_err();
        assert_eq!(e.code(), "invalid_job_id");
        assert!(e.to_string().len() < 600);
    }
}
