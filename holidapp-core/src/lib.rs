//! # holidapp-core
//!
//! The domain of Holidapp: analysis jobs submitted over HTTP, run by workers, with their results
//! kept for a while. This crate holds every rule; the `holidapp-http` and `holidapp-worker` crates
//! only wire these pieces to the outside world.
//!
//! (The architecture overview is completed below as the crate grows.)

#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod backends;
pub mod clock;
#[cfg(feature = "test-util")]
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
