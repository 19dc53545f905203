//! Conversions between jobs and their Redis hashes, times and script arguments, and the shapes
//! of script replies.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use redis::Value;

use crate::error::{Error, Result};
use crate::job::{Job, JobId, Name, Params, Progress, QueueName, UniqueScope};
use crate::machine::JobStatus;

/// Milliseconds since the epoch: the unit of every score and deadline the scripts compare.
pub(super) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// A duration in whole milliseconds, at least 1 (Redis refuses a zero expiry).
pub(super) fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// The time `ms` milliseconds after the epoch, as the scripts answer it.
pub(super) fn from_millis(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| Error::Internal(format!("a script answered the time {ms}, out of range")))
}

/// The time of a `TIME` reply (`[seconds, microseconds]`), in ms since the epoch.
pub(super) fn time_reply(value: Value) -> Result<i64> {
    let parts = array(value)?;
    let [secs, micros] = &parts[..] else {
        return Err(Error::Internal(
            "Redis answered TIME without two parts".into(),
        ));
    };
    Ok(int(secs.clone())?.saturating_mul(1000) + int(micros.clone())? / 1000)
}

/// The status of what is left of a deleted job that was still in its queue's ready list: every
/// read treats it as gone, and the lease that pops it drops it (see `delete.lua`).
pub(super) const TOMBSTONE: &str = "deleted";

/// RFC 3339 with as many fraction digits as needed, in UTC (`2026-11-22T02:46:17.123456Z`):
/// readable in `HGETALL` and exact on the way back.
pub(super) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A new job as the enqueue script takes it: id (which names its key, not a field), kind,
/// params, creation time, attempt limit, unique key (empty for none), priority, the time it may
/// run (ms; empty for now), how long its unique key holds at most (ms; `unique_ttl` unless its
/// scope says otherwise) and `a` when the key holds only while the job waits or runs, then the
/// number of optional field/value strings and those strings ([`optional_fields`], which hold the
/// unique key and its scope, priority and run time as well). The script adds the field names,
/// the status and the submission number.
pub(super) fn enqueue_args(job: &Job, unique_ttl: Duration) -> Vec<String> {
    let optional = optional_fields(job);
    let mut args = Vec::with_capacity(11 + optional.len());
    args.push(job.id.to_string());
    args.push(job.kind.to_string());
    args.push(job.params.as_json().to_owned());
    args.push(rfc3339(job.created_at));
    args.push(job.max_attempts.to_string());
    args.push(job.unique_key.clone().unwrap_or_default());
    args.push(job.priority.to_string());
    args.push(
        job.run_at
            .map(|at| millis(at).to_string())
            .unwrap_or_default(),
    );
    let scope = job.unique_scope;
    args.push(duration_millis(scope.map_or(unique_ttl, |s| s.key_ttl(unique_ttl))).to_string());
    args.push(
        if scope == Some(UniqueScope::Active) {
            "a"
        } else {
            ""
        }
        .to_owned(),
    );
    args.push(optional.len().to_string());
    args.extend(optional);
    args
}

/// The fields of a job beyond the ones every job has, as field/value strings: its queue unless
/// it is `default`, worker, times, error, result type, a non-zero attempt count, unique key,
/// timeout, progress, a non-zero priority and the time it may run. Unset ones are left out, so `HGETALL` shows only what the job has (no `attempts`
/// field reads as 0, no `queue` field as `default`): each field of a new hash costs the enqueue a
/// scan of those before it.
pub(super) fn optional_fields(job: &Job) -> Vec<String> {
    let mut fields = Vec::new();
    let optional = [
        (
            "queue",
            (job.queue.as_str() != QueueName::DEFAULT).then(|| job.queue.to_string()),
        ),
        ("worker", job.worker.as_deref().map(str::to_owned)),
        ("started_at", job.started_at.map(rfc3339)),
        ("finished_at", job.finished_at.map(rfc3339)),
        ("error", job.error.clone()),
        ("result_type", job.result_type.as_deref().map(str::to_owned)),
        (
            "attempts",
            (job.attempts > 0).then(|| job.attempts.to_string()),
        ),
        ("unique_key", job.unique_key.clone()),
        ("unique_scope", job.unique_scope.map(UniqueScope::to_field)),
        ("timeout", job.timeout.map(|t| t.to_string())),
        ("progress", job.progress.as_ref().map(progress_json)),
        (
            "priority",
            (job.priority != 0).then(|| job.priority.to_string()),
        ),
        ("run_at", job.run_at.map(rfc3339)),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            fields.push(name.to_owned());
            fields.push(value);
        }
    }
    fields
}

