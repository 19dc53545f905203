//! The routes: one module per area, each handler a thin call into `holidapp-core`.
//!
//! Every handler carries a `#[utoipa::path]` attribute and is registered with
//! [`utoipa_axum::routes!`], which adds it to the router *and* to the OpenAPI document in the
//! same call: a route cannot be served without being documented, nor documented without being
//! served.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Extension};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use holidapp_core::JobStatus;
use serde::Serialize;
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::middleware::RequestIds;
use crate::state::{AppState, Limits};

pub(crate) mod data;
mod document;
pub(crate) mod events;
pub(crate) mod image;
pub(crate) mod jobs;
pub(crate) mod service;
mod ui;

pub(crate) use document::{DocumentConfig, finish_document};

/// What every handler reads: the caller's [`AppState`] plus what the router derives from it
/// once. Handlers get it as one `Arc`, so a request clones one pointer, not every backend.
pub(crate) struct Shared {
    pub(crate) app: AppState,
    /// `GET /openapi.json`, serialized once.
    pub(crate) openapi_json: Bytes,
    /// `GET /help`, rendered once from the OpenAPI document.
    pub(crate) help: Bytes,
    /// Serializes appends to the visits log, so lines never interleave. A tokio mutex: it is
    /// held across the file write's await.
    pub(crate) visits: tokio::sync::Mutex<()>,
    /// Makes request ids for requests that come without one.
    pub(crate) request_ids: RequestIds,
    /// One permit per event stream (`GET /events`) open at once, up to
    /// [`Limits::event_streams`].
    pub(crate) event_streams: Arc<tokio::sync::Semaphore>,
    /// The samples of the queues' counters `GET /queues` computes throughput from.
    pub(crate) throughput: holidapp_core::throughput::Throughput,
}

/// The state handlers are given.
pub(crate) type Ctx = Arc<Shared>;

/// The document's fixed parts; paths and schemas are added by `routes!`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Holidapp API",
        description = "Submit jobs of any registered kind, follow them, and fetch their \
                       results; load data sets and render plots of them.",
    ),
    tags(
        (name = "jobs", description = "Submit jobs, follow them, fetch their results"),
        (name = "course aliases", description = "Routes the course's clients already use"),
        (name = "data", description = "Load, read and delete the data set"),
        (name = "image", description = "Render, fetch and delete the stored plot"),
        (name = "workers", description = "The live workers"),
        (name = "service", description = "Health, metrics, help and the visits log"),
    ),
    components(schemas(
        crate::error::ErrorBody,
        crate::schema::JobDoc,
        crate::routes::events::EventData,
        crate::schema::BatchDoc,
        crate::schema::OneSubmitDoc,
        crate::schema::RecordDoc,
        crate::schema::YearDoc,
        crate::schema::FieldNameDoc,
        crate::schema::TitleDoc,
        crate::schema::QueueNameDoc,
        crate::schema::UniqueKeyDoc,
        crate::schema::CursorDoc,
        crate::schema::RecordIdDoc,
        crate::schema::HgncGeneDoc,
        crate::schema::MeteoriteLandingDoc,
        crate::schema::HgncDataSetDoc,
        crate::schema::MeteoriteDataSetDoc,
    ))
)]
struct ApiDoc;

/// Every route, with its body limit, as an [`OpenApiRouter`]: the job routes and the service
/// routes, and the plot product's routes when `plots` is set. The course's aliases of job routes
/// are routed to the same handlers; [`finish_document`] adds them to the document.
pub(crate) fn api_routes(limits: &Limits, plots: bool) -> OpenApiRouter<Ctx> {
    let small = limits.other_body;
    let alias = |path: &'static str, status| Extension(jobs::Alias { path, status });
    let mut router = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(body_limit(
            routes!(jobs::submit_job, jobs::list_jobs),
            limits.jobs_body,
        ))
        .routes(body_limit(routes!(jobs::get_job, jobs::delete_job), small))
        .routes(body_limit(routes!(jobs::job_result), small))
        .routes(body_limit(routes!(jobs::cancel_job), small))
        .routes(body_limit(routes!(jobs::retry_job), small))
        .routes(body_limit(routes!(events::events), small))
        .routes(body_limit(routes!(jobs::jobs_status), small))
        .routes(layered(
            body_limit(routes!(jobs::jobs_in_status), small),
            alias("/completed_jobs", JobStatus::Complete),
        ))
        .routes(body_limit(routes!(jobs::incomplete_jobs), small))
        .route(
            "/results/{id}",
            get(jobs::job_result).layer(DefaultBodyLimit::max(small)),
        )
        .route(
            "/download/{id}",
            get(jobs::job_result).layer(DefaultBodyLimit::max(small)),
        )
        .route(
            "/job_status",
            get(jobs::jobs_status).layer(DefaultBodyLimit::max(small)),
        )
        .route(
            "/inprogress_jobs",
            get(jobs::jobs_in_status)
                .layer::<_, std::convert::Infallible>(alias(
                    "/inprogress_jobs",
                    JobStatus::InProgress,
                ))
                .layer(DefaultBodyLimit::max(small)),
        )
        .routes(body_limit(routes!(service::index), small))
        .routes(body_limit(routes!(service::visits), small))
        .routes(body_limit(routes!(service::help), small))
        .routes(body_limit(routes!(service::healthz), small))
        .routes(body_limit(routes!(service::readyz), small))
        .routes(body_limit(routes!(service::metrics), small))
        .routes(body_limit(routes!(service::workers), small))
        .routes(body_limit(routes!(service::queues), small))
        .routes(body_limit(routes!(service::openapi_json), small))
        .route("/ui", get(ui::page).layer(DefaultBodyLimit::max(small)))
        .route(
            "/ui/app.js",
            get(ui::script).layer(DefaultBodyLimit::max(small)),
        )
        .route(
            "/ui/app.css",
            get(ui::style).layer(DefaultBodyLimit::max(small)),
        );
    if plots {
        router = router
            .routes(body_limit(
                routes!(data::load_data, data::list_data, data::delete_data),
                limits.data_body,
            ))
            .routes(body_limit(routes!(data::get_record), small))
            .routes(body_limit(routes!(data::list_genes), small))
            .routes(body_limit(routes!(data::get_gene), small))
            .routes(body_limit(
                routes!(image::create_image, image::get_image, image::delete_image),
                small,
            ));
    }
    router
}

