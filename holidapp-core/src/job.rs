//! Jobs, their identifiers and parameters, and the status machine.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

/// A job's identifier: a random UUID v4, rendered in its hyphenated lower-case form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(Uuid);

impl JobId {
    /// A fresh random identifier.
    pub fn new() -> Self {
        JobId(Uuid::new_v4())
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for JobId {
    fn from(uuid: Uuid) -> Self {
        JobId(uuid)
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({})", self.0.hyphenated())
    }
}

impl FromStr for JobId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Uuid::try_parse(s).map(JobId).map_err(|_| {
            Error::InvalidParams(format!(
                "'{}' is not a valid job id (a UUID)",
                truncate(s, 64)
            ))
        })
    }
}

/// Where a job is in its life.
///
/// On the wire the statuses are `submitted`, `in progress`, `complete` and `failed`, as the
/// course's API has them. The only legal moves are:
///
/// ```text
/// submitted ──lease──▶ in progress ──▶ complete
///     ▲                    │
///     └──retry / release───┤
///                          └──────────▶ failed
/// ```
///
/// [`JobStatus::transition`] is the single place that decides whether a move is legal; every
/// backend asks it before changing a status.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum JobStatus {
    /// Waiting in the queue (or in its retry delay).
    #[serde(rename = "submitted")]
    Submitted,
    /// Leased by a worker, which is rendering it.
    #[serde(rename = "in progress")]
    InProgress,
    /// Finished; the result can be fetched.
    #[serde(rename = "complete")]
    Complete,
    /// Finished without a result; `error` says why.
    #[serde(rename = "failed")]
    Failed,
}

impl JobStatus {
    /// Every status, in life order.
    pub const ALL: [JobStatus; 4] = [
        JobStatus::Submitted,
        JobStatus::InProgress,
        JobStatus::Complete,
        JobStatus::Failed,
    ];

    /// The wire string (`"in progress"` etc.).
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Submitted => "submitted",
            JobStatus::InProgress => "in progress",
            JobStatus::Complete => "complete",
            JobStatus::Failed => "failed",
        }
    }

    /// A name without spaces, used in storage keys (`in_progress`).
    pub fn key_name(self) -> &'static str {
        match self {
            JobStatus::Submitted => "submitted",
            JobStatus::InProgress => "in_progress",
            JobStatus::Complete => "complete",
            JobStatus::Failed => "failed",
        }
    }

    /// Whether the job has reached an end state.
    pub fn is_finished(self) -> bool {
        matches!(self, JobStatus::Complete | JobStatus::Failed)
    }

    /// Whether the status machine allows moving from `self` to `to`.
    pub fn can_move_to(self, to: JobStatus) -> bool {
        use JobStatus::*;
        matches!(
            (self, to),
            (Submitted, InProgress)
                | (InProgress, Complete)
                | (InProgress, Failed)
                | (InProgress, Submitted)
        )
    }

    /// Moves from `self` to `to`, or refuses with [`Error::IllegalTransition`].
    pub fn transition(self, to: JobStatus) -> Result<JobStatus> {
        if self.can_move_to(to) {
            Ok(to)
        } else {
            Err(Error::IllegalTransition { from: self, to })
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
            _ => Err(Error::InvalidParams(format!(
                "unknown status '{}'; expected one of: submitted, in progress, complete, failed",
                truncate(s, 64)
            ))),
        }
    }
}

/// What a job asks for: a year range and options for the renderer.
///
/// `start` and `end` are kept as the client sent them (numbers are accepted and stored as their
/// decimal text); the [`Renderer`](crate::Renderer) decides what they mean and validates them at
/// submit time. `plot` carries renderer options; the built-in plot renderer documents its own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobParams {
    /// Start of the range (a year for the built-in plots).
    #[serde(deserialize_with = "string_or_number")]
    pub start: String,
    /// End of the range, inclusive.
    #[serde(deserialize_with = "string_or_number")]
    pub end: String,
    /// Renderer options, e.g. `{"kind": "categories", "field": "locus_group"}`.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub plot: serde_json::Map<String, serde_json::Value>,
}

