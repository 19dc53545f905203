//! [`DataStore`] and [`ImageStore`] on Redis, built on the engine's public
//! [`RedisConn`].
//!
//! A data set is three keys: the records' JSON in a LIST (load order, so a page is one `LRANGE`),
//! their ids in a LIST, and a HASH from id to position (so one record is one lookup). `replace`
//! writes all three under fresh staging names in one pipelined bulk write, then a script renames
//! them over the live ones and moves the version on: readers see the old set or the new one.
//! Every data key shares the hash tag `{data}`, so each script touches one Redis Cluster slot.
//!
//! The image is one STRING, in the same database or, with `REDIS_IMAGE_DB`, in another logical
//! database of the same server (the course's second Redis "tab"):
//! [`RedisImageStore::new`] takes whichever connection it is given.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::Script;

use super::dataset::{DataSet, Record};
use super::store::{DataStore, ImageStore};
use crate::error::{Error, Result};
use crate::redis_backend::RedisConn;

/// The data set's scripts (the `.lua` files beside this module), hashed on first use.
struct Scripts {
    swap: Script,
    clear: Script,
    record: Script,
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    swap: Script::new(include_str!("lua/data_swap.lua")),
    clear: Script::new(include_str!("lua/data_clear.lua")),
    record: Script::new(include_str!("lua/data_record.lua")),
});

/// The names of the data set's keys under one prefix.
#[derive(Debug)]
struct DataKeys {
    /// `{prefix}:{data}:records` (LIST).
    records: String,
    /// `{prefix}:{data}:ids` (LIST).
    ids: String,
    /// `{prefix}:{data}:index` (HASH).
    index: String,
    /// `{prefix}:{data}:count` (STRING).
    count: String,
    /// `{prefix}:{data}:version` (STRING).
    version: String,
    /// `{prefix}:{data}`, for the staging keys.
    tagged: String,
}

impl DataKeys {
    fn new(prefix: &str) -> Self {
        let tagged = format!("{prefix}:{{data}}");
        let key = |rest: &str| format!("{tagged}:{rest}");
        DataKeys {
            records: key("records"),
            ids: key("ids"),
            index: key("index"),
            count: key("count"),
            version: key("version"),
            tagged,
        }
    }

    /// The staging copies a data set is written to before the swap:
    /// `{prefix}:{data}:staging:{nonce}:{records,ids,index}`.
    fn staging(&self, nonce: &str) -> [String; 3] {
        ["records", "ids", "index"].map(|part| format!("{}:staging:{nonce}:{part}", self.tagged))
    }
}

/// The loaded data set on Redis.
#[derive(Clone, Debug)]
pub struct RedisDataStore {
    conn: RedisConn,
    keys: Arc<DataKeys>,
}

impl RedisDataStore {
    /// The data set under `prefix` (`HOLIDAPP_PREFIX`), on `conn` (usually
    /// [`RedisBackend::conn`](crate::redis_backend::RedisBackend::conn)).
    pub fn new(conn: RedisConn, prefix: &str) -> Self {
        RedisDataStore {
            conn,
            keys: Arc::new(DataKeys::new(prefix)),
        }
    }
}

/// The one rendered image on Redis: `{prefix}:image`.
#[derive(Clone, Debug)]
pub struct RedisImageStore {
    conn: RedisConn,
    key: String,
}

impl RedisImageStore {
    /// The image under `prefix`, on `conn`: the backend's own connection, or one opened on
    /// another logical database with
    /// [`RedisConfig::open_database`](crate::redis_backend::RedisConfig::open_database).
    pub fn new(conn: RedisConn, prefix: &str) -> Self {
        RedisImageStore {
            conn,
            key: format!("{prefix}:image"),
        }
    }
}

/// Records per `RPUSH`/`HSET` command of a bulk load.
const LOAD_CHUNK: usize = 1000;

/// How long an abandoned staging copy (a load that died half way) is kept.
const STAGING_TTL: Duration = Duration::from_secs(3600);

