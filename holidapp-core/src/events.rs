//! Job events: every status change of every job, in a bounded log the backend keeps, read from
//! any position and followed live.
//!
//! Each backend appends a [`JobEvent`] for every status change it makes (a submit, a lease, a
//! completion, a failure, a retry, a release, a cancel, an expired lease sent back), in the same
//! atomic step as the change. The log is bounded: the in-memory backend keeps the last
//! [`MEMORY_RETAINED`] events; the Redis backend keeps, per queue, a capped stream of the last
//! [`REDIS_RETAINED_ENTRIES`] script calls' events (see `docs/redis-layout.md`).
//!
//! A log is made of **streams** (one per queue on Redis, named by the queue; one in memory, named
//! `*`), each ordered by [`Position`]. An [`EventCursor`] holds, per stream, the position of the last event a reader
//! has seen; reading after it answers every retained event the reader has not seen, once, in each
//! stream's order. Its text form ([`Display`](std::fmt::Display), [`FromStr`]) is what the HTTP
//! API sends as each Server-Sent Event's `id`, so a client that reconnects with `Last-Event-ID`
//! resumes where it stopped. [`follow`] turns a log into a [`Stream`] of events: the retained ones
//! after a cursor first, then new ones as they come, without polling.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::Stream;

use crate::error::{Error, Result};
use crate::job::{JobId, Name, QueueName};
use crate::machine::JobStatus;

/// How many events the in-memory backend keeps.
pub const MEMORY_RETAINED: usize = 10_000;

/// How many entries (script calls, each with the events of its jobs) each queue's stream keeps
/// on Redis, about (`XADD ... MAXLEN ~`).
pub const REDIS_RETAINED_ENTRIES: usize = 1_000;

/// The most events one [`EventLog::read`] answers.
pub const MAX_READ: usize = 1_000;

/// The most streams a cursor names.
const MAX_STREAMS: usize = 256;

/// The name of the in-memory backend's one stream.
pub const MEMORY_STREAM: &str = "*";

/// [`MEMORY_STREAM`], allocated once.
pub(crate) static MEMORY_STREAM_NAME: std::sync::LazyLock<Arc<str>> =
    std::sync::LazyLock::new(|| Arc::from(MEMORY_STREAM));

/// Where an event sits in its stream: the stream entry (`ms`, `seq`, a Redis stream id) and the
/// event's place within that entry (`index`). Ordered as the stream is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The entry's time part (ms since the epoch on Redis; 0 in memory).
    pub ms: u64,
    /// The entry's sequence part.
    pub seq: u64,
    /// The event's place within its entry, from 0.
    pub index: u32,
}

/// A reader's place in an event log: per stream, the position of the last event it has seen.
/// Streams it does not name are read from their oldest retained event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct EventCursor {
    streams: BTreeMap<Arc<str>, Position>,
}

impl EventCursor {
    /// A cursor before every retained event.
    pub fn start() -> Self {
        EventCursor::default()
    }

    /// The position of the last event seen in `stream`, if any.
    pub fn get(&self, stream: &str) -> Option<Position> {
        self.streams.get(stream).copied()
    }

    /// The streams the cursor names, with their positions.
    pub fn streams(&self) -> impl Iterator<Item = (&str, Position)> + '_ {
        self.streams.iter().map(|(s, p)| (&**s, *p))
    }

    /// Whether the event at `position` of `stream` is at or before the cursor (seen already).
    pub fn covers(&self, stream: &str, position: Position) -> bool {
        self.get(stream).is_some_and(|seen| position <= seen)
    }

    /// Moves the cursor of `stream` to `position`, if that is further.
    pub fn advance(&mut self, stream: &Arc<str>, position: Position) {
        match self.streams.get_mut(&**stream) {
            Some(seen) if position > *seen => *seen = position,
            Some(_) => {}
            None => {
                self.streams.insert(Arc::clone(stream), position);
            }
        }
    }

    /// Moves the cursor past `event`.
    pub fn pass(&mut self, event: &JobEvent) {
        self.advance(&event.stream, event.position);
    }
}

/// `name:ms-seq-index` per stream, joined by `,`; `0` for a cursor that names no stream.
impl fmt::Display for EventCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.streams.is_empty() {
            return f.write_str("0");
        }
        for (i, (stream, p)) in self.streams.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{stream}:{}-{}-{}", p.ms, p.seq, p.index)?;
        }
        Ok(())
    }
}