/// A progress report as its hash field holds it: `{"percent":..,"message":..}`.
pub(super) fn progress_json(progress: &Progress) -> String {
    serde_json::to_string(progress).unwrap_or_default()
}

/// A progress report from its hash field.
pub(super) fn progress_from_json(text: &str) -> Result<Progress> {
    serde_json::from_str(text)
        .map_err(|e| Error::Internal(format!("stored job has a bad 'progress': {e}")))
}

/// The job `id` from its hash fields (as `HGETALL` returns them). The id is not a field: the
/// key names it.
pub(super) fn job_from_fields(id: JobId, fields: &HashMap<String, String>) -> Result<Job> {
    job_from_lookup(id, |name| fields.get(name).map(String::as_str))
}

/// The fields a lease reads of each job it takes, in the order the lease script answers their
/// values: what [`job_from_lookup`] needs of a `submitted` job besides its queue (the caller
/// knows it; the lease sets the rest).
pub(super) const LEASE_FIELDS: [&str; 13] = [
    "status",
    "kind",
    "params",
    "created_at",
    "max_attempts",
    "attempts",
    "error",
    "unique_key",
    "timeout",
    "progress",
    "priority",
    "run_at",
    "unique_scope",
];

/// One job a lease took, as the lease script answers it: its new fencing token and the job as it
/// was before the lease (the caller applies the lease's move).
pub(super) struct Leased {
    pub(super) token: u64,
    pub(super) job: Job,
}

/// Reads the lease script's answer, one MessagePack string of `[now, [id, token, [value, ...]],
/// ...]` (see `lease.lua`), the jobs being of `queue`: the time of the lease (ms since the epoch)
/// and the jobs taken. The values are those of [`LEASE_FIELDS`], in that order, `false` for a
/// field the hash lacks. Anything else is an internal error, never a panic.
pub(super) fn read_lease_answer(answer: &[u8], queue: &QueueName) -> Result<(i64, Vec<Leased>)> {
    use rmp::decode::{read_array_len, read_int};
    let bad = |what: &str| Error::Internal(format!("lease script answered {what}"));
    let mut rd = answer;
    let items = read_array_len(&mut rd).map_err(|_| bad("no array"))?;
    if items == 0 {
        return Err(bad("no time"));
    }
    let now: i64 = read_int(&mut rd).map_err(|_| bad("a bad time"))?;
    // Bounded by what the answer can hold: each entry takes at least one byte.
    let mut leased = Vec::with_capacity((items as usize - 1).min(rd.len()));
    for _ in 1..items {
        if read_array_len(&mut rd).map_err(|_| bad("an entry that is no array"))? != 3 {
            return Err(bad("an entry without its id, token and values"));
        }
        let id: JobId = msgpack_str(&mut rd)?
            .ok_or_else(|| bad("an entry without its id"))?
            .parse()
            .map_err(|_| bad("a bad job id"))?;
        let token: u64 = read_int(&mut rd).map_err(|_| bad("a bad token"))?;
        let count = read_array_len(&mut rd).map_err(|_| bad("values that are no array"))?;
        if count as usize != LEASE_FIELDS.len() {
            return Err(bad(&format!(
                "{count} values for {} fields",
                LEASE_FIELDS.len()
            )));
        }
        let mut values = [None; LEASE_FIELDS.len()];
        for value in &mut values {
            *value = msgpack_str(&mut rd)?;
        }
        let job = job_from_lookup(id, |name| {
            if name == "queue" {
                return Some(queue.as_str());
            }
            values[LEASE_FIELDS.iter().position(|f| *f == name)?]
        })?;
        leased.push(Leased { token, job });
    }
    if !rd.is_empty() {
        return Err(bad("bytes after its end"));
    }
    Ok((now, leased))
}

