//! The names of every key the backend uses (documented in `docs/redis-layout.md`).

use crate::job::JobId;

/// Every key name under one prefix, built once.
#[derive(Debug)]
pub(super) struct Keys {
    /// The namespace, without the trailing colon.
    pub(super) prefix: String,
    /// `{prefix}:seq`: the submission counter (STRING).
    pub(super) seq: String,
    /// `{prefix}:job:`: prefix of job hashes.
    pub(super) job_prefix: String,
    /// `{prefix}:result:`: prefix of result strings.
    pub(super) result_prefix: String,
    /// `{prefix}:queue:ready`: jobs never leased yet, in submission order (LIST).
    pub(super) ready: String,
    /// `{prefix}:queue:returned`: jobs back from a lease, by submission number (ZSET).
    pub(super) returned: String,
    /// `{prefix}:queue:delayed` (ZSET).
    pub(super) delayed: String,
    /// `{prefix}:queue:leased` (ZSET).
    pub(super) leased: String,
    /// `{prefix}:queue:token`: the fencing token counter (STRING).
    pub(super) token: String,
    /// `{prefix}:queue:wake`: wake-up tokens for idle workers (LIST).
    pub(super) wake: String,
    /// `{prefix}:index:expiry` (ZSET).
    pub(super) expiry: String,
    /// `{prefix}:index:complete`: the `complete` jobs (ZSET, scored by submission number).
    pub(super) complete: String,
    /// `{prefix}:index:failed`: the `failed` jobs (ZSET, scored by submission number).
    pub(super) failed: String,
    /// `{prefix}:data:records` (LIST).
    pub(super) data_records: String,
    /// `{prefix}:data:ids` (LIST).
    pub(super) data_ids: String,
    /// `{prefix}:data:index` (HASH).
    pub(super) data_index: String,
    /// `{prefix}:data:count` (STRING).
    pub(super) data_count: String,
    /// `{prefix}:data:version` (STRING).
    pub(super) data_version: String,
    /// `{prefix}:image` (STRING).
    pub(super) image: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        let key = |rest: &str| format!("{prefix}:{rest}");
        Keys {
            prefix: prefix.to_owned(),
            seq: key("seq"),
            job_prefix: key("job:"),
            result_prefix: key("result:"),
            ready: key("queue:ready"),
            returned: key("queue:returned"),
            delayed: key("queue:delayed"),
            leased: key("queue:leased"),
            token: key("queue:token"),
            wake: key("queue:wake"),
            expiry: key("index:expiry"),
            complete: key("index:complete"),
            failed: key("index:failed"),
            data_records: key("data:records"),
            data_ids: key("data:ids"),
            data_index: key("data:index"),
            data_count: key("data:count"),
            data_version: key("data:version"),
            image: key("image"),
        }
    }

    /// `{prefix}:job:{id}` (HASH).
    pub(super) fn job(&self, id: JobId) -> String {
        format!("{}{id}", self.job_prefix)
    }

    /// `{prefix}:result:{id}` (STRING).
    pub(super) fn result(&self, id: JobId) -> String {
        format!("{}{id}", self.result_prefix)
    }

    /// The staging copies a data set is written to before the swap:
    /// `{prefix}:data:staging:{nonce}:{records,ids,index}`.
    pub(super) fn data_staging(&self, nonce: &str) -> [String; 3] {
        ["records", "ids", "index"]
            .map(|part| format!("{}:data:staging:{nonce}:{part}", self.prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_readable_and_namespaced() {
        let keys = Keys::new("holidapp");
        let id: JobId = "7f1c2a9e-3b4d-4e5f-8a6b-1c2d3e4f5a6b".parse().unwrap();
        assert_eq!(
            keys.job(id),
            "holidapp:job:7f1c2a9e-3b4d-4e5f-8a6b-1c2d3e4f5a6b"
        );
        assert_eq!(
            keys.result(id),
            "holidapp:result:7f1c2a9e-3b4d-4e5f-8a6b-1c2d3e4f5a6b"
        );
        assert_eq!(keys.failed, "holidapp:index:failed");
        assert_eq!(keys.ready, "holidapp:queue:ready");
        assert_eq!(keys.returned, "holidapp:queue:returned");
        assert_eq!(keys.data_staging("n")[2], "holidapp:data:staging:n:index");
    }
}
