//! The backend contract suite (placeholder, being written).
