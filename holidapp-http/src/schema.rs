//! Shapes of the JSON the API sends and reads, for the OpenAPI document only.
//!
//! The core types (`Job`, `PlotParams`) carry no OpenAPI derive, since the core knows nothing of
//! HTTP; these mirrors describe them. The test suite serializes real core values and checks
//! that every field they have is described here, so the mirrors cannot drift from the types.
//!
//! The schemas are exact: every bound the server enforces is stated (lengths, ranges, patterns,
//! closed objects), and what they allow the server accepts; `scripts/fuzz_api.sh` checks both
//! directions against the real binary. Most are derived; the few that derives cannot state (a
//! `oneOf` of an integer and a pattern, Unicode patterns, bounds past `i64`) are written with
//! utoipa's builders here, each a [`component!`] of its own. What depends on the router's
//! configuration (the registered kinds, the page size of `GET /data`) is set by
//! [`routes::finish_document`](crate::routes::finish_document).

// The mirrors are never built: they exist for their derived schemas.
#![allow(dead_code, clippy::large_enum_variant)]

use serde::Serialize;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat,
    Type,
};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoResponses, ToSchema};

use crate::error::ErrorBody;

/// Text without control characters (Rust's `char::is_control`: Unicode's category Cc, which
/// the server refuses in titles and unique keys).
pub(crate) const NO_CONTROL: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";

/// Text without control characters holding at least one character that is not white space (so
/// that Rust's `str::trim` leaves something): field names and record ids.
pub(crate) const VISIBLE: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*\
    [^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]\
    [^\\u0000-\\u001f\\u007f-\\u009f]*$";

/// A queue or kind name: 1 to 64 ASCII letters, digits, `-`, `_` or `.`.
pub(crate) const NAME: &str = "^[A-Za-z0-9._-]{1,64}$";

/// The value of an `Idempotency-Key` header the server accepts: 1 to 256 visible ASCII
/// characters or spaces, neither first nor last a space (HTTP strips those).
pub(crate) const IDEMPOTENCY_KEY: &str = "^[\\x21-\\x7e]([\\x20-\\x7e]{0,254}[\\x21-\\x7e])?$";

/// A year from [`YEAR_MIN`](holidapp_core::plot::YEAR_MIN) to
/// [`YEAR_MAX`](holidapp_core::plot::YEAR_MAX) (-5000 to 9999) written as its digits, as the
/// server reads a year given as a string: `-` before a negative one, no `+`, no leading zero, no
/// space.
pub(crate) const YEAR: &str = "^(0|-?[1-9][0-9]{0,2}|[1-9][0-9]{3}|-[1-4][0-9]{3}|-5000)$";

/// Defines a component whose schema is built by hand: a unit struct with a `ToSchema` impl
/// naming the component and a `PartialSchema` impl building it.
macro_rules! component {
    ($(#[$doc:meta])* $ty:ident = $name:literal, $schema:expr) => {
        $(#[$doc])*
        #[derive(Serialize)]
        pub(crate) struct $ty;

        impl utoipa::PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                $schema.into()
            }
        }

        impl ToSchema for $ty {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed($name)
            }
        }
    };
}

/// A reference to the component of `T`.
fn reference<T: ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(T::name()))
}

/// A string schema with a pattern and length bounds.
fn text(pattern: &str, min: usize, max: usize) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .min_length(Some(min))
        .max_length(Some(max))
}

/// An integer schema from `min` to `max`, with no `format`: the bounds say it all, also past
/// `i64`.
pub(crate) fn integer(min: i128, max: i128) -> ObjectBuilder {
    let number = |n: i128| match isize::try_from(n) {
        Ok(n) => utoipa::Number::Int(n),
        // Past isize::MAX: a u64 (usize on the 64-bit targets the server runs on).
        Err(_) => utoipa::Number::UInt(usize::try_from(n).unwrap_or(usize::MAX)),
    };
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(number(min)))
        .maximum(Some(number(max)))
}

