//! Axum's extractors with their rejections turned into [`ApiError`], so a malformed body, path
//! or query string gets the same JSON error shape as every other failure.

use std::convert::Infallible;

use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body (`content-type: application/json`), deserialized into `T`.
///
/// Unlike axum's `Json`, a body that is not JSON at all is always `malformed_json`, even when a
/// field's own deserializer reports the syntax error as a data error.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if crate::routes::body_kind(request.headers()) != crate::routes::BodyKind::Json {
            return Err(not_json());
        }
        let ApiBytes(body) = ApiBytes::from_request(request, state).await?;
        parse_json(&body).map(ApiJson)
    }
}

/// A JSON body (`content-type: application/json`) as a JSON value: `malformed_json` when it is
/// not JSON at all. For routes that read its shape themselves.
#[derive(Debug)]
pub struct JsonBody(pub serde_json::Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if crate::routes::body_kind(request.headers()) != crate::routes::BodyKind::Json {
            return Err(not_json());
        }
        let ApiBytes(body) = ApiBytes::from_request(request, state).await?;
        serde_json::from_slice(&body)
            .map(JsonBody)
            .map_err(|e| ApiError::MalformedJson(e.to_string()))
    }
}

/// The path the router is mounted under (`/api` when an app nests it there with
/// `Router::nest`; empty when it is not nested), so links the API answers (`Location`, a job's
/// `result`, `Link`) work wherever it is mounted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BasePath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for BasePath {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        let Some(OriginalUri(original)) = parts.extensions.get::<OriginalUri>() else {
            return Ok(BasePath::default());
        };
        let (original, inner) = (original.path(), parts.uri.path());
        // A nested router's own root (`/`) is the mount point itself (`/api`).
        let base = match original.strip_suffix(inner) {
            Some(base) => base,
            None if inner == "/" => original,
            None => "",
        };
        Ok(BasePath(base.trim_end_matches('/').to_owned()))
    }
}

fn not_json() -> ApiError {
    ApiError::UnsupportedMediaType(
        "this route reads a JSON body: send it with 'content-type: application/json'".to_owned(),
    )
}

/// Reads a JSON body sent as `application/json`, for routes whose body is optional.
pub(crate) fn read_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, ApiError> {
    if crate::routes::body_kind(headers) != crate::routes::BodyKind::Json {
        return Err(not_json());
    }
    parse_json(body)
}

/// Deserializes a JSON body, telling a body that is not JSON (`malformed_json`) from JSON of the
/// wrong shape (`invalid_body`).
fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        // Only on the error path: a field's own deserializer may report a syntax error as a data
        // error, so check the syntax apart.
        match serde_json::from_slice::<serde_json::Value>(body) {
            Err(syntax) => ApiError::MalformedJson(syntax.to_string()),
            Ok(_) => ApiError::InvalidBody(format!(
                "the JSON body does not have the expected shape: {e}"
            )),
        }
    })
}

/// Path parameters, deserialized into `T`.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// The query string, deserialized into `T`.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// The raw body, up to the route's body limit.
#[derive(Debug)]
pub struct ApiBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(request, state)
            .await
            .map(ApiBytes)
            .map_err(ApiError::from)
    }
}
