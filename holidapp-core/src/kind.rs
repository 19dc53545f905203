//! Job kinds: the [`Renderer`] trait (a kind's handler), what a render answers ([`Output`]), and
//! the registry that maps kind names to renderers ([`Kinds`]).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::task::AtomicWaker;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::job::{JobId, Params, Progress, QueueName, check_kind_name};

/// The work of one kind of job: its typed parameters, the check they get when a job is
/// submitted, and the render that turns them into a result.
///
/// Implementors name the kind ([`KIND`](Renderer::KIND)), choose the parameter and result types,
/// and write [`render`](Renderer::render); [`validate`](Renderer::validate) has a default that
/// accepts everything the parameter type can hold.
///
/// # Contract
///
/// - `validate` is cheap and pure: it looks only at the parameters and answers
///   [`Error::InvalidParams`] with a message a person can act on. It runs when a job is
///   submitted, and again before every render, so a job is never rendered with parameters its
///   kind refuses.
/// - `render` answers `Err` for a failed attempt. The error's kind decides what happens next
///   ([`Error::is_transient`]): a transient error ([`Error::Transient`], for a service the kind
///   calls being down) is retried with backoff, anything else ([`Error::Render`],
///   [`Error::InvalidParams`], ...) fails the job at once. It never panics; if it does, the worker counts the
///   attempt as lost and the job is retried once its lease runs out.
/// - CPU-heavy work belongs on a blocking thread (`tokio::task::spawn_blocking`); `render` is
///   async so that a cheap renderer pays no thread hop.
///
/// # Example
///
/// ```
/// use holidapp_core::{Context, Json, Renderer, Result};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Add { a: i64, b: i64 }
///
/// struct Adder;
///
/// #[async_trait::async_trait]
/// impl Renderer for Adder {
///     const KIND: &'static str = "add";
///     type Params = Add;
///     type Output = Json<i64>;
///
///     async fn render(&self, params: Add, _ctx: &Context) -> Result<Json<i64>> {
///         Ok(Json(params.a + params.b))
///     }
/// }
/// ```
#[async_trait]
pub trait Renderer: Send + Sync + 'static {
    /// The kind's name, what jobs are submitted under: 1 to 64 ASCII letters, digits, `-`, `_`
    /// or `.`.
    const KIND: &'static str;

    /// Whether the HTTP API shows the parameters' fields at the top level of the job's JSON,
    /// beside the job's own fields (as well as under `params`), where their names do not clash
    /// with the job's. For kinds whose clients read them there, as the course's clients read
    /// `start` and `end`; `false` unless overridden.
    const PARAMS_AT_TOP_LEVEL: bool = false;

    /// The parameters a job of this kind carries. A kind that wants them as raw JSON, unparsed,
    /// takes [`Params`]: a job's parameters then reach [`render`](Renderer::render) as they are
    /// stored, without a parse or a copy.
    type Params: Serialize + DeserializeOwned + Send + Sync + 'static;

    /// What a render answers; stored as the job's result with its content type.
    type Output: JobOutput;

    /// Checks parameters when a job is submitted (and before each render). Accepts everything
    /// unless overridden.
    fn validate(&self, params: &Self::Params) -> Result<()> {
        let _ = params;
        Ok(())
    }

    /// Runs one attempt of a job.
    async fn render(&self, params: Self::Params, ctx: &Context) -> Result<Self::Output>;
}

/// What a render is told about the job it runs, and its way back: progress reports and the
/// news that the job was cancelled.
///
/// Cheap to clone (clones share the reports and the cancellation), so a render can move a clone
/// into a blocking thread and report from there.
#[derive(Clone, Debug)]
pub struct Context {
    id: JobId,
    kind: Arc<str>,
    queue: QueueName,
    attempt: u32,
    /// `None` for a render nobody can cancel (no token is allocated then).
    cancel: Option<CancellationToken>,
    progress: Option<Arc<ProgressCell>>,
}

/// The last progress a render reported and not yet written, and the writer's waker: a lock only
/// when a report is made or taken, nothing allocated or locked for a render that reports nothing.
#[derive(Debug, Default)]
pub(crate) struct ProgressCell {
    latest: Mutex<Option<Progress>>,
    reported: AtomicBool,
    writer: AtomicWaker,
}

impl ProgressCell {
    /// Waits for a report not yet taken, and takes the latest.
    pub(crate) async fn next(&self) -> Progress {
        std::future::poll_fn(|cx| {
            self.writer.register(cx.waker());
            if self.reported.swap(false, Ordering::AcqRel)
                && let Some(progress) = self.take()
            {
                return std::task::Poll::Ready(progress);
            }
            std::task::Poll::Pending
        })
        .await
    }

    fn take(&self) -> Option<Progress> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn put(&self, progress: Progress) {
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(progress);
        self.reported.store(true, Ordering::Release);
        self.writer.wake();
    }
}

