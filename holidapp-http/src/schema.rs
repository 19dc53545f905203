//! Shapes of the JSON the API sends and reads, for the OpenAPI document only.
//!
//! The core types (`Job`, `JobParams`) carry no OpenAPI derive, since the core knows nothing of
//! HTTP; these mirrors describe them. The test suite serializes real core values and checks
//! that every field they have is described here, so the mirrors cannot drift from the types.

#![allow(dead_code)]

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

/// What a job asks for. Unknown fields are refused.
#[derive(Serialize, ToSchema)]
#[schema(as = JobParams)]
pub(crate) struct JobParamsDoc {
    /// Start of the range: a year, as a string or an integer.
    #[schema(example = "1990")]
    start: String,
    /// End of the range, inclusive: a year, as a string or an integer.
    #[schema(example = "2000")]
    end: String,
    /// Renderer options, e.g. `{"kind": "categories", "field": "locus_group"}`.
    #[schema(value_type = Option<Object>)]
    plot: Option<serde_json::Value>,
}

/// A job as stored, plus where its result can be fetched.
#[derive(Serialize, ToSchema)]
#[schema(as = Job)]
pub(crate) struct JobDoc {
    /// The job's id, a UUID v4.
    #[schema(format = Uuid, example = "0b6f2c39-3f0a-4d6e-9a4e-2d1c8a7f5e10")]
    id: String,
    /// Where the job is in its life.
    status: StatusDoc,
    /// Start of the range.
    #[schema(example = "1990")]
    start: String,
    /// End of the range.
    #[schema(example = "2000")]
    end: String,
    /// Renderer options; absent when none were given.
    #[schema(value_type = Option<Object>)]
    plot: Option<serde_json::Value>,
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
    /// How many times a worker has taken it.
    attempts: u32,
    /// Why it failed (or why its last attempt failed, while it waits for a retry).
    error: Option<String>,
    /// Where the result (PNG) can be fetched once the job is complete.
    #[schema(example = "/jobs/0b6f2c39-3f0a-4d6e-9a4e-2d1c8a7f5e10/result")]
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
    pub(crate) help: &'static str,
    /// Where the OpenAPI document is.
    #[schema(example = "/openapi.json")]
    pub(crate) openapi: &'static str,
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
    /// The result.
    #[response(status = 200, content_type = "image/png")]
    Png(Vec<u8>),
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
    /// A page of jobs, newest first.
    #[response(status = 200)]
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