component!(
    /// A year: an integer from -5000 to 9999, or a string holding one (`1990` or `"1990"`).
    YearDoc = "Year",
    OneOfBuilder::new()
        .item(integer(
            i128::from(holidapp_core::plot::YEAR_MIN),
            i128::from(holidapp_core::plot::YEAR_MAX)
        ))
        .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some(YEAR)))
        .description(Some(
            "A year from -5000 to 9999: an integer, or a string holding its digits (no `+`, no \
             leading zero, no space)."
        ))
        .examples([serde_json::json!("1990")])
);

component!(
    /// A field of the data set, named in plot options.
    FieldNameDoc = "FieldName",
    text(VISIBLE, 1, 100)
        .description(Some(
            "A field of the data set: 1 to 100 characters, no control character, not only white \
             space."
        ))
        .examples([serde_json::json!("locus_group")])
);

component!(
    /// A plot's title.
    TitleDoc = "Title",
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(NO_CONTROL))
        .max_length(Some(holidapp_core::plot::TITLE_MAX))
        .description(Some(
            "The plot's title: at most 200 characters, no control character."
        ))
);

component!(
    /// A queue's name.
    QueueNameDoc = "QueueName",
    text(NAME, 1, holidapp_core::job::MAX_NAME_LEN)
        .description(Some(
            "A queue's name: 1 to 64 ASCII letters, digits, `-`, `_` or `.`."
        ))
        .examples([serde_json::json!("default")])
);

component!(
    /// A job's unique (idempotency) key.
    UniqueKeyDoc = "UniqueKey",
    text(NO_CONTROL, 1, holidapp_core::job::MAX_UNIQUE_KEY_LEN)
        .description(Some(
            "A unique (idempotency) key: 1 to 256 characters, no control character."
        ))
        .examples([serde_json::json!("order-7")])
);

component!(
    /// A record's id in a JSON data set.
    RecordIdDoc = "RecordId",
    OneOfBuilder::new()
        .item(text(VISIBLE, 1, holidapp_core::plot::parse::MAX_ID_LEN))
        .item(integer(
            -i128::from(holidapp_core::plot::parse::MAX_INTEGER_ID),
            i128::from(holidapp_core::plot::parse::MAX_INTEGER_ID)
        ))
        .description(Some(
            "A record's id, unique in its data set: a string of 1 to 256 characters (no control \
             character, not only white space), or an integer from -(2^53-1) to 2^53-1 (its \
             decimal text is the id; larger ids are sent as strings)."
        ))
        .examples([serde_json::json!("HGNC:5")])
);

component!(
    /// A listing's cursor.
    CursorDoc = "Cursor",
    integer(0, i128::from(u64::MAX)).description(Some(
        "A position in a listing: the `x-next-cursor` a page gave, for the page after it."
    ))
);

component!(
    /// Bytes of any content.
    BinaryDoc = "Binary",
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
);

component!(
    /// The HGNC complete set.
    HgncDataSetDoc = "HgncDataSet",
    data_set(
        "response",
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("docs", records::<HgncGeneDoc>())
            .required("docs"),
        "meteorite_landings",
        "The HGNC complete set, as HGNC's REST service answers it: `{\"response\": {\"docs\": \
         [...]}}`. Other fields are ignored; a document holding `meteorite_landings` as well is \
         refused.",
    )
    .examples([serde_json::json!({"response": {"docs": [
        {"hgnc_id": "HGNC:5", "symbol": "A1BG", "locus_group": "protein-coding gene",
         "date_approved_reserved": "1989-06-30"},
    ]}})])
);

component!(
    /// The meteorite landings.
    MeteoriteDataSetDoc = "MeteoriteDataSet",
    data_set(
        "meteorite_landings",
        records::<MeteoriteLandingDoc>(),
        "response",
        "NASA's meteorite landings: `{\"meteorite_landings\": [...]}`. Other fields are ignored; a \
         document holding `response` as well is refused.",
    )
    .examples([serde_json::json!({"meteorite_landings": [
        {"id": "1", "name": "Aachen", "recclass": "L5", "year": "1880-01-01T00:00:00.000",
         "reclat": "50.775000", "reclong": "6.083330"},
    ]})])
);

