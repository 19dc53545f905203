//! Where the plot product keeps its data: [`DataStore`] for the loaded data set, [`ImageStore`]
//! for the one rendered image, and their in-memory implementation, [`MemoryPlotStore`]. The
//! Redis implementations are in [`redis`](super::redis) (feature `redis`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;

use super::dataset::{DataSet, Record};
use crate::error::{Error, Result};

/// Where the loaded data set is kept.
///
/// # Contract
///
/// - `replace` swaps the whole data set in one step: readers see the old set or the new one,
///   never a mix, and [`version`](DataStore::version) changes with every replace and clear.
/// - Records keep the order they were loaded in; `page` reads a slice of that order without
///   reading the rest.
#[async_trait]
pub trait DataStore: Send + Sync {
    /// Replaces the data set; returns how many records it now holds.
    async fn replace(&self, data: DataSet) -> Result<u64>;

    /// A number that changes whenever the data set does; `0` when nothing was ever loaded.
    /// Workers cache the parsed data set under it.
    async fn version(&self) -> Result<u64>;

    /// How many records are loaded.
    async fn len(&self) -> Result<u64>;

    /// Whether no record is loaded.
    async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }

    /// Up to `limit` records, skipping the first `start`.
    async fn page(&self, start: u64, limit: u64) -> Result<Vec<Record>>;

    /// One record by its id. (Named `record`, not `get`, so it never clashes with
    /// [`JobStore::get`](crate::JobStore::get) on a store that implements both.)
    async fn record(&self, id: &str) -> Result<Option<Record>>;

    /// Every record id, in load order.
    async fn ids(&self) -> Result<Vec<String>>;

    /// The whole data set with its version, for rendering. Callers cache it under the version.
    async fn load(&self) -> Result<(u64, Arc<DataSet>)>;

    /// Removes the data set; `false` when none was loaded.
    async fn clear(&self) -> Result<bool>;
}

/// Where the one image rendered by `POST /image` is kept, apart from the raw data.
#[async_trait]
pub trait ImageStore: Send + Sync {
    /// Stores (or replaces) the image.
    async fn put_image(&self, png: Bytes) -> Result<()>;

    /// The stored image, if any.
    async fn get_image(&self) -> Result<Option<Bytes>>;

    /// Removes the image; `false` when there was none.
    async fn delete_image(&self) -> Result<bool>;
}

/// The data set and the image in this process's memory: the plot product's stores beside a
/// [`MemoryBackend`](crate::MemoryBackend).
///
/// One `std::sync::Mutex` guards both: every operation is a few field updates that never await
/// while holding it.
#[derive(Debug, Default)]
pub struct MemoryPlotStore {
    state: Mutex<PlotState>,
}

#[derive(Debug, Default)]
struct PlotState {
    data: Option<LoadedData>,
    /// Bumped by every replace and clear; 0 until the first load.
    data_version: u64,
    image: Option<Bytes>,
}

#[derive(Debug)]
struct LoadedData {
    set: Arc<DataSet>,
    by_id: HashMap<String, usize>,
}

impl MemoryPlotStore {
    /// Empty stores.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, PlotState> {
        // Every mutation is completed before any call that could panic, so a poisoned lock holds
        // consistent state and recovering the guard is safe.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl DataStore for MemoryPlotStore {
    async fn replace(&self, data: DataSet) -> Result<u64> {
        let mut by_id = HashMap::with_capacity(data.len());
        for (i, record) in data.records.iter().enumerate() {
            if by_id.insert(record.id.clone(), i).is_some() {
                return Err(Error::InvalidData(format!(
                    "duplicate record id '{}'",
                    record.id
                )));
            }
        }
        let count = data.len() as u64;
        let mut state = self.state();
        state.data = Some(LoadedData {
            set: Arc::new(data),
            by_id,
        });
        state.data_version += 1;
        Ok(count)
    }

    async fn version(&self) -> Result<u64> {
        Ok(self.state().data_version)
    }

    async fn len(&self) -> Result<u64> {
        Ok(self.state().data.as_ref().map_or(0, |d| d.set.len() as u64))
    }

    async fn page(&self, start: u64, limit: u64) -> Result<Vec<Record>> {
        let state = self.state();
        let Some(data) = state.data.as_ref() else {
            return Ok(Vec::new());
        };
        let start = usize::try_from(start).unwrap_or(usize::MAX);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(data
            .set
            .records
            .iter()
            .skip(start)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn record(&self, id: &str) -> Result<Option<Record>> {
        let state = self.state();
        Ok(state
            .data
            .as_ref()
            .and_then(|d| d.by_id.get(id).map(|&i| d.set.records[i].clone())))
    }

    async fn ids(&self) -> Result<Vec<String>> {
        let state = self.state();
        Ok(state
            .data
            .as_ref()
            .map(|d| d.set.records.iter().map(|r| r.id.clone()).collect())
            .unwrap_or_default())
    }

    async fn load(&self) -> Result<(u64, Arc<DataSet>)> {
        let state = self.state();
        let set = state
            .data
            .as_ref()
            .map(|d| Arc::clone(&d.set))
            .unwrap_or_default();
        Ok((state.data_version, set))
    }

    async fn clear(&self) -> Result<bool> {
        let mut state = self.state();
        let had = state.data.take().is_some();
        if had {
            state.data_version += 1;
        }
        Ok(had)
    }
}

#[async_trait]
impl ImageStore for MemoryPlotStore {
    async fn put_image(&self, png: Bytes) -> Result<()> {
        self.state().image = Some(png);
        Ok(())
    }

    async fn get_image(&self) -> Result<Option<Bytes>> {
        Ok(self.state().image.clone())
    }

    async fn delete_image(&self) -> Result<bool> {
        Ok(self.state().image.take().is_some())
    }
}
