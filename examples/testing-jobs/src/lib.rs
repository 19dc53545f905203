//! # Testing your own jobs
//!
//! A small program's job kind, and how to test it. The kind is `fetch` ([`Fetch`]): it reads a
//! page from a [`Source`] and answers its size and title. A source can be down for a while, so a
//! render can fail in a way that retrying fixes; the engine then retries the job after a backoff,
//! up to its attempt limit.
//!
//! The interesting part is `tests/fetch.rs`. It runs jobs against the in-memory backend
//! ([`MemoryBackend`]) with a [`ManualClock`], one step at a time with
//! [`Processor::process_one`], and moves time by hand: retries, attempt limits, a worker that dies
//! holding a job, and results past retention are all tested in microseconds, without a sleep,
//! without Redis, and without a flaky test. The [`FakeSource`] stands in for the network, and the
//! tests tell it when to fail.
//!
//! ```sh
//! cargo test -p example-testing-jobs     # the tests: the point of this example
//! cargo run -p example-testing-jobs      # a short demo of a retry, printed step by step
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use holidapp_core::{
    Backends, Context, Error, JobOutcome, Jobs, Json, Kinds, ManualClock, MemoryBackend, Outcome,
    Processor, QueueSettings, Quotas, Renderer, Result, ResultState, RetryPolicy, async_trait,
};
use serde::{Deserialize, Serialize};

/// Why a [`Source`] could not give a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceError {
    /// The source could not be reached (a timeout, a refused connection, a 503). Trying again
    /// later may work.
    Unreachable(String),
    /// The source has no such page. Trying again will not help.
    NotFound,
}

/// Where the `fetch` kind reads pages from. A real program implements it over an HTTP client;
/// the tests and the demo use a [`FakeSource`] they control.
#[async_trait]
pub trait Source: Send + Sync + 'static {
    /// The page at `url`.
    async fn get(&self, url: &str) -> std::result::Result<String, SourceError>;
}

/// The parameters of a `fetch` job: `{"url": "https://example.com/"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchParams {
    /// The page to fetch: an `http://` or `https://` URL.
    pub url: String,
}

/// What a `fetch` job answers, stored as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fetched {
    /// The page fetched.
    pub url: String,
    /// Its size in bytes.
    pub bytes: usize,
    /// Its first line.
    pub title: String,
}

/// The `fetch` kind: reads a page from its [`Source`].
pub struct Fetch {
    source: Arc<dyn Source>,
}

impl Fetch {
    /// The kind, reading from `source`.
    pub fn new(source: Arc<dyn Source>) -> Self {
        Fetch { source }
    }
}

#[async_trait]
impl Renderer for Fetch {
    const KIND: &'static str = "fetch";
    type Params = FetchParams;
    type Output = Json<Fetched>;

    fn validate(&self, params: &FetchParams) -> Result<()> {
        if !(params.url.starts_with("https://") || params.url.starts_with("http://")) {
            return Err(Error::InvalidParams(format!(
                "`url` must start with http:// or https://, got '{}'",
                params.url
            )));
        }
        Ok(())
    }

    async fn render(&self, params: FetchParams, _ctx: &Context) -> Result<Json<Fetched>> {
        // The error's variant decides what happens to the job: a transient one
        // (`Error::is_transient`: `Transient`) is retried after a backoff, until the job's
        // attempts run out; any other fails the job at once.
        match self.source.get(&params.url).await {
            Ok(page) => Ok(Json(Fetched {
                bytes: page.len(),
                title: page.lines().next().unwrap_or_default().to_owned(),
                url: params.url,
            })),
            Err(SourceError::Unreachable(why)) => {
                Err(Error::Transient(format!("{}: {why}", params.url)))
            }
            Err(SourceError::NotFound) => {
                Err(Error::Render(format!("{}: no such page", params.url)))
            }
        }
    }
}

/// The kinds this program runs, over `source`.
pub fn kinds(source: Arc<dyn Source>) -> Kinds {
    Kinds::new().with(Fetch::new(source))
}

