//! Shapes of the JSON the API sends and reads, for the OpenAPI document only.
//!
//! The core types (`Job`, `PlotParams`) carry no OpenAPI derive, since the core knows nothing of
//! HTTP; these mirrors describe them. The test suite serializes real core values and checks
//! that every field they have is described here, so the mirrors cannot drift from the types.

// The mirrors are never built: they exist for their derived schemas.
#![allow(dead_code, clippy::large_enum_variant)]

use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};

use crate::error::ErrorBody;

/// A job's status, as the course's API spells it.
#[derive(Serialize, ToSchema)]
#[schema(as = JobStatus)]
pub(crate) enum StatusDoc {
    /// Waiting in the queue (or for a retry).
    #[serde(rename = "submitted")]
    Submitted,
    /// A worker is rendering it.
    #[serde(rename = "in progress")]
    InProgress,
    /// Finished; the result can be fetched.
    #[serde(rename = "complete")]
    Complete,
    /// Finished without a result; `error` says why.
    #[serde(rename = "failed")]
    Failed,
}

/// The parameters of a plot job (the kind `plot`). Unknown fields are refused.
#[derive(Serialize, ToSchema)]
#[schema(as = PlotParams)]
pub(crate) struct PlotParamsDoc {
    /// Start of the range: a year, as a string or an integer.
    #[schema(example = "1990")]
    start: String,
    /// End of the range, inclusive: a year, as a string or an integer.
    #[schema(example = "2000")]
    end: String,
    /// Plot options, e.g. `{"kind": "categories", "field": "locus_group"}`.
    #[schema(value_type = Option<Object>)]
    plot: Option<serde_json::Value>,
}

/// A job of any registered kind.
#[derive(Serialize, ToSchema)]
#[schema(as = Submit)]
pub(crate) struct GeneralSubmitDoc {
    /// The job's kind: the name a renderer is registered under (`plot`, or a kind of your own).
    #[schema(example = "plot")]
    kind: String,
    /// The kind's parameters.
    #[schema(value_type = Object)]
    params: serde_json::Value,
    /// The queue the job waits in (`default` unless given): 1 to 64 ASCII letters, digits,
    /// `-`, `_` or `.`.
    #[schema(example = "default")]
    queue: Option<String>,
    /// Attempts allowed (1 to 1000; the service's `HOLIDAPP_MAX_ATTEMPTS` unless given).
    #[schema(minimum = 1, maximum = 1000)]
    max_attempts: Option<u32>,
}

/// The course's body: the parameters of a plot job, with the queue and attempt limit beside
/// them.
#[derive(Serialize, ToSchema)]
#[schema(as = PlotSubmit)]
pub(crate) struct CourseSubmitDoc {
    /// Start of the range: a year, as a string or an integer.
    #[schema(example = "1990")]
    start: String,
    /// End of the range, inclusive: a year, as a string or an integer.
    #[schema(example = "2000")]
    end: String,
    /// Plot options, e.g. `{"kind": "categories", "field": "locus_group"}`.
    #[schema(value_type = Option<Object>)]
    plot: Option<serde_json::Value>,
    /// The queue the job waits in (`default` unless given).
    queue: Option<String>,
    /// Attempts allowed (1 to 1000).
    #[schema(minimum = 1, maximum = 1000)]
    max_attempts: Option<u32>,
}

/// The body of `POST /jobs`: a job of any kind, or the course's plot parameters.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum SubmitDoc {
    /// `{"kind": ..., "params": {...}}`.
    General(GeneralSubmitDoc),
    /// `{"start": ..., "end": ...}`: a `plot` job.
    Course(CourseSubmitDoc),
}

