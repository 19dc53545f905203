//! [`Backends`]: the capabilities a service is wired with, as one value.

use std::sync::Arc;

use crate::events::EventLog;
use crate::queue::{Consumer, Maintenance, Producer};
use crate::store::JobStore;
use crate::workers::WorkerRegistry;

/// A backend that plays every role, as both built-in backends do.
pub trait Backend:
    JobStore + Producer + Consumer + Maintenance + WorkerRegistry + EventLog + 'static
{
}

impl<B> Backend for B where
    B: JobStore + Producer + Consumer + Maintenance + WorkerRegistry + EventLog + 'static
{
}

/// The capabilities a service runs on. Both built-in backends have all of them; a test or a
/// decorator may wrap one capability and pass the others through untouched.
#[derive(Clone)]
pub struct Backends {
    /// Reads, lists, deletes and counts jobs.
    pub store: Arc<dyn JobStore>,
    /// Stores new jobs.
    pub producer: Arc<dyn Producer>,
    /// Leases jobs and takes their outcomes.
    pub consumer: Arc<dyn Consumer>,
    /// Recovers expired leases and purges finished jobs.
    pub maintenance: Arc<dyn Maintenance>,
    /// Where workers register and heartbeat, and the live ones are listed.
    pub workers: Arc<dyn WorkerRegistry>,
    /// The log of every job's status changes.
    pub events: Arc<dyn EventLog>,
}

impl Backends {
    /// Uses one backend for every role.
    pub fn single<B: Backend>(backend: Arc<B>) -> Self {
        Backends {
            store: backend.clone(),
            producer: backend.clone(),
            consumer: backend.clone(),
            maintenance: backend.clone(),
            workers: backend.clone(),
            events: backend,
        }
    }
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends").finish_non_exhaustive()
    }
}
