//! The stored image: render a plot of the loaded data set, fetch it, delete it.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use holidapp_core::plot::PlotParams;

use super::data::plots;
use super::{Ctx, json, png};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiBytes, read_json};
use crate::schema::{BackendDown, BinaryDoc, ImageCreated, PlotParamsDoc};

/// Render a plot of the loaded data set and store it, replacing the stored one.
///
/// The optional JSON body holds the same parameters as a plot job (`start` not after `end`); with
/// no body, the plot covers the whole data set (a histogram of its years, or counts of its
/// categories when it has no year field). Rendering happens in the request, not on a worker,
/// over the same cached data set the plot jobs of this process use.
#[utoipa::path(
    post, path = "/image", tag = "image",
    request_body(content = PlotParamsDoc, content_type = "application/json",
                 description = "Optional plot parameters"),
    responses(
        (status = 201, description = "Rendered and stored", body = ImageCreated),
        (status = 400, description = "Malformed JSON (code malformed_json), wrong types or unknown fields (code invalid_body), or parameters the renderer refuses, such as a start after the end (code invalid_params)", body = ErrorBody),
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
    let params: Option<PlotParams> = if body.is_empty() {
        None
    } else {
        Some(read_json(&headers, &body)?)
    };
    let bytes = plots(&ctx)?.render_image(params).await?;
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
        (status = 200, description = "The image, a PNG",
         content((inline(BinaryDoc) = "image/png"), (inline(BinaryDoc) = "application/octet-stream"))),
        (status = 404, description = "No image is stored: POST /image first", body = ErrorBody),
        BackendDown,
    )
)]
pub(crate) async fn get_image(State(ctx): State<Ctx>) -> Result<Response, ApiError> {
    match plots(&ctx)?.images().get_image().await? {
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
    if plots(&ctx)?.images().delete_image().await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(no_image())
    }
}

fn no_image() -> ApiError {
    ApiError::NotFound("no image is stored; render one with POST /image".to_owned())
}
