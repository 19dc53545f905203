//! [`ApiError`]: every way a request can fail, mapped to a status code and one JSON body shape
//! in one place ([`ApiError::status`], [`ApiError::code`] and the [`IntoResponse`] impl).
//!
//! Every error body looks like this:
//!
//! ```json
//! {"error": {"status": 400, "code": "invalid_params", "message": "start: expected a year, got 'abc'"}}
//! ```
//!
//! `code` is a stable machine-readable name; `message` is for a person. A 500 answer carries a
//! generic message: the real error travels to the logging middleware in a response extension
//! ([`ErrorDetail`]) and is logged there with the request id, never written into the body.

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use holidapp_core::{Error, JobStatus};
use serde::Serialize;

/// The longest message (in characters) an error body carries; longer ones are cut, so hostile
/// input echoed in a parser's message cannot make answers large.
const MAX_MESSAGE_CHARS: usize = 300;

/// Every `code` an error body may carry ([`ApiError::code`]), as the OpenAPI document lists them.
pub const ERROR_CODES: [&str; 28] = [
    "invalid_params",
    "invalid_body",
    "unknown_kind",
    "malformed_json",
    "invalid_data",
    "no_data",
    "not_found",
    "conflict",
    "illegal_transition",
    "quota_exceeded",
    "data_too_large",
    "render_failed",
    "backend_unavailable",
    "data_source_failed",
    "internal",
    "unsupported_media_type",
    "payload_too_large",
    "invalid_path",
    "invalid_job_id",
    "invalid_query",
    "route_not_found",
    "method_not_allowed",
    "job_not_finished",
    "job_failed",
    "job_cancelled",
    "timeout",
    "unauthorized",
    "too_many_streams",
];

/// Everything that can go wrong while answering a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// An error from the core layer (see [`ApiError::status`] for its mapping).
    #[error(transparent)]
    Core(#[from] Error),
    /// The body is not valid JSON.
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    /// The body is JSON but not of the expected shape (wrong types, missing or unknown fields).
    #[error("{0}")]
    InvalidBody(String),
    /// The body's content type is not one this route reads.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body is larger than this route accepts.
    #[error("the body is larger than this route accepts; GET /help lists the body limits")]
    PayloadTooLarge,
    /// A path parameter cannot be read (not UTF-8, wrong type).
    #[error("{0}")]
    InvalidPath(String),
    /// A job id that is not a UUID.
    #[error(
        "'{0}' is not a valid job id (a hyphenated UUID such as \
         0b6f2c39-3f0a-4d6e-9a4e-2d1c8a7f5e10)"
    )]
    InvalidJobId(String),
    /// The query string cannot be read (wrong types, unknown parameters, out of range).
    #[error("{0}")]
    InvalidQuery(String),
    /// No route has this path.
    #[error("no route for {0}; GET /help lists the routes")]
    RouteNotFound(String),
    /// The route exists but not with this method.
    #[error("method {0} is not allowed here; GET /help lists the routes and their methods")]
    MethodNotAllowed(String),
    /// A named thing does not exist; the message says what and what to do.
    #[error("{0}")]
    NotFound(String),
    /// The job's result was asked for before the job finished.
    #[error("job {id} is '{status}', not complete yet; poll GET /jobs/{id} until it is")]
    JobNotFinished {
        /// The job.
        id: String,
        /// Its current status.
        status: JobStatus,
    },
    /// The job's result was asked for but the job failed.
    #[error("job {id} failed: {reason}")]
    JobFailed {
        /// The job.
        id: String,
        /// Why it failed, as recorded on the job.
        reason: String,
    },
    /// The job's result was asked for but the job was cancelled.
    #[error("job {id} was cancelled; it has no result")]
    JobCancelled {
        /// The job.
        id: String,
    },
    /// The request took longer than the server's request timeout.
    #[error("the request took longer than {0:?} and was abandoned")]
    Timeout(std::time::Duration),
    /// Every event stream this server offers is open already.
    #[error("too many event streams are open on this server; try again later")]
    TooManyStreams,
    /// The route needs a token the request did not carry (see [`crate::auth`]).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// A handler panicked. The detail is logged, never sent.
    #[error("a handler panicked: {0}")]
    Panic(String),
    /// A server-side failure outside the core layer (e.g. writing the visits log).
    #[error("internal error: {0}")]
    Internal(String),
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorInfo,
}

/// What went wrong.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorInfo {
    /// The HTTP status code, repeated for clients that only see the body.
    #[schema(example = 400, minimum = 400, maximum = 599)]
    pub status: u16,
    /// A stable machine-readable name of the error, one of [`ERROR_CODES`].
    #[schema(schema_with = error_code_schema)]
    pub code: Cow<'static, str>,
    /// What went wrong and what to do, for a person.
    #[schema(example = "invalid job parameters: start must be a year, got 'abc'")]
    pub message: String,
}

