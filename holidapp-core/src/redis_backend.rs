//! The Redis backend (placeholder, being written).
