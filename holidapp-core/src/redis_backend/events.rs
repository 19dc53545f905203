//! The event log on Redis: one capped stream per queue (`{p}:{xx}:q:{queue}:events`), each entry
//! the events of one script call (see `lua/events.lua`), read here with `XRANGE` and waited on
//! with a blocking `XREAD`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::Value;

use super::codec::{array, string};
use super::{Partition, RedisBackend};

use crate::error::{Error, Result};
use crate::events::{EventCursor, EventLog, JobEvent, MAX_READ, Position};
use crate::job::{JobId, QueueName};
use crate::machine::JobStatus;

/// The longest one blocking wait on the streams lasts.
const MAX_BLOCK: Duration = Duration::from_secs(1);

/// How many entries one read asks of each stream.
const ENTRIES_PER_READ: usize = 64;

/// A stream entry id, `ms-seq`.
fn entry_id(text: &str) -> Result<(u64, u64)> {
    text.split_once('-')
        .and_then(|(ms, seq)| Some((ms.parse().ok()?, seq.parse().ok()?)))
        .ok_or_else(|| Error::Internal(format!("Redis answered a bad stream id '{text}'")))
}

/// The events of one stream entry (`[id, [field, value, ...]]`) of `queue`, in their order.
fn entry_events(queue: &QueueName, stream: &Arc<str>, entry: Value) -> Result<Vec<JobEvent>> {
    let mut parts = array(entry)?.into_iter();
    let (Some(id), Some(fields)) = (parts.next(), parts.next()) else {
        return Err(Error::Internal("Redis answered a bad stream entry".into()));
    };
    let (ms, seq) = entry_id(&string(id)?)?;
    let at = super::codec::from_millis(i64::try_from(ms).unwrap_or(i64::MAX))?;
    let mut fields = array(fields)?.into_iter();
    let (mut packed, mut defaults) = (None, None);
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        match string(name)?.as_str() {
            "e" => packed = Some(string(value)?),
            "d" => defaults = Some(string(value)?),
            _ => {}
        }
    }
    let Some(packed) = packed else {
        return Ok(Vec::new());
    };
    let bad = |record: &str| Error::Internal(format!("Redis holds a bad event '{record}'"));
    // The entry's defaults: the kind, status and worker of every event given by its id alone.
    let defaults = match &defaults {
        Some(d) => {
            let mut f = d.split('\u{1f}');
            match (f.next(), f.next(), f.next(), f.next()) {
                (Some(kind), Some(status), Some(worker), None) => Some((kind, status, worker)),
                _ => return Err(bad(d)),
            }
        }
        None => None,
    };
    let mut events = Vec::new();
    for (index, record) in packed.split('\u{1e}').enumerate() {
        let mut f = record.split('\u{1f}');
        let (job, kind, status, worker) = match (f.next(), f.next(), f.next(), f.next(), f.next()) {
            (Some(job), None, None, None, None) => match defaults {
                Some((kind, status, worker)) => (job, kind, status, worker),
                None => return Err(bad(record)),
            },
            (Some(job), Some(kind), Some(status), Some(worker), None) => {
                (job, kind, status, worker)
            }
            _ => return Err(bad(record)),
        };
        let job: JobId = job.parse().map_err(|_| {
            Error::Internal(format!("Redis holds an event of a bad job id '{job}'"))
        })?;
        let status: JobStatus = status
            .parse()
            .map_err(|_| Error::Internal(format!("Redis holds an event of status '{status}'")))?;
        events.push(JobEvent {
            stream: Arc::clone(stream),
            position: Position {
                ms,
                seq,
                index: u32::try_from(index).unwrap_or(u32::MAX),
            },
            job,
            kind: kind.into(),
            queue: queue.clone(),
            status,
            worker: (!worker.is_empty()).then(|| worker.into()),
            at,
        });
    }
    Ok(events)
}

impl RedisBackend {
    /// The queue partitions whose streams a reader follows, with their stream keys and names
    /// (a partition's [`name`](Partition::name)).
    async fn event_streams(&self) -> Result<Vec<(Partition, String, Arc<str>)>> {
        Ok(self
            .known_partitions()
            .await?
            .iter()
            .map(|partition| {
                let key = self.partition_keys(partition).events;
                let name: Arc<str> = Arc::from(partition.name());
                (partition.clone(), key, name)
            })
            .collect())
    }
}

#[async_trait]
impl EventLog for RedisBackend {
    async fn read(&self, after: &EventCursor, max: usize) -> Result<Vec<JobEvent>> {
        let max = max.clamp(1, MAX_READ);
        let streams = self.event_streams().await?;
        if streams.is_empty() {
            return Ok(Vec::new());
        }
        let reads = streams
            .iter()
            .map(|(partition, key, name)| {
                // From the entry of the last event seen (inclusive: its later events may not
                // have been read yet), or from the oldest retained one.
                let start = after
                    .get(name)
                    .map_or_else(|| "-".to_owned(), |p| format!("{}-{}", p.ms, p.seq));
                let mut xrange = redis::cmd("XRANGE");
                xrange
                    .arg(key)
                    .arg(start)
                    .arg("+")
                    .arg("COUNT")
                    .arg(ENTRIES_PER_READ);
                (partition.tag, xrange)
            })
            .collect();
        let (answers, _) = self.query_by_tag(reads, false).await?;
        let mut events = Vec::new();
        for ((partition, _, name), entries) in streams.iter().zip(answers) {
            let mut taken = 0;
            for entry in array(entries)? {
                for event in entry_events(&partition.queue, name, entry)? {
                    if !after.covers(name, event.position) {
                        events.push(event);
                        taken += 1;
                    }
                }
                if taken >= max {
                    break;
                }
            }
        }
        // Each stream's events are in order; merged by time, a prefix of the merge is a prefix of
        // each stream, so the cursor after the last one answered skips nothing.
        events.sort_by(|a, b| (a.position, &a.stream).cmp(&(b.position, &b.stream)));
        events.truncate(max);
        Ok(events)
    }