/// The schema of [`ErrorInfo::code`]: one of [`ERROR_CODES`].
fn error_code_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(ERROR_CODES))
        .description(Some("A stable machine-readable name of the error."))
        .examples(["invalid_params"])
        .build()
}

/// The real cause of a server-side error (5xx), carried in the response's extensions to the
/// logging middleware, which logs it with the request id.
#[derive(Clone, Debug)]
pub struct ErrorDetail(pub Arc<str>);

impl ApiError {
    /// The status code of this error. The one place where errors become status codes.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Core(e) => match e {
                Error::InvalidParams(_)
                | Error::ParamsShape(_)
                | Error::UnknownKind { .. }
                | Error::MalformedJson(_)
                | Error::InvalidData(_) => StatusCode::BAD_REQUEST,
                Error::NoData => StatusCode::CONFLICT,
                Error::NotFound(_) => StatusCode::NOT_FOUND,
                Error::Conflict(_) | Error::IllegalTransition { .. } => StatusCode::CONFLICT,
                Error::QuotaExceeded(_) => StatusCode::TOO_MANY_REQUESTS,
                Error::DataTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                Error::Render(_) => StatusCode::UNPROCESSABLE_ENTITY,
                Error::Unavailable(_) | Error::Transient(_) => StatusCode::SERVICE_UNAVAILABLE,
                Error::Source(_) => StatusCode::BAD_GATEWAY,
                Error::LeaseLost | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::MalformedJson(_)
            | ApiError::InvalidBody(_)
            | ApiError::InvalidPath(_)
            | ApiError::InvalidJobId(_)
            | ApiError::InvalidQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RouteNotFound(_) | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::JobNotFinished { .. }
            | ApiError::JobFailed { .. }
            | ApiError::JobCancelled { .. } => StatusCode::CONFLICT,
            ApiError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::TooManyStreams => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Panic(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable name of this error, the `code` of the body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Core(e) => match e {
                Error::InvalidParams(_) => "invalid_params",
                Error::ParamsShape(_) => "invalid_body",
                Error::UnknownKind { .. } => "unknown_kind",
                Error::MalformedJson(_) => "malformed_json",
                Error::InvalidData(_) => "invalid_data",
                Error::NoData => "no_data",
                Error::NotFound(_) => "not_found",
                Error::Conflict(_) => "conflict",
                Error::IllegalTransition { .. } => "illegal_transition",
                Error::QuotaExceeded(_) => "quota_exceeded",
                Error::DataTooLarge(_) => "data_too_large",
                Error::Render(_) => "render_failed",
                Error::Unavailable(_) | Error::Transient(_) => "backend_unavailable",
                Error::Source(_) => "data_source_failed",
                Error::LeaseLost | Error::Internal(_) => "internal",
            },
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::InvalidBody(_) => "invalid_body",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::InvalidPath(_) => "invalid_path",
            ApiError::InvalidJobId(_) => "invalid_job_id",
            ApiError::InvalidQuery(_) => "invalid_query",
            ApiError::RouteNotFound(_) => "route_not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::NotFound(_) => "not_found",
            ApiError::JobNotFinished { .. } => "job_not_finished",
            ApiError::JobFailed { .. } => "job_failed",
            ApiError::JobCancelled { .. } => "job_cancelled",
            ApiError::Timeout(_) => "timeout",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::TooManyStreams => "too_many_streams",
            ApiError::Panic(_) | ApiError::Internal(_) => "internal",
        }
    }

    /// The message a client sees: the error's own text, except for server-side failures, whose
    /// text may hold internals (addresses, file paths, backend replies) and is replaced.
    fn public_message(&self) -> String {
        match self {
            ApiError::Core(Error::Unavailable(_) | Error::Transient(_)) => {
                "the backend is unavailable; try again in a few seconds".to_owned()
            }
            // The source's own error may name hosts and paths of the server's network: it is
            // logged, never sent.
            ApiError::Core(Error::Source(_)) => "the configured data source (DATA_SOURCE) could \
                 not be read; the server log has the details under this answer's x-request-id"
                .to_owned(),
            // They name only the request's own duration, or nothing internal.
            ApiError::Timeout(_) | ApiError::TooManyStreams => truncate(&self.to_string()),
            _ if self.status().is_server_error() => "internal server error; the server log has \
                 the details under this answer's x-request-id"
                .to_owned(),
            _ => truncate(&self.to_string()),
        }
    }
}

/// Cuts `s` to [`MAX_MESSAGE_CHARS`] characters.
pub(crate) fn truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

