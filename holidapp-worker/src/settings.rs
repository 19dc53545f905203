//! [`WorkerConfig`]: the plain values [`run`](crate::run) works with, and their checks.

use std::time::Duration;

/// How a worker runs. Build it with [`WorkerConfig::new`] and change the fields you need; the
/// lease length is not here: it is the [`Processor`](holidapp_core::Processor)'s, so leases and
/// their renewals cannot disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Written on every job this worker takes (`WORKER_IP`), and on its log lines.
    pub identity: String,
    /// Jobs run at once (`HOLIDAPP_WORKER_CONCURRENCY`). At least 1.
    pub concurrency: usize,
    /// The most leased jobs that may wait in the worker's prefetch buffer for a free slot
    /// (`HOLIDAPP_WORKER_PREFETCH`, default [`DEFAULT_PREFETCH`]; 0 fetches a job only when a
    /// slot is free). The buffer holds about 20 ms of work per slot at the jobs' average run time,
    /// up to this: short jobs are fetched in batches, jobs that run longer than that are not
    /// fetched ahead at all. Buffered jobs are leased like running ones (the heartbeat renews
    /// them; a worker that dies gives them back when their lease runs out) and go back to the
    /// queue at once when the worker stops.
    pub prefetch: usize,
    /// Once shutdown begins, how long in-flight jobs may run before they are released
    /// (`HOLIDAPP_SHUTDOWN_GRACE_SECONDS`, default 20 s).
    pub shutdown_grace: Duration,
    /// How often this worker sends expired leases back to the queue. `None` (the default):
    /// `min(5 s, lease / 3)`. Each wait is jittered by ±20 % so that many workers do not all
    /// scan at the same instant.
    pub recovery_interval: Option<Duration>,
    /// How often this worker purges finished jobs past retention (default 60 s).
    pub purge_interval: Duration,
    /// How often the summary line is logged (default 60 s).
    pub summary_interval: Duration,
    /// How long an idle worker waits for work before it asks the queue again (default 1 s). The
    /// wait ends early when the backend signals new work.
    pub idle_wait: Duration,
}

impl WorkerConfig {
    /// A configuration with `identity` and `concurrency` and the defaults above.
    pub fn new(identity: impl Into<String>, concurrency: usize) -> Self {
        WorkerConfig {
            identity: identity.into(),
            concurrency,
            prefetch: DEFAULT_PREFETCH,
            shutdown_grace: Duration::from_secs(20),
            recovery_interval: None,
            purge_interval: Duration::from_secs(60),
            summary_interval: Duration::from_secs(60),
            idle_wait: Duration::from_secs(1),
        }
    }

    /// The most leases the worker holds at once: a slot for each running job and the prefetch
    /// buffer.
    pub fn most_held(&self) -> usize {
        self.concurrency + self.prefetch
    }

    /// The recovery interval for leases of length `lease`.
    pub fn recovery_interval_for(&self, lease: Duration) -> Duration {
        self.recovery_interval
            .unwrap_or_else(|| (lease / 3).min(Duration::from_secs(5)))
    }

    /// Checks the configuration against the processor's lease length.
    pub fn validate(&self, lease: Duration) -> Result<(), ConfigError> {
        if self.identity.trim().is_empty() {
            return Err(ConfigError("the worker identity must not be blank".into()));
        }
        let most = holidapp_core::workers::MAX_NAME_BYTES - 9;
        if self.identity.len() > most || self.identity.chars().any(char::is_control) {
            return Err(ConfigError(format!(
                "the worker identity must be at most {most} bytes without control characters"
            )));
        }
        if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
            return Err(ConfigError(format!(
                "concurrency must be between 1 and {MAX_CONCURRENCY}, not {}",
                self.concurrency
            )));
        }
        if self.prefetch > MAX_PREFETCH {
            return Err(ConfigError(format!(
                "the prefetch must be at most {MAX_PREFETCH}, not {}",
                self.prefetch
            )));
        }
        if lease < Duration::from_secs(1) {
            return Err(ConfigError(format!(
                "the lease must be at least 1 s (heartbeats renew it every third), not {lease:?}"
            )));
        }
        let intervals = [
            ("recovery interval", self.recovery_interval_for(lease)),
            ("purge interval", self.purge_interval),
            ("summary interval", self.summary_interval),
            ("idle wait", self.idle_wait),
        ];
        for (name, value) in intervals {
            if value < Duration::from_millis(10) {
                return Err(ConfigError(format!(
                    "the {name} must be at least 10 ms, not {value:?}"
                )));
            }
        }
        Ok(())
    }
}

/// The most jobs one worker runs at once.
pub const MAX_CONCURRENCY: usize = 4096;

/// The default of [`WorkerConfig::prefetch`]: enough jobs for one lease call to keep a worker of
/// short jobs busy while the next one is on its way.
pub const DEFAULT_PREFETCH: usize = 512;

/// The largest [`WorkerConfig::prefetch`].
pub const MAX_PREFETCH: usize = 10_000;

/// A [`WorkerConfig`] that cannot run; the message says which value and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid worker configuration: {0}")]
pub struct ConfigError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_defaults_to_a_third_of_the_lease_capped_at_five_seconds() {
        let config = WorkerConfig::new("w", 1);
        assert_eq!(
            config.recovery_interval_for(Duration::from_secs(3)),
            Duration::from_secs(1)
        );
        assert_eq!(
            config.recovery_interval_for(Duration::from_secs(30)),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn validation_names_the_bad_value() {
        let lease = Duration::from_secs(30);
        assert!(WorkerConfig::new("w", 4).validate(lease).is_ok());
        let zero = WorkerConfig::new("w", 0).validate(lease).unwrap_err();
        assert!(zero.to_string().contains("concurrency"), "{zero}");
        let blank = WorkerConfig::new(" ", 1).validate(lease).unwrap_err();
        assert!(blank.to_string().contains("identity"), "{blank}");
        for bad in ["10.0.0.7\u{1e}x", "w\n", &"w".repeat(300)] {
            let refused = WorkerConfig::new(bad, 1).validate(lease).unwrap_err();
            assert!(refused.to_string().contains("identity"), "{refused}");
        }
        let short = WorkerConfig::new("w", 1)
            .validate(Duration::from_millis(500))
            .unwrap_err();
        assert!(short.to_string().contains("lease"), "{short}");
        let hoard = WorkerConfig {
            prefetch: MAX_PREFETCH + 1,
            ..WorkerConfig::new("w", 1)
        };
        assert!(
            hoard
                .validate(lease)
                .unwrap_err()
                .to_string()
                .contains("prefetch")
        );
        let spin = WorkerConfig {
            idle_wait: Duration::ZERO,
            ..WorkerConfig::new("w", 1)
        };
        assert!(
            spin.validate(lease)
                .unwrap_err()
                .to_string()
                .contains("idle wait")
        );
    }
}