/// The pipelined writes that store `data` under the staging keys `[records, ids, index]`:
/// `RPUSH`es of the records' JSON and ids and `HSET`s of their positions, a thousand records per
/// command. Each key gets its expiry right after the command that creates it, before the rest of
/// the data, so a load that dies half way (a dropped connection, a killed process) leaves
/// nothing that outlives the expiry. Refuses duplicate ids.
/// Records are encoded on as many threads as there are cores.
fn staging_writes(data: &DataSet, staging: &[String; 3]) -> Result<redis::Pipeline> {
    let mut positions: HashMap<&str, usize> = HashMap::with_capacity(data.len());
    for (i, record) in data.records.iter().enumerate() {
        if positions.insert(record.id.as_str(), i).is_some() {
            return Err(Error::InvalidData(format!(
                "duplicate record id '{}'",
                record.id
            )));
        }
    }
    let chunks: Vec<&[Record]> = data.records.chunks(LOAD_CHUNK).collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let per_thread = chunks.len().div_ceil(threads).max(1);
    let encoded: Vec<Vec<String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = chunks
            .chunks(per_thread)
            .map(|group| scope.spawn(move || group.iter().map(|c| encode(c)).collect::<Vec<_>>()))
            .collect();
        let mut encoded = Vec::with_capacity(chunks.len());
        for worker in workers {
            let group = worker
                .join()
                .map_err(|_| Error::Internal("a data set encoding thread panicked".into()))?;
            for chunk in group {
                encoded.push(chunk?);
            }
        }
        Ok::<_, Error>(encoded)
    })?;
    let [records_key, ids_key, index_key] = staging;
    let ttl = i64::try_from(STAGING_TTL.as_millis()).unwrap_or(i64::MAX);
    let mut pipe = redis::pipe();
    for (chunk_no, (chunk, json)) in chunks.iter().zip(encoded).enumerate() {
        let first = chunk_no * LOAD_CHUNK;
        let ids: Vec<&str> = chunk.iter().map(|r| r.id.as_str()).collect();
        let index: Vec<(&str, usize)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, first + i))
            .collect();
        pipe.rpush(records_key, json)
            .ignore()
            .rpush(ids_key, ids)
            .ignore()
            .hset_multiple(index_key, &index)
            .ignore();
        if chunk_no == 0 {
            for key in staging {
                pipe.pexpire(key, ttl).ignore();
            }
        }
    }
    Ok(pipe)
}

/// The JSON of each record.
fn encode(records: &[Record]) -> Result<Vec<String>> {
    records
        .iter()
        .map(|record| {
            serde_json::to_string(record).map_err(|e| {
                Error::InvalidData(format!("record '{}' cannot be stored: {e}", record.id))
            })
        })
        .collect()
}

fn parse_record(json: &str) -> Result<Record> {
    serde_json::from_str(json)
        .map_err(|e| Error::Internal(format!("stored data record is not valid: {e}")))
}

#[async_trait]
impl DataStore for RedisDataStore {
    async fn replace(&self, data: DataSet) -> Result<u64> {
        let k = &self.keys;
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let [records_key, ids_key, index_key] = k.staging(&nonce);
        let staging = [records_key.clone(), ids_key.clone(), index_key.clone()];
        let count = data.len();
        // Checking and encoding 45,000 records is CPU work: keep it off the async threads.
        let pipe = tokio::task::spawn_blocking(move || staging_writes(&data, &staging))
            .await
            .map_err(|e| Error::Internal(format!("encoding the data set failed: {e}")))??;
        let () = self.conn.query_bulk(&pipe).await?;
        let _version: u64 = self
            .conn
            .invoke(
                SCRIPTS
                    .swap
                    .key(&k.records)
                    .key(&k.ids)
                    .key(&k.index)
                    .key(&k.count)
                    .key(&k.version)
                    .key(&records_key)
                    .key(&ids_key)
                    .key(&index_key)
                    .arg(count),
            )
            .await?;
        Ok(count as u64)
    }

    async fn version(&self) -> Result<u64> {
        let version: Option<u64> = self
            .conn
            .query(redis::cmd("GET").arg(&self.keys.version))
            .await?;
        Ok(version.unwrap_or(0))
    }

    async fn len(&self) -> Result<u64> {
        let count: Option<u64> = self
            .conn
            .query(redis::cmd("GET").arg(&self.keys.count))
            .await?;
        Ok(count.unwrap_or(0))
    }