/// A data set layout: an object with the required field `field` holding `value`, which must not
/// also hold `other`, the other layout's field.
fn data_set(
    field: &str,
    value: impl Into<RefOr<Schema>>,
    other: &str,
    description: &str,
) -> ObjectBuilder {
    // No builder of utoipa states `not`; an extension is serialized as any other keyword.
    let not = serde_json::json!({"required": [other]});
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(field, value)
        .required(field)
        .description(Some(description))
        .extensions(Some(utoipa::openapi::extensions::Extensions::from_iter([
            ("not", not),
        ])))
}

/// An array of at least one record of type `T`.
fn records<T: ToSchema>() -> ArrayBuilder {
    ArrayBuilder::new()
        .items(reference::<T>())
        .min_items(Some(1))
}

/// An object whose field `id_field` is its id (a [`RecordIdDoc`]), of at most
/// [`MAX_FIELDS`](holidapp_core::plot::parse::MAX_FIELDS) fields.
fn record(id_field: &str, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(id_field, reference::<RecordIdDoc>())
        .required(id_field)
        .max_properties(Some(holidapp_core::plot::parse::MAX_FIELDS))
        .additional_properties(Some(AdditionalProperties::FreeForm(true)))
        .description(Some(description))
}

component!(
    /// One gene of the HGNC complete set.
    HgncGeneDoc = "HgncGene",
    record(
        "hgnc_id",
        "One gene: its fields as HGNC gives them, `hgnc_id` its id (at most 1024 fields)."
    )
);

component!(
    /// One meteorite landing.
    MeteoriteLandingDoc = "MeteoriteLanding",
    record(
        "id",
        "One meteorite landing: its fields as NASA gives them, `id` its id (at most 1024 fields)."
    )
);

/// A data set sent as a JSON document: the HGNC complete set or the meteorite landings (a plain
/// array of records is sent as text or bytes).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = DataSet)]
pub(crate) enum DataSetDoc {
    /// The HGNC complete set.
    Hgnc(HgncDataSetDoc),
    /// The meteorite landings.
    Meteorites(MeteoriteDataSetDoc),
}

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
    /// Cancelled before it finished; it has no result.
    #[serde(rename = "cancelled")]
    Cancelled,
}

/// How long a unique key holds: `"active"` (while the job waits or runs; free once it is
/// finished, cancelled or deleted) or `{"for": seconds}` (for that long from the submit, while the
/// job is kept). Without one, `HOLIDAPP_UNIQUE_TTL_SECONDS` while the job is kept.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = UniqueScope)]
pub(crate) enum UniqueScopeDoc {
    /// While the job waits or runs.
    Active(UniqueActiveDoc),
    /// For a number of seconds from the submit.
    For(UniqueForDoc),
}

/// While the job waits or runs.
#[derive(Serialize, ToSchema)]
#[schema(as = UniqueActive)]
pub(crate) enum UniqueActiveDoc {
    /// While the job waits or runs.
    #[serde(rename = "active")]
    Active,
}

/// For a number of seconds from the submit.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UniqueFor)]
pub(crate) struct UniqueForDoc {
    /// Seconds (1 to 31,622,400, 366 days).
    #[serde(rename = "for")]
    #[schema(minimum = 1, maximum = 31622400)]
    seconds: u32,
}

/// How far a running job has come, as its kind last reported.
#[derive(Serialize, ToSchema)]
#[schema(as = Progress)]
pub(crate) struct ProgressDoc {
    /// Percent done.
    #[schema(minimum = 0, maximum = 100, example = 40)]
    percent: f64,
    /// What the job is doing (at most 200 characters).
    #[schema(max_length = 200, example = "drawing")]
    message: String,
}

/// `kind` of a histogram.
#[derive(Serialize, ToSchema)]
pub(crate) enum HistogramKind {
    /// Records per year.
    #[serde(rename = "histogram")]
    Histogram,
}

/// `kind` of a categories plot.
#[derive(Serialize, ToSchema)]
pub(crate) enum CategoriesKind {
    /// Records per value of a field.
    #[serde(rename = "categories")]
    Categories,
}