impl JobParams {
    /// Parameters with a range and no plot options.
    pub fn new(start: impl Into<String>, end: impl Into<String>) -> Self {
        JobParams {
            start: start.into(),
            end: end.into(),
            plot: serde_json::Map::new(),
        }
    }

    /// The same parameters with one plot option set.
    pub fn with_option(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.plot.insert(key.to_owned(), value.into());
        self
    }
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    struct StringOrInteger;

    impl serde::de::Visitor<'_> for StringOrInteger {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or an integer")
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<String, E> {
            Ok(v.to_owned())
        }

        fn visit_string<E: serde::de::Error>(self, v: String) -> std::result::Result<String, E> {
            Ok(v)
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<String, E> {
            Ok(v.to_string())
        }
    }

    d.deserialize_any(StringOrInteger)
}

/// A job as stored and shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Its identifier.
    pub id: JobId,
    /// Where it is in its life.
    pub status: JobStatus,
    /// What it asks for (flattened on the wire: `start`, `end`, `plot`).
    #[serde(flatten)]
    pub params: JobParams,
    /// Identity (IP) of the worker that took it last; absent until taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
    /// When its last attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached `complete` or `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// How many times a worker has taken it.
    pub attempts: u32,
    /// Why it failed (or why its last attempt failed, while it waits for a retry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Job {
    /// A new job in `submitted`, created at `now`.
    pub fn new(params: JobParams, now: DateTime<Utc>) -> Self {
        Job {
            id: JobId::new(),
            status: JobStatus::Submitted,
            params,
            worker: None,
            created_at: now,
            started_at: None,
            finished_at: None,
            attempts: 0,
            error: None,
        }
    }
}

/// Shortens `s` to at most `max` characters for an error message, so hostile input cannot make
/// error bodies arbitrarily large.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_of_statuses_is_decided_by_the_machine() {
        use JobStatus::*;
        let legal = [
            (Submitted, InProgress),
            (InProgress, Complete),
            (InProgress, Failed),
            (InProgress, Submitted),
        ];
        for from in JobStatus::ALL {
            for to in JobStatus::ALL {
                let expected = legal.contains(&(from, to));
                assert_eq!(from.can_move_to(to), expected, "{from} -> {to}");
                match from.transition(to) {
                    Ok(s) => {
                        assert!(expected, "{from} -> {to} should be refused");
                        assert_eq!(s, to);
                    }
                    Err(Error::IllegalTransition { from: f, to: t }) => {
                        assert!(!expected, "{from} -> {to} should be allowed");
                        assert_eq!((f, t), (from, to));
                    }
                    Err(e) => panic!("unexpected error {e}"),
                }
            }
        }
    }

    #[test]
    fn finished_statuses_are_terminal() {
        for from in [JobStatus::Complete, JobStatus::Failed] {
            assert!(from.is_finished());
            for to in JobStatus::ALL {
                assert!(!from.can_move_to(to));
            }
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

    #[test]
    fn params_accept_strings_or_integers_and_refuse_unknown_fields() {
        let p: JobParams = serde_json::from_str(r#"{"start": 1990, "end": "2000"}"#).unwrap();
        assert_eq!(p, JobParams::new("1990", "2000"));
        let float = serde_json::from_str::<JobParams>(r#"{"start": 1.5, "end": "2000"}"#);
        assert!(
            float
                .unwrap_err()
                .to_string()
                .contains("expected a string or an integer")
        );
        let syntax = serde_json::from_str::<JobParams>(r#"{"start": 19x0, "end": "2000"}"#);
        assert!(syntax.unwrap_err().is_syntax());
        assert!(
            serde_json::from_str::<JobParams>(r#"{"start": "1", "end": "2", "strat": 1}"#).is_err()
        );
        assert!(serde_json::from_str::<JobParams>(r#"{"start": "1"}"#).is_err());
    }

    #[test]
    fn job_ids_round_trip_and_refuse_garbage() {
        let id = JobId::new();
        assert_eq!(id.to_string().parse::<JobId>().unwrap(), id);
        assert!("not-a-uuid".parse::<JobId>().is_err());
        let long = "x".repeat(10_000);
        let msg = long.parse::<JobId>().unwrap_err().to_string();
        assert!(msg.len() < 200, "error text is bounded: {}", msg.len());
    }
}