impl Context {
    /// The context of attempt `attempt` (from 1) of job `id`, never cancelled, its progress
    /// reports going nowhere (a render run outside a worker, in a test or a benchmark).
    pub fn new(id: JobId, kind: impl Into<Arc<str>>, queue: QueueName, attempt: u32) -> Self {
        Context {
            id,
            kind: kind.into(),
            queue,
            attempt,
            cancel: None,
            progress: None,
        }
    }

    /// The same context, cancelled when `cancel` is.
    pub fn with_cancellation(mut self, cancel: CancellationToken) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// The same context, its progress reports kept in `cell` for a writer.
    pub(crate) fn with_progress(mut self, cell: Arc<ProgressCell>) -> Self {
        self.progress = Some(cell);
        self
    }

    /// Reports how far the job has come: `percent` (clamped to 0..=100) and a short message
    /// (cut to [`MAX_PROGRESS_MESSAGE`](crate::job::MAX_PROGRESS_MESSAGE) characters). Returns at
    /// once: the worker writes the latest report in the background, at most once per its
    /// progress interval (one second unless configured), so a render may report as often as it
    /// likes. `GET /jobs/{id}` shows the last report written.
    pub fn progress(&self, percent: f64, message: impl Into<String>) {
        if let Some(cell) = &self.progress {
            cell.put(Progress::new(percent, message));
        }
    }

    /// Whether the job was cancelled. A render that loops can check it and stop early; the
    /// worker drops the render at its next await point anyway, and stores nothing it answers.
    pub fn is_cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(CancellationToken::is_cancelled)
    }

    /// Resolves when the job is cancelled (never, if it is not): for a render that wants to
    /// `select!` on it, or hand it to a blocking thread (see [`cancellation`](Self::cancellation)).
    pub async fn cancelled(&self) {
        match &self.cancel {
            Some(cancel) => cancel.cancelled().await,
            None => std::future::pending().await,
        }
    }

    /// The cancellation token itself, to pass on to other tasks or threads; `None` for a render
    /// nobody can cancel (one run outside a worker).
    pub fn cancellation(&self) -> Option<&CancellationToken> {
        self.cancel.as_ref()
    }

    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// The job's kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The queue the job came from.
    pub fn queue(&self) -> &QueueName {
        &self.queue
    }

    /// Which attempt this is, counting from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

/// A job's result: bytes and their content type.
#[derive(Clone, PartialEq, Eq)]
pub struct Output {
    content_type: Cow<'static, str>,
    bytes: Bytes,
}

impl Output {
    /// A result of `content_type` (`image/png`, `application/json`, ...).
    pub fn new(content_type: impl Into<Cow<'static, str>>, bytes: impl Into<Bytes>) -> Self {
        Output {
            content_type: content_type.into(),
            bytes: bytes.into(),
        }
    }

    /// Its content type.
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// The content type, shared: a built-in one (`image/png`, ...) costs no allocation.
    pub(crate) fn content_type_shared(&self) -> Cow<'static, str> {
        self.content_type.clone()
    }

    /// Its bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Its bytes, taken.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output")
            .field("content_type", &self.content_type)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// A result type: how a renderer's answer becomes a stored [`Output`], and how a stored output
/// is read back as that type.
pub trait JobOutput: Sized + Send + 'static {
    /// The output to store.
    fn into_output(self) -> Result<Output>;

    /// The value of a stored output. An output that is not of this type is
    /// [`Error::Internal`].
    fn from_output(output: Output) -> Result<Self>;
}

impl JobOutput for Output {
    fn into_output(self) -> Result<Output> {
        Ok(self)
    }

    fn from_output(output: Output) -> Result<Self> {
        Ok(output)
    }
}

/// The media type of [`Json`] results.
pub const JSON: &str = "application/json";
/// The media type of [`Png`] results.
pub const PNG: &str = "image/png";
/// The media type of `String` results.
pub const TEXT: &str = "text/plain; charset=utf-8";
/// The media type of [`Bytes`] results.
pub const OCTETS: &str = "application/octet-stream";

/// A result stored as JSON (`application/json`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T: Serialize + DeserializeOwned + Send + 'static> JobOutput for Json<T> {
    fn into_output(self) -> Result<Output> {
        let bytes = serde_json::to_vec(&self.0)
            .map_err(|e| Error::Render(format!("the result cannot be serialized: {e}")))?;
        Ok(Output::new(JSON, bytes))
    }

    fn from_output(output: Output) -> Result<Self> {
        serde_json::from_slice(output.bytes())
            .map(Json)
            .map_err(|e| Error::Internal(format!("the stored result is not this JSON: {e}")))
    }
}

/// A PNG image (`image/png`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Png(pub Bytes);