/// `kind` of a scatter plot.
#[derive(Serialize, ToSchema)]
pub(crate) enum ScatterKind {
    /// One point per record.
    #[serde(rename = "scatter")]
    Scatter,
}

/// Options of a histogram (the default kind): records per year of a date field.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistogramOptions {
    /// `histogram`, the default.
    kind: Option<HistogramKind>,
    /// The date field whose years are counted (the data set's year field unless given).
    field: Option<FieldNameDoc>,
    /// Image width in pixels (default 800).
    #[schema(minimum = 100, maximum = 4000)]
    width: Option<u32>,
    /// Image height in pixels (default 600).
    #[schema(minimum = 100, maximum = 4000)]
    height: Option<u32>,
    /// The title (one naming the fields and the range unless given).
    title: Option<TitleDoc>,
}

/// Options of a categories plot: records per value of a field, largest first.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CategoriesOptions {
    /// `categories`.
    kind: CategoriesKind,
    /// The field whose values are counted (`locus_group` if a record has a value in it, else
    /// `recclass`).
    field: Option<FieldNameDoc>,
    /// The field whose year must be in the range (the data set's year field unless given).
    year_field: Option<FieldNameDoc>,
    /// How many categories are shown by name (default 20); the rest are summed in one bar.
    #[schema(minimum = 1, maximum = 50)]
    top: Option<u32>,
    /// Image width in pixels (default 800).
    #[schema(minimum = 100, maximum = 4000)]
    width: Option<u32>,
    /// Image height in pixels (default 600).
    #[schema(minimum = 100, maximum = 4000)]
    height: Option<u32>,
    /// The title (one naming the fields and the range unless given).
    title: Option<TitleDoc>,
}

/// Options of a scatter plot: one point per record at two numeric fields.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScatterOptions {
    /// `scatter`.
    kind: ScatterKind,
    /// The field on the horizontal axis (default `reclong`).
    x: Option<FieldNameDoc>,
    /// The field on the vertical axis (default `reclat`).
    y: Option<FieldNameDoc>,
    /// The field whose year must be in the range (the data set's year field unless given).
    year_field: Option<FieldNameDoc>,
    /// Image width in pixels (default 800).
    #[schema(minimum = 100, maximum = 4000)]
    width: Option<u32>,
    /// Image height in pixels (default 600).
    #[schema(minimum = 100, maximum = 4000)]
    height: Option<u32>,
    /// The title (one naming the fields and the range unless given).
    title: Option<TitleDoc>,
}

/// Plot options: `kind` (default `histogram`) decides which others apply; options of another
/// kind, and unknown ones, are refused.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = PlotOptions)]
pub(crate) enum PlotOptionsDoc {
    /// A histogram.
    Histogram(HistogramOptions),
    /// A categories plot.
    Categories(CategoriesOptions),
    /// A scatter plot.
    Scatter(ScatterOptions),
}

/// The parameters of a plot job (the kind `plot`): the range `[start, end]` (`start` not after
/// `end`) and plot options. Unknown fields are refused.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PlotParams, example = json!({"start": "1990", "end": "2020", "plot": {"kind": "categories", "field": "locus_group"}}))]
pub(crate) struct PlotParamsDoc {
    /// Start of the range: a year.
    start: YearDoc,
    /// End of the range, inclusive: a year, not before `start`.
    end: YearDoc,
    /// Plot options; none (or `null`) for a histogram of the data set's year field.
    plot: Option<PlotOptionsDoc>,
}

