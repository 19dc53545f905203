//! [`Jobs`]: the use cases of a job service, each one call: submit (checked by the job's kind),
//! read, list, fetch a result, cancel, delete, count.
//!
//! The HTTP API calls nothing else for jobs, and a program embedding the engine calls the same
//! functions, so a rule (what a submit checks, how a result's state is read) is written once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::backends::Backends;
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::job::{Job, JobId, QueueName, UniqueScope, check_priority, check_unique_key};
use crate::kind::{JobOutput, Kinds, Output, Renderer};
use crate::machine::JobStatus;
use crate::queue::{Enqueued, Producer};
use crate::store::{JobStore, ListQuery, Page, QueueStats, ResultState, Statuses};

/// The most attempts a job may ask for.
pub const MAX_ATTEMPTS_LIMIT: u32 = 1000;

/// The longest per-attempt timeout a job may ask for, in seconds (one day).
pub const MAX_TIMEOUT_SECONDS: u32 = 86_400;

/// A job to submit: its kind, its parameters as JSON, and where and how it runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Submit {
    /// The kind; the service's default kind when `None`.
    pub kind: Option<String>,
    /// The parameters, checked by the kind when submitted.
    pub params: Value,
    /// The queue; the service's default queue (`default`) when `None`.
    pub queue: Option<QueueName>,
    /// Attempts allowed; the service's default (`HOLIDAPP_MAX_ATTEMPTS`) when `None`.
    pub max_attempts: Option<u32>,
    /// A unique (idempotency) key: while a job submitted with it to the same queue is kept (and
    /// for at most the backend's [`unique_ttl`](crate::QueueSettings::unique_ttl)), a submit with
    /// the same key stores nothing and answers that job. 1 to 256 characters, no control
    /// characters.
    pub unique_key: Option<String>,
    /// How long the unique key holds: while the job waits or runs, or for a number of seconds
    /// (the backend's [`unique_ttl`](crate::QueueSettings::unique_ttl) while the job is kept
    /// when `None`). Ignored without a unique key.
    pub unique_scope: Option<UniqueScope>,
    /// The longest one attempt may run, in seconds (1 to 86,400); workers stop an attempt at
    /// the shorter of this and their own limit.
    pub timeout: Option<u32>,
    /// Its priority within its queue (-1,000 to 1,000; higher runs first; 0 when `None`).
    pub priority: Option<i32>,
    /// When it may run: not leased before then. At most [`MAX_DELAY`] ahead; a time already
    /// past runs it at once. Give this or [`delay`](Self::delay), not both.
    pub run_at: Option<DateTime<Utc>>,
    /// How long from its submit it waits before it may run, at most [`MAX_DELAY`].
    pub delay: Option<Duration>,
}

/// The most jobs one [`Jobs::submit_many`] call takes.
pub const MAX_BATCH: usize = 1000;

/// The furthest ahead a job may be scheduled: 366 days.
pub const MAX_DELAY: Duration = Duration::from_secs(366 * 86_400);

impl Submit {
    /// A job of `kind` with `params`, in the default queue.
    pub fn new(kind: impl Into<String>, params: Value) -> Self {
        Submit {
            kind: Some(kind.into()),
            params,
            queue: None,
            max_attempts: None,
            unique_key: None,
            unique_scope: None,
            timeout: None,
            priority: None,
            run_at: None,
            delay: None,
        }
    }

    /// A job of the kind `R` serves, with typed parameters.
    pub fn of<R: Renderer>(params: &R::Params) -> Result<Self> {
        let params = serde_json::to_value(params)
            .map_err(|e| Error::InvalidParams(format!("parameters cannot be serialized: {e}")))?;
        Ok(Submit::new(R::KIND, params))
    }

    /// The same job, in `queue`.
    pub fn in_queue(mut self, queue: QueueName) -> Self {
        self.queue = Some(queue);
        self
    }

