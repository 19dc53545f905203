//! The worker registry: each worker process registers itself and heartbeats what it is doing, so
//! that a person (`GET /workers`, the metrics page, the dashboard) sees which workers are alive,
//! what they serve and how many jobs each has done, without reading Redis by hand.
//!
//! A worker [`beat`](WorkerRegistry::beat)s every [`BEAT_INTERVAL`] with its [`WorkerInfo`]; an
//! entry not renewed within its time to live (by default [`MISSED_BEATS`] intervals) is dead and
//! disappears from [`workers`](WorkerRegistry::workers), so a worker killed with `kill -9`
//! is gone within `BEAT_INTERVAL × MISSED_BEATS` of its last beat. A worker that stops cleanly
//! [`leave`](WorkerRegistry::leave)s at once. The registry holds one entry per live worker
//! process: its memory is bounded by the workers that run, whatever their history.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::job::QueueName;

/// How often a worker heartbeats its entry.
pub const BEAT_INTERVAL: Duration = Duration::from_secs(2);

/// How many beats in a row an entry may miss before it counts as dead.
pub const MISSED_BEATS: u32 = 3;

/// How long an entry lives without a beat: [`MISSED_BEATS`] × [`BEAT_INTERVAL`].
pub const ENTRY_TTL: Duration = Duration::from_secs(BEAT_INTERVAL.as_secs() * MISSED_BEATS as u64);

/// The longest [`WorkerInfo::id`] or [`WorkerInfo::identity`], in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// The most workers [`WorkerRegistry::workers`] answers.
pub const MAX_WORKERS: usize = 1_000;

/// What one worker process tells the registry about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// This run of the worker, unique among all runs: its identity and a random suffix
    /// ([`WorkerInfo::new_id`]), so two processes with the same identity (two workers in one
    /// pod, a restarted worker) are two entries.
    pub id: String,
    /// What the worker writes on the jobs it takes (`WORKER_IP`: its pod's address).
    pub identity: String,
    /// The queues it serves, in order of preference.
    pub queues: Vec<QueueName>,
    /// How many jobs it runs at once.
    pub concurrency: u32,
    /// Jobs running right now.
    pub in_flight: u64,
    /// Jobs it leased since it started (running, done, or waiting in its prefetch buffer).
    pub leased: u64,
    /// Jobs it completed since it started.
    pub completed: u64,
    /// Jobs it recorded as failed for good since it started.
    pub failed: u64,
    /// Attempts that failed and will be tried again.
    pub retried: u64,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When the registry last heard from it (the registry's clock, set by
    /// [`beat`](WorkerRegistry::beat)).
    pub last_seen: DateTime<Utc>,
}

impl WorkerInfo {
    /// A fresh run id for a worker of `identity`: the identity, a slash and 8 random hex digits.
    pub fn new_id(identity: &str) -> String {
        format!("{identity}/{:08x}", fastrand::u32(..))
    }

    /// Checks what a registry stores: ids and identities of 1 to [`MAX_NAME_BYTES`] bytes without
    /// control characters.
    pub fn validate(&self) -> Result<()> {
        for (what, name) in [("id", &self.id), ("identity", &self.identity)] {
            if name.is_empty() || name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control)
            {
                return Err(Error::InvalidParams(format!(
                    "a worker's {what} must be 1 to {MAX_NAME_BYTES} bytes without control \
                     characters"
                )));
            }
        }
        Ok(())
    }
}

/// Where workers register and heartbeat, and where the live ones are listed.
///
/// # Contract
///
/// - `beat` stores the worker's info with `last_seen` set to the registry's clock, replacing the
///   previous beat of the same id; the entry lives for `ttl` from then.
/// - `workers` answers every entry whose time to live has not passed, by id, at most
///   [`MAX_WORKERS`]; never a dead one.
/// - `leave` removes the entry at once; leaving twice, or an id never seen, is not an error.
#[async_trait]
pub trait WorkerRegistry: Send + Sync {
    /// Records `worker` as alive until `ttl` passes without another beat.
    async fn beat(&self, worker: &WorkerInfo, ttl: Duration) -> Result<()>;

    /// Removes the worker `id` (it stopped).
    async fn leave(&self, id: &str) -> Result<()>;

    /// The live workers, by id.
    async fn workers(&self) -> Result<Vec<WorkerInfo>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str) -> WorkerInfo {
        WorkerInfo {
            id: id.to_owned(),
            identity: "10.0.0.7".to_owned(),
            queues: vec![QueueName::default_queue()],
            concurrency: 2,
            in_flight: 0,
            leased: 0,
            completed: 0,
            failed: 0,
            retried: 0,
            started_at: DateTime::UNIX_EPOCH,
            last_seen: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn ids_carry_the_identity_and_differ_per_run() {
        let a = WorkerInfo::new_id("10.0.0.7");
        let b = WorkerInfo::new_id("10.0.0.7");
        assert!(
            a.starts_with("10.0.0.7/") && a.len() == "10.0.0.7/".len() + 8,
            "{a}"
        );
        assert_ne!(a, b);
    }

    #[test]
    fn names_are_bounded_and_free_of_control_characters() {
        assert!(info("w/1").validate().is_ok());
        assert!(info("").validate().is_err());
        assert!(info("w\n1").validate().is_err());
        assert!(info(&"w".repeat(MAX_NAME_BYTES + 1)).validate().is_err());
        let mut blank = info("w/1");
        blank.identity.clear();
        assert!(blank.validate().is_err());
    }
}
