//! The finishing touches of the OpenAPI document, in one place: what depends on the router's
//! configuration, and what the derives of utoipa cannot state.
//!
//! [`finish_document`] runs once, on the document `routes!` built, before the router serves it
//! (`GET /openapi.json`) and renders `GET /help` from it. It adds or sets:
//!
//! 1. the course's aliases, each a copy of the route it stands for;
//! 2. the registered kinds: the `kind` of a `POST /jobs` body lists them, and its `params` are
//!    `PlotParams` for the kind `plot` (the only kind whose parameters this crate knows) and any
//!    object for the others; the body without `kind` is the default kind's parameters;
//! 3. the page size of `GET /data`, from the router's [`Limits`];
//! 4. the optional request bodies (`POST /data`, `POST /image`), marked not required: utoipa marks
//!    every body required unless its type is an `Option`, which would allow `null` as well;
//! 5. links from a submitted job to every route that takes its id, so that a client (or a
//!    stateful fuzzer) can follow them;
//! 6. what any route may answer, whatever its handler does: the `x-request-id` header on every
//!    answer, a `500` (code `internal`) and a `503` (code `timeout`);
//! 7. the tokens, when the router asks for them: a `bearer` security scheme, required by every
//!    operation that needs it, each of which may answer `401` (code `unauthorized`); and
//!    `text/plain` among the bodies of `POST /data` only then, since without a token that route
//!    refuses it.
//!
//! `scripts/fuzz_api.sh` checks the finished document against the real binary.

use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::request_body::RequestBody;
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::{
    ContentBuilder, Header, OpenApi, Ref, RefOr, Required, ResponseBuilder, Schema,
};

use crate::auth::Auth;
use crate::state::{AppState, Limits};

/// What the document states of the router's configuration.
#[derive(Clone, Debug)]
pub(crate) struct DocumentConfig<'a> {
    /// Body sizes and page sizes.
    pub(crate) limits: &'a Limits,
    /// The registered kinds, sorted.
    pub(crate) kinds: Vec<String>,
    /// The kind of a job submitted without one.
    pub(crate) default_kind: Option<&'a str>,
    /// Whether the router serves the plot product (the data set and image routes, and the
    /// parameters of the kind `plot`).
    pub(crate) plots: bool,
    /// Which tokens the router asks for.
    pub(crate) auth: &'a Auth,
}

impl<'a> DocumentConfig<'a> {
    /// The configuration of a router serving `state`.
    pub(crate) fn of(state: &'a AppState) -> Self {
        DocumentConfig {
            limits: &state.limits,
            kinds: state.jobs.kinds().names(),
            default_kind: state.jobs.default_kind(),
            plots: state.plots.is_some(),
            auth: &state.auth,
        }
    }
}

/// The kind whose parameters the document knows.
const PLOT: &str = "plot";

/// Finishes the document (see the [module docs](self)).
pub(crate) fn finish_document(doc: &mut OpenApi, config: &DocumentConfig<'_>) {
    document_delay_or_time(doc);
    document_aliases(doc);
    document_kinds(doc, config);
    if config.plots {
        document_data_page(doc, config.limits);
    }
    for path in ["/data", "/image"] {
        if let Some(body) = operation(doc, path, |item| &mut item.post)
            .and_then(|operation| operation.request_body.as_mut())
        {
            optional(body);
        }
    }
    document_job_links(doc);
    document_event_stream(doc);
    document_auth(doc, config.auth);
    document_common_answers(doc);
}

