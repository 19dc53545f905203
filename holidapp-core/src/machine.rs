//! The status machine: every status a job can have, and the one function that decides what an
//! event does to a job.
//!
//! ```text
//! submitted ──lease──▶ in progress ──complete──▶ complete
//!   │  ▲                   │
//!   │  ├── fail (retry) ───┤
//!   │  ├── release ────────┤
//!   │  ├── expire (retry) ─┤
//!   │  │                   ├── fail (give up) / expire (last attempt) ──▶ failed
//!   │  └──────────────── retry (attempts from zero) ────────────────────────┘
//!   └──────cancel──────────┴── cancel ──▶ cancelled
//! ```
//!
//! [`decide`] takes a job's status, its attempt counts, an [`Event`] and the [`RetryPolicy`],
//! and answers a [`Move`]: the new status, what happens to the attempt count, when the job may
//! be leased again, and whether it is finished. Both backends call it and carry the move out;
//! neither decides anything itself. (The Redis scripts receive the move as arguments.)

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::job::truncate;

/// Where a job is in its life.
///
/// On the wire the statuses are `submitted`, `in progress`, `complete` and `failed`, as the
/// course's API has them, and `cancelled`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum JobStatus {
    /// Waiting in its queue (or for its time: a delayed submit, a retry's backoff).
    #[serde(rename = "submitted")]
    Submitted,
    /// Leased by a worker, which is running it.
    #[serde(rename = "in progress")]
    InProgress,
    /// Finished; the result can be fetched.
    #[serde(rename = "complete")]
    Complete,
    /// Finished without a result; `error` says why.
    #[serde(rename = "failed")]
    Failed,
    /// Cancelled before it finished: it will not run (again), and a worker running it when it
    /// was cancelled is told to stop and can store nothing.
    #[serde(rename = "cancelled")]
    Cancelled,
}

impl JobStatus {
    /// Every status, in life order.
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Submitted,
        JobStatus::InProgress,
        JobStatus::Complete,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    /// The wire string (`"in progress"` etc.).
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Submitted => "submitted",
            JobStatus::InProgress => "in progress",
            JobStatus::Complete => "complete",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// A name without spaces, for storage keys and metric labels (`in_progress`).
    pub fn key_name(self) -> &'static str {
        match self {
            JobStatus::Submitted => "submitted",
            JobStatus::InProgress => "in_progress",
            JobStatus::Complete => "complete",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the job has reached an end state.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Complete | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    /// Whether some event moves a job from `self` to `to` (see [`decide`]).
    pub fn can_move_to(self, to: JobStatus) -> bool {
        use JobStatus::*;
        matches!(
            (self, to),
            (Submitted, InProgress)
                | (InProgress, Complete)
                | (InProgress, Failed)
                | (InProgress, Submitted)
                | (Submitted, Cancelled)
                | (InProgress, Cancelled)
                | (Failed, Submitted)
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = Error;

    /// Accepts the wire form (`in progress`) and the key form (`in_progress`, `in-progress`).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "submitted" => Ok(JobStatus::Submitted),
            "in progress" | "in_progress" | "in-progress" | "inprogress" => {
                Ok(JobStatus::InProgress)
            }
            "complete" | "completed" => Ok(JobStatus::Complete),
            "failed" => Ok(JobStatus::Failed),
            "cancelled" | "canceled" => Ok(JobStatus::Cancelled),
            _ => Err(Error::InvalidParams(format!(
                "unknown status '{}'; expected one of: submitted, in progress, complete, failed, \
                 cancelled",
                truncate(s, 64)
            ))),
        }
    }
}

/// Why a job attempt failed, as far as retrying is concerned.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FailureKind {
    /// Trying again later may work (a backend outage, a data source hiccup).
    Transient,
    /// Trying again cannot work (bad parameters, no data, a render error).
    Permanent,
}

/// What happens to a job.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Event {
    /// A worker takes it.
    Lease,
    /// Its attempt produced a result.
    Complete,
    /// Its attempt failed.
    Fail(FailureKind),
    /// Its worker gives it back unfinished (a worker shutting down).
    Release,
    /// Its lease ran out (its worker died or hung).
    Expire,
    /// Someone cancels it, waiting or running.
    Cancel,
    /// Someone asks for a failed job to run again.
    Retry,
}

impl Event {
    /// Every event, for tests that walk the whole machine.
    pub const ALL: [Event; 8] = [
        Event::Lease,
        Event::Complete,
        Event::Fail(FailureKind::Transient),
        Event::Fail(FailureKind::Permanent),
        Event::Release,
        Event::Expire,
        Event::Cancel,
        Event::Retry,
    ];
}