/// A MessagePack string at the head of `rd` (borrowed from it), or `None` for `false`, which
/// stands for a missing value (a Lua table cannot hold `nil`); `rd` moves past it.
fn msgpack_str<'a>(rd: &mut &'a [u8]) -> Result<Option<&'a str>> {
    let bad = || Error::Internal("lease script answered a value that is no text".into());
    if rd.first() == Some(&rmp::Marker::False.to_u8()) {
        *rd = &rd[1..];
        return Ok(None);
    }
    let len = rmp::decode::read_str_len(rd).map_err(|_| bad())? as usize;
    if rd.len() < len {
        return Err(bad());
    }
    let (text, rest) = rd.split_at(len);
    *rd = rest;
    std::str::from_utf8(text).map(Some).map_err(|_| bad())
}

/// A job from its stored fields, each looked up by name (`None` when the hash lacks it).
fn job_from_lookup<'a>(id: JobId, field: impl Fn(&str) -> Option<&'a str>) -> Result<Job> {
    let required = |name: &str| {
        field(name).ok_or_else(|| Error::Internal(format!("stored job has no '{name}' field")))
    };
    let bad = |name: &str, e: &dyn std::fmt::Display| {
        Error::Internal(format!("stored job has a bad '{name}': {e}"))
    };
    let time = |name: &str, value: &str| {
        DateTime::parse_from_rfc3339(value)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| bad(name, &e))
    };
    let optional_time = |name: &str| field(name).map(|v| time(name, v)).transpose();
    let number = |name: &str, default: u32| match field(name) {
        None => Ok(default),
        Some(n) => n.parse::<u32>().map_err(|e| bad(name, &e)),
    };
    let status: JobStatus = required("status")?.parse().map_err(|e| bad("status", &e))?;
    let queue = match field("queue") {
        None => QueueName::default_queue(),
        Some(name) => QueueName::new(name).map_err(|e| bad("queue", &e))?,
    };
    Ok(Job {
        id,
        kind: required("kind")?.into(),
        queue,
        status,
        priority: match field("priority") {
            None => 0,
            Some(p) => p.parse::<i32>().map_err(|e| bad("priority", &e))?,
        },
        run_at: optional_time("run_at")?,
        params: Params::from_json(required("params")?)?,
        max_attempts: number("max_attempts", 1)?,
        attempts: number("attempts", 0)?,
        worker: field("worker").map(Name::from),
        created_at: time("created_at", required("created_at")?)?,
        started_at: optional_time("started_at")?,
        finished_at: optional_time("finished_at")?,
        error: field("error").map(str::to_owned),
        result_type: field("result_type").map(|t| Cow::Owned(t.to_owned())),
        unique_key: field("unique_key").map(str::to_owned),
        unique_scope: field("unique_scope")
            .map(|s| UniqueScope::from_field(s).ok_or_else(|| bad("unique_scope", &s)))
            .transpose()?,
        timeout: field("timeout")
            .map(|t| t.parse::<u32>().map_err(|e| bad("timeout", &e)))
            .transpose()?,
        progress: field("progress").map(progress_from_json).transpose()?,
    })
}

