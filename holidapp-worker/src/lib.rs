//! # holidapp-worker
//!
//! Runs `holidapp-core`'s processing step ([`Processor`](holidapp_core::Processor)) many jobs at
//! a time, keeps their leases alive, recovers the jobs of workers that died, and stops without
//! losing work. It holds no business rule: what a job's work is, when a failed attempt is retried
//! and when it fails for good are decided by core (the kinds' renderers and the status machine,
//! [`machine::decide`](holidapp_core::machine::decide)). The `holidapp-worker` binary wires this library
//! to Redis and to signals; `holidapp-api` embeds it over its in-memory backend when no Redis is
//! configured.
//!
//! ## Architecture
//!
//! [`run`] drives one worker until its shutdown future resolves. Inside, a few loops share the
//! worker's state:
//!
//! - **The fetch loop** (one per worker) keeps the worker supplied with leased jobs. It asks
//!   [`Processor::lease_many`](holidapp_core::Processor::lease_many) for the whole shortfall at
//!   once (one backend round trip for many jobs; the worker's queues are asked in order of
//!   preference, see [`Processor::lease`](holidapp_core::Processor::lease)), registers each
//!   lease as *active* and starts a task per job. How many leases it wants is *concurrency* (one
//!   per slot) plus a **prefetch buffer**: as many jobs as the slots are expected to run in the
//!   next 20 ms at the average run time so far, capped by
//!   [`WorkerConfig::prefetch`]. Light jobs (microseconds each) are thus fetched hundreds at a
//!   time, while jobs slower than 20 ms (a plot) are not fetched ahead at all and stay in the
//!   queue for idle workers. With nothing to do, the loop waits in
//!   [`Consumer::wait_for_work`](holidapp_core::Consumer::wait_for_work) (the backend wakes it
//!   when work arrives in one of its queues), never polling in a tight loop.
//! - **Slots.** A job task waits for a *slot* (a permit of a semaphore with `concurrency`
//!   permits) while its job sits in the buffer, holds it only while the renderer runs
//!   ([`Processor::run`](holidapp_core::Processor::run)), and stores the outcome after giving it
//!   to the next job. Outcomes that finish together are stored together: the Redis backend
//!   gathers concurrent calls into one script call.
//! - **The heartbeat** (one per worker, not one timer per job) renews every held lease, running or
//!   buffered, in one [`Consumer::renew_many`](holidapp_core::Consumer::renew_many) call every
//!   third of the lease, so a lease always has at least two thirds of its length left. A job whose lease two heartbeats in
//!   a row report as no longer held (it ran out and another worker took the job) is abandoned:
//!   its task stops at its next await and never tries to store the result, which the queue's
//!   fencing token would refuse anyway. (One report is not enough: the job's own outcome, stored
//!   an instant before the renewal, ends the lease too.)
//! - **Recovery** (in every worker, on a short interval: `min(5 s, lease / 3)` by default, jittered
//!   ±20 %) calls [`Maintenance::requeue_expired`](holidapp_core::Maintenance::requeue_expired),
//!   so the job of a
//!   worker that died, even by `kill -9`, runs again within the lease length plus that interval.
//!   The call is safe from many processes at once and cheap when nothing expired, so no leader is
//!   needed. Less often (every minute) the worker also purges finished jobs past retention
//!   ([`Maintenance::purge_expired`](holidapp_core::Maintenance::purge_expired)).
//! - **The registry beat** (when the worker has a
//!   [`WorkerRegistry`](holidapp_core::WorkerRegistry), as both binaries give it) registers the
//!   worker under a fresh run id and refreshes its entry every 2 s with its identity, queues,
//!   concurrency and counters; the worker leaves the registry when it stops, and the entry of a
//!   worker that died disappears after three missed beats.
//! - **Backend outages** never stop a worker: a failed lease, renewal or recovery call is logged and
//!   tried again after an exponential backoff with jitter (100 ms doubling up to 5 s). A job whose
//!   outcome cannot be stored is left to its lease, which runs out, and the queue retries it.
//! - **Shutdown.** When the shutdown future resolves, the fetch loop stops leasing and the jobs
//!   still in the prefetch buffer are released at once. Running jobs
//!   get the grace period to finish while heartbeats go on; the jobs still running after it are
//!   released ([`Consumer::release`](holidapp_core::Consumer::release)), which puts them back in the
//!   queue at once without counting the attempt. [`run_with_force`] takes a second future that
//!   ends the grace period early (a binary's second signal).
//!
//! ## Observability
//!
//! Every job logs one line when it ends, inside the spans `worker{worker=<identity>}` and
//! `job{job=<id> attempt=<n>}`, with its `outcome` (`complete`, `retrying`, `failed`,
//! `lease lost`, `released`, `unrecorded`) and `duration_ms`: at `debug` level when it completes
//! or is released, at `warn` otherwise, so a busy worker's log at `info` does not grow per job.
//! At `info`, a summary line with the counters of [`WorkerStats`] (lock-free atomics) is logged
//! every minute and when the worker stops. A caller keeps an `Arc<WorkerStats>` to read the same
//! counters at any time, as the HTTP API's metrics page does for its embedded workers.
//!
//! ## Example
//!
//! Drain three jobs of a kind of your own in memory with two slots, then stop:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use holidapp_core::{
//!     Backends, Context, Jobs, Kinds, MemoryBackend, Processor, QueueSettings, Renderer, Result,
//!     Submit, async_trait,
//! };
//! use holidapp_worker::{Worker, WorkerConfig};
//!
//! struct Shout;
//!
//! #[async_trait]
//! impl Renderer for Shout {
//!     const KIND: &'static str = "shout";
//!     type Params = String;
//!     type Output = String;
//!
//!     async fn render(&self, text: String, _ctx: &Context) -> Result<String> {
//!         Ok(text.to_uppercase())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let backends = Backends::single(Arc::new(MemoryBackend::new(QueueSettings::default())));
//! let kinds = Kinds::new().with(Shout);
//! let jobs = Jobs::new(&backends, kinds.clone());
//! for word in ["a", "b", "c"] {
//!     jobs.submit(Submit::new("shout", word.into())).await.unwrap();
//! }
//! let processor = Processor::new(backends.consumer.clone(), kinds, Duration::from_secs(30));
//! let worker = Worker::new(
//!     Arc::new(processor),
//!     backends.maintenance.clone(),
//!     WorkerConfig::new("10.0.0.7", 2),
//! );
//! let stats = Arc::clone(&worker.stats);
//!
//! // Stop once all three are done (a binary would wait for SIGTERM instead).
//! let done = async move {
//!     while stats.snapshot().completed < 3 {
//!         tokio::time::sleep(Duration::from_millis(5)).await;
//!     }
//! };
//! let report = holidapp_worker::run(worker, done).await.unwrap();
//! assert_eq!(report.stats.completed, 3);
//! # }
//! ```

pub mod config;

mod backoff;
mod pool;
mod renderers;
mod settings;

pub use holidapp_core::stats::{StatsSnapshot, WorkerStats};
pub use pool::{Ending, Report, Worker, run, run_with_force};
pub use renderers::{BLANK_PNG, NoopRenderer, RendererChoice, SleepRenderer};
pub use settings::{ConfigError, DEFAULT_PREFETCH, MAX_CONCURRENCY, MAX_PREFETCH, WorkerConfig};
