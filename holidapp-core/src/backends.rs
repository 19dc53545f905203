//! [`Backends`]: the four stores a service is wired with, as one value.

use std::sync::Arc;

use crate::queue::Queue;
use crate::store::{DataStore, ImageStore, JobStore};

/// A backend that plays all four roles, as both built-in backends do.
pub trait Backend: JobStore + Queue + DataStore + ImageStore + 'static {}

impl<B: JobStore + Queue + DataStore + ImageStore + 'static> Backend for B {}

/// The backends a service runs on. Both built-in backends implement all four traits; a custom
/// deployment may mix them.
#[derive(Clone)]
pub struct Backends {
    /// Jobs and results.
    pub jobs: Arc<dyn JobStore>,
    /// The job queue.
    pub queue: Arc<dyn Queue>,
    /// The loaded data set.
    pub data: Arc<dyn DataStore>,
    /// The stored image.
    pub images: Arc<dyn ImageStore>,
}

impl Backends {
    /// Uses one backend for all four roles.
    pub fn single<B: Backend>(backend: Arc<B>) -> Self {
        Backends {
            jobs: backend.clone(),
            queue: backend.clone(),
            data: backend.clone(),
            images: backend,
        }
    }
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends").finish_non_exhaustive()
    }
}
