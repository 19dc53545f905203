//! The in-memory backend (being written).

/// The in-memory backend.
#[derive(Debug, Default)]
pub struct MemoryBackend;