impl JobOutput for Png {
    fn into_output(self) -> Result<Output> {
        Ok(Output::new(PNG, self.0))
    }

    fn from_output(output: Output) -> Result<Self> {
        Ok(Png(output.into_bytes()))
    }
}

/// Text (`text/plain; charset=utf-8`).
impl JobOutput for String {
    fn into_output(self) -> Result<Output> {
        Ok(Output::new(TEXT, self))
    }

    fn from_output(output: Output) -> Result<Self> {
        String::from_utf8(output.into_bytes().to_vec())
            .map_err(|_| Error::Internal("the stored result is not UTF-8 text".into()))
    }
}

/// Bytes of any other kind (`application/octet-stream`).
impl JobOutput for Bytes {
    fn into_output(self) -> Result<Output> {
        Ok(Output::new(OCTETS, self))
    }

    fn from_output(output: Output) -> Result<Self> {
        Ok(output.into_bytes())
    }
}

/// A renderer with its types erased, as the registry holds it.
#[async_trait]
trait ErasedKind: Send + Sync {
    fn check(&self, params: serde_json::Value) -> Result<Params>;
    async fn run(&self, params: &Params, ctx: &Context) -> Result<Output>;
    fn params_at_top_level(&self) -> bool;
}

struct Typed<R>(R);

#[async_trait]
impl<R: Renderer> ErasedKind for Typed<R> {
    fn check(&self, params: serde_json::Value) -> Result<Params> {
        let typed: R::Params =
            serde_json::from_value(params).map_err(|e| Error::ParamsShape(e.to_string()))?;
        self.0.validate(&typed)?;
        Params::encode(&typed)
    }

    async fn run(&self, params: &Params, ctx: &Context) -> Result<Output> {
        let typed: R::Params =
            pass_through::<R::Params>(params).map_or_else(|| params.decode(), Ok)?;
        self.0.validate(&typed)?;
        self.0.render(typed, ctx).await?.into_output()
    }

    fn params_at_top_level(&self) -> bool {
        R::PARAMS_AT_TOP_LEVEL
    }
}

/// `params` itself when `P` is [`Params`] (a kind that takes its parameters as raw JSON gets
/// them without a parse and a copy), else `None`.
fn pass_through<P: 'static>(params: &Params) -> Option<P> {
    let mut slot = Some(params.clone());
    (&mut slot as &mut dyn std::any::Any)
        .downcast_mut::<Option<P>>()
        .and_then(Option::take)
}

/// The registry of job kinds: kind name → renderer. One process serves every kind it registers;
/// a job of a kind not registered is refused at submit time with [`Error::UnknownKind`].
///
/// Cheap to clone: clones share the renderers.
#[derive(Clone, Default)]
pub struct Kinds {
    by_name: BTreeMap<Arc<str>, Arc<dyn ErasedKind>>,
}

impl Kinds {
    /// An empty registry.
    pub fn new() -> Self {
        Kinds::default()
    }

    /// The registry with `renderer` serving jobs of kind [`R::KIND`](Renderer::KIND), replacing
    /// any renderer registered under that name before.
    ///
    /// # Panics
    ///
    /// When `R::KIND` is not a valid kind name: a programming error, found the first time the
    /// program registers the kind.
    pub fn with<R: Renderer>(self, renderer: R) -> Self {
        self.with_named(R::KIND, renderer)
    }

    /// The registry with `renderer` serving jobs of kind `name` (not its own
    /// [`KIND`](Renderer::KIND)), replacing any renderer registered under `name` before. Stand-in
    /// renderers for tests and benchmarks use it to serve another kind's jobs.
    ///
    /// # Panics
    ///
    /// When `name` is not a valid kind name.
    pub fn with_named<R: Renderer>(mut self, name: &str, renderer: R) -> Self {
        if let Err(e) = check_kind_name(name) {
            panic!("cannot register job kind: {e}");
        }
        self.by_name
            .insert(Arc::from(name), Arc::new(Typed(renderer)));
        self
    }

    /// The registered kind names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.by_name.keys().map(|k| k.to_string()).collect()
    }

    /// Whether a renderer is registered for `kind`.
    pub fn contains(&self, kind: &str) -> bool {
        self.by_name.contains_key(kind)
    }

    /// Whether the HTTP API shows the parameters of `kind` at the top level of its jobs (see
    /// [`Renderer::PARAMS_AT_TOP_LEVEL`]); `false` for an unknown kind.
    pub fn params_at_top_level(&self, kind: &str) -> bool {
        self.by_name
            .get(kind)
            .is_some_and(|k| k.params_at_top_level())
    }

    /// Checks parameters for a job of `kind`: decodes them as the kind's parameter type,
    /// validates them, and answers them in the kind's own serialization.
    pub fn check(&self, kind: &str, params: serde_json::Value) -> Result<Params> {
        self.get(kind)?.check(params)
    }

    /// Runs one attempt of a job of `kind` with `params`.
    pub async fn run(&self, kind: &str, params: &Params, ctx: &Context) -> Result<Output> {
        self.get(kind)?.run(params, ctx).await
    }

    fn get(&self, kind: &str) -> Result<&Arc<dyn ErasedKind>> {
        self.by_name.get(kind).ok_or_else(|| Error::UnknownKind {
            kind: crate::job::truncate(kind, 64),
            known: self.names(),
        })
    }
}

