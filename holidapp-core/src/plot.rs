//! The built-in plot renderer (placeholder, being written).