/// States the messages of `GET /events`: each an object of the fields of a Server-Sent Event, as
/// a client's parser reads it (`event`, `id`, `data`), `data` being the JSON of a `JobEvent` for
/// `event: job` and `{}` for `event: ping`.
fn document_event_stream(doc: &mut OpenApi) {
    let Some(content) = operation(doc, "/events", |item| &mut item.get)
        .and_then(|operation| operation.responses.responses.get_mut("200"))
        .and_then(|response| match response {
            RefOr::T(response) => response.content.get_mut("text/event-stream"),
            RefOr::Ref(_) => None,
        })
    else {
        return;
    };
    let text = |description: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
    };
    let message = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "event",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["job", "ping"]))
                .description(Some(
                    "`job` for a job event, `ping` for a resume point alone",
                )),
        )
        .property(
            "id",
            text("The resume point after this message, for Last-Event-ID"),
        )
        .property(
            "data",
            text("For `job`: the JSON of a JobEvent (see its schema); for `ping`: `{}`"),
        )
        .required("data")
        .description(Some("One Server-Sent Event of the stream."));
    content.schema = Some(message.into());
}

/// The name of the security scheme of the API token.
const BEARER: &str = "bearer";

/// States which operations need a token (see [`crate::auth`]), and the `text/plain` body of
/// `POST /data`, which only a request with a token may send.
fn document_auth(doc: &mut OpenApi, auth: &Auth) {
    if !auth.writes_need_token() {
        if let Some(content) = operation(doc, "/data", |item| &mut item.post)
            .and_then(|operation| operation.request_body.as_mut())
            .map(|body| &mut body.content)
        {
            content.remove("text/plain");
        }
        return;
    }
    let scheme = utoipa::openapi::security::SecurityScheme::Http(
        utoipa::openapi::security::HttpBuilder::new()
            .scheme(utoipa::openapi::security::HttpAuthScheme::Bearer)
            .description(Some(
                "The API token (HOLIDAPP_API_TOKEN; HOLIDAPP_READ_TOKEN for reads when set), \
                 as Authorization: Bearer <token>",
            ))
            .build(),
    );
    doc.components
        .get_or_insert_with(Default::default)
        .security_schemes
        .insert(BEARER.to_owned(), scheme);
    let requirement = || {
        vec![utoipa::openapi::security::SecurityRequirement::new::<
            _,
            _,
            &str,
        >(BEARER, [])]
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        let reads_open =
            !auth.reads_need_token() || matches!(path.as_str(), "/healthz" | "/readyz");
        let mut needs = Vec::new();
        if let Some(op) = item.get.as_mut().filter(|_| !reads_open) {
            needs.push(op);
        }
        for op in [
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ] {
            if let Some(op) = op.as_mut() {
                needs.push(op);
            }
        }
        for op in needs {
            op.security = Some(requirement());
            op.responses
                .responses
                .entry("401".to_owned())
                .or_insert_with(|| {
                    ResponseBuilder::new()
                        .description("The route needs the API token (code unauthorized)")
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(reference("ErrorBody")))
                                .build(),
                        )
                        .into()
                });
        }
    }
}

/// States that a submit body takes `delay` or `run_at`, not both (`not: {required: [both]}`; no
/// builder of utoipa states `not`, so it goes in as an extension, serialized as any keyword).
fn document_delay_or_time(doc: &mut OpenApi) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    for name in ["Submit", "PlotSubmit"] {
        if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(name) {
            let not = serde_json::json!({"required": ["delay", "run_at"]});
            object
                .extensions
                .get_or_insert_with(Extensions::default)
                .merge(Extensions::from_iter([("not", not)]));
        }
    }
}

/// The operation `method` of `path`, if the document has it.
fn operation<'d>(
    doc: &'d mut OpenApi,
    path: &str,
    method: impl FnOnce(&mut PathItem) -> &mut Option<Operation>,
) -> Option<&'d mut Operation> {
    doc.paths
        .paths
        .get_mut(path)
        .and_then(|item| method(item).as_mut())
}

/// Every operation of a path item.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

