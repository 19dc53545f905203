//! The stored image: render a plot of the loaded data set, fetch it, delete it.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use holidapp_core::{Error, JobParams};

use super::{Ctx, json, png};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiBytes, read_json};
use crate::schema::{BackendDown, ImageCreated, JobParamsDoc};

/// Render a plot of the loaded data set and store it, replacing the stored one.
///
/// The optional JSON body holds the same parameters as a job; with no body the configured
/// defaults are used. Rendering happens in the request, not on a worker.
#[utoipa::path(
    post, path = "/image", tag = "image",
    request_body(content = Option<JobParamsDoc>, content_type = "application/json",
                 description = "Optional plot parameters"),
    responses(
        (status = 201, description = "Rendered and stored", body = ImageCreated),
        (status = 400, description = "Malformed JSON, wrong types, unknown fields, or parameters the renderer refuses", body = ErrorBody),
        (status = 409, description = "No data set is loaded (code no_data): POST /data first", body = ErrorBody),
        (status = 413, description = "The body is over the route's limit (64 KiB by default)", body = ErrorBody),
        (status = 415, description = "A body not sent as application/json", body = ErrorBody),
        (status = 422, description = "The parameters select nothing drawable", body = ErrorBody),
        BackendDown,
    )
)]
pub(crate) async fn create_image(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Response, ApiError> {
    let params: JobParams = if body.is_empty() {
        ctx.app.image_params.clone()
    } else {
        read_json(&headers, &body)?
    };
    ctx.app.renderer.validate(&params)?;
    let backends = &ctx.app.backends;
    let (version, data) = backends.data.load().await?;
    if version == 0 || data.is_empty() {
        return Err(Error::NoData.into());
    }
    let image = ctx.app.renderer.render(data, &params).await?;
    let bytes = image.len();
    backends.images.put_image(Bytes::from(image)).await?;
    json(
        StatusCode::CREATED,
        &ImageCreated {
            image: "/image",
            bytes,
        },
    )
}

/// Fetch the stored image.
#[utoipa::path(
    get, path = "/image", tag = "image",
    responses(
        (status = 200, description = "The image", content_type = "image/png", body = Vec<u8>),
        (status = 404, description = "No image is stored: POST /image first", body = ErrorBody),
        BackendDown,
    )
)]
pub(crate) async fn get_image(State(ctx): State<Ctx>) -> Result<Response, ApiError> {
    match ctx.app.backends.images.get_image().await? {
        Some(bytes) => Ok(png(bytes)),
        None => Err(no_image()),
    }
}

/// Delete the stored image.
#[utoipa::path(
    delete, path = "/image", tag = "image",
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No image is stored", body = ErrorBody),
        BackendDown,
    )
)]
pub(crate) async fn delete_image(State(ctx): State<Ctx>) -> Result<Response, ApiError> {
    if ctx.app.backends.images.delete_image().await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(no_image())
    }
}

fn no_image() -> ApiError {
    ApiError::NotFound("no image is stored; render one with POST /image".to_owned())
}
