//! The names of every key the backend uses (documented in `docs/redis-layout.md`).
//!
//! Every key a script touches shares one hash tag, `{xx}`: two hex digits, the slot tag of the
//! job's queue ([`QueueName::tag`]), which is also the first byte of every job id of that queue.
//! So each script runs on one Redis Cluster slot, and a job's keys can be named from its id alone.

use crate::job::{JobId, QueueName};

/// Most partitions one queue may be split into.
pub const MAX_PARTITIONS: u16 = 64;

/// One partition of a queue: the queue's keys under one slot tag. Every queue has its *base*
/// partition, under the queue's own tag ([`QueueName::tag`]); a queue split into partitions
/// (see [`RedisBackend::with_partitions`](super::RedisBackend::with_partitions)) also has others,
/// each under a tag of its own, so that on a Redis Cluster they spread over the masters. A job's
/// id names the tag of its partition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Partition {
    pub(super) queue: QueueName,
    pub(super) tag: u8,
}

impl Partition {
    /// The base partition of `queue`.
    pub(super) fn base(queue: &QueueName) -> Self {
        Partition {
            queue: queue.clone(),
            tag: queue.tag(),
        }
    }

    /// The partition that holds the job `id` of `queue`.
    pub(super) fn of(queue: &QueueName, id: JobId) -> Self {
        Partition {
            queue: queue.clone(),
            tag: id.tag(),
        }
    }

    /// Its name in the queue registry and as an event stream: the queue's name for the base
    /// partition, `{queue}#{xx}` for another.
    pub(super) fn name(&self) -> String {
        if self.tag == self.queue.tag() {
            self.queue.as_str().to_owned()
        } else {
            format!("{}#{:02x}", self.queue, self.tag)
        }
    }

    /// Reads a [`name`](Self::name); `None` for anything else.
    pub(super) fn parse(name: &str) -> Option<Self> {
        match name.split_once('#') {
            None => QueueName::new(name).ok().map(|q| Partition::base(&q)),
            Some((queue, tag)) if tag.len() == 2 && tag.bytes().all(|b| b.is_ascii_hexdigit()) => {
                let queue = QueueName::new(queue).ok()?;
                let tag = u8::from_str_radix(tag, 16).ok()?;
                Some(Partition { queue, tag })
            }
            Some(_) => None,
        }
    }
}

/// The tags of the `n` partitions of `queue` (`n` at least 1, at most [`MAX_PARTITIONS`]): the
/// queue's own tag first, then for each further partition the unused tag whose Redis Cluster
/// slot is nearest to an even share of the slot space after the first one's. A cluster gives
/// each master a contiguous range of slots, so `n` partitions land on the masters in nearly equal
/// numbers, whatever the queue's name.
pub(super) fn partition_tags(queue: &QueueName, n: u16) -> Vec<u8> {
    const SLOTS: u32 = 16_384;
    let n = u32::from(n.clamp(1, MAX_PARTITIONS));
    let first = queue.tag();
    let start = tag_slot(first);
    let mut tags = vec![first];
    for p in 1..n {
        let target = (start + p * SLOTS / n) % SLOTS;
        let distance = |tag: u8| {
            let d = tag_slot(tag).abs_diff(target);
            d.min(SLOTS - d)
        };
        let nearest = (0..=u8::MAX)
            .filter(|tag| !tags.contains(tag))
            .min_by_key(|&tag| (distance(tag), tag))
            .unwrap_or(first);
        tags.push(nearest);
    }
    tags
}

