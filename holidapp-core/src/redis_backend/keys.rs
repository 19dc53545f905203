//! The names of every key the backend uses (documented in `docs/redis-layout.md`).
//!
//! Every key a script touches shares one hash tag, `{xx}`: two hex digits, the slot tag of the
//! job's queue ([`QueueName::tag`]), which is also the first byte of every job id of that queue.
//! So each script runs on one Redis Cluster slot, and a job's keys can be named from its id alone.

use crate::job::{JobId, QueueName};

/// Key names under one prefix.
#[derive(Debug)]
pub(super) struct Keys {
    /// The namespace, without the trailing colon.
    pub(super) prefix: String,
    /// `{prefix}:queues`: the names of every queue that has held a job (SET).
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

    /// The keys of `queue`.
    pub(super) fn queue(&self, queue: &QueueName) -> QueueKeys {
        let tagged = self.tagged(queue.tag());
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
        let q = keys.queue(&queue);
        assert_eq!(q.ready, "holidapp:{2d}:q:default:ready");
        assert_eq!(q.expiry, "holidapp:{2d}:q:default:expiry");
        assert_eq!(q.unique_prefix, "holidapp:{2d}:q:default:unique:");
        assert_eq!(q.job_prefix, "holidapp:{2d}:job:");
        assert_eq!(keys.queues, "holidapp:queues");
        assert_eq!(keys.workers, "holidapp:{w}:workers");
        assert_eq!(keys.worker_deadlines, "holidapp:{w}:workers:deadlines");
        assert_eq!(keys.worker_seen, "holidapp:{w}:workers:seen");
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
