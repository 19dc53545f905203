//! The backend contract suite, run against the in-memory backend.

use std::sync::Arc;

use holidapp_core::{ManualClock, MemoryBackend, QueueSettings};

async fn make(settings: QueueSettings, clock: Arc<ManualClock>) -> Arc<MemoryBackend> {
    Arc::new(MemoryBackend::with_clock(settings, clock))
}

holidapp_core::backend_contract_suite!(make);