/// Whether a job hash counts as gone at `now_ms`: its `expires_at` (ms) has passed, or it is
/// the remains of a deleted job ([`TOMBSTONE`]).
pub(super) fn gone(fields: &HashMap<String, String>, now_ms: i64) -> bool {
    fields.get("status").is_some_and(|s| s == TOMBSTONE)
        || fields
            .get("expires_at")
            .and_then(|at| at.parse::<i64>().ok())
            .is_some_and(|at| at <= now_ms)
}

/// The fields of a flat `{field, value, ...}` reply; `None` for an empty one (no such hash).
pub(super) fn fields_from_reply(value: Value) -> Result<Option<HashMap<String, String>>> {
    let items = array(value)?;
    if items.is_empty() {
        return Ok(None);
    }
    let mut fields = HashMap::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(field), Some(value)) = (items.next(), items.next()) {
        fields.insert(string(field)?, string(value)?);
    }
    Ok(Some(fields))
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

    /// The hash the enqueue script writes for `job` (`seq` aside).
    fn stored_fields(job: &Job) -> HashMap<String, String> {
        let args = enqueue_args(job, Duration::from_secs(60));
        assert_eq!(args[0], job.id.to_string());
        let names = ["kind", "params", "created_at", "max_attempts"];
        assert_eq!(args[5], job.unique_key.clone().unwrap_or_default());
        assert_eq!(args[6], job.priority.to_string());
        let mut fields: HashMap<String, String> = names
            .iter()
            .zip(&args[1..])
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect();
        fields.insert("status".into(), job.status.as_str().into());
        assert_eq!(args[10], (args.len() - 11).to_string());
        for pair in args[11..].chunks(2) {
            fields.insert(pair[0].clone(), pair[1].clone());
        }
        fields
    }

    fn a_job() -> Job {
        Job::new(
            "plot",
            QueueName::new("imports").unwrap(),
            Params::from_json(r#"{"title":"\"q\"\nÜ","n":[1,2]}"#).unwrap(),
            4,
            Utc::now(),
        )
    }

    #[test]
    fn jobs_survive_their_hash_exactly() {
        let now = Utc::now();
        let mut job = a_job();
        assert_eq!(job_from_fields(job.id, &stored_fields(&job)).unwrap(), job);
        job.worker = Some("10.1.2.3".into());
        job.started_at = Some(now);
        job.finished_at = Some(now);
        job.error = Some("boom".into());
        job.result_type = Some("image/png".into());
        job.attempts = 2;
        job.unique_key = Some("order-17".into());
        job.timeout = Some(30);
        job.progress = Some(Progress::new(42.5, "drawing \"axes\""));
        job.priority = -7;
        job.unique_scope = Some(UniqueScope::For(90));
        job.run_at = Some(now);
        assert_eq!(job_from_fields(job.id, &stored_fields(&job)).unwrap(), job);
        job.queue = QueueName::default_queue();
        let fields = stored_fields(&job);
        assert!(
            !fields.contains_key("queue"),
            "no field means the default queue"
        );
        assert_eq!(job_from_fields(job.id, &fields).unwrap(), job);
    }

    /// A lease script answer of `jobs`, each with token 7 + its index, encoded as cmsgpack does
    /// (a missing value is `false`).
    fn lease_answer(now: i64, jobs: &[Job]) -> Vec<u8> {
        use rmp::encode::{write_array_len, write_bool, write_sint, write_str};
        let mut out = Vec::new();
        write_array_len(&mut out, jobs.len() as u32 + 1).unwrap();
        write_sint(&mut out, now).unwrap();
        for (i, job) in jobs.iter().enumerate() {
            let fields = stored_fields(job);
            write_array_len(&mut out, 3).unwrap();
            write_str(&mut out, &job.id.to_string()).unwrap();
            write_sint(&mut out, 7 + i as i64).unwrap();
            write_array_len(&mut out, LEASE_FIELDS.len() as u32).unwrap();
            for field in LEASE_FIELDS {
                match fields.get(field) {
                    Some(value) => write_str(&mut out, value).unwrap(),
                    None => write_bool(&mut out, false).unwrap(),
                }
            }
        }
        out
    }

    #[test]
    fn lease_answers_read_like_the_hash() {
        let mut job = a_job();
        job.attempts = 1;
        job.error = Some("lease expired".into());
        job.timeout = Some(5);
        let mut other = a_job();
        other.params = Params::from_json(r#"{"text":"\u00e9t\u00e9 \"quoted\""}"#).unwrap();
        let answer = lease_answer(1_700_000_000_123, &[job.clone(), other.clone()]);
        let (now, leased) = read_lease_answer(&answer, &job.queue).unwrap();
        assert_eq!(now, 1_700_000_000_123);
        let read: Vec<(JobId, u64, Job)> = leased
            .into_iter()
            .map(|l| (l.job.id, l.token, l.job))
            .collect();
        assert_eq!(read, vec![(job.id, 7, job.clone()), (other.id, 8, other)]);
        let (_, none) = read_lease_answer(&lease_answer(5, &[]), &job.queue).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn broken_lease_answers_are_internal_errors_not_panics() {
        let job = a_job();
        let answer = lease_answer(5, std::slice::from_ref(&job));
        let mut broken: Vec<Vec<u8>> = (0..answer.len()).map(|n| answer[..n].to_vec()).collect();
        let mut trailing = answer.clone();
        trailing.push(0);
        broken.push(trailing);
        // Not MessagePack, and a RESP-shaped reply.
        broken.push(b"*1\r\n:5\r\n".to_vec());
        for bytes in broken {
            assert!(
                matches!(
                    read_lease_answer(&bytes, &job.queue),
                    Err(Error::Internal(_))
                ),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn broken_hashes_are_internal_errors_not_panics() {
        let mut fields: HashMap<String, String> = HashMap::new();
        let id = a_job().id;
        assert!(matches!(
            job_from_fields(id, &fields),
            Err(Error::Internal(_))
        ));
        fields.extend(stored_fields(&a_job()));
        for (field, bad) in [
            ("status", "running"),
            ("created_at", "yesterday"),
            ("attempts", "-1"),
            ("max_attempts", "x"),
            ("params", "[1"),
            ("queue", "no queue"),
            ("timeout", "-3"),
            ("progress", "{\"percent\":\"x\"}"),
            ("priority", "high"),
            ("run_at", "soon"),
            ("unique_scope", "forever"),
        ] {
            let mut broken = fields.clone();
            broken.insert(field.into(), bad.into());
            assert!(
                matches!(job_from_fields(id, &broken), Err(Error::Internal(_))),
                "{field}"
            );
        }
        assert!(matches!(
            fields_from_reply(Value::Int(3)),
            Err(Error::Internal(_))
        ));
        assert!(matches!(
            string(Value::BulkString(vec![0xff])),
            Err(Error::Internal(_))
        ));
    }

    #[test]
    fn expiry_and_remains_are_read_from_the_hash() {
        let mut fields = stored_fields(&a_job());
        assert!(!gone(&fields, 1_000));
        fields.insert("expires_at".into(), "1000".into());
        assert!(gone(&fields, 1_000));
        assert!(!gone(&fields, 999));
        let remains = HashMap::from([("status".to_owned(), TOMBSTONE.to_owned())]);
        assert!(gone(&remains, 0));
    }

    #[test]
    fn times_are_read_from_time_replies() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let reply = Value::Array(vec![bulk("1764547200"), bulk("123456")]);
        assert_eq!(time_reply(reply).unwrap(), 1_764_547_200_123);
        assert!(time_reply(Value::Array(vec![bulk("1")])).is_err());
        assert_eq!(
            from_millis(1_764_547_200_123).unwrap().to_rfc3339(),
            "2025-12-01T00:00:00.123+00:00"
        );
    }
}