/// Reads a cursor as [`Display`](fmt::Display) writes it; anything else is refused with
/// [`Error::InvalidParams`].
impl FromStr for EventCursor {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::InvalidParams(format!(
                "'{}' is not an event id (the id of an event this API sent)",
                crate::job::truncate(s, 40)
            ))
        };
        if s == "0" {
            return Ok(EventCursor::start());
        }
        if s.is_empty() || s.len() > MAX_STREAMS * 64 {
            return Err(bad());
        }
        let mut cursor = EventCursor::start();
        for part in s.split(',') {
            let (stream, at) = part.split_once(':').ok_or_else(bad)?;
            let mut fields = at.split('-');
            let (Some(ms), Some(seq), Some(index), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(bad());
            };
            let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
            let named = stream == MEMORY_STREAM || is_queue_stream(stream);
            if !named
                || ![ms, seq, index].into_iter().all(digits)
                || cursor.streams.len() == MAX_STREAMS
            {
                return Err(bad());
            }
            let stream: Arc<str> = Arc::from(stream);
            let position = Position {
                ms: ms.parse().map_err(|_| bad())?,
                seq: seq.parse().map_err(|_| bad())?,
                index: index.parse().map_err(|_| bad())?,
            };
            // A stream named twice keeps the further position.
            cursor.advance(&stream, position);
        }
        Ok(cursor)
    }
}

/// Whether `name` names a queue's stream: the queue's name, or for one partition of a split
/// queue, the name, `#` and the partition's slot tag in two hex digits.
fn is_queue_stream(name: &str) -> bool {
    let (queue, tag) = match name.split_once('#') {
        Some((queue, tag)) => (queue, Some(tag)),
        None => (name, None),
    };
    QueueName::new(queue).is_ok()
        && tag.is_none_or(|t| t.len() == 2 && t.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One status change of one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobEvent {
    /// The stream it is in: its queue's name on Redis, [`MEMORY_STREAM`] in memory.
    pub stream: Arc<str>,
    /// Its place in that stream.
    pub position: Position,
    /// The job.
    pub job: JobId,
    /// The job's kind.
    pub kind: Name,
    /// The job's queue.
    pub queue: QueueName,
    /// The status the job moved to.
    pub status: JobStatus,
    /// The worker that made the change, for a lease, an outcome or a release (the identity it
    /// writes on jobs).
    pub worker: Option<Name>,
    /// When it happened (the backend's clock).
    pub at: DateTime<Utc>,
}

/// Which events a reader wants: those matching every filter given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this job's.
    pub job: Option<JobId>,
    /// Only jobs of this queue.
    pub queue: Option<QueueName>,
    /// Only jobs of this kind.
    pub kind: Option<String>,
}

impl EventFilter {
    /// Whether `event` passes the filter.
    pub fn matches(&self, event: &JobEvent) -> bool {
        self.job.is_none_or(|job| job == event.job)
            && self.queue.as_ref().is_none_or(|q| *q == event.queue)
            && self.kind.as_deref().is_none_or(|k| k == event.kind)
    }
}

/// Where the events of a backend are kept and read.
///
/// # Contract
///
/// - Every status change a backend makes appends one event, in the same atomic step: a submit
///   (`submitted`), a lease (`in progress`, with the worker), a completion or a failure (with the
///   worker), a retry or a release (`submitted`), a cancel (`cancelled`), an expired lease sent
///   back or failed. Within a stream, events are in the order of the changes.
/// - `read` answers the retained events after `after`, oldest first in each stream, each once,
///   at most `max` ([`MAX_READ`] at most); reading again after the last one answered gives the
///   next ones. Events older than the retention are gone, never answered out of order.
/// - `head` answers a cursor after every event appended so far.
/// - `wait` returns once an event after `after` may be readable, or after `timeout` at the
///   latest; it may return earlier with nothing to read (the Redis backend waits at most a
///   second, to pick up the streams of queues that appear meanwhile), never in a tight loop.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// The retained events after `after`, oldest first in each stream, at most `max`.
    async fn read(&self, after: &EventCursor, max: usize) -> Result<Vec<JobEvent>>;

    /// A cursor after every event so far.
    async fn head(&self) -> Result<EventCursor>;

    /// Waits until an event after `after` may be readable, at most `timeout`.
    async fn wait(&self, after: &EventCursor, timeout: Duration);
}

/// What [`follow`] yields: an event, or a moment of quiet (no event for the wait's timeout) that a
/// server may use to keep a connection alive; both with the cursor after them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Followed {
    /// An event that passed the filter.
    Event(JobEvent, EventCursor),
    /// Nothing happened for a while.
    Quiet(EventCursor),
}

