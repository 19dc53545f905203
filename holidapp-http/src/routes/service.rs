//! Service routes: the visits log, help, health, readiness, metrics and the OpenAPI document.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{Ctx, json};
use crate::error::{ApiError, ErrorBody};
use crate::extract::BasePath;
use crate::schema::{BackendDown, Health, QueueDoc, Welcome, WorkerDoc};
use crate::state::Limits;

/// Record a visit (one line with the time) in this pod's visits log and say hello.
#[utoipa::path(
    get, path = "/", tag = "service",
    responses(
        (status = 200, description = "The visit was recorded (when the service keeps a visits log)", body = Welcome),
        (status = 500, description = "The visits log cannot be written", body = ErrorBody),
    )
)]
pub(crate) async fn index(State(ctx): State<Ctx>, base: BasePath) -> Result<Response, ApiError> {
    let line = format!(
        "{}\n",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    if let Some(path) = &ctx.app.visits_log {
        let _serialized = ctx.visits.lock().await;
        crate::visits::append(path, &line).await?;
    }
    json(
        StatusCode::OK,
        &Welcome {
            name: "holidapp",
            version: env!("CARGO_PKG_VERSION"),
            help: format!("{}/help", base.0),
            openapi: format!("{}/openapi.json", base.0),
        },
    )
}

/// This pod's newest visits: one line per `GET /`, oldest first, at most the last 64 KiB (the
/// log itself is rotated at 1 MiB).
#[utoipa::path(
    get, path = "/visits", tag = "service",
    responses(
        (status = 200, description = "The newest lines of the log (empty when nobody visited yet, or when the service keeps none)", content_type = "text/plain", body = String),
        (status = 500, description = "The visits log cannot be read", body = ErrorBody),
    )
)]
pub(crate) async fn visits(State(ctx): State<Ctx>) -> Result<Response, ApiError> {
    let Some(path) = &ctx.app.visits_log else {
        return Ok(text(Vec::new()));
    };
    Ok(text(crate::visits::tail(path).await?))
}

/// Every route with a one-line description.
#[utoipa::path(
    get, path = "/help", tag = "service",
    responses((status = 200, description = "The route list", content_type = "text/plain", body = String))
)]
pub(crate) async fn help(State(ctx): State<Ctx>) -> Response {
    text(ctx.help.clone())
}

/// Liveness: the process answers.
#[utoipa::path(
    get, path = "/healthz", tag = "service",
    responses((status = 200, description = "Alive", body = Health))
)]
pub(crate) async fn healthz() -> Result<Response, ApiError> {
    json(StatusCode::OK, &Health { status: "ok" })
}

/// Readiness: the backend answers.
#[utoipa::path(
    get, path = "/readyz", tag = "service",
    responses(
        (status = 200, description = "Ready", body = Health),
        BackendDown,
    )
)]
pub(crate) async fn readyz(State(ctx): State<Ctx>) -> Result<Response, ApiError> {
    ctx.app.jobs.store().ping().await?;
    json(StatusCode::OK, &Health { status: "ready" })
}

/// Prometheus metrics.
///
/// Requests by route and status, jobs submitted here by kind, and per queue the jobs by status
/// and the waiting jobs ready or delayed (read from the store at scrape time).
#[utoipa::path(
    get, path = "/metrics", tag = "service",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String))
)]
pub(crate) async fn metrics(State(ctx): State<Ctx>) -> Response {
    let mut out = String::with_capacity(4096);
    ctx.app.metrics.write_prometheus(&mut out);
    let stats = ctx.app.jobs.stats().await;
    if let Ok(stats) = &stats {
        out.push_str(
            "# HELP holidapp_jobs Jobs in the store, by queue and status.\n\
             # TYPE holidapp_jobs gauge\n",
        );
        for queue in stats {
            for status in holidapp_core::JobStatus::ALL {
                let _ = writeln!(
                    out,
                    "holidapp_jobs{{queue=\"{}\",status=\"{}\"}} {}",
                    queue.queue,
                    status.key_name(),
                    queue.counts.get(status)
                );
            }
        }
        out.push_str(
            "# HELP holidapp_queue_depth Jobs waiting in a queue, by whether they are leasable \
             now (ready) or waiting for their time: a delayed submit or a retry (delayed).\n\
             # TYPE holidapp_queue_depth gauge\n",
        );
        for queue in stats {
            let _ = write!(
                out,
                "holidapp_queue_depth{{queue=\"{0}\",state=\"ready\"}} {1}\n\
                 holidapp_queue_depth{{queue=\"{0}\",state=\"delayed\"}} {2}\n",
                queue.queue, queue.ready, queue.delayed
            );
        }
        out.push_str(
            "# HELP holidapp_queue_finished_total Jobs that ever finished in a queue, by outcome \
             (completed, or failed for good).\n\
             # TYPE holidapp_queue_finished_total counter\n",
        );
        for queue in stats {
            let _ = write!(
                out,
                "holidapp_queue_finished_total{{queue=\"{0}\",outcome=\"completed\"}} {1}\n\
                 holidapp_queue_finished_total{{queue=\"{0}\",outcome=\"failed\"}} {2}\n",
                queue.queue, queue.completed_total, queue.failed_total
            );
        }
    }
    let workers = ctx.app.jobs.workers().await;
    if let Ok(workers) = &workers {
        write_workers(&mut out, workers);
    }
    let _ = write!(
        out,
        "# HELP holidapp_backend_up Whether the backend answered this scrape.\n\
         # TYPE holidapp_backend_up gauge\n\
         holidapp_backend_up {}\n",
        u8::from(stats.is_ok() && workers.is_ok())
    );
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        out,
    )
        .into_response()
}