impl fmt::Debug for Kinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.by_name.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Add {
        a: i64,
        #[serde(default)]
        b: i64,
    }

    struct Adder;

    #[async_trait]
    impl Renderer for Adder {
        const KIND: &'static str = "add";
        type Params = Add;
        type Output = Json<i64>;

        fn validate(&self, params: &Add) -> Result<()> {
            if params.a < 0 {
                return Err(Error::InvalidParams("a must not be negative".into()));
            }
            Ok(())
        }

        async fn render(&self, params: Add, ctx: &Context) -> Result<Json<i64>> {
            Ok(Json(params.a + params.b + i64::from(ctx.attempt())))
        }
    }

    fn ctx() -> Context {
        let queue = QueueName::default_queue();
        Context::new(JobId::new_in(&queue), "add", queue, 1)
    }

    #[tokio::test]
    async fn a_registered_kind_checks_and_runs_typed_parameters() {
        let kinds = Kinds::new().with(Adder);
        assert_eq!(kinds.names(), vec!["add".to_owned()]);
        let params = kinds.check("add", serde_json::json!({"a": 2})).unwrap();
        assert_eq!(
            params.as_json(),
            r#"{"a":2,"b":0}"#,
            "the kind's own serialization"
        );
        let out = kinds.run("add", &params, &ctx()).await.unwrap();
        assert_eq!(out.content_type(), JSON);
        assert_eq!(Json::<i64>::from_output(out).unwrap(), Json(3));
        assert!(matches!(
            kinds.check("add", serde_json::json!({"a": "x"})),
            Err(Error::ParamsShape(_))
        ));
        assert!(matches!(
            kinds.check("add", serde_json::json!({"a": -1})),
            Err(Error::InvalidParams(_))
        ));
        // A job stored with parameters its kind refuses is refused again before rendering.
        let bad = Params::from_json(r#"{"a":-5}"#).unwrap();
        assert!(matches!(
            kinds.run("add", &bad, &ctx()).await,
            Err(Error::InvalidParams(_))
        ));
    }

    /// Echoes its parameters' text: a kind that takes them raw.
    struct Echo;

    #[async_trait]
    impl Renderer for Echo {
        const KIND: &'static str = "echo";
        type Params = Params;
        type Output = String;

        async fn render(&self, params: Params, _ctx: &Context) -> Result<String> {
            Ok(params.as_json().to_owned())
        }
    }

    #[tokio::test]
    async fn a_kind_taking_raw_parameters_gets_the_stored_text_unparsed() {
        let kinds = Kinds::new().with(Echo);
        // Key order and spacing survive: the text is passed through, never parsed into a map.
        let stored = Params::from_json(r#"{"z": 1,  "a": [2]}"#).unwrap();
        let out = kinds.run("echo", &stored, &ctx()).await.unwrap();
        assert_eq!(String::from_output(out).unwrap(), r#"{"z": 1,  "a": [2]}"#);
        assert!(kinds.check("echo", serde_json::json!([1, "x"])).is_ok());
    }

    #[test]
    fn an_unknown_kind_names_the_known_ones() {
        let kinds = Kinds::new().with(Adder).with_named("sum", Adder);
        match kinds.check("nope", serde_json::json!({})) {
            Err(Error::UnknownKind { kind, known }) => {
                assert_eq!(kind, "nope");
                assert_eq!(known, vec!["add".to_owned(), "sum".to_owned()]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    #[should_panic(expected = "not a valid kind name")]
    fn an_invalid_kind_name_is_a_programming_error() {
        let _ = Kinds::new().with_named("has space", Adder);
    }

    #[test]
    fn outputs_round_trip_with_their_content_types() {
        let text = "héllo".to_owned().into_output().unwrap();
        assert_eq!(text.content_type(), TEXT);
        assert_eq!(String::from_output(text).unwrap(), "héllo");
        let png = Png(Bytes::from_static(b"\x89PNG")).into_output().unwrap();
        assert_eq!(png.content_type(), PNG);
        let raw = Bytes::from_static(&[0, 1, 2]).into_output().unwrap();
        assert_eq!(raw.content_type(), OCTETS);
        assert!(String::from_output(Output::new(TEXT, vec![0xff])).is_err());
        assert!(Json::<u8>::from_output(Output::new(JSON, "[]")).is_err());
    }
}