    async fn head(&self) -> Result<EventCursor> {
        let streams = self.event_streams().await?;
        let mut cursor = EventCursor::start();
        if streams.is_empty() {
            return Ok(cursor);
        }
        let reads = streams
            .iter()
            .map(|(partition, key, _)| {
                let mut xrevrange = redis::cmd("XREVRANGE");
                xrevrange.arg(key).arg("+").arg("-").arg("COUNT").arg(1);
                (partition.tag, xrevrange)
            })
            .collect();
        let (answers, _) = self.query_by_tag(reads, false).await?;
        for ((partition, _, name), last) in streams.iter().zip(answers) {
            if let Some(entry) = array(last)?.into_iter().next()
                && let Some(event) = entry_events(&partition.queue, name, entry)?.pop()
            {
                cursor.pass(&event);
            }
        }
        Ok(cursor)
    }

    /// Blocks on the streams of the queues known now for at most a second (or `timeout`), so
    /// that the stream of a queue that appears meanwhile is followed within a second.
    async fn wait(&self, after: &EventCursor, timeout: Duration) {
        let timeout = timeout.min(MAX_BLOCK);
        let Ok(streams) = self.event_streams().await else {
            tokio::time::sleep(timeout.min(Duration::from_secs(1))).await;
            return;
        };
        if streams.is_empty() || timeout < Duration::from_millis(1) {
            tokio::time::sleep(timeout).await;
            return;
        }
        // One XREAD for every stream on one Redis; on a cluster, one per slot tag.
        let mut groups: Vec<(u8, Vec<(&String, &Arc<str>)>)> = Vec::new();
        for (partition, key, name) in &streams {
            let tag = if self.conn.is_cluster() {
                partition.tag
            } else {
                0
            };
            match groups.iter_mut().find(|(t, _)| *t == tag) {
                Some((_, members)) => members.push((key, name)),
                None => groups.push((tag, vec![(key, name)])),
            }
        }
        let block_ms = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let commands = groups
            .into_iter()
            .map(|(_, members)| {
                let mut xread = redis::cmd("XREAD");
                xread
                    .arg("COUNT")
                    .arg(1)
                    .arg("BLOCK")
                    .arg(block_ms)
                    .arg("STREAMS");
                for (key, _) in &members {
                    xread.arg(*key);
                }
                for (_, name) in &members {
                    xread.arg(
                        after
                            .get(name)
                            .map_or_else(|| "0-0".to_owned(), |p| format!("{}-{}", p.ms, p.seq)),
                    );
                }
                xread
            })
            .collect();
        if let Err(e) = self.block_on_any(commands, timeout).await {
            tracing::debug!("waiting for events: {e}");
            tokio::time::sleep(timeout.min(Duration::from_secs(1))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_are_read_strictly() {
        assert_eq!(entry_id("1700000000000-3").unwrap(), (1_700_000_000_000, 3));
        for bad in ["", "1", "1-", "-1", "a-1", "1-2-3"] {
            assert!(entry_id(bad).is_err(), "{bad:?}");
        }
    }

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn an_entry_gives_ids_alone_the_defaults_and_full_records_their_own_fields() {
        let queue = QueueName::default_queue();
        let (a, b, c) = (
            JobId::new_in(&queue),
            JobId::new_in(&queue),
            JobId::new_in(&queue),
        );
        let packed = format!("{a}\u{1e}{b}\u{1f}plot\u{1f}failed\u{1f}\u{1e}{c}");
        let entry = Value::Array(vec![
            bulk("1700000000000-3"),
            Value::Array(vec![
                bulk("d"),
                bulk("plot\u{1f}in progress\u{1f}w1"),
                bulk("e"),
                bulk(&packed),
            ]),
        ]);
        let stream: Arc<str> = Arc::from("default");
        let events = entry_events(&queue, &stream, entry).unwrap();
        let seen: Vec<_> = events
            .iter()
            .map(|e| (e.job, e.status, e.worker.as_deref(), e.position.index))
            .collect();
        assert_eq!(
            seen,
            vec![
                (a, JobStatus::InProgress, Some("w1"), 0),
                (b, JobStatus::Failed, None, 1),
                (c, JobStatus::InProgress, Some("w1"), 2),
            ]
        );
        // An id alone with no defaults, or a record of the wrong shape, is refused.
        for (defaults, packed) in [(None, a.to_string()), (Some("plot"), a.to_string())] {
            let mut fields = vec![bulk("e"), bulk(&packed)];
            if let Some(d) = defaults {
                fields.extend([bulk("d"), bulk(d)]);
            }
            let entry = Value::Array(vec![bulk("1-0"), Value::Array(fields)]);
            assert!(
                entry_events(&queue, &stream, entry).is_err(),
                "{defaults:?}"
            );
        }
    }
}
