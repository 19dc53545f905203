//! # holidapp-core
//!
//! The domain of Holidapp: analysis jobs submitted over HTTP, run by workers, with their results
//! kept for a while. This crate holds every rule. The `holidapp-http` crate (the API) and the
//! `holidapp-worker` crate (the worker processes) only wire these pieces to the outside world,
//! and a program of your own can embed them just as well.
//!
//! ## Jobs and their status machine
//!
//! A [`Job`] asks for a result computed from the loaded data set: a year range (`start`, `end`)
//! and renderer options ([`JobParams`]). It has a fresh UUID v4 ([`JobId`]) and a
//! [`JobStatus`]: `submitted` → `in progress` → `complete`, or `failed`; a failed attempt that may
//! be retried, and a job given back by a stopping worker, go back to `submitted`.
//! [`JobStatus::transition`] is the one function that decides which moves are legal, and every
//! backend asks it before changing a status.
//!
//! ## The traits
//!
//! - [`Queue`] hands jobs to workers under a **lease**: a deadline and a fencing token
//!   ([`Lease`]). The worker renews the lease while it works; if it dies, the lease runs out and
//!   [`Queue::requeue_expired`] puts the job back (or fails it after
//!   [`RetryPolicy::max_attempts`]); a worker whose lease was taken over is refused by every call.
//!   Creating a job and queueing it are one step ([`Queue::enqueue`]).
//! - [`JobStore`] reads, lists (newest first, bounded pages), deletes and ages out jobs and their
//!   results.
//! - [`DataStore`] and [`ImageStore`] keep the loaded data set and the one rendered image.
//! - [`Renderer`] is the job's work: it validates parameters when a job is submitted and renders
//!   the result when a worker runs it. [`plot::PlotRenderer`] is the built-in one (histograms,
//!   category counts, scatter plots, with an embedded font); [`parse`] reads the supported data
//!   set formats.
//!
//! Each trait's documentation states what an implementation must guarantee, and the
//! [`contract`] suite (feature `test-util`) checks it: both built-in backends run it unchanged.
//!
//! ## The processing step
//!
//! [`Processor::process_one`] is everything a worker does for one job: lease it, render it over
//! the (cached) data set, store the result and mark it complete, or record the failure so the
//! [`RetryPolicy`] can retry it with backoff or fail it. Workers, the embedded mode and tests all
//! call it; nothing else repeats it.
//!
//! ## Which backend
//!
//! - [`MemoryBackend`]: one process, no Redis. The default of `holidapp-api` on a laptop, and
//!   what tests and embedding programs use. Leases, tokens, retries and retention behave exactly
//!   as on Redis; the state lives and dies with the process.
//! - [`redis_backend::RedisBackend`]: many API and worker processes sharing one Redis. Every
//!   status change and queue move is one Lua script; keys are human-readable (see
//!   `docs/redis-layout.md`). Jobs survive process crashes, and Redis restarts when Redis persists.
//!
//! All backends read time from a [`Clock`], so tests drive lease expiry and retry delays with a
//! [`ManualClock`] instead of sleeping.
//!
//! ## Example
//!
//! A job from submission to a stored PNG, on the in-memory backend:
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use holidapp_core::{plot::PlotRenderer, parse, *};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<()> {
//! let backend = Arc::new(MemoryBackend::new(QueueSettings::default()));
//! backend.replace(parse::bundled("hgnc").expect("bundled sample")).await?;
//!
//! let renderer = Arc::new(PlotRenderer::new());
//! let params = JobParams::new("1990", "2010");
//! renderer.validate(&params)?; // what the API does before accepting a job
//! let job = Job::new(params, chrono::Utc::now());
//! backend.enqueue(&job).await?;
//!
//! let processor = Processor::new(backend.clone(), backend.clone(), renderer, Duration::from_secs(30));
//! processor.process_one("10.0.0.7").await?; // what a worker does
//!
//! assert_eq!(backend.get(job.id).await?.unwrap().status, JobStatus::Complete);
//! let png = backend.result(job.id).await?.unwrap();
//! assert!(png.starts_with(b"\x89PNG"));
//! # Ok(())
//! # }
//! ```

#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod backends;
pub mod clock;
#[cfg(any(feature = "test-util", doc))]
pub mod contract;
pub mod dataset;
pub mod error;
pub mod job;
pub mod memory;
pub mod parse;
pub mod plot;
pub mod process;
pub mod queue;
pub mod redis_backend;
pub mod render;
pub mod store;
#[cfg(feature = "test-util")]
pub mod testing;

pub use backends::{Backend, Backends};
pub use clock::{Clock, ManualClock, SystemClock};
pub use dataset::{DataSet, Record};
pub use error::{Error, Result};
pub use job::{Job, JobId, JobParams, JobStatus};
pub use memory::MemoryBackend;
pub use process::{JobOutcome, Outcome, Processed, Processor};
pub use queue::{
    FailureKind, Lease, LeaseToken, Queue, QueueDepth, QueueSettings, RequeueReport, RetryDecision,
    RetryPolicy,
};
pub use render::Renderer;
pub use store::{DataStore, ImageStore, JobStore, ListQuery, StatusCounts};
