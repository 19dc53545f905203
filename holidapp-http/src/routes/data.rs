//! The data set: load, page through, look up, delete; and the HGNC aliases.

use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use holidapp_core::plot::{DataBody, Plots, Record};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{Ctx, json};
use crate::auth::Authorized;
use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::extract::ApiBytes;
use crate::routes::{BodyKind, body_kind};
use crate::schema::{BackendDown, BinaryDoc, DataSetDoc, Loaded, RecordDoc, ShowRecord};

/// Query of `GET /data`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DataQuery {
    /// How many records to skip, in load order; past the last record, the page is empty.
    #[param(schema_with = start_param)]
    start: Option<u64>,
    /// Page size, from 1 to the server's maximum (its schema states the maximum and the default,
    /// both configured with the router's `Limits`).
    limit: Option<u64>,
}

/// The schema of `start`: any `u64`.
fn start_param() -> utoipa::openapi::Object {
    crate::schema::integer(0, i128::from(u64::MAX))
        .default(Some(0.into()))
        .description(Some(
            "How many records to skip, in load order; past the last record, the page is empty.",
        ))
        .build()
}

/// Load a data set, replacing the current one.
///
/// With no body, loads from the configured source (`DATA_SOURCE`; the bundled HGNC sample by
/// default). With a body: a JSON document (`application/json`: the HGNC complete set or the
/// meteorite landings), or text or bytes in any supported format, told apart by their first
/// bytes (`text/tab-separated-values`, `application/octet-stream`, or `text/plain` from a request
/// that carries the API token: HGNC TSV, or JSON, a plain array of records included). A plain JSON array sent as `application/json` is
/// refused: send it as text or bytes. Record ids must be unique in the data set.
#[utoipa::path(
    post, path = "/data", tag = "data",
    request_body(content(
        (inline(DataSetDoc) = "application/json"),
        (String = "text/tab-separated-values"),
        (String = "text/plain"),
        (inline(BinaryDoc) = "application/octet-stream"),
    ), description = "Optional: the data set itself"),
    responses(
        (status = 200, description = "How many records were loaded", body = Loaded),
        (status = 400, description = "Malformed JSON (code malformed_json), or not a data set of a known format, a plain array sent as application/json included (code invalid_data)", body = ErrorBody),
        (status = 413, description = "The body is over the route's limit (HOLIDAPP_DATA_MAX_BYTES, 32 MiB by default), or the data set over its record or memory limits (HOLIDAPP_DATA_MAX_RECORDS, HOLIDAPP_DATA_MAX_MEMORY; code data_too_large)", body = ErrorBody),
        (status = 409, description = "Another load is running: one at a time (code conflict)", body = ErrorBody),
        (status = 415, description = "A body of another content type, or text/plain from a request without the API token", body = ErrorBody),
        (status = 502, description = "The configured data source could not be read", body = ErrorBody),
        BackendDown,
    )
)]
pub(crate) async fn load_data(
    State(ctx): State<Ctx>,
    authorized: Option<Extension<Authorized>>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Response, ApiError> {
    let body = if body.is_empty() {
        DataBody::Source
    } else {
        match body_kind(&headers) {
            BodyKind::Json => DataBody::Json(body),
            BodyKind::Text if text_plain(&headers) && authorized.is_none() => {
                return Err(ApiError::UnsupportedMediaType(
                    "a text/plain body needs a request with a token (Authorization: Bearer), \
                     since any web page can send one; send the data set as \
                     text/tab-separated-values or application/octet-stream"
                        .to_owned(),
                ));
            }
            BodyKind::Text | BodyKind::Bytes => DataBody::Text(body),
            BodyKind::Other => {
                return Err(ApiError::UnsupportedMediaType(
                    "send the data set as application/json, text/tab-separated-values or \
                     application/octet-stream, or send no body to load the configured source"
                        .to_owned(),
                ));
            }
        }
    };
    let loaded = plots(&ctx)?.load(body).await?;
    json(StatusCode::OK, &Loaded { loaded })
}

/// Whether the body is declared `text/plain`: the one text type another site's page can send
/// without a CORS preflight.
fn text_plain(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("text/plain"))
}

/// The plot product this API serves; its routes exist only when it does.
pub(crate) fn plots(ctx: &Ctx) -> Result<&Plots, ApiError> {
    ctx.app
        .plots
        .as_ref()
        .ok_or_else(|| ApiError::RouteNotFound("the data set routes".to_owned()))
}