/// The queue rules of this program: three attempts per job, retries after 10 s then 20 s (each
/// with jitter: a random point in the upper half of the step), and results kept for an hour.
///
/// The tests use these very settings, so what they prove holds for the program.
pub const SETTINGS: QueueSettings = QueueSettings {
    retry: RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_secs(10),
        max_delay: Duration::from_secs(60),
    },
    result_ttl: Duration::from_secs(3600),
    unique_ttl: Duration::from_secs(86_400),
    quotas: Quotas {
        max_waiting: None,
        max_result_bytes: None,
    },
};

/// How long a worker holds a job before another may take it over.
pub const LEASE: Duration = Duration::from_secs(30);

/// A [`Source`] in memory, controlled by whoever holds it: it serves the pages it was given, and
/// is unreachable for as many calls as it is told to be.
#[derive(Debug, Default)]
pub struct FakeSource {
    pages: Mutex<HashMap<String, String>>,
    /// How many of the next calls fail as unreachable.
    outages: AtomicU32,
    /// How many calls it has had.
    calls: AtomicU32,
}

impl FakeSource {
    /// Serves `page` at `url` from now on.
    pub fn add_page(&self, url: &str, page: &str) {
        self.pages
            .lock()
            .unwrap()
            .insert(url.to_owned(), page.to_owned());
    }

    /// Makes the next `calls` calls fail as unreachable.
    pub fn fail_next(&self, calls: u32) {
        self.outages.store(calls, Ordering::SeqCst);
    }

    /// How many times the source was called.
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Source for FakeSource {
    async fn get(&self, url: &str) -> std::result::Result<String, SourceError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let outage = self
            .outages
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if outage.is_ok() {
            return Err(SourceError::Unreachable("connection reset".to_owned()));
        }
        let page = self.pages.lock().unwrap().get(url).cloned();
        page.ok_or(SourceError::NotFound)
    }
}

/// One line about what a `process_one` call did.
fn step(outcome: Outcome) -> String {
    match outcome {
        Outcome::Idle => "nothing to run yet".to_owned(),
        Outcome::Processed(done) => {
            let what = match done.result {
                JobOutcome::Complete => "complete".to_owned(),
                JobOutcome::Retrying { reason } => format!("failed, to be retried ({reason})"),
                JobOutcome::Failed { reason } => format!("failed for good ({reason})"),
                JobOutcome::LeaseLost => "lease lost, result dropped".to_owned(),
            };
            format!("attempt {}: {what}", done.attempt)
        }
    }
}

/// Fetches one page through a source that is down for the first attempt, and tells `say` what
/// happens at each step.
pub async fn demo(mut say: impl FnMut(String)) -> anyhow::Result<()> {
    // Everything reads the same manual clock: the backend (leases, retry delays, retention) and
    // the job use cases (`created_at`).
    let clock = Arc::new(ManualClock::starting_now());
    let backends = Backends::single(Arc::new(MemoryBackend::with_clock(SETTINGS, clock.clone())));
    let source = Arc::new(FakeSource::default());
    source.add_page(
        "https://example.com/",
        "Example Domain\n<p>An example.</p>\n",
    );
    let kinds = kinds(source.clone());
    let jobs = Jobs::new(&backends, kinds.clone()).with_clock(clock.clone());
    let processor = Processor::new(backends.consumer.clone(), kinds, LEASE);

    let url = "https://example.com/".to_owned();
    let job = jobs.submit_as::<Fetch>(&FetchParams { url }).await?;
    say(format!("submitted job {} (kind {})", job.id, job.kind));

    source.fail_next(1);
    say("the source goes down for one call".to_owned());
    say(step(processor.process_one("demo-worker").await?));
    // The retry waits for its backoff: asked again at once, the queue has nothing ready.
    say(step(processor.process_one("demo-worker").await?));
    // The first retry waits between 5 and 10 s (the base delay, with jitter): move past it.
    clock.advance(SETTINGS.retry.base_delay);
    say(format!(
        "the clock moves {} s",
        SETTINGS.retry.base_delay.as_secs()
    ));
    say(step(processor.process_one("demo-worker").await?));

    match jobs.result_of::<Fetch>(job.id).await? {
        Some(ResultState::Ready(Json(fetched))) => say(format!(
            "result: '{}', {} bytes, from {}",
            fetched.title, fetched.bytes, fetched.url
        )),
        other => anyhow::bail!("the job did not complete: {other:?}"),
    }
    say(format!("the source was called {} times", source.calls()));
    Ok(())
}