/// The events of `log` after `after` (from now when `None`) that pass `filter`: first the retained
/// ones, then new ones as they are appended, forever. The first item is a [`Followed::Quiet`]
/// with the starting cursor (a resume point before any event arrives). Waits on the log between
/// reads (no polling loop), and yields [`Followed::Quiet`] after `quiet` without an event. A read
/// that fails ends the stream with the error.
pub fn follow(
    log: Arc<dyn EventLog>,
    after: Option<EventCursor>,
    filter: EventFilter,
    quiet: Duration,
) -> impl Stream<Item = Result<Followed>> + Send {
    struct State {
        log: Arc<dyn EventLog>,
        cursor: Option<EventCursor>,
        filter: EventFilter,
        quiet: Duration,
        pending: VecDeque<JobEvent>,
        failed: bool,
        started: bool,
        /// When the last item went out.
        last_sent: tokio::time::Instant,
    }
    let state = State {
        log,
        cursor: after,
        filter,
        quiet,
        pending: VecDeque::new(),
        failed: false,
        started: false,
        last_sent: tokio::time::Instant::now(),
    };
    futures::stream::unfold(state, |mut state| async move {
        if state.failed {
            return None;
        }
        let mut cursor = match state.cursor.take() {
            Some(cursor) => cursor,
            None => match state.log.head().await {
                Ok(cursor) => cursor,
                Err(e) => {
                    state.failed = true;
                    return Some((Err(e), state));
                }
            },
        };
        if !state.started {
            state.started = true;
            state.cursor = Some(cursor.clone());
            state.last_sent = tokio::time::Instant::now();
            return Some((Ok(Followed::Quiet(cursor)), state));
        }
        loop {
            while let Some(event) = state.pending.pop_front() {
                if cursor.covers(&event.stream, event.position) {
                    continue;
                }
                cursor.pass(&event);
                if state.filter.matches(&event) {
                    state.cursor = Some(cursor.clone());
                    state.last_sent = tokio::time::Instant::now();
                    return Some((Ok(Followed::Event(event, cursor)), state));
                }
            }
            match state.log.read(&cursor, MAX_READ).await {
                Ok(events) if !events.is_empty() => state.pending.extend(events),
                Ok(_) => {
                    let silent = state.last_sent.elapsed();
                    if silent >= state.quiet {
                        state.cursor = Some(cursor.clone());
                        state.last_sent = tokio::time::Instant::now();
                        return Some((Ok(Followed::Quiet(cursor)), state));
                    }
                    state.log.wait(&cursor, state.quiet - silent).await;
                }
                Err(e) => {
                    state.failed = true;
                    return Some((Err(e), state));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_through_their_text() {
        let mut cursor = EventCursor::start();
        assert_eq!(cursor.to_string(), "0");
        assert_eq!("0".parse::<EventCursor>().unwrap(), cursor);
        let at = |ms, seq, index| Position { ms, seq, index };
        cursor.advance(&Arc::from("default"), at(1_700_000_000_123, 4, 17));
        cursor.advance(&Arc::from("mail.v-2"), at(5, 0, 0));
        cursor.advance(&Arc::from(MEMORY_STREAM), at(0, 9, 0));
        // One partition of a split queue.
        cursor.advance(&Arc::from("default#0a"), at(6, 1, 2));
        let text = cursor.to_string();
        assert_eq!(
            text,
            "*:0-9-0,default:1700000000123-4-17,default#0a:6-1-2,mail.v-2:5-0-0"
        );
        assert_eq!(text.parse::<EventCursor>().unwrap(), cursor);
        // A stream named twice keeps its further position.
        let twice: EventCursor = "q:1-2-3,q:1-2-1".parse().unwrap();
        assert_eq!(twice.to_string(), "q:1-2-3");
    }

    #[test]
    fn cursors_only_move_forward_and_cover_what_they_passed() {
        let mut cursor = EventCursor::start();
        let q: Arc<str> = Arc::from("q");
        let at = |ms, index| Position { ms, seq: 0, index };
        assert!(!cursor.covers("q", at(1, 0)));
        cursor.advance(&q, at(5, 2));
        cursor.advance(&q, at(5, 1));
        assert_eq!(cursor.get("q"), Some(at(5, 2)));
        assert!(cursor.covers("q", at(5, 2)) && cursor.covers("q", at(4, 9)));
        assert!(!cursor.covers("q", at(5, 3)) && !cursor.covers("r", at(0, 0)));
    }

    #[test]
    fn hostile_cursors_are_refused() {
        let many = (0..300)
            .map(|i| format!("q{i}:1-1-1"))
            .collect::<Vec<_>>()
            .join(",");
        for bad in [
            "",
            "x",
            "default:1-2",
            "default:1-2-3-4",
            "default:+1-2-3",
            "default:-2-3",
            "bad name:1-2-3",
            ":1-2-3",
            "default#:1-2-3",
            "default#0:1-2-3",
            "default#0g:1-2-3",
            "default#0a#0b:1-2-3",
            "#0a:1-2-3",
            "default:99999999999999999999-0-0",
            "default:1-2-3,",
            many.as_str(),
        ] {
            assert!(bad.parse::<EventCursor>().is_err(), "{bad:?}");
        }
    }
}