    /// The same job, allowed `attempts` attempts.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// The same job, with a unique (idempotency) key.
    pub fn with_unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    /// The same job, its unique key holding for `scope`.
    pub fn unique_for(mut self, scope: UniqueScope) -> Self {
        self.unique_scope = Some(scope);
        self
    }

    /// The same job, each attempt stopped after `seconds`.
    pub fn with_timeout(mut self, seconds: u32) -> Self {
        self.timeout = Some(seconds);
        self
    }

    /// The same job, at priority `priority` in its queue.
    pub fn with_priority(mut self, priority: i32) -> Self {
        self.priority = Some(priority);
        self
    }

    /// The same job, not run before `at`.
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }

    /// The same job, not run before `delay` has passed from its submit.
    pub fn delayed_by(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
}

/// What a submit did.
#[derive(Clone, Debug, PartialEq)]
pub enum Submitted {
    /// The job was stored and queued.
    Created(Job),
    /// A kept job already holds the submit's unique key: nothing was stored, and this is that
    /// job (a retried request finds the job its first try made).
    Existing(Job),
}

impl Submitted {
    /// The job, new or existing.
    pub fn job(&self) -> &Job {
        match self {
            Submitted::Created(job) | Submitted::Existing(job) => job,
        }
    }

    /// The job, new or existing.
    pub fn into_job(self) -> Job {
        match self {
            Submitted::Created(job) | Submitted::Existing(job) => job,
        }
    }

    /// Whether this submit stored the job.
    pub fn is_created(&self) -> bool {
        matches!(self, Submitted::Created(_))
    }
}

/// How many times a submit tries again when the job holding its unique key is gone by the time
/// it is read (deleted or purged in between).
const UNIQUE_RACE_TRIES: usize = 3;

/// The use cases of a job service over a store, a producer and the registered kinds.
///
/// Cheap to clone: clones share the backends and the kinds.
#[derive(Clone)]
pub struct Jobs {
    store: Arc<dyn JobStore>,
    producer: Arc<dyn Producer>,
    workers: Arc<dyn crate::workers::WorkerRegistry>,
    events: Arc<dyn crate::events::EventLog>,
    kinds: Kinds,
    clock: Arc<dyn Clock>,
    default_kind: Option<String>,
    default_queue: QueueName,
    max_attempts: u32,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("kinds", &self.kinds)
            .field("default_kind", &self.default_kind)
            .field("default_queue", &self.default_queue)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl Jobs {
    /// The use cases over `backends` for the kinds in `kinds`: no default kind, the `default`
    /// queue, 3 attempts per job, the system clock.
    pub fn new(backends: &Backends, kinds: Kinds) -> Self {
        Jobs {
            store: Arc::clone(&backends.store),
            producer: Arc::clone(&backends.producer),
            workers: Arc::clone(&backends.workers),
            events: Arc::clone(&backends.events),
            kinds,
            clock: Arc::new(SystemClock),
            default_kind: None,
            default_queue: QueueName::default_queue(),
            max_attempts: crate::RetryPolicy::default().max_attempts,
        }
    }

    /// The same service giving jobs submitted without a kind the kind `kind` (the course's
    /// `{"start", "end"}` bodies are `plot` jobs).
    pub fn with_default_kind(mut self, kind: impl Into<String>) -> Self {
        self.default_kind = Some(kind.into());
        self
    }

    /// The same service putting jobs submitted without a queue in `queue`.
    pub fn with_default_queue(mut self, queue: QueueName) -> Self {
        self.default_queue = queue;
        self
    }

    /// The same service allowing `attempts` attempts to jobs submitted without a limit.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.clamp(1, MAX_ATTEMPTS_LIMIT);
        self
    }

    /// The same service stamping `created_at` from `clock` (the backend's, so both agree).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The registered kinds.
    pub fn kinds(&self) -> &Kinds {
        &self.kinds
    }

    /// The kind of jobs submitted without one, if any.
    pub fn default_kind(&self) -> Option<&str> {
        self.default_kind.as_deref()
    }