/// A job of any registered kind.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Submit, example = json!({"kind": "plot", "params": {"start": "1990", "end": "2020"}, "queue": "default", "max_attempts": 3}))]
pub(crate) struct GeneralSubmitDoc {
    /// The job's kind: the name a renderer is registered under.
    #[schema(example = "plot")]
    kind: String,
    /// The kind's parameters.
    params: PlotParamsDoc,
    /// The queue the job waits in (`default` unless given).
    queue: Option<QueueNameDoc>,
    /// Attempts allowed (the service's `HOLIDAPP_MAX_ATTEMPTS` unless given).
    #[schema(minimum = 1, maximum = 1000)]
    max_attempts: Option<u32>,
    /// The longest one attempt may run, in seconds (the worker's own limit unless shorter).
    #[schema(minimum = 1, maximum = 86400)]
    timeout: Option<u32>,
    /// The job's unique key, as the `Idempotency-Key` header gives it (both, when given, must
    /// be equal): while the job is kept, a submit with the same key finds it.
    unique_key: Option<UniqueKeyDoc>,
    /// How long the unique key holds (ignored without `unique_key` or an `Idempotency-Key`).
    unique_scope: Option<UniqueScopeDoc>,
    /// Its priority within its queue: higher runs first, equal ones in submission order (0
    /// unless given).
    #[schema(minimum = -1000, maximum = 1000, example = 5)]
    priority: Option<i32>,
    /// Seconds from the submit before the job may run (at most 366 days). Give this or
    /// `run_at`, not both.
    #[schema(minimum = 0, maximum = 31622400, example = 60)]
    delay: Option<f64>,
    /// When the job may run (RFC 3339; at most 366 days ahead; a time past runs it at once).
    #[schema(format = DateTime)]
    run_at: Option<String>,
}

/// The course's body: the parameters of a plot job, with the queue, attempt limit, time limit,
/// priority and schedule beside them.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PlotSubmit, example = json!({"start": "1990", "end": "2000"}))]
pub(crate) struct CourseSubmitDoc {
    /// Start of the range: a year.
    start: YearDoc,
    /// End of the range, inclusive: a year, not before `start`.
    end: YearDoc,
    /// Plot options; none (or `null`) for a histogram of the data set's year field.
    plot: Option<PlotOptionsDoc>,
    /// The queue the job waits in (`default` unless given).
    queue: Option<QueueNameDoc>,
    /// Attempts allowed (the service's `HOLIDAPP_MAX_ATTEMPTS` unless given).
    #[schema(minimum = 1, maximum = 1000)]
    max_attempts: Option<u32>,
    /// The longest one attempt may run, in seconds (the worker's own limit unless shorter).
    #[schema(minimum = 1, maximum = 86400)]
    timeout: Option<u32>,
    /// Its priority within its queue: higher runs first, equal ones in submission order (0
    /// unless given).
    #[schema(minimum = -1000, maximum = 1000, example = 5)]
    priority: Option<i32>,
    /// Seconds from the submit before the job may run (at most 366 days). Give this or
    /// `run_at`, not both.
    #[schema(minimum = 0, maximum = 31622400, example = 60)]
    delay: Option<f64>,
    /// When the job may run (RFC 3339; at most 366 days ahead; a time past runs it at once).
    #[schema(format = DateTime)]
    run_at: Option<String>,
}

/// The body of `POST /jobs`: a job of any kind, the course's plot parameters, or a batch of
/// either.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = SubmitBody)]
pub(crate) enum SubmitDoc {
    /// `{"kind": ..., "params": {...}}`.
    General(GeneralSubmitDoc),
    /// `{"start": ..., "end": ...}`: a `plot` job.
    Course(CourseSubmitDoc),
    /// A batch: 1 to 1,000 jobs, each in either form, each submitted on its own.
    Batch(BatchDoc),
}

component!(
    /// A batch of 1 to 1,000 jobs. Each item is meant to be a `BatchItem` (either form of a
    /// single submit), but any JSON value is accepted here: each item is read and checked on its
    /// own, and one that is not a valid job gets its own error in the answer, not the batch.
    BatchDoc = "Batch",
    ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::AnyValue).description(Some(
            "A job, in either form of a single submit (see BatchItem); read and checked on its own"
        )))
        .min_items(Some(1))
        .max_items(Some(holidapp_core::jobs::MAX_BATCH))
        .description(Some(
            "A batch of 1 to 1,000 jobs, each in either form of a single submit (BatchItem), each \
             read, checked and answered on its own"
        ))
);

/// One job of a batch: either form of a single submit.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = BatchItem)]
pub(crate) enum OneSubmitDoc {
    /// `{"kind": ..., "params": {...}}`.
    General(GeneralSubmitDoc),
    /// `{"start": ..., "end": ...}`: a `plot` job.
    Course(CourseSubmitDoc),
}

