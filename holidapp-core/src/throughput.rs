//! Queue throughput over the last minutes, from samples of the queues' finished-job counters.
//!
//! A [`Throughput`] keeps a bounded history of samples of every queue's
//! [`completed_total`](crate::QueueStats::completed_total) and
//! [`failed_total`](crate::QueueStats::failed_total): at most one sample per
//! [`interval`](Throughput::new), for at most [`span`](Throughput::new), for at most
//! [`MAX_QUEUES`] queues. The counters are kept by the store as jobs finish, so the rate between
//! two samples is exact whoever finished the jobs (any worker process) and whatever was purged
//! or deleted in between. Samples are taken when someone asks
//! ([`Jobs::overview`](crate::Jobs::overview)), so a process nobody watches does no work for it;
//! the history covers the time someone watched, on this process. For a history of every
//! instant, scrape `holidapp_queue_finished_total` with Prometheus.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::job::QueueName;
use crate::store::{QueueStats, StatusCounts};

/// Most queues whose history is kept (the first ones by name); the others are answered without.
pub const MAX_QUEUES: usize = 100;

/// One queue's counters at one instant.
#[derive(Clone, Copy, Debug)]
struct Point {
    completed: u64,
    failed: u64,
    depth: u64,
}

/// Every watched queue's counters at one instant.
#[derive(Debug)]
struct Sample {
    at: DateTime<Utc>,
    queues: HashMap<QueueName, Point>,
}

/// A bounded history of queue counters (see the [module](self) docs).
#[derive(Debug)]
pub struct Throughput {
    interval: Duration,
    span: Duration,
    samples: Mutex<VecDeque<Sample>>,
}

impl Default for Throughput {
    /// One sample per 5 s at most, over the last 10 minutes.
    fn default() -> Self {
        Throughput::new(Duration::from_secs(5), Duration::from_secs(600))
    }
}

/// A rate between two samples.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rate {
    /// The end of the interval.
    pub at: DateTime<Utc>,
    /// Jobs completed per second over the interval.
    pub completed_per_s: f64,
    /// Jobs failed for good per second over the interval.
    pub failed_per_s: f64,
    /// Jobs waiting (submitted) at the end of the interval.
    pub depth: u64,
}

/// One queue as a dashboard shows it: its counts now and its throughput over the history.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QueueOverview {
    /// The queue.
    pub queue: QueueName,
    /// Jobs per status.
    pub counts: Counts,
    /// Of the `submitted` jobs, those leasable now.
    pub ready: u64,
    /// Of the `submitted` jobs, those waiting for their time.
    pub delayed: u64,
    /// Jobs that ever completed in the queue.
    pub completed_total: u64,
    /// Jobs that ever failed for good in the queue.
    pub failed_total: u64,
    /// Rates between consecutive samples, oldest first (empty until two samples were taken).
    pub throughput: Vec<Rate>,
}

/// Jobs per status, by their wire names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Jobs `submitted`.
    pub submitted: u64,
    /// Jobs `in progress`.
    #[serde(rename = "in progress")]
    pub in_progress: u64,
    /// Jobs `complete`.
    pub complete: u64,
    /// Jobs `failed`.
    pub failed: u64,
    /// Jobs `cancelled`.
    pub cancelled: u64,
}

impl From<StatusCounts> for Counts {
    fn from(c: StatusCounts) -> Self {
        Counts {
            submitted: c.submitted,
            in_progress: c.in_progress,
            complete: c.complete,
            failed: c.failed,
            cancelled: c.cancelled,
        }
    }
}

impl Throughput {
    /// A history that takes at most one sample per `interval` and keeps those of the last
    /// `span`.
    pub fn new(interval: Duration, span: Duration) -> Self {
        Throughput {
            interval,
            span,
            samples: Mutex::new(VecDeque::new()),
        }
    }