/// A job as stored, plus where its result can be fetched. The parameters of a kind that shows
/// them at the top level (`plot`: `start`, `end`, `plot`) appear beside these fields too.
#[derive(Serialize, ToSchema)]
#[schema(as = Job)]
pub(crate) struct JobDoc {
    /// The job's id, a UUID v4.
    #[schema(format = Uuid, example = "2d6f2c39-3f0a-4d6e-9a4e-2d1c8a7f5e10")]
    id: String,
    /// The job's kind.
    #[schema(example = "plot")]
    kind: String,
    /// The queue it waits in.
    #[schema(example = "default")]
    queue: String,
    /// Where the job is in its life.
    status: StatusDoc,
    /// The kind's parameters.
    #[schema(value_type = Object)]
    params: serde_json::Value,
    /// Attempts allowed before the job is `failed`.
    max_attempts: u32,
    /// How many times a worker has taken it.
    attempts: u32,
    /// Identity (IP) of the worker that took the job last; absent until taken.
    worker: Option<String>,
    /// When the job was submitted (RFC 3339).
    #[schema(format = DateTime)]
    created_at: String,
    /// When its last attempt started.
    #[schema(format = DateTime)]
    started_at: Option<String>,
    /// When it reached `complete` or `failed`.
    #[schema(format = DateTime)]
    finished_at: Option<String>,
    /// Why it failed (or why its last attempt failed, while it waits for a retry).
    error: Option<String>,
    /// The content type of its result, once it is complete.
    #[schema(example = "image/png")]
    result_type: Option<String>,
    /// Where the result can be fetched once the job is complete.
    #[schema(example = "/jobs/2d6f2c39-3f0a-4d6e-9a4e-2d1c8a7f5e10/result")]
    result: String,
}

/// One record of the loaded data set: its fields as loaded.
#[derive(Serialize, ToSchema)]
#[schema(as = Record, value_type = Object)]
pub(crate) struct RecordDoc(serde_json::Value);

/// The answer of `POST /data`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Loaded {
    /// How many records the loaded data set holds.
    #[schema(example = 266)]
    pub(crate) loaded: u64,
}

/// The answer of `POST /image`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ImageCreated {
    /// Where the image can be fetched.
    #[schema(example = "/image")]
    pub(crate) image: &'static str,
    /// Its size in bytes.
    pub(crate) bytes: usize,
}

/// The answer of `GET /healthz` and `GET /readyz`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    /// `ok` (alive) or `ready` (the backend answers).
    #[schema(example = "ok")]
    pub(crate) status: &'static str,
}

/// The answer of `GET /`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Welcome {
    /// The service's name.
    #[schema(example = "holidapp")]
    pub(crate) name: &'static str,
    /// Its version.
    pub(crate) version: &'static str,
    /// Where the route list is.
    #[schema(example = "/help")]
    pub(crate) help: String,
    /// Where the OpenAPI document is.
    #[schema(example = "/openapi.json")]
    pub(crate) openapi: String,
}

/// The backend is unavailable (code `backend_unavailable`); try again shortly.
#[derive(IntoResponses)]
#[response(status = 503)]
pub(crate) struct BackendDown(ErrorBody);

/// The answers of the routes that show one job.
#[derive(IntoResponses)]
pub(crate) enum ShowJob {
    /// The job.
    #[response(status = 200)]
    Found(JobDoc),
    /// The id is missing or not a UUID (code `invalid_job_id`).
    #[response(status = 400)]
    BadId(ErrorBody),
    /// No job has this id: it never existed, was deleted, or expired.
    #[response(status = 404)]
    NotFound(ErrorBody),
}

/// The answers of the routes that fetch a job's result.
#[derive(IntoResponses)]
pub(crate) enum JobResult {
    /// The result, with the content type its kind gave it (`image/png` for plots).
    #[response(status = 200, content_type = "application/octet-stream")]
    Result(Vec<u8>),
    /// The id is not a UUID (code `invalid_job_id`).
    #[response(status = 400)]
    BadId(ErrorBody),
    /// No job has this id: it never existed, was deleted, or expired.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The job is not finished (code `job_not_finished`), or failed (code `job_failed`, with the
    /// job's error in the message).
    #[response(status = 409)]
    NotReady(ErrorBody),
}

/// The answers of the routes that list jobs.
#[derive(IntoResponses)]
pub(crate) enum JobPage {
    /// A page of jobs, newest first. When more follow, `x-next-cursor` holds their cursor and
    /// `link` the next page's URL.
    #[response(status = 200, headers(
        ("x-next-cursor" = String, description = "The cursor of the next page, when one follows"),
        ("link" = String, description = "The next page, when one follows"),
    ))]
    Page(Vec<JobDoc>),
    /// An unknown parameter, an unknown status, or a number out of range (code `invalid_query`).
    #[response(status = 400)]
    BadQuery(ErrorBody),
}

/// The answers of the routes that show one record.
#[derive(IntoResponses)]
pub(crate) enum ShowRecord {
    /// The record, its fields as loaded.
    #[response(status = 200)]
    Found(RecordDoc),
    /// The id is not valid UTF-8 (code `invalid_path`).
    #[response(status = 400)]
    BadId(ErrorBody),
    /// No record has this id.
    #[response(status = 404)]
    NotFound(ErrorBody),
}