impl ApiError {
    /// The body this error is answered with.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorInfo {
                status: self.status().as_u16(),
                code: Cow::Borrowed(self.code()),
                message: self.public_message(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = self.body();
        // Serializing this struct cannot fail: it holds only strings and a number.
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (status, json).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"holidapp\""),
            );
        }
        if status.is_server_error() {
            response
                .extensions_mut()
                .insert(ErrorDetail(Arc::from(self.to_string())));
        }
        response
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::InvalidBody(format!(
                "the body could not be read: {}",
                rejection.body_text()
            ))
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::InvalidPath(match rejection {
            PathRejection::FailedToDeserializePathParams(e) => e.body_text(),
            other => other.body_text(),
        })
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::InvalidQuery(match rejection {
            QueryRejection::FailedToDeserializeQueryString(e) => {
                format!("the query string is not valid here: {}", source_text(&e))
            }
            other => other.body_text(),
        })
    }
}

/// The innermost message of a rejection (serde's own words), without axum's generic prefix.
fn source_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_never_show_their_text() {
        for e in [
            ApiError::Core(Error::Internal("secret at 10.0.0.7".into())),
            ApiError::Core(Error::LeaseLost),
            ApiError::Core(Error::Unavailable(
                "connection refused 10.0.0.7:6379".into(),
            )),
            ApiError::Panic("index out of bounds in secret.rs".into()),
            ApiError::Internal("/var/lib/secret: permission denied".into()),
            ApiError::Core(Error::Source(
                "cannot GET http://10.0.0.7/secret: connection refused".into(),
            )),
        ] {
            assert!(e.status().is_server_error());
            let message = e.public_message();
            assert!(!message.contains("secret"), "{message}");
            assert!(!message.contains("10.0.0.7"), "{message}");
        }
    }

    #[test]
    fn long_messages_are_cut() {
        let e = ApiError::InvalidBody("x".repeat(100_000));
        assert!(e.public_message().chars().count() <= MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn core_errors_map_to_their_documented_statuses() {
        let cases = [
            (Error::InvalidParams(String::new()), 400),
            (Error::ParamsShape(String::new()), 400),
            (
                Error::UnknownKind {
                    kind: "x".into(),
                    known: vec!["plot".into()],
                },
                400,
            ),
            (Error::MalformedJson(String::new()), 400),
            (Error::InvalidData(String::new()), 400),
            (Error::NoData, 409),
            (Error::NotFound(String::new()), 404),
            (Error::Conflict(String::new()), 409),
            (
                Error::IllegalTransition {
                    from: JobStatus::Complete,
                    event: "Lease".into(),
                },
                409,
            ),
            (Error::Render(String::new()), 422),
            (Error::QuotaExceeded(String::new()), 429),
            (Error::DataTooLarge(String::new()), 413),
            (Error::Unavailable(String::new()), 503),
            (Error::Transient(String::new()), 503),
            (Error::Source(String::new()), 502),
            (Error::LeaseLost, 500),
            (Error::Internal(String::new()), 500),
        ];
        for (error, status) in cases {
            assert_eq!(ApiError::Core(error).status().as_u16(), status);
        }
    }

    #[test]
    fn every_code_is_listed_once() {
        let core = [
            Error::InvalidParams(String::new()),
            Error::ParamsShape(String::new()),
            Error::UnknownKind {
                kind: "x".into(),
                known: vec![],
            },
            Error::MalformedJson(String::new()),
            Error::InvalidData(String::new()),
            Error::NoData,
            Error::NotFound(String::new()),
            Error::Conflict(String::new()),
            Error::IllegalTransition {
                from: JobStatus::Complete,
                event: "Lease".into(),
            },
            Error::QuotaExceeded(String::new()),
            Error::DataTooLarge(String::new()),
            Error::Render(String::new()),
            Error::Unavailable(String::new()),
            Error::Transient(String::new()),
            Error::Source(String::new()),
            Error::LeaseLost,
            Error::Internal(String::new()),
        ];
        let http = [
            ApiError::MalformedJson(String::new()),
            ApiError::InvalidBody(String::new()),
            ApiError::UnsupportedMediaType(String::new()),
            ApiError::PayloadTooLarge,
            ApiError::InvalidPath(String::new()),
            ApiError::InvalidJobId(String::new()),
            ApiError::InvalidQuery(String::new()),
            ApiError::RouteNotFound(String::new()),
            ApiError::MethodNotAllowed(String::new()),
            ApiError::NotFound(String::new()),
            ApiError::JobNotFinished {
                id: String::new(),
                status: JobStatus::Submitted,
            },
            ApiError::JobFailed {
                id: String::new(),
                reason: String::new(),
            },
            ApiError::JobCancelled { id: String::new() },
            ApiError::Timeout(std::time::Duration::from_secs(1)),
            ApiError::Unauthorized(""),
            ApiError::TooManyStreams,
            ApiError::Panic(String::new()),
            ApiError::Internal(String::new()),
        ];
        let codes: std::collections::BTreeSet<&str> = core
            .into_iter()
            .map(ApiError::Core)
            .chain(http)
            .map(|e| e.code())
            .collect();
        let listed: std::collections::BTreeSet<&str> = ERROR_CODES.into_iter().collect();
        assert_eq!(codes, listed);
        assert_eq!(listed.len(), ERROR_CODES.len());
    }
}