/// The Redis Cluster slot of the hash tag `{xx}` that `tag` names: CRC16 (XMODEM) of its two hex
/// digits, modulo 16,384, as Redis computes it. (The `redis` crate computes slots too, but does
/// not expose the number.)
pub(super) fn tag_slot(tag: u8) -> u32 {
    let mut crc: u16 = 0;
    for &byte in format!("{tag:02x}").as_bytes() {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    u32::from(crc) % 16_384
}

/// Key names under one prefix.
#[derive(Debug)]
pub(super) struct Keys {
    /// The namespace, without the trailing colon.
    pub(super) prefix: String,
    /// `{prefix}:queues`: every queue partition that has held a job, by
    /// [`Partition::name`] (SET).
    pub(super) queues: String,
    /// `{prefix}:{w}:workers`: the worker registry, each live worker's info as JSON by worker id
    /// (HASH). The registry's three keys share the tag `{w}`.
    pub(super) workers: String,
    /// `{prefix}:{w}:workers:deadlines`: worker ids by when their entry dies (ZSET).
    pub(super) worker_deadlines: String,
    /// `{prefix}:{w}:workers:seen`: when each worker last beat, in ms (HASH).
    pub(super) worker_seen: String,
}

/// The keys of one queue, and of the jobs of its tag.
#[derive(Debug, Clone)]
pub(super) struct QueueKeys {
    /// `{prefix}:{xx}:job:`: prefix of job hashes.
    pub(super) job_prefix: String,
    /// `{prefix}:{xx}:result:`: prefix of result strings.
    pub(super) result_prefix: String,
    /// `{prefix}:{xx}:seq`: the submission counter of the tag (STRING).
    pub(super) seq: String,
    /// `{prefix}:{xx}:token`: the fencing token counter of the tag (STRING).
    pub(super) token: String,
    /// `{prefix}:{xx}:q:{queue}:`: prefix of the queue's keys, from which the scripts name the
    /// keys of each priority level (`ready:{p}`, `returned:{p}`).
    pub(super) queue_prefix: String,
    /// `{prefix}:{xx}:q:{queue}:ready`: jobs of priority 0 never leased nor delayed, in
    /// submission order (LIST); `ready:{p}` holds those of priority `p`.
    pub(super) ready: String,
    /// `...:returned`: other leasable jobs of priority 0 (back from a lease, or due after a
    /// delay), by submission number (ZSET); `returned:{p}` holds those of priority `p`.
    pub(super) returned: String,
    /// `...:levels`: the priority levels other than 0 that may hold leasable jobs, scored by
    /// themselves (ZSET).
    pub(super) levels: String,
    /// `...:delayed`: jobs waiting for their time (a delayed submit, a retry's backoff), by that
    /// time (ZSET).
    pub(super) delayed: String,
    /// `...:scheduled`: the same jobs by submission number, for listings (ZSET).
    pub(super) scheduled: String,
    /// `...:leased`: jobs `in progress`, by lease deadline (ZSET).
    pub(super) leased: String,
    /// `...:wake`: wake-up tokens for idle workers (LIST).
    pub(super) wake: String,
    /// `...:complete`: the `complete` jobs, by submission number (ZSET).
    pub(super) complete: String,
    /// `...:failed`: the `failed` jobs, by submission number (ZSET).
    pub(super) failed: String,
    /// `...:cancelled`: the `cancelled` jobs, by submission number (ZSET).
    pub(super) cancelled: String,
    /// `...:expiry`: finished jobs, by the time their retention ends (ZSET).
    pub(super) expiry: String,
    /// `...:counters`: `deleted` (ids left in `ready` by jobs deleted or cancelled before a
    /// lease popped them) and `result_bytes` (the bytes of the queue's results) (HASH).
    pub(super) counters: String,
    /// `...:unique:`: prefix of unique keys, each naming the job that holds it (STRING, with a
    /// TTL).
    pub(super) unique_prefix: String,
    /// `...:events`: the queue's job events, one entry per script call, capped (STREAM).
    pub(super) events: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_owned(),
            queues: format!("{prefix}:queues"),
            workers: format!("{prefix}:{{w}}:workers"),
            worker_deadlines: format!("{prefix}:{{w}}:workers:deadlines"),
            worker_seen: format!("{prefix}:{{w}}:workers:seen"),
        }
    }

    /// The keys of one partition of a queue.
    pub(super) fn partition(&self, partition: &Partition) -> QueueKeys {
        let queue = &partition.queue;
        let tagged = self.tagged(partition.tag);
        let key = |rest: &str| format!("{tagged}:q:{queue}:{rest}");
        QueueKeys {
            job_prefix: format!("{tagged}:job:"),
            result_prefix: format!("{tagged}:result:"),
            seq: format!("{tagged}:seq"),
            token: format!("{tagged}:token"),
            queue_prefix: key(""),
            ready: key("ready"),
            returned: key("returned"),
            levels: key("levels"),
            delayed: key("delayed"),
            scheduled: key("scheduled"),
            leased: key("leased"),
            wake: key("wake"),
            complete: key("complete"),
            failed: key("failed"),
            cancelled: key("cancelled"),
            expiry: key("expiry"),
            counters: key("counters"),
            unique_prefix: key("unique:"),
            events: key("events"),
        }
    }

    /// `{prefix}:{xx}`.
    fn tagged(&self, tag: u8) -> String {
        format!("{}:{{{tag:02x}}}", self.prefix)
    }

    /// `{prefix}:{xx}:job:{id}` (HASH), `xx` being the id's tag.
    pub(super) fn job(&self, id: JobId) -> String {
        format!("{}:job:{id}", self.tagged(id.tag()))
    }

    /// `{prefix}:{xx}:result:{id}` (STRING).
    pub(super) fn result(&self, id: JobId) -> String {
        format!("{}:result:{id}", self.tagged(id.tag()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_computed_as_redis_does() {
        // `CLUSTER KEYSLOT {2d}` and `CLUSTER KEYSLOT {00}` on a real server.
        assert_eq!(tag_slot(0x2d), 4_053);
        assert_eq!(tag_slot(0x00), 13_254);
    }

    #[test]
    fn partitions_spread_evenly_over_the_slot_space() {
        let queue = QueueName::default_queue();
        assert_eq!(partition_tags(&queue, 1), vec![queue.tag()]);
        for n in [2u16, 3, 6, 9, 12, 64] {
            let tags = partition_tags(&queue, n);
            assert_eq!(tags.len(), usize::from(n));
            assert_eq!(tags[0], queue.tag(), "the base partition comes first");
            let distinct: std::collections::HashSet<u8> = tags.iter().copied().collect();
            assert_eq!(distinct.len(), tags.len(), "{tags:?}");
            if n % 3 == 0 {
                // Three masters as `redis-cli --cluster create` assigns them.
                let mut per_master = [0u16; 3];
                for &tag in &tags {
                    let slot = tag_slot(tag);
                    per_master[if slot <= 5460 {
                        0
                    } else if slot <= 10922 {
                        1
                    } else {
                        2
                    }] += 1;
                }
                assert!(
                    per_master.iter().all(|&c| c.abs_diff(n / 3) <= 1),
                    "{n} partitions: {per_master:?}"
                );
            }
        }
        // The same tags every time: every process must agree.
        assert_eq!(partition_tags(&queue, 6), partition_tags(&queue, 6));
    }

    #[test]
    fn partition_names_round_trip() {
        let queue = QueueName::new("thumbs").unwrap();
        let base = Partition::base(&queue);
        assert_eq!(base.name(), "thumbs");
        assert_eq!(Partition::parse("thumbs"), Some(base));
        let other = Partition {
            queue: queue.clone(),
            tag: 0x0a,
        };
        assert_eq!(other.name(), "thumbs#0a");
        assert_eq!(Partition::parse("thumbs#0a"), Some(other));
        for bad in [
            "",
            "a b",
            "thumbs#",
            "thumbs#0",
            "thumbs#0g",
            "thumbs#000",
            "#0a",
        ] {
            assert_eq!(Partition::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn keys_are_readable_namespaced_and_share_the_queue_tag() {
        let keys = Keys::new("holidapp");
        let queue = QueueName::default_queue();
        let id = JobId::new_in(&queue);
        let tag = format!("{{{:02x}}}", queue.tag());
        assert_eq!(tag, "{2d}");
        assert_eq!(keys.job(id), format!("holidapp:{{2d}}:job:{id}"));
        assert!(
            id.to_string().starts_with("2d"),
            "the id names its tag: {id}"
        );
        assert_eq!(keys.result(id), format!("holidapp:{{2d}}:result:{id}"));
        let q = keys.partition(&Partition::base(&queue));
        assert_eq!(q.ready, "holidapp:{2d}:q:default:ready");
        assert_eq!(q.expiry, "holidapp:{2d}:q:default:expiry");
        assert_eq!(q.unique_prefix, "holidapp:{2d}:q:default:unique:");
        assert_eq!(q.job_prefix, "holidapp:{2d}:job:");
        assert_eq!(keys.queues, "holidapp:queues");
        assert_eq!(keys.workers, "holidapp:{w}:workers");
        assert_eq!(keys.worker_deadlines, "holidapp:{w}:workers:deadlines");
        assert_eq!(keys.worker_seen, "holidapp:{w}:workers:seen");
        // Another partition of the queue: the same names under its own tag.
        let other = keys.partition(&Partition {
            queue: queue.clone(),
            tag: 0x07,
        });
        assert_eq!(other.ready, "holidapp:{07}:q:default:ready");
        for key in [
            &q.ready,
            &q.returned,
            &q.leased,
            &q.seq,
            &q.token,
            &q.counters,
            &keys.job(id),
        ] {
            assert!(key.contains("{2d}"), "{key}");
        }
    }
}