    /// Records `stats` as read at `now` (unless the last sample is younger than the interval)
    /// and answers every queue of `stats` with its throughput over the history.
    pub fn observe(&self, now: DateTime<Utc>, mut stats: Vec<QueueStats>) -> Vec<QueueOverview> {
        stats.sort_by(|a, b| a.queue.cmp(&b.queue));
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let due = samples
            .back()
            .is_none_or(|last| (now - last.at).to_std().unwrap_or_default() >= self.interval);
        if due {
            let queues = stats
                .iter()
                .take(MAX_QUEUES)
                .map(|s| {
                    let point = Point {
                        completed: s.completed_total,
                        failed: s.failed_total,
                        depth: s.counts.submitted,
                    };
                    (s.queue.clone(), point)
                })
                .collect();
            samples.push_back(Sample { at: now, queues });
            while samples
                .front()
                .is_some_and(|first| (now - first.at).to_std().unwrap_or_default() > self.span)
            {
                samples.pop_front();
            }
        }
        stats
            .into_iter()
            .map(|s| QueueOverview {
                throughput: rates(&samples, &s.queue),
                queue: s.queue,
                counts: s.counts.into(),
                ready: s.ready,
                delayed: s.delayed,
                completed_total: s.completed_total,
                failed_total: s.failed_total,
            })
            .collect()
    }
}

/// The rates of `queue` between consecutive samples that both have it. A counter that went down
/// (the store was emptied) gives no rate for that interval.
fn rates(samples: &VecDeque<Sample>, queue: &QueueName) -> Vec<Rate> {
    let mut out = Vec::new();
    let mut previous: Option<(DateTime<Utc>, Point)> = None;
    for sample in samples {
        let Some(&point) = sample.queues.get(queue) else {
            previous = None;
            continue;
        };
        if let Some((at, before)) = previous {
            let seconds = (sample.at - at).num_milliseconds() as f64 / 1000.0;
            if seconds > 0.0 && point.completed >= before.completed && point.failed >= before.failed
            {
                out.push(Rate {
                    at: sample.at,
                    completed_per_s: (point.completed - before.completed) as f64 / seconds,
                    failed_per_s: (point.failed - before.failed) as f64 / seconds,
                    depth: point.depth,
                });
            }
        }
        previous = Some((sample.at, point));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(queue: &str, completed: u64, failed: u64) -> QueueStats {
        let mut s = QueueStats::empty(QueueName::new(queue).unwrap());
        s.completed_total = completed;
        s.failed_total = failed;
        s.counts.submitted = 7;
        s
    }

    #[test]
    fn rates_come_from_counter_deltas_at_most_one_sample_per_interval() {
        let history = Throughput::new(Duration::from_secs(5), Duration::from_secs(20));
        let t0 = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        assert!(
            history.observe(at(0), vec![stats("a", 0, 0)])[0]
                .throughput
                .is_empty()
        );
        // Too soon: not sampled.
        history.observe(at(2), vec![stats("a", 1000, 0)]);
        let a = history.observe(at(5), vec![stats("a", 100, 10)]);
        assert_eq!(
            a[0].throughput,
            vec![Rate {
                at: at(5),
                completed_per_s: 20.0,
                failed_per_s: 2.0,
                depth: 7
            }]
        );
        // A new queue appears; an emptied store (counter down) gives no rate.
        history.observe(at(10), vec![stats("a", 50, 10), stats("b", 0, 0)]);
        let both = history.observe(at(15), vec![stats("b", 30, 0), stats("a", 100, 10)]);
        assert_eq!(both[0].queue.as_str(), "a", "by name");
        assert_eq!(
            both[0]
                .throughput
                .iter()
                .map(|r| r.completed_per_s)
                .collect::<Vec<_>>(),
            vec![20.0, 10.0]
        );
        assert_eq!(both[1].throughput.len(), 1);
        assert_eq!(both[1].throughput[0].completed_per_s, 6.0);
        // Samples older than the span are dropped.
        let later = history.observe(at(40), vec![stats("a", 100, 10)]);
        assert!(later[0].throughput.is_empty(), "{:?}", later[0].throughput);
    }
}