/// What an attempt-changing event does to the attempt count.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Attempts {
    /// One more attempt starts.
    Count,
    /// The attempt does not count (it is taken back).
    Uncount,
    /// The count stays as it is.
    Keep,
    /// The count starts again from zero (a failed job retried gets its attempts afresh).
    Reset,
}

/// Where a job that goes back to `submitted` waits.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Requeue {
    /// Leasable at once, ahead of every job never leased (it has waited longest).
    Now,
    /// Leasable once this delay has passed (a retry's backoff), then ahead of every job never
    /// leased.
    After(Duration),
}

/// What [`decide`] answers: how one event moves one job.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Move {
    /// The status the job moves to.
    pub to: JobStatus,
    /// What happens to its attempt count.
    pub attempts: Attempts,
    /// For a move back to `submitted`: when it may be leased again.
    pub requeue: Option<Requeue>,
    /// Whether the job is now finished (it gets `finished_at` and its retention starts).
    pub finishes: bool,
}

impl Move {
    fn to(to: JobStatus, attempts: Attempts, requeue: Option<Requeue>) -> Move {
        Move {
            to,
            attempts,
            requeue,
            finishes: to.is_finished(),
        }
    }
}

/// How failed and abandoned jobs are retried.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts a job gets when it is submitted without a limit of its own
    /// (`HOLIDAPP_MAX_ATTEMPTS`, default 3). At least 1.
    pub max_attempts: u32,
    /// Delay before the first retry; each further retry doubles it.
    pub base_delay: Duration,
    /// Cap on the delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The backoff before retrying after failed attempt number `attempt` (counting from 1):
    /// `base_delay * 2^(attempt-1)`, capped at `max_delay`, with "equal jitter": a random point in
    /// its upper half, so retries of many jobs that failed together spread out.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(31);
        let full = self
            .base_delay
            .checked_mul(1u32 << exp)
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        let half = full / 2;
        let jitter = Duration::from_nanos(fastrand::u64(
            0..=half.as_nanos().min(u64::MAX as u128) as u64,
        ));
        half + jitter
    }
}

/// A job as [`decide`] needs to see it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct JobState {
    /// Its status.
    pub status: JobStatus,
    /// Attempts made so far (the one running included, while `in progress`).
    pub attempts: u32,
    /// Attempts it is allowed.
    pub max_attempts: u32,
}

/// Decides what `event` does to a job in `state`: the one place that decides every move and
/// every retry or give-up. An event the machine does not allow in that status (completing a job
/// that is not running, leasing one that is) is [`Error::IllegalTransition`].
///
/// - `Lease`: `submitted` → `in progress`, one more attempt.
/// - `Complete`: `in progress` → `complete`.
/// - `Fail(Permanent)`, or `Fail(Transient)` on the last allowed attempt: `in progress` →
///   `failed`. `Fail(Transient)` before that: back to `submitted` after the policy's backoff.
/// - `Release`: back to `submitted` at once, the attempt uncounted.
/// - `Expire`: back to `submitted` at once (the attempt counts), or `failed` when it was the last
///   allowed one.
/// - `Cancel`: `submitted` or `in progress` → `cancelled`, finished (its lease, if any, is no
///   longer current).
pub fn decide(state: JobState, event: Event, policy: &RetryPolicy) -> Result<Move> {
    use JobStatus::*;
    let last_attempt = state.attempts >= state.max_attempts.max(1);
    let to = |to| Move::to(to, Attempts::Keep, None);
    let decided = match (state.status, event) {
        (Submitted, Event::Lease) => Move::to(InProgress, Attempts::Count, None),
        (InProgress, Event::Complete) => to(Complete),
        (InProgress, Event::Fail(FailureKind::Permanent)) => to(Failed),
        (InProgress, Event::Fail(FailureKind::Transient)) if last_attempt => to(Failed),
        (InProgress, Event::Fail(FailureKind::Transient)) => Move::to(
            Submitted,
            Attempts::Keep,
            Some(Requeue::After(policy.backoff(state.attempts))),
        ),
        (InProgress, Event::Release) => Move::to(Submitted, Attempts::Uncount, Some(Requeue::Now)),
        (InProgress, Event::Expire) if last_attempt => to(Failed),
        (InProgress, Event::Expire) => Move::to(Submitted, Attempts::Keep, Some(Requeue::Now)),
        (Submitted | InProgress, Event::Cancel) => to(Cancelled),
        (Failed, Event::Retry) => Move::to(Submitted, Attempts::Reset, Some(Requeue::Now)),
        (from, event) => {
            return Err(Error::IllegalTransition {
                from,
                event: format!("{event:?}"),
            });
        }
    };
    debug_assert!(state.status.can_move_to(decided.to));
    Ok(decided)
}