    async fn page(&self, start: u64, limit: u64) -> Result<Vec<Record>> {
        let Ok(start) = i64::try_from(start) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let stop = start.saturating_add(i64::try_from(limit - 1).unwrap_or(i64::MAX));
        let json: Vec<String> = self
            .conn
            .query(
                redis::cmd("LRANGE")
                    .arg(&self.keys.records)
                    .arg(start)
                    .arg(stop),
            )
            .await?;
        json.iter().map(|j| parse_record(j)).collect()
    }

    async fn record(&self, id: &str) -> Result<Option<Record>> {
        let k = &self.keys;
        let json: Option<String> = self
            .conn
            .invoke(SCRIPTS.record.key(&k.index).key(&k.records).arg(id))
            .await?;
        json.as_deref().map(parse_record).transpose()
    }

    async fn ids(&self) -> Result<Vec<String>> {
        let mut conn = self.conn.link();
        self.conn
            .run_bulk(
                redis::cmd("LRANGE")
                    .arg(&self.keys.ids)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn),
            )
            .await
    }

    async fn load(&self) -> Result<(u64, Arc<DataSet>)> {
        let k = &self.keys;
        let mut pipe = redis::pipe();
        pipe.atomic().get(&k.version).lrange(&k.records, 0, -1);
        let (version, json): (Option<u64>, Vec<String>) = self.conn.query_bulk(&pipe).await?;
        let records = json
            .iter()
            .map(|j| parse_record(j))
            .collect::<Result<Vec<_>>>()?;
        Ok((version.unwrap_or(0), Arc::new(DataSet::new(records))))
    }

    async fn clear(&self) -> Result<bool> {
        let k = &self.keys;
        let cleared: i64 = self
            .conn
            .invoke(
                SCRIPTS
                    .clear
                    .key(&k.records)
                    .key(&k.ids)
                    .key(&k.index)
                    .key(&k.count)
                    .key(&k.version),
            )
            .await?;
        Ok(cleared == 1)
    }
}

#[async_trait]
impl ImageStore for RedisImageStore {
    async fn put_image(&self, png: Bytes) -> Result<()> {
        let mut conn = self.conn.link();
        self.conn
            .run_bulk(
                redis::cmd("SET")
                    .arg(&self.key)
                    .arg(png.as_ref())
                    .exec_async(&mut conn),
            )
            .await
    }

    async fn get_image(&self) -> Result<Option<Bytes>> {
        let mut conn = self.conn.link();
        let png: Option<Vec<u8>> = self
            .conn
            .run_bulk(redis::cmd("GET").arg(&self.key).query_async(&mut conn))
            .await?;
        Ok(png.map(Bytes::from))
    }

    async fn delete_image(&self) -> Result<bool> {
        let removed: u64 = self.conn.query(redis::cmd("UNLINK").arg(&self.key)).await?;
        Ok(removed > 0)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;

    fn names(pipe: &redis::Pipeline) -> Vec<String> {
        pipe.cmd_iter()
            .map(|cmd| match cmd.args_iter().next() {
                Some(redis::Arg::Simple(name)) => String::from_utf8_lossy(name).into_owned(),
                _ => String::new(),
            })
            .collect()
    }

    /// Each staging key gets its expiry right after the command that creates it, before the
    /// rest of the data set: a load that dies half way leaves nothing behind for good.
    #[test]
    fn staging_keys_expire_from_their_first_write() {
        let records = (0..2500)
            .map(|i| Record {
                id: i.to_string(),
                fields: Map::new(),
            })
            .collect();
        let staging = ["r".to_owned(), "i".to_owned(), "x".to_owned()];
        let pipe = staging_writes(&DataSet::new(records), &staging).unwrap();
        let commands = names(&pipe);
        assert_eq!(
            commands[..6],
            ["RPUSH", "RPUSH", "HMSET", "PEXPIRE", "PEXPIRE", "PEXPIRE"]
        );
        assert_eq!(commands.iter().filter(|c| *c == "PEXPIRE").count(), 3);
        assert_eq!(commands.len(), 3 * 3 + 3, "three chunks of three writes");
    }
}