/// Every queue: counts, depth and throughput.
///
/// Each queue that has held a job, by name: its jobs per status, how many wait (leasable now or
/// for their time), the jobs that ever completed or failed in it, and its throughput between the
/// samples this process took of those counters (at most one per 5 s, over the last 10 minutes,
/// taken when this route is asked). The dashboard draws its charts from it.
#[utoipa::path(
    get, path = "/queues", tag = "jobs",
    responses(
        (status = 200, description = "Every queue, by name", body = Vec<QueueDoc>),
        BackendDown,
    )
)]
pub(crate) async fn queues(State(ctx): State<Ctx>) -> Result<Response, ApiError> {
    json(
        StatusCode::OK,
        &ctx.app.jobs.overview(&ctx.throughput).await?,
    )
}

/// The live workers.
///
/// Every worker process (and the API's embedded worker pool, without Redis) registers itself
/// and beats every 2 s with its identity, queues, concurrency and counters. A worker that stops
/// leaves at once; the entry of one that died (even by `kill -9`) is gone 6 s after its last
/// beat. Counters count since the worker started.
#[utoipa::path(
    get, path = "/workers", tag = "workers",
    responses(
        (status = 200, description = "The live workers, by id", body = Vec<WorkerDoc>),
        BackendDown,
    )
)]
pub(crate) async fn workers(State(ctx): State<Ctx>) -> Result<Response, ApiError> {
    json(StatusCode::OK, &ctx.app.jobs.workers().await?)
}

/// A Prometheus label value: backslashes, double quotes and line breaks escaped.
fn label(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(['\\', '"', '\n']) {
        value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
            .into()
    } else {
        value.into()
    }
}

/// The live workers' gauges and counters, for the metrics page.
fn write_workers(out: &mut String, workers: &[holidapp_core::WorkerInfo]) {
    let _ = write!(
        out,
        "# HELP holidapp_workers Live workers in the worker registry.\n\
         # TYPE holidapp_workers gauge\n\
         holidapp_workers {}\n\
         # HELP holidapp_worker_in_flight Jobs each live worker runs now.\n\
         # TYPE holidapp_worker_in_flight gauge\n",
        workers.len()
    );
    for w in workers {
        let _ = writeln!(
            out,
            "holidapp_worker_in_flight{{worker=\"{}\",identity=\"{}\"}} {}",
            label(&w.id),
            label(&w.identity),
            w.in_flight
        );
    }
    out.push_str(
        "# HELP holidapp_worker_jobs_total Jobs each live worker has ended since it started, by \
         outcome.\n\
         # TYPE holidapp_worker_jobs_total counter\n",
    );
    for w in workers {
        for (outcome, n) in [
            ("completed", w.completed),
            ("failed", w.failed),
            ("retried", w.retried),
        ] {
            let _ = writeln!(
                out,
                "holidapp_worker_jobs_total{{worker=\"{}\",identity=\"{}\",outcome=\"{outcome}\"}} {n}",
                label(&w.id),
                label(&w.identity),
            );
        }
    }
}

/// The OpenAPI 3 document of this API, generated from the handlers.
#[utoipa::path(
    get, path = "/openapi.json", tag = "service",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object))
)]
pub(crate) async fn openapi_json(State(ctx): State<Ctx>) -> Response {
    super::json_bytes(StatusCode::OK, ctx.openapi_json.clone())
}

fn text(body: impl Into<bytes::Bytes>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        body.into(),
    )
        .into_response()
}

/// The `GET /help` text: every route of the document with its summary, then the limits.
pub(crate) fn help_text(doc: &utoipa::openapi::OpenApi, limits: &Limits, plots: bool) -> String {
    let mut out = String::from("Holidapp API routes\n\n");
    for (path, item) in &doc.paths.paths {
        let operations = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ];
        for (method, operation) in operations {
            if let Some(operation) = operation {
                let summary = operation
                    .summary
                    .as_deref()
                    .unwrap_or("")
                    .replace('\n', " ");
                let _ = writeln!(out, "{method:<7} {path:<22} {summary}");
            }
        }
    }
    let _ = write!(
        out,
        "\nBody limits: POST /jobs {} bytes, {}other routes {} bytes.\n\
         Page sizes: GET /jobs up to {} (default {}){}.\n\
         Requests time out after {} s. Every error is JSON: \
         {{\"error\": {{\"status\", \"code\", \"message\"}}}}.\n\
         The OpenAPI document is at GET /openapi.json.\n",
        limits.jobs_body,
        if plots {
            format!("POST /data {} bytes, ", limits.data_body)
        } else {
            String::new()
        },
        limits.other_body,
        holidapp_core::store::MAX_PAGE_SIZE,
        holidapp_core::store::DEFAULT_PAGE_SIZE,
        if plots {
            format!(
                ", GET /data up to {} (default {})",
                limits.data_page_max, limits.data_page_default
            )
        } else {
            String::new()
        },
        limits.request_timeout.as_secs(),
    );
    out
}
