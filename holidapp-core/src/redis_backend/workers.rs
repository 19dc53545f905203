//! The worker registry on Redis: three keys under the tag `{w}`, changed by `worker_beat.lua`
//! and `worker_leave.lua`, read by `workers.lua`.

use std::time::Duration;

use async_trait::async_trait;
use redis::Value;

use super::RedisBackend;
use super::codec::{self, string};
use super::scripts::SCRIPTS;
use crate::error::{Error, Result};
use crate::workers::{MAX_WORKERS, WorkerInfo, WorkerRegistry};

impl RedisBackend {
    fn registry_script<'s>(&self, script: &'s redis::Script) -> redis::ScriptInvocation<'s> {
        let mut invocation = script.prepare_invoke();
        invocation
            .key(&self.keys.workers)
            .key(&self.keys.worker_deadlines)
            .key(&self.keys.worker_seen);
        invocation
    }
}

#[async_trait]
impl WorkerRegistry for RedisBackend {
    async fn beat(&self, worker: &WorkerInfo, ttl: Duration) -> Result<()> {
        worker.validate()?;
        let info = serde_json::to_string(worker)
            .map_err(|e| Error::Internal(format!("cannot serialize a worker's info: {e}")))?;
        let mut invocation = self.registry_script(&SCRIPTS.worker_beat);
        invocation
            .arg(self.time.arg())
            .arg(&worker.id)
            .arg(info)
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
            .arg(MAX_WORKERS);
        let stored: i64 = self.conn.invoke(&invocation).await?;
        if stored == 1 {
            Ok(())
        } else {
            Err(Error::Conflict(format!(
                "the worker registry holds {MAX_WORKERS} live workers already"
            )))
        }
    }

    async fn leave(&self, id: &str) -> Result<()> {
        let mut invocation = self.registry_script(&SCRIPTS.worker_leave);
        invocation.arg(id);
        let _: i64 = self.conn.invoke(&invocation).await?;
        Ok(())
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let mut invocation = self.registry_script(&SCRIPTS.workers);
        invocation.arg(self.time.arg()).arg(MAX_WORKERS);
        let flat: Vec<Value> = self.conn.invoke(&invocation).await?;
        let mut live = Vec::with_capacity(flat.len() / 2);
        let mut values = flat.into_iter();
        while let (Some(info), Some(seen)) = (values.next(), values.next()) {
            let mut worker: WorkerInfo = serde_json::from_str(&string(info)?).map_err(|e| {
                Error::Internal(format!("Redis holds a worker entry that is not one: {e}"))
            })?;
            let seen: i64 = string(seen)?
                .parse()
                .map_err(|e| Error::Internal(format!("Redis holds a bad worker beat time: {e}")))?;
            worker.last_seen = codec::from_millis(seen)?;
            live.push(worker);
        }
        Ok(live)
    }
}