    /// The store jobs are read from.
    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.store
    }

    /// Submits a job: its kind checks the parameters ([`Error::UnknownKind`],
    /// [`Error::ParamsShape`] or [`Error::InvalidParams`] when it refuses them, and nothing is
    /// stored), then the job is stored and queued in one step. Answers the job as stored, or,
    /// when its unique key is held, the job holding it (see [`submit_or_find`](Self::submit_or_find)
    /// to tell which). A full queue answers [`Error::QuotaExceeded`].
    pub async fn submit(&self, request: Submit) -> Result<Job> {
        Ok(self.submit_or_find(request).await?.into_job())
    }

    /// [`submit`](Self::submit), saying whether the job was stored or already existed under its
    /// unique key.
    pub async fn submit_or_find(&self, request: Submit) -> Result<Submitted> {
        let job = self.prepare(request)?;
        self.store_one(job).await
    }

    /// Stores a prepared job, or finds the job holding its unique key.
    async fn store_one(&self, job: Job) -> Result<Submitted> {
        for _ in 0..UNIQUE_RACE_TRIES {
            match self.producer.enqueue(&job).await? {
                Enqueued::Stored => return Ok(Submitted::Created(job)),
                Enqueued::Duplicate(holder) => {
                    if let Some(existing) = self.store.get(holder).await? {
                        return Ok(Submitted::Existing(existing));
                    }
                }
            }
        }
        Err(Error::Conflict(
            "the job holding this unique key keeps being deleted; try again".into(),
        ))
    }

    /// Submits many jobs in one call, each checked and stored or refused on its own, as
    /// [`submit_or_find`](Self::submit_or_find) would: one answer per request, in order. The
    /// jobs that pass their kind's check are stored in as few round trips as the backend allows
    /// (one per chunk of up to 1,000 jobs of a queue on Redis). The outer `Err` is for a failure of
    /// the whole call (the backend is down); at most [`MAX_BATCH`] requests.
    pub async fn submit_many(&self, requests: Vec<Submit>) -> Result<Vec<Result<Submitted>>> {
        if requests.len() > MAX_BATCH {
            return Err(Error::InvalidParams(format!(
                "a batch holds at most {MAX_BATCH} jobs, got {}",
                requests.len()
            )));
        }
        let prepared: Vec<Result<Job>> = requests.into_iter().map(|r| self.prepare(r)).collect();
        let valid: Vec<Job> = prepared
            .iter()
            .filter_map(|p| p.as_ref().ok().cloned())
            .collect();
        let mut stored = self.producer.enqueue_many(&valid).await?.into_iter();
        let mut valid = valid.into_iter();
        let mut answers = Vec::with_capacity(prepared.len());
        for prepared in prepared {
            let answer = match prepared {
                Err(e) => Err(e),
                Ok(_) => {
                    let (Some(job), Some(outcome)) = (valid.next(), stored.next()) else {
                        return Err(Error::Internal(
                            "the backend answered fewer jobs than it was given".into(),
                        ));
                    };
                    match outcome {
                        Ok(Enqueued::Stored) => Ok(Submitted::Created(job)),
                        Ok(Enqueued::Duplicate(holder)) => match self.store.get(holder).await? {
                            Some(existing) => Ok(Submitted::Existing(existing)),
                            // The holder went in between: submit this one alone, which tries
                            // again.
                            None => self.store_one(job).await,
                        },
                        Err(e) => Err(e),
                    }
                }
            };
            answers.push(answer);
        }
        Ok(answers)
    }

    /// Submits a job of the kind `R` serves, with typed parameters.
    pub async fn submit_as<R: Renderer>(&self, params: &R::Params) -> Result<Job> {
        self.submit(Submit::of::<R>(params)?).await
    }

    /// The job a submit would store, checked, with a fresh id; nothing is stored.
    pub fn prepare(&self, request: Submit) -> Result<Job> {
        let kind = match request.kind.or_else(|| self.default_kind.clone()) {
            Some(kind) => kind,
            None => return Err(Error::ParamsShape("missing field `kind`".into())),
        };
        let params = self.kinds.check(&kind, request.params)?;
        let max_attempts = match request.max_attempts {
            None => self.max_attempts,
            Some(n @ 1..=MAX_ATTEMPTS_LIMIT) => n,
            Some(n) => {
                return Err(Error::InvalidParams(format!(
                    "max_attempts must be between 1 and {MAX_ATTEMPTS_LIMIT}, got {n}"
                )));
            }
        };
        if let Some(key) = &request.unique_key {
            check_unique_key(key)?;
        }
        // A scope is the scope of a unique key: without a key there is nothing to hold.
        let unique_scope = request
            .unique_scope
            .filter(|_| request.unique_key.is_some());
        if let Some(scope) = unique_scope {
            scope.check()?;
        }
        if let Some(seconds) = request.timeout
            && !(1..=MAX_TIMEOUT_SECONDS).contains(&seconds)
        {
            return Err(Error::InvalidParams(format!(
                "timeout must be between 1 and {MAX_TIMEOUT_SECONDS} seconds, got {seconds}"
            )));
        }
        let priority = request.priority.unwrap_or(0);
        check_priority(priority)?;
        let now = self.clock.now();
        let run_at = match (request.run_at, request.delay) {
            (Some(_), Some(_)) => {
                return Err(Error::InvalidParams(
                    "give run_at or delay, not both".to_owned(),
                ));
            }
            (Some(at), None) => Some(at),
            (None, Some(delay)) => {
                Some(now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX))
            }
            (None, None) => None,
        };
        if let Some(at) = run_at
            && at > now + chrono::Duration::from_std(MAX_DELAY).unwrap_or(chrono::Duration::MAX)
        {
            return Err(Error::InvalidParams(format!(
                "a job may be scheduled at most {} days ahead",
                MAX_DELAY.as_secs() / 86_400
            )));
        }
        let queue = request.queue.unwrap_or_else(|| self.default_queue.clone());
        let mut job = Job::new(kind, queue, params, max_attempts, now);
        job.id = self.producer.new_id(&job.queue);
        job.unique_key = request.unique_key;
        job.unique_scope = unique_scope;
        job.timeout = request.timeout;
        job.priority = priority;
        // A time already past is no delay: the job is ready at once.
        job.run_at = run_at.filter(|at| *at > now);
        Ok(job)
    }

    /// The job with this id, if it exists.
    pub async fn get(&self, id: JobId) -> Result<Option<Job>> {
        self.store.get(id).await
    }

    /// A page of jobs, newest first.
    pub async fn list(&self, query: &ListQuery) -> Result<Page> {
        self.store.list(query).await
    }

    /// The newest jobs that have not finished (`submitted` or `in progress`), as the course's
    /// `/incomplete_jobs` lists them.
    pub async fn incomplete(&self, limit: usize) -> Result<Page> {
        let query = ListQuery {
            statuses: Statuses::of(&[JobStatus::Submitted, JobStatus::InProgress]),
            limit,
            ..ListQuery::default()
        };
        self.store.list(&query).await
    }

    /// The job's result with its state, read in one step; `None` for no such job.
    pub async fn result(&self, id: JobId) -> Result<Option<ResultState>> {
        self.store.result(id).await
    }

    /// The job's result read as the output type of the kind `R` serves; `None` for no such job.
    pub async fn result_of<R: Renderer>(
        &self,
        id: JobId,
    ) -> Result<Option<ResultState<R::Output>>> {
        match self.store.result(id).await? {
            None => Ok(None),
            Some(state) => state.decode().map(Some),
        }
    }

    /// Deletes a job and its result; `false` when there was none, [`Error::Conflict`] while it
    /// runs.
    pub async fn delete(&self, id: JobId) -> Result<bool> {
        self.store.delete(id).await
    }

    /// Cancels a waiting or running job (see [`JobStore::cancel`]): answers it as it now is
    /// (`cancelled`), `None` when there is no such job, [`Error::Conflict`] when it is already
    /// `complete` or `failed`. Cancelling a cancelled job answers it unchanged.
    pub async fn cancel(&self, id: JobId) -> Result<Option<Job>> {
        self.store.cancel(id).await
    }

    /// Runs a failed job again (see [`JobStore::retry`]): answers it as it now is (`submitted`,
    /// its attempts counted from zero), `None` when there is no such job, [`Error::Conflict`]
    /// when it is not `failed`.
    pub async fn retry(&self, id: JobId) -> Result<Option<Job>> {
        self.store.retry(id).await
    }

    /// Every queue's counts with its throughput over `history`, into which this reading is
    /// recorded (see [`Throughput`](crate::throughput::Throughput)): what a dashboard shows.
    pub async fn overview(
        &self,
        history: &crate::throughput::Throughput,
    ) -> Result<Vec<crate::throughput::QueueOverview>> {
        let stats = self.store.stats().await?;
        Ok(history.observe(self.clock.now(), stats))
    }

    /// The counts of every queue.
    pub async fn stats(&self) -> Result<Vec<QueueStats>> {
        self.store.stats().await
    }

    /// The status changes of jobs that pass `filter`: the retained ones after `after` first
    /// (none when `after` is `None`: from now), then each new one as it happens, with the
    /// cursor to resume after it ([`events::follow`](crate::events::follow)). A
    /// [`Followed::Quiet`](crate::events::Followed::Quiet) comes after `quiet` without an event.
    pub fn events(
        &self,
        after: Option<crate::events::EventCursor>,
        filter: crate::events::EventFilter,
        quiet: std::time::Duration,
    ) -> impl futures::Stream<Item = Result<crate::events::Followed>> + Send + use<> {
        crate::events::follow(Arc::clone(&self.events), after, filter, quiet)
    }

    /// The retained events after `after` (all of them when `None`) that pass `filter`, at most
    /// [`MAX_READ`](crate::events::MAX_READ), each with the cursor after it; and the cursor after
    /// everything read (filtered out or not), from which to go on. Reads at most 64 pages of the
    /// log, so a filter that skips nearly everything still costs bounded work.
    pub async fn past_events(
        &self,
        after: Option<crate::events::EventCursor>,
        filter: &crate::events::EventFilter,
    ) -> Result<(
        Vec<(crate::events::JobEvent, crate::events::EventCursor)>,
        crate::events::EventCursor,
    )> {
        use crate::events::MAX_READ;
        let mut cursor = after.unwrap_or_default();
        let mut found = Vec::new();
        for _ in 0..64 {
            let page = self.events.read(&cursor, MAX_READ).await?;
            if page.is_empty() {
                break;
            }
            for event in page {
                if cursor.covers(&event.stream, event.position) {
                    continue;
                }
                cursor.pass(&event);
                if filter.matches(&event) {
                    found.push((event, cursor.clone()));
                    if found.len() == MAX_READ {
                        return Ok((found, cursor));
                    }
                }
            }
        }
        Ok((found, cursor))
    }

    /// The live workers of the worker registry, by id: what each serves and has done.
    pub async fn workers(&self) -> Result<Vec<crate::workers::WorkerInfo>> {
        self.workers.workers().await
    }
}

impl ResultState<Output> {
    /// The same state with a ready result read as `O`.
    pub fn decode<O: JobOutput>(self) -> Result<ResultState<O>> {
        Ok(match self {
            ResultState::Pending(status) => ResultState::Pending(status),
            ResultState::Failed(reason) => ResultState::Failed(reason),
            ResultState::Cancelled => ResultState::Cancelled,
            ResultState::Ready(output) => ResultState::Ready(O::from_output(output)?),
        })
    }
}
