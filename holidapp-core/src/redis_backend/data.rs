//! [`DataStore`] and [`ImageStore`] on Redis.
//!
//! A data set is three keys: the records' JSON in a LIST (load order, so a page is one `LRANGE`),
//! their ids in a LIST, and a HASH from id to position (so one record is one lookup). `replace`
//! writes all three under fresh staging names in one pipelined bulk write, then a script renames
//! them over the live ones and moves the version on: readers see the old set or the new one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::RedisBackend;
use super::scripts::SCRIPTS;
use crate::dataset::{DataSet, Record};
use crate::error::{Error, Result};
use crate::store::{DataStore, ImageStore};

/// Records per `RPUSH`/`HSET` command of a bulk load.
const LOAD_CHUNK: usize = 1000;

/// How long an abandoned staging copy (a load that died half way) is kept.
const STAGING_TTL: Duration = Duration::from_secs(3600);

/// The pipelined writes that store `data` under the staging keys `[records, ids, index]`:
/// `RPUSH`es of the records' JSON and ids and `HSET`s of their positions, a thousand records per
/// command, and an expiry on each key in case the load dies half way. Refuses duplicate ids.
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
    }
    let ttl = STAGING_TTL.as_millis() as i64;
    for key in staging {
        pipe.pexpire(key, ttl).ignore();
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
impl DataStore for RedisBackend {
    async fn replace(&self, data: DataSet) -> Result<u64> {
        let k = &self.keys;
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let [records_key, ids_key, index_key] = k.data_staging(&nonce);
        let staging = [records_key.clone(), ids_key.clone(), index_key.clone()];
        let count = data.len();
        // Checking and encoding 45,000 records is CPU work: keep it off the async threads.
        let pipe = tokio::task::spawn_blocking(move || staging_writes(&data, &staging))
            .await
            .map_err(|e| Error::Internal(format!("encoding the data set failed: {e}")))??;
        let mut conn = self.conn.clone();
        self.run_bulk(pipe.exec_async(&mut conn)).await?;
        let mut conn = self.conn.clone();
        let _version: u64 = self
            .run(
                SCRIPTS
                    .data_swap
                    .key(&k.data_records)
                    .key(&k.data_ids)
                    .key(&k.data_index)
                    .key(&k.data_count)
                    .key(&k.data_version)
                    .key(&records_key)
                    .key(&ids_key)
                    .key(&index_key)
                    .arg(count)
                    .invoke_async(&mut conn),
            )
            .await?;
        Ok(count as u64)
    }

    async fn version(&self) -> Result<u64> {
        let mut conn = self.conn.clone();
        let version: Option<u64> = self
            .run(
                redis::cmd("GET")
                    .arg(&self.keys.data_version)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(version.unwrap_or(0))
    }

    async fn len(&self) -> Result<u64> {
        let mut conn = self.conn.clone();
        let count: Option<u64> = self
            .run(
                redis::cmd("GET")
                    .arg(&self.keys.data_count)
                    .query_async(&mut conn),
            )
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
        let mut conn = self.conn.clone();
        let json: Vec<String> = self
            .run(
                redis::cmd("LRANGE")
                    .arg(&self.keys.data_records)
                    .arg(start)
                    .arg(stop)
                    .query_async(&mut conn),
            )
            .await?;
        json.iter().map(|j| parse_record(j)).collect()
    }

    async fn record(&self, id: &str) -> Result<Option<Record>> {
        let k = &self.keys;
        let mut conn = self.conn.clone();
        let json: Option<String> = self
            .run(
                SCRIPTS
                    .data_record
                    .key(&k.data_index)
                    .key(&k.data_records)
                    .arg(id)
                    .invoke_async(&mut conn),
            )
            .await?;
        json.as_deref().map(parse_record).transpose()
    }

    async fn ids(&self) -> Result<Vec<String>> {
        let mut conn = self.conn.clone();
        self.run_bulk(
            redis::cmd("LRANGE")
                .arg(&self.keys.data_ids)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn),
        )
        .await
    }

    async fn load(&self) -> Result<(u64, Arc<DataSet>)> {
        let k = &self.keys;
        let mut conn = self.conn.clone();
        let (version, json): (Option<u64>, Vec<String>) = self
            .run_bulk(
                redis::pipe()
                    .atomic()
                    .get(&k.data_version)
                    .lrange(&k.data_records, 0, -1)
                    .query_async(&mut conn),
            )
            .await?;
        let records = json
            .iter()
            .map(|j| parse_record(j))
            .collect::<Result<Vec<_>>>()?;
        Ok((version.unwrap_or(0), Arc::new(DataSet::new(records))))
    }

    async fn clear(&self) -> Result<bool> {
        let k = &self.keys;
        let mut conn = self.conn.clone();
        let cleared: i64 = self
            .run(
                SCRIPTS
                    .data_clear
                    .key(&k.data_records)
                    .key(&k.data_ids)
                    .key(&k.data_index)
                    .key(&k.data_count)
                    .key(&k.data_version)
                    .invoke_async(&mut conn),
            )
            .await?;
        Ok(cleared == 1)
    }
}

#[async_trait]
impl ImageStore for RedisBackend {
    async fn put_image(&self, png: Bytes) -> Result<()> {
        let mut conn = self.conn.clone();
        self.run_bulk(
            redis::cmd("SET")
                .arg(&self.keys.image)
                .arg(png.as_ref())
                .exec_async(&mut conn),
        )
        .await
    }

    async fn get_image(&self) -> Result<Option<Bytes>> {
        let mut conn = self.conn.clone();
        let png: Option<Vec<u8>> = self
            .run_bulk(
                redis::cmd("GET")
                    .arg(&self.keys.image)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(png.map(Bytes::from))
    }

    async fn delete_image(&self) -> Result<bool> {
        let mut conn = self.conn.clone();
        let removed: u64 = self
            .run(
                redis::cmd("DEL")
                    .arg(&self.keys.image)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(removed > 0)
    }
}