/// Adds `layer` to the method router of a documented route.
fn layered<L>(routes: UtoipaMethodRouter<Ctx>, layer: L) -> UtoipaMethodRouter<Ctx>
where
    L: tower::Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
    L::Service: tower::Service<axum::extract::Request> + Clone + Send + Sync + 'static,
    <L::Service as tower::Service<axum::extract::Request>>::Response: IntoResponse + 'static,
    <L::Service as tower::Service<axum::extract::Request>>::Error:
        Into<std::convert::Infallible> + 'static,
    <L::Service as tower::Service<axum::extract::Request>>::Future: Send + 'static,
{
    let (schemas, paths, method_router) = routes;
    (schemas, paths, method_router.layer(layer))
}

/// Sets the largest body the routes of one path accept.
fn body_limit(routes: UtoipaMethodRouter<Ctx>, limit: usize) -> UtoipaMethodRouter<Ctx> {
    let (schemas, paths, method_router) = routes;
    (
        schemas,
        paths,
        method_router.layer(DefaultBodyLimit::max(limit)),
    )
}

/// Builds the shared state the handlers read.
pub(crate) fn shared(app: AppState, doc: &utoipa::openapi::OpenApi) -> Shared {
    // The document holds only strings, maps and numbers: serializing it cannot fail.
    let openapi_json = serde_json::to_vec(doc).unwrap_or_default();
    let help = service::help_text(doc, &app.limits, app.plots.is_some());
    let event_streams = Arc::new(tokio::sync::Semaphore::new(app.limits.event_streams));
    Shared {
        app,
        openapi_json: Bytes::from(openapi_json),
        help: Bytes::from(help),
        visits: tokio::sync::Mutex::new(()),
        request_ids: RequestIds::new(),
        event_streams,
        throughput: holidapp_core::throughput::Throughput::default(),
    }
}

/// Registers the documented route templates, and the dashboard's, with the metrics.
pub(crate) fn register_routes(metrics: &Metrics, doc: &utoipa::openapi::OpenApi) {
    let dashboard = ["/ui", "/ui/app.js", "/ui/app.css"].map(str::to_owned);
    metrics.register_routes(doc.paths.paths.keys().cloned().chain(dashboard));
}

/// A JSON answer with `status`.
pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(value)
        .map_err(|e| ApiError::Internal(format!("cannot serialize an answer: {e}")))?;
    Ok(json_bytes(status, body))
}

/// An already serialized JSON answer with `status`.
pub(crate) fn json_bytes(status: StatusCode, body: impl Into<Bytes>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.into(),
    )
        .into_response()
}

/// A PNG answer.
pub(crate) fn png(body: Bytes) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("image/png"))],
        body,
    )
        .into_response()
}

/// What a request body is, by its content type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// `application/json` or `application/*+json`.
    Json,
    /// `text/tab-separated-values` or `text/plain`.
    Text,
    /// `application/octet-stream`: bytes of no declared format.
    Bytes,
    /// Anything else, or no content type.
    Other,
}

/// Classifies a body by its `content-type` header (parameters such as `charset` are ignored).
pub(crate) fn body_kind(headers: &axum::http::HeaderMap) -> BodyKind {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return BodyKind::Other;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let is = |name: &str| essence.eq_ignore_ascii_case(name);
    let has = |at: std::ops::Range<usize>, part: &str| {
        essence
            .as_bytes()
            .get(at)
            .is_some_and(|b| b.eq_ignore_ascii_case(part.as_bytes()))
    };
    let len = essence.len();
    let structured_json = has(0..12, "application/") && len > 17 && has(len - 5..len, "+json");
    if is("application/json") || structured_json {
        BodyKind::Json
    } else if is("text/tab-separated-values") || is("text/plain") {
        BodyKind::Text
    } else if is("application/octet-stream") {
        BodyKind::Bytes
    } else {
        BodyKind::Other
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    use super::*;

    fn kind(content_type: &str) -> BodyKind {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        body_kind(&headers)
    }

    #[test]
    fn bodies_are_classified_by_their_media_type() {
        assert_eq!(kind("application/json"), BodyKind::Json);
        assert_eq!(kind("Application/JSON; charset=utf-8"), BodyKind::Json);
        assert_eq!(kind("application/vnd.api+json"), BodyKind::Json);
        assert_eq!(kind("application/+json"), BodyKind::Other);
        assert_eq!(kind("text/json+json"), BodyKind::Other);
        assert_eq!(kind("text/plain"), BodyKind::Text);
        assert_eq!(kind("TEXT/TAB-SEPARATED-VALUES"), BodyKind::Text);
        assert_eq!(kind("text/csv"), BodyKind::Other);
        assert_eq!(kind("Application/Octet-Stream"), BodyKind::Bytes);
        assert_eq!(kind("application/jsonx"), BodyKind::Other);
        assert_eq!(body_kind(&HeaderMap::new()), BodyKind::Other);
    }
}