fn reference(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

/// A body a request may go without.
fn optional(body: &mut RequestBody) {
    body.required = Some(Required::False);
    let description = body.description.get_or_insert_with(String::new);
    if !description.contains("Optional") {
        description.insert_str(0, "Optional. ");
    }
}

/// The course's aliases routed to the handler of another route: alias path, the documented
/// route it stands for, and its summary.
const ALIASES: [(&str, &str, &str); 4] = [
    (
        "/results/{id}",
        "/jobs/{id}/result",
        "Course alias of `GET /jobs/{id}/result`.",
    ),
    (
        "/download/{id}",
        "/jobs/{id}/result",
        "Course alias of `GET /jobs/{id}/result`.",
    ),
    (
        "/job_status",
        "/jobs_status",
        "Course alias of `GET /jobs/{id}`, the id in the query.",
    ),
    (
        "/inprogress_jobs",
        "/completed_jobs",
        "Course alias of `GET /jobs?status=in progress`.",
    ),
];

/// The operation id of an alias: its path in snake case (`/results/{id}`: `results_id`).
fn alias_operation_id(alias: &str) -> String {
    alias
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

/// Adds the aliases: each a copy of the route it stands for, under the course aliases tag with
/// its own summary and operation id.
fn document_aliases(doc: &mut OpenApi) {
    for (alias, route, summary) in ALIASES {
        let Some(mut item) = doc.paths.paths.get(route).cloned() else {
            continue;
        };
        if let Some(operation) = item.get.as_mut() {
            operation.summary = Some(summary.to_owned());
            operation.description = None;
            operation.tags = Some(vec!["course aliases".to_owned()]);
            operation.operation_id = Some(alias_operation_id(alias));
        }
        doc.paths.paths.insert(alias.to_owned(), item);
    }
}

/// States the registered kinds in the `Submit` schema, and the default kind's body in
/// `SubmitBody`.
fn document_kinds(doc: &mut OpenApi, config: &DocumentConfig<'_>) {
    let Some(schemas) = doc.components.as_mut().map(|c| &mut c.schemas) else {
        return;
    };
    let plot_params = config.plots && config.kinds.iter().any(|k| k == PLOT);
    if let Some(RefOr::T(Schema::Object(general))) = schemas.get("Submit").cloned() {
        let variant = |kinds: &[&String], params: RefOr<Schema>| {
            let mut object = general.clone();
            let mut kind = ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(
                    "The job's kind: the name a renderer is registered under.",
                ));
            if !kinds.is_empty() {
                kind = kind
                    .enum_values(Some(kinds.iter().map(|k| k.as_str())))
                    .examples([kinds[0].as_str()]);
            }
            object.properties.insert("kind".to_owned(), kind.into());
            object.properties.insert("params".to_owned(), params);
            Schema::Object(object)
        };
        let any_params: RefOr<Schema> = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("The kind's parameters, as the kind reads them."))
            .into();
        let (plot, others): (Vec<&String>, Vec<&String>) = config
            .kinds
            .iter()
            .partition(|k| plot_params && k.as_str() == PLOT);
        let submit = match (plot.is_empty(), others.is_empty()) {
            (true, _) => variant(&others, any_params),
            (false, true) => variant(&plot, reference("PlotParams")),
            (false, false) => OneOfBuilder::new()
                .item(variant(&plot, reference("PlotParams")))
                .item(variant(&others, any_params))
                .description(general.description.clone())
                .into(),
        };
        schemas.insert("Submit".to_owned(), submit.into());
    }
    let body: Option<Schema> = match config.default_kind {
        Some(PLOT) if plot_params => None,
        None => Some(
            OneOfBuilder::new()
                .item(reference("Submit"))
                .description(Some(
                    "The body of `POST /jobs`: a job of a registered kind.",
                ))
                .into(),
        ),
        Some(kind) => Some(
            AnyOfBuilder::new()
                .item(reference("Submit"))
                .item(
                    ObjectBuilder::new()
                        .schema_type(Type::Object)
                        .description(Some(format!(
                            "A job of the default kind, `{kind}`: its parameters, with `queue`, \
                             `max_attempts` and `timeout` beside them and no `kind`."
                        ))),
                )
                .description(Some(
                    "The body of `POST /jobs`: a job of a registered kind, or the parameters of \
                     the default kind.",
                ))
                .into(),
        ),
    };
    if let Some(body) = body {
        schemas.insert("SubmitBody".to_owned(), body.into());
        schemas.remove("PlotSubmit");
    }
}

