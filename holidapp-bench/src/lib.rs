//! Holidapp benchmarks.