/// The reason recorded on a job whose lease ran out on attempt `attempts` of `max_attempts`.
pub fn expiry_reason(attempts: u32, max_attempts: u32) -> String {
    format!("lease expired on attempt {attempts} of {max_attempts}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(status: JobStatus, attempts: u32, max_attempts: u32) -> JobState {
        JobState {
            status,
            attempts,
            max_attempts,
        }
    }

    #[test]
    fn every_status_and_event_is_decided_by_the_machine() {
        use JobStatus::*;
        let policy = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(60),
        };
        for status in JobStatus::ALL {
            for event in Event::ALL {
                for (attempts, max) in [(1, 3), (3, 3)] {
                    let last = attempts == max;
                    let got = decide(state(status, attempts, max), event, &policy);
                    let expected: Option<(JobStatus, Attempts, Option<Requeue>)> =
                        match (status, event) {
                            (Submitted, Event::Lease) => Some((InProgress, Attempts::Count, None)),
                            (InProgress, Event::Complete) => Some((Complete, Attempts::Keep, None)),
                            (InProgress, Event::Fail(FailureKind::Permanent)) => {
                                Some((Failed, Attempts::Keep, None))
                            }
                            (InProgress, Event::Fail(FailureKind::Transient)) if last => {
                                Some((Failed, Attempts::Keep, None))
                            }
                            // The delay is random: checked below.
                            (InProgress, Event::Fail(FailureKind::Transient)) => Some((
                                Submitted,
                                Attempts::Keep,
                                got.as_ref().ok().and_then(|m| m.requeue),
                            )),
                            (InProgress, Event::Release) => {
                                Some((Submitted, Attempts::Uncount, Some(Requeue::Now)))
                            }
                            (InProgress, Event::Expire) if last => {
                                Some((Failed, Attempts::Keep, None))
                            }
                            (InProgress, Event::Expire) => {
                                Some((Submitted, Attempts::Keep, Some(Requeue::Now)))
                            }
                            (Submitted | InProgress, Event::Cancel) => {
                                Some((Cancelled, Attempts::Keep, None))
                            }
                            (Failed, Event::Retry) => {
                                Some((Submitted, Attempts::Reset, Some(Requeue::Now)))
                            }
                            _ => None,
                        };
                    match (got, expected) {
                        (Ok(m), Some((to, attempts, requeue))) => {
                            assert_eq!((m.to, m.attempts, m.requeue), (to, attempts, requeue));
                            assert_eq!(m.finishes, to.is_finished());
                            assert!(status.can_move_to(to), "{status} -> {to}");
                        }
                        (Err(Error::IllegalTransition { from, .. }), None) => {
                            assert_eq!(from, status)
                        }
                        (got, expected) => {
                            panic!("{status} on {event:?}: got {got:?}, expected {expected:?}")
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_pair_of_statuses_is_either_a_move_or_refused() {
        use JobStatus::*;
        let legal = [
            (Submitted, InProgress),
            (InProgress, Complete),
            (InProgress, Failed),
            (InProgress, Submitted),
            (Submitted, Cancelled),
            (InProgress, Cancelled),
            (Failed, Submitted),
        ];
        for from in JobStatus::ALL {
            for to in JobStatus::ALL {
                assert_eq!(from.can_move_to(to), legal.contains(&(from, to)));
            }
        }
    }

    #[test]
    fn finished_statuses_are_terminal_but_for_retrying_a_failed_job() {
        for from in [JobStatus::Complete, JobStatus::Failed, JobStatus::Cancelled] {
            assert!(from.is_finished());
            for event in Event::ALL {
                let got = decide(state(from, 1, 3), event, &RetryPolicy::default());
                if (from, event) == (JobStatus::Failed, Event::Retry) {
                    assert!(!got.unwrap().finishes);
                } else {
                    assert!(got.is_err());
                }
            }
        }
    }

    #[test]
    fn retries_back_off_exponentially_with_jitter_and_a_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
        };
        for (attempt, full) in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 8), (40, 8)] {
            for _ in 0..20 {
                let d = policy.backoff(attempt);
                let full = Duration::from_secs(full);
                assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
            }
        }
        let retry = decide(
            state(JobStatus::InProgress, 2, 10),
            Event::Fail(FailureKind::Transient),
            &policy,
        )
        .unwrap();
        match retry.requeue {
            Some(Requeue::After(d)) => assert!(d >= Duration::from_secs(1)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn statuses_use_the_course_wire_strings() {
        for s in JobStatus::ALL {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<JobStatus>(&json).unwrap(), s);
            assert_eq!(s.as_str().parse::<JobStatus>().unwrap(), s);
            assert_eq!(s.key_name().parse::<JobStatus>().unwrap(), s);
        }
        assert!("running".parse::<JobStatus>().is_err());
    }
}