/// Page through the loaded records, in load order.
///
/// Headers: `x-total-count` (how many are loaded) and, when more follow,
/// `link: <...>; rel="next"`.
#[utoipa::path(
    get, path = "/data", tag = "data",
    params(DataQuery),
    responses(
        (status = 200, description = "A page of records (empty when nothing is loaded)", body = Vec<RecordDoc>,
         headers(
             ("x-total-count" = u64, description = "How many records are loaded"),
             ("link" = String, description = "The next page, when there is one"),
         )),
        (status = 400, description = "start/limit not a number in range, or an unknown parameter", body = ErrorBody),
        BackendDown,
    )
)]
pub(crate) async fn list_data(
    State(ctx): State<Ctx>,
    base: crate::extract::BasePath,
    crate::extract::ApiQuery(query): crate::extract::ApiQuery<DataQuery>,
) -> Result<Response, ApiError> {
    let limits = &ctx.app.limits;
    let start = query.start.unwrap_or(0);
    let limit = match query.limit {
        None => limits.data_page_default,
        Some(n) if (1..=limits.data_page_max).contains(&n) => n,
        Some(n) => {
            return Err(ApiError::InvalidQuery(format!(
                "limit must be between 1 and {}, got {n}",
                limits.data_page_max
            )));
        }
    };
    let data = plots(&ctx)?.data();
    let total = data.len().await?;
    let records = data.page(start, limit).await?;
    let mut response = json(StatusCode::OK, &fields_of(&records))?;
    let headers = response.headers_mut();
    headers.insert("x-total-count", HeaderValue::from(total));
    let next = start.saturating_add(records.len() as u64);
    if !records.is_empty() && next < total {
        let link = format!("<{}/data?start={next}&limit={limit}>; rel=\"next\"", base.0);
        if let Ok(link) = HeaderValue::from_str(&link) {
            headers.insert(header::LINK, link);
        }
    }
    Ok(response)
}

/// Delete the loaded data set.
#[utoipa::path(
    delete, path = "/data", tag = "data",
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No data set is loaded", body = ErrorBody),
        BackendDown,
    )
)]
pub(crate) async fn delete_data(State(ctx): State<Ctx>) -> Result<Response, ApiError> {
    if plots(&ctx)?.data().clear().await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound("no data set is loaded".to_owned()))
    }
}

/// Show one record by its id (`hgnc_id` for HGNC genes, `id` for meteorites).
#[utoipa::path(
    get, path = "/data/{id}", tag = "data",
    params(("id" = String, Path, description = "The record's id", example = "HGNC:5")),
    responses(ShowRecord, BackendDown)
)]
pub(crate) async fn get_record(
    State(ctx): State<Ctx>,
    crate::extract::ApiPath(id): crate::extract::ApiPath<String>,
) -> Result<Response, ApiError> {
    record(&ctx, &id, "GET /data").await
}

/// List the ids of every loaded record (HGNC ids for the HGNC data set), in load order.
#[utoipa::path(
    get, path = "/genes", tag = "data",
    responses(
        (status = 200, description = "Every record id (empty when nothing is loaded)", body = Vec<String>),
        BackendDown,
    )
)]
pub(crate) async fn list_genes(State(ctx): State<Ctx>) -> Result<Response, ApiError> {
    let ids = plots(&ctx)?.data().ids().await?;
    json(StatusCode::OK, &ids)
}

/// Show one gene by its HGNC id (e.g. `HGNC:5`).
#[utoipa::path(
    get, path = "/genes/{hgnc_id}", tag = "data",
    params(("hgnc_id" = String, Path, description = "The gene's HGNC id, e.g. HGNC:5",
        example = "HGNC:5")),
    responses(ShowRecord, BackendDown)
)]
pub(crate) async fn get_gene(
    State(ctx): State<Ctx>,
    crate::extract::ApiPath(id): crate::extract::ApiPath<String>,
) -> Result<Response, ApiError> {
    record(&ctx, &id, "GET /genes").await
}

async fn record(ctx: &Ctx, id: &str, list_route: &str) -> Result<Response, ApiError> {
    match plots(ctx)?.data().record(id).await? {
        Some(record) => json(StatusCode::OK, &record.fields),
        None => Err(ApiError::NotFound(format!(
            "no record has id '{}'; {list_route} lists the loaded records",
            id.chars().take(64).collect::<String>().escape_debug()
        ))),
    }
}

fn fields_of(records: &[Record]) -> Vec<&serde_json::Map<String, serde_json::Value>> {
    records.iter().map(|r| &r.fields).collect()
}
