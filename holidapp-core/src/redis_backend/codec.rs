//! Conversions between jobs and their Redis hashes, times and script arguments, and the shapes
//! of script replies.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use redis::Value;

use crate::error::{Error, Result};
use crate::job::{Job, JobId, JobParams, JobStatus};

/// Milliseconds since the epoch: the unit of every score and deadline the scripts compare.
pub(super) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// A duration in whole milliseconds, at least 1 (Redis refuses a zero expiry).
pub(super) fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// `now + d`, saturating.
pub(super) fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// RFC 3339 with as many fraction digits as needed, in UTC (`2026-11-22T02:46:17.123456Z`):
/// readable in `HGETALL` and exact on the way back.
pub(super) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The hash fields of a job as it is enqueued, as field/value strings. Optional fields that are
/// unset are left out, so `HGETALL` shows only what the job has.
pub(super) fn job_fields(job: &Job) -> Vec<String> {
    let mut fields = vec![
        "id".to_owned(),
        job.id.to_string(),
        "status".to_owned(),
        job.status.as_str().to_owned(),
        "start".to_owned(),
        job.params.start.clone(),
        "end".to_owned(),
        job.params.end.clone(),
        "created_at".to_owned(),
        rfc3339(job.created_at),
        "attempts".to_owned(),
        job.attempts.to_string(),
    ];
    if !job.params.plot.is_empty() {
        fields.push("plot".to_owned());
        fields.push(serde_json::Value::Object(job.params.plot.clone()).to_string());
    }
    let optional = [
        ("worker", job.worker.clone()),
        ("started_at", job.started_at.map(rfc3339)),
        ("finished_at", job.finished_at.map(rfc3339)),
        ("error", job.error.clone()),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            fields.push(name.to_owned());
            fields.push(value);
        }
    }
    fields
}

/// A job from its hash fields (as `HGETALL` returns them).
pub(super) fn job_from_fields(fields: &HashMap<String, String>) -> Result<Job> {
    let required = |name: &str| {
        fields
            .get(name)
            .ok_or_else(|| Error::Internal(format!("stored job has no '{name}' field")))
    };
    let time = |name: &str, value: &str| {
        DateTime::parse_from_rfc3339(value)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| Error::Internal(format!("stored job has a bad '{name}': {e}")))
    };
    let optional_time = |name: &str| fields.get(name).map(|v| time(name, v)).transpose();
    let id: JobId = required("id")?
        .parse()
        .map_err(|e| Error::Internal(format!("stored job has a bad id: {e}")))?;
    let status: JobStatus = required("status")?
        .parse()
        .map_err(|e| Error::Internal(format!("stored job has a bad status: {e}")))?;
    let plot = match fields.get("plot") {
        None => serde_json::Map::new(),
        Some(json) => serde_json::from_str(json)
            .map_err(|e| Error::Internal(format!("stored job has bad plot options: {e}")))?,
    };
    let attempts = match fields.get("attempts") {
        None => 0,
        Some(n) => n
            .parse()
            .map_err(|e| Error::Internal(format!("stored job has a bad attempt count: {e}")))?,
    };
    Ok(Job {
        id,
        status,
        params: JobParams {
            start: required("start")?.clone(),
            end: required("end")?.clone(),
            plot,
        },
        worker: fields.get("worker").cloned(),
        created_at: time("created_at", required("created_at")?)?,
        started_at: optional_time("started_at")?,
        finished_at: optional_time("finished_at")?,
        attempts,
        error: fields.get("error").cloned(),
    })
}

/// A job from a flat `{field, value, ...}` reply; `None` for an empty one (no such hash).
pub(super) fn job_from_reply(value: Value) -> Result<Option<Job>> {
    let items = array(value)?;
    if items.is_empty() {
        return Ok(None);
    }
    let mut fields = HashMap::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(field), Some(value)) = (items.next(), items.next()) {
        fields.insert(string(field)?, string(value)?);
    }
    job_from_fields(&fields).map(Some)
}

/// The items of an array reply.
pub(super) fn array(value: Value) -> Result<Vec<Value>> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(unexpected("an array", &other)),
    }
}

/// A text reply.
pub(super) fn string(value: Value) -> Result<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes)
            .map_err(|_| Error::Internal("Redis answered text that is not UTF-8".to_owned())),
        Value::SimpleString(s) => Ok(s),
        Value::Int(n) => Ok(n.to_string()),
        other => Err(unexpected("a string", &other)),
    }
}

/// An integer reply (or its decimal text).
pub(super) fn int(value: Value) -> Result<i64> {
    match value {
        Value::Int(n) => Ok(n),
        Value::BulkString(_) | Value::SimpleString(_) => {
            let text = string(value)?;
            text.parse()
                .map_err(|_| Error::Internal(format!("Redis answered '{text}', not an integer")))
        }
        other => Err(unexpected("an integer", &other)),
    }
}

/// A script's `{'ok', ...}` / `{'lost'}` style reply: its status word and the rest.
pub(super) fn tagged(value: Value) -> Result<(String, Vec<Value>)> {
    let mut items = array(value)?.into_iter();
    let tag = items
        .next()
        .ok_or_else(|| Error::Internal("a script answered an empty reply".to_owned()))?;
    Ok((string(tag)?, items.collect()))
}

/// The error for a reply of the wrong shape.
pub(super) fn unexpected(expected: &str, got: &Value) -> Error {
    let mut shown = format!("{got:?}");
    shown.truncate(120);
    Error::Internal(format!(
        "Redis answered {shown} where {expected} was expected"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(job: &Job) -> Job {
        let flat = job_fields(job);
        let fields: HashMap<String, String> = flat
            .chunks(2)
            .map(|pair| (pair[0].clone(), pair[1].clone()))
            .collect();
        job_from_fields(&fields).unwrap()
    }

    #[test]
    fn jobs_survive_their_hash_exactly() {
        let now = Utc::now();
        let mut job = Job::new(
            JobParams::new("1990", "2000")
                .with_option("kind", "scatter")
                .with_option("title", "\"q\"\nÜ"),
            now,
        );
        assert_eq!(round_trip(&job), job);
        job.worker = Some("10.1.2.3".into());
        job.started_at = Some(now);
        job.finished_at = Some(now);
        job.error = Some("boom".into());
        job.attempts = 2;
        assert_eq!(round_trip(&job), job);
    }

    #[test]
    fn broken_hashes_are_internal_errors_not_panics() {
        let mut fields: HashMap<String, String> = HashMap::new();
        assert!(matches!(job_from_fields(&fields), Err(Error::Internal(_))));
        let job = Job::new(JobParams::new("1", "2"), Utc::now());
        for (k, v) in job_fields(&job)
            .chunks(2)
            .map(|p| (p[0].clone(), p[1].clone()))
        {
            fields.insert(k, v);
        }
        for (field, bad) in [
            ("status", "running"),
            ("created_at", "yesterday"),
            ("attempts", "-1"),
            ("plot", "[1"),
            ("id", "x"),
        ] {
            let mut broken = fields.clone();
            broken.insert(field.into(), bad.into());
            assert!(
                matches!(job_from_fields(&broken), Err(Error::Internal(_))),
                "{field}"
            );
        }
        assert!(matches!(
            job_from_reply(Value::Int(3)),
            Err(Error::Internal(_))
        ));
        assert!(matches!(
            string(Value::BulkString(vec![0xff])),
            Err(Error::Internal(_))
        ));
        assert!(matches!(
            tagged(Value::Array(vec![])),
            Err(Error::Internal(_))
        ));
    }
}