/// States the page size of `GET /data` from `limits`.
fn document_data_page(doc: &mut OpenApi, limits: &Limits) {
    let Some(list) = operation(doc, "/data", |item| &mut item.get) else {
        return;
    };
    for parameter in list.parameters.iter_mut().flatten() {
        if parameter.name == "limit" {
            parameter.schema = Some(
                crate::schema::integer(1, i128::from(limits.data_page_max))
                    .default(Some(limits.data_page_default.into()))
                    .description(Some("Page size."))
                    .into(),
            );
        }
    }
}

/// The routes that take a job's id, by operation id, with the parameter that carries it.
const JOB_ID_ROUTES: [(&str, &str, &str); 7] = [
    ("GetJob", "get_job", "id"),
    ("DeleteJob", "delete_job", "id"),
    ("JobResult", "job_result", "id"),
    ("Results", "results_id", "id"),
    ("Download", "download_id", "id"),
    ("JobsStatus", "jobs_status", "job_id"),
    ("JobStatus", "job_status", "job_id"),
];

/// Links from the answers of `POST /jobs` (a job) to the routes that take its id.
fn document_job_links(doc: &mut OpenApi) {
    let ids: Vec<String> = doc
        .paths
        .paths
        .values_mut()
        .flat_map(operations)
        .filter_map(|operation| operation.operation_id.clone())
        .collect();
    let Some(submit) = operation(doc, "/jobs", |item| &mut item.post) else {
        return;
    };
    for status in ["200", "201"] {
        let Some(RefOr::T(response)) = submit.responses.responses.get_mut(status) else {
            continue;
        };
        for (name, operation_id, parameter) in JOB_ID_ROUTES {
            if ids.iter().any(|id| id == operation_id) {
                // utoipa 5 serializes the field `operation_id` under that name, not as
                // `operationId`: the keyword is written as an extension, which is serialized
                // under its own name.
                let link = LinkBuilder::new()
                    .parameter(parameter, "$response.body#/id")
                    .description("The job's route, by its id")
                    .extensions(Some(Extensions::from_iter([("operationId", operation_id)])))
                    .build();
                response.links.insert(name.to_owned(), link.into());
            }
        }
    }
}

/// What any route may answer: the `x-request-id` header, a 500 and a 503.
fn document_common_answers(doc: &mut OpenApi) {
    let error = || {
        ContentBuilder::new()
            .schema(Some(reference("ErrorBody")))
            .build()
    };
    let request_id = || {
        let mut header = Header::new(ObjectBuilder::new().schema_type(Type::String));
        header.description = Some(
            "The request's id: the client's own `x-request-id` when it sent a sane one, else a \
             new one. The server's log lines of the request carry it."
                .to_owned(),
        );
        header
    };
    for operation in doc.paths.paths.values_mut().flat_map(operations) {
        let responses = &mut operation.responses.responses;
        responses.entry("500".to_owned()).or_insert_with(|| {
            ResponseBuilder::new()
                .description(
                    "An internal error (code internal); the server log has the details under the \
                     answer's x-request-id",
                )
                .content("application/json", error())
                .into()
        });
        responses.entry("503".to_owned()).or_insert_with(|| {
            ResponseBuilder::new()
                .description("The request took longer than the request timeout (code timeout)")
                .content("application/json", error())
                .into()
        });
        for response in responses.values_mut() {
            if let RefOr::T(response) = response {
                response
                    .headers
                    .insert("x-request-id".to_owned(), request_id());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_operation_ids_are_snake_case() {
        assert_eq!(alias_operation_id("/results/{id}"), "results_id");
        assert_eq!(alias_operation_id("/job_status"), "job_status");
        assert_eq!(alias_operation_id("/inprogress_jobs"), "inprogress_jobs");
    }
}