/// The answer of `POST /jobs` for one single job, or, for a batch, one entry per job in order.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = SubmitAnswer)]
pub(crate) enum SubmitAnswerDoc {
    /// The job (a single submit).
    Job(JobDoc),
    /// One entry per job of a batch.
    Batch(Vec<BatchEntryDoc>),
}

/// What one job of a batch became: what a submit of it alone would have answered.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = BatchEntry)]
pub(crate) enum BatchEntryDoc {
    /// Stored (201), or an existing job holding its unique key (200).
    Stored {
        /// 201 or 200.
        #[schema(minimum = 200, maximum = 201)]
        status: u16,
        /// The job.
        job: JobDoc,
    },
    /// Refused: nothing was stored for it.
    Refused {
        /// The status a single submit would have had (400, 429, ...).
        #[schema(minimum = 400, maximum = 599)]
        status: u16,
        /// Why.
        error: crate::error::ErrorInfo,
    },
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
    /// Its priority within its queue: higher runs first.
    #[schema(minimum = -1000, maximum = 1000)]
    priority: i32,
    /// When it may run, when it was submitted with a delay or a time.
    #[schema(format = DateTime)]
    run_at: Option<String>,
    /// The kind's parameters.
    #[schema(value_type = Object)]
    params: serde_json::Value,
    /// Attempts allowed before the job is `failed`.
    #[schema(minimum = 1, maximum = 1000)]
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
    /// When it reached `complete`, `failed` or `cancelled`.
    #[schema(format = DateTime)]
    finished_at: Option<String>,
    /// Why it failed (or why its last attempt failed, while it waits for a retry).
    error: Option<String>,
    /// The content type of its result, once it is complete.
    #[schema(example = "image/png")]
    result_type: Option<String>,
    /// Its unique key, when it was submitted with one.
    #[schema(min_length = 1, max_length = 256)]
    unique_key: Option<String>,
    /// How long its unique key holds, when it was submitted with a scope.
    unique_scope: Option<UniqueScopeDoc>,
    /// The longest one attempt may run, in seconds, when it was submitted with a limit.
    #[schema(minimum = 1, maximum = 86400)]
    timeout: Option<u32>,
    /// The last progress its kind reported, once it has.
    progress: Option<ProgressDoc>,
    /// Where the result can be fetched once the job is complete.
    #[schema(example = "/jobs/2d6f2c39-3f0a-4d6e-9a4e-2d1c8a7f5e10/result")]
    result: String,
    /// A plot job's `start`, as its digits.
    #[schema(example = "1990")]
    start: Option<String>,
    /// A plot job's `end`, as its digits.
    #[schema(example = "2000")]
    end: Option<String>,
    /// A plot job's options, when it has any.
    plot: Option<PlotOptionsDoc>,
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

/// `ok` (alive) or `ready` (the backend answers).
#[derive(Serialize, ToSchema)]
pub(crate) enum HealthStatus {
    /// The process answers (`GET /healthz`).
    #[serde(rename = "ok")]
    Ok,
    /// The backend answers (`GET /readyz`).
    #[serde(rename = "ready")]
    Ready,
}

/// A live worker, as `GET /workers` lists it (`holidapp_core::WorkerInfo`).
#[derive(Serialize, ToSchema)]
#[schema(as = Worker)]
pub(crate) struct WorkerDoc {
    /// This run of the worker: its identity, a slash and 8 hex digits.
    #[schema(example = "10.244.1.7/5f3a09c2")]
    id: String,
    /// What it writes on the jobs it takes (`WORKER_IP`).
    #[schema(example = "10.244.1.7")]
    identity: String,
    /// The queues it serves, in order of preference.
    #[schema(value_type = Vec<QueueNameDoc>)]
    queues: Vec<String>,
    /// Jobs it runs at once.
    #[schema(minimum = 1)]
    concurrency: u32,
    /// Jobs it runs now.
    in_flight: u64,
    /// Jobs it leased since it started.
    leased: u64,
    /// Jobs it completed since it started.
    completed: u64,
    /// Jobs it recorded as failed for good since it started.
    failed: u64,
    /// Attempts that failed and will be tried again.
    retried: u64,
    /// When it started (RFC 3339).
    #[schema(format = DateTime)]
    started_at: String,
    /// When it last beat (RFC 3339).
    #[schema(format = DateTime)]
    last_seen: String,
}

/// A queue as `GET /queues` answers it (`holidapp_core::throughput::QueueOverview`).
#[derive(Serialize, ToSchema)]
#[schema(as = Queue)]
pub(crate) struct QueueDoc {
    /// The queue's name.
    #[schema(value_type = QueueNameDoc)]
    queue: String,
    /// Jobs per status.
    counts: CountsDoc,
    /// Of the `submitted` jobs, those leasable now.
    ready: u64,
    /// Of the `submitted` jobs, those waiting for their time (a delayed submit, a retry's
    /// backoff).
    delayed: u64,
    /// Jobs that ever completed in the queue (never goes down).
    completed_total: u64,
    /// Jobs that ever failed for good in the queue (never goes down).
    failed_total: u64,
    /// Rates between the samples this process took (at most one per 5 s, over the last 10
    /// minutes, when someone asked), oldest first.
    throughput: Vec<RateDoc>,
}

/// Jobs per status, by their wire names.
#[derive(Serialize, ToSchema)]
#[schema(as = StatusCounts)]
pub(crate) struct CountsDoc {
    submitted: u64,
    #[serde(rename = "in progress")]
    in_progress: u64,
    complete: u64,
    failed: u64,
    cancelled: u64,
}

/// A queue's throughput over one interval.
#[derive(Serialize, ToSchema)]
#[schema(as = Rate)]
pub(crate) struct RateDoc {
    /// The end of the interval (RFC 3339).
    #[schema(format = DateTime)]
    at: String,
    /// Jobs completed per second.
    completed_per_s: f64,
    /// Jobs failed for good per second.
    failed_per_s: f64,
    /// Jobs waiting at the end of the interval.
    depth: u64,
}

/// The answer of `GET /healthz` and `GET /readyz`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    /// `ok` (alive) or `ready` (the backend answers).
    #[schema(value_type = HealthStatus, example = "ok")]
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

/// The backend is unavailable (code `backend_unavailable`), or the request took longer than the
/// request timeout (code `timeout`); try again shortly.
#[derive(IntoResponses)]
#[response(status = 503)]
pub(crate) struct BackendDown(ErrorBody);

/// The answers of the routes that show one job.
#[derive(IntoResponses)]
pub(crate) enum ShowJob {
    /// The job.
    #[response(status = 200)]
    Found(JobDoc),
    /// The id is not a UUID (code `invalid_job_id`), or the query string is not valid (code
    /// `invalid_query`).
    #[response(status = 400)]
    BadId(ErrorBody),
    /// No job has this id: it never existed, was deleted, or expired.
    #[response(status = 404)]
    NotFound(ErrorBody),
}

/// The answers of the routes that list jobs by page.
#[derive(IntoResponses)]
pub(crate) enum JobPage {
    /// A page of jobs, newest first. When more follow, `x-next-cursor` holds their cursor and
    /// `link` the next page's URL.
    #[response(status = 200, headers(
        ("x-next-cursor" = CursorDoc, description = "The cursor of the next page, when one follows"),
        ("link" = String, description = "The next page, when one follows: `<URL>; rel=\"next\"`"),
    ))]
    Page(Vec<JobDoc>),
    /// An unknown parameter, an unknown status, or a number out of range (code `invalid_query`).
    #[response(status = 400)]
    BadQuery(ErrorBody),
}

/// The answers of `/incomplete_jobs`, which has one page only.
#[derive(IntoResponses)]
pub(crate) enum JobList {
    /// The newest unfinished jobs, newest first.
    #[response(status = 200)]
    Jobs(Vec<JobDoc>),
    /// An unknown parameter, or a number out of range (code `invalid_query`).
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
