//! # holidapp-core
//!
//! A job engine: jobs submitted by any part of a program (or over HTTP), run by workers in this
//! process or in others, with their results kept for a while. This crate holds every rule. The
//! `holidapp-http` crate (the API) and the `holidapp-worker` crate (worker processes) only wire
//! these pieces to the outside world, and a program of your own can embed them just as well.
//!
//! ## Jobs, kinds and queues
//!
//! A **job kind** is a name and a [`Renderer`], the kind's handler: it declares its parameter
//! type (anything serde reads), checks parameters when a job is submitted
//! ([`Renderer::validate`]), and runs a job ([`Renderer::render`]), answering a result with its
//! content type ([`Output`]; [`Json`], [`Png`], text and bytes are built in). A [`Kinds`]
//! registry maps names to renderers; a job of a kind nobody registered is refused when it is
//! submitted.
//!
//! A [`Job`] has a fresh UUID v4 ([`JobId`]), its kind, its parameters (one JSON value,
//! [`Params`]), the queue it waits in ([`QueueName`], `default` unless given), its attempt counts
//! and times, and a [`JobStatus`]: `submitted` → `in progress` → `complete`, or `failed`; a
//! waiting or running job can be `cancelled`.
//!
//! ## The status machine
//!
//! [`machine::decide`] is the one function that decides what an event (a lease, a completion, a
//! failure, a release, an expired lease) does to a job: the new status, the attempt count, and
//! whether and when it is retried. Both backends carry its [`Move`](machine::Move)s out and
//! decide nothing themselves.
//!
//! ## Capabilities
//!
//! A backend is a set of small traits, each with its contract written on it:
//!
//! - [`Producer`] stores and queues new jobs, one at a time or in batches.
//! - [`Consumer`] hands jobs to workers under a **lease**: a deadline and a fencing token
//!   ([`Lease`]). The worker renews the lease while it works and reports the outcome; a worker
//!   whose lease was taken over is refused by every call.
//! - [`Maintenance`] sends the jobs of dead workers back to their queue once their lease runs out
//!   (or fails them after their last attempt), and frees finished jobs past retention.
//! - [`JobStore`] reads, lists (newest first, bounded pages), deletes and counts jobs.
//! - [`EventLog`](events::EventLog) keeps a bounded log of every job's status changes, read from
//!   any position and followed live ([`events`]).
//! - [`WorkerRegistry`] keeps one entry per live worker process, which it heartbeats with its
//!   identity, queues and counters; an entry that misses its beats disappears
//!   ([`workers`]).
//!
//! The [`contract`] suite (feature `test-util`) checks every promise, and both built-in backends
//! run it unchanged.
//!
//! ## Use cases and the processing step
//!
//! [`Jobs`] holds the use cases of a job service (submit checked by the kind, read, list, fetch a
//! result in one step, delete, count, the live workers); [`Processor::process_one`] is everything a worker does for
//! one job: lease it from the worker's queues, run it with its kind's renderer, store the result
//! or the failure. Workers, the embedded mode and tests all call it.
//!
//! ## Which backend
//!
//! - [`MemoryBackend`]: one process, no Redis. What tests and embedding programs use, and the
//!   default of `holidapp-api` on a laptop. Leases, tokens, retries and retention behave exactly
//!   as on Redis; the state lives and dies with the process.
//! - `redis_backend::RedisBackend` (feature `redis`, on by default): many API and worker
//!   processes sharing one Redis. Every status change and queue move is one Lua script touching
//!   keys of one hash tag; keys are human-readable (see `docs/redis-layout.md`).
//!
//! The in-memory backend reads time from a [`Clock`]; the Redis backend reads Redis's own clock,
//! one clock for every process, or a [`Clock`] given for tests. So tests drive lease expiry and
//! retry delays with a [`ManualClock`] instead of sleeping.
//!
//! ## The plot kind
//!
//! The course's product, a service that loads a data set (HGNC genes, meteorite landings) and
//! renders plots of it, is one job kind built on this public API: the `plot` module (feature
//! `plots`, on by default) holds the data sets, their parsers, the data-set and image stores of
//! both backends, and `plot::PlotRenderer`, the kind `plot`. With `default-features = false` the
//! crate is the engine and the in-memory backend alone.
//!
//! ## Example
//!
//! A kind of your own, from submit to typed result, on the in-memory backend:
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use holidapp_core::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Greeting { name: String }
//!
//! struct Greeter;
//!
//! #[async_trait]
//! impl Renderer for Greeter {
//!     const KIND: &'static str = "greet";
//!     type Params = Greeting;
//!     type Output = String;
//!
//!     async fn render(&self, params: Greeting, _ctx: &Context) -> Result<String> {
//!         Ok(format!("hello, {}", params.name))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<()> {
//! let backends = Backends::single(Arc::new(MemoryBackend::new(QueueSettings::default())));
//! let kinds = Kinds::new().with(Greeter);
//! let jobs = Jobs::new(&backends, kinds.clone());
//!
//! let job = jobs.submit_as::<Greeter>(&Greeting { name: "Ada".into() }).await?;
//!
//! let worker = Processor::new(backends.consumer.clone(), kinds, Duration::from_secs(30));
//! worker.process_one("10.0.0.7").await?; // what a worker does
//!
//! let result = jobs.result_of::<Greeter>(job.id).await?;
//! assert_eq!(result, Some(ResultState::Ready("hello, Ada".to_owned())));
//! # Ok(())
//! # }
//! ```

#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod backends;
pub mod clock;
#[cfg(any(feature = "test-util", doc))]
pub mod contract;
pub mod error;
pub mod events;
pub mod integer;
pub mod job;
pub mod jobs;
pub mod kind;
pub mod machine;
pub mod memory;
#[cfg(feature = "plots")]
pub mod plot;
pub mod process;
pub mod queue;
#[cfg(feature = "redis")]
pub mod redis_backend;
pub mod schedule;
pub mod stats;
pub mod store;
#[cfg(all(feature = "test-util", feature = "redis"))]
pub mod testing;
pub mod throughput;
pub mod workers;

/// The attribute a [`Renderer`] implementation needs (re-exported from `async-trait`).
pub use async_trait::async_trait;
/// The token that tells a render its job was cancelled ([`Context::with_cancellation`];
/// re-exported from `tokio-util`).
pub use tokio_util::sync::CancellationToken;

pub use backends::{Backend, Backends};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use job::{Job, JobId, Name, Params, Progress, QueueName, UniqueScope};
pub use jobs::{Jobs, Submit, Submitted};
pub use kind::{Context, JobOutput, Json, Kinds, Output, Png, Renderer};
pub use machine::{FailureKind, JobStatus, RetryPolicy};
pub use memory::MemoryBackend;
pub use process::{JobOutcome, Outcome, Processed, Processor, Ran};
pub use queue::{
    Consumer, Enqueued, Lease, LeaseToken, Maintenance, Producer, QueueSettings, Quotas, Renewal,
    RequeueReport,
};
pub use schedule::{Schedule, ScheduledJob, Scheduler};
pub use stats::{Counter, StatsSnapshot, WorkerStats};
pub use store::{
    Cursor, JobStore, ListQuery, Page, QueueStats, ResultState, StatusCounts, Statuses,
};
pub use workers::{WorkerInfo, WorkerRegistry};
