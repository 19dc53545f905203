//! Test harness: a real `redis-server` per test (placeholder, being written).
