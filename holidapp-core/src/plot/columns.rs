//! One field's values across a whole data set, extracted once and kept while the data set lives.
//!
//! Looking a field up in 45,000 records costs far more than drawing the plot: each record's
//! fields are a map of their own, scattered in memory. A worker renders many jobs from the same
//! shared data set, so [`ColumnCache`] keeps each column it extracted, keyed by the data set's
//! allocation, and drops them all when a different data set comes.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use serde_json::Value;

use super::dataset::{DataSet, Record};

use super::aggregate::year_of;

/// The largest coordinate magnitude a scatter plot takes; records beyond it are left out, so
/// that axis spans stay finite.
pub(super) const COORDINATE_LIMIT: f64 = 1e300;

/// The most columns kept for one data set; past it the cache starts again, so job parameters
/// naming ever new fields cannot grow it without bound.
const MAX_COLUMNS: usize = 32;

/// A record's value for `field`.
///
/// A scan rather than `Map::get`: the map's search compares the name with key after key, each
/// comparison reading that key's bytes from wherever they were allocated, while the scan
/// rejects nearly every key on its length, which sits in the map's own node. Over 45,000
/// records of HGNC's ~40 fields the scan measured 3 to 5 times faster.
fn field<'r>(record: &'r Record, name: &str) -> Option<&'r Value> {
    record
        .fields
        .iter()
        .find_map(|(key, value)| (key == name).then_some(value))
}

/// The fewest records worth giving a thread of their own when extracting a column.
const MIN_RECORDS_PER_THREAD: usize = 8_192;

/// `f` of every record, in record order, spread over the machine's cores for large data sets.
///
/// Extraction is bound by memory latency (one scattered map per record), so running chunks on
/// several cores at once divides its time almost by their number.
fn map_records<T: Send>(data: &DataSet, f: impl Fn(&Record) -> T + Sync) -> Vec<T> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores
        .min(data.records.len() / MIN_RECORDS_PER_THREAD)
        .max(1);
    if threads == 1 {
        return data.records.iter().map(f).collect();
    }
    let chunk = data.records.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let parts: Vec<_> = data
            .records
            .chunks(chunk)
            .map(|records| scope.spawn(move || records.iter().map(f).collect::<Vec<T>>()))
            .collect();
        let mut all = Vec::with_capacity(data.records.len());
        for part in parts {
            // A panic in `f` is re-raised here, as it would be without threads.
            match part.join() {
                Ok(values) => all.extend(values),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all
    })
}

/// A value as text, as [`Record::text`] reads it: strings as they are, numbers in decimal.
fn text_of(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}

/// A value as a number, as [`Record::number`] reads it: numbers, or strings that hold one.
fn number_of(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|v| v.is_finite()),
        _ => None,
    }
}

/// The year of a field in every record.
#[derive(Debug)]
pub(super) struct YearColumn {
    years: Vec<Option<i32>>,
}

impl YearColumn {
    fn extract(data: &DataSet, name: &str) -> Self {
        let years = map_records(data, |r| field(r, name).and_then(year_of));
        YearColumn { years }
    }

    /// Whether any record has a year in this field.
    pub(super) fn any(&self) -> bool {
        self.years.iter().any(Option::is_some)
    }

    /// The year of record `index`, if it has one.
    pub(super) fn get(&self, index: usize) -> Option<i32> {
        self.years.get(index).copied().flatten()
    }

    /// Every record's year, in record order.
    pub(super) fn iter(&self) -> impl Iterator<Item = Option<i32>> + '_ {
        self.years.iter().copied()
    }
}

/// The text of a field in every record, as indexes into the distinct values.
#[derive(Debug)]
pub(super) struct TextColumn {
    /// Per record, the index of its value in `names`; `None` when absent, blank or not text.
    pub(super) ids: Vec<Option<u32>>,
    /// The distinct values, in order of first appearance.
    pub(super) names: Vec<String>,
}

impl TextColumn {
    fn extract(data: &DataSet, name: &str) -> Self {
        let mut index: HashMap<String, u32> = HashMap::new();
        let mut names = Vec::new();
        let ids = data
            .records
            .iter()
            .map(|r| {
                let text = field(r, name)
                    .and_then(text_of)
                    .filter(|t| !t.trim().is_empty())?;
                if let Some(id) = index.get(text.as_ref()) {
                    return Some(*id);
                }
                // At most one name per record, so the count fits u32 for any data set that fits
                // in memory; refuse to index past it rather than wrap.
                let id = u32::try_from(names.len()).ok()?;
                index.insert(text.to_string(), id);
                names.push(text.into_owned());
                Some(id)
            })
            .collect();
        TextColumn { ids, names }
    }
}

/// The number in a field of every record, `None` when absent, not a number, or beyond
/// [`COORDINATE_LIMIT`].
#[derive(Debug)]
pub(super) struct NumberColumn {
    pub(super) values: Vec<Option<f64>>,
}

impl NumberColumn {
    fn extract(data: &DataSet, name: &str) -> Self {
        let values = map_records(data, |r| {
            field(r, name)
                .and_then(number_of)
                .filter(|v| v.abs() <= COORDINATE_LIMIT)
        });
        NumberColumn { values }
    }
}

/// Columns extracted from the last data set rendered. Shared by the clones of a renderer.
#[derive(Debug, Default)]
pub(super) struct ColumnCache {
    state: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    /// The data set the columns belong to. A `Weak` both identifies the allocation and notices
    /// when it is gone, so a new data set at a reused address is never mistaken for it; while it
    /// exists nobody can mutate the data set through `Arc::get_mut`.
    data: Weak<DataSet>,
    columns: ColumnMaps,
}

/// Columns by field name, one map per kind.
#[derive(Debug, Default)]
struct ColumnMaps {
    years: HashMap<String, Arc<YearColumn>>,
    texts: HashMap<String, Arc<TextColumn>>,
    numbers: HashMap<String, Arc<NumberColumn>>,
}

impl ColumnMaps {
    fn len(&self) -> usize {
        self.years.len() + self.texts.len() + self.numbers.len()
    }
}

/// A kind of column: how it is extracted and which map of [`ColumnMaps`] holds it.
trait Column: Sized {
    fn extract(data: &DataSet, name: &str) -> Self;
    fn map(maps: &mut ColumnMaps) -> &mut HashMap<String, Arc<Self>>;
}

impl Column for YearColumn {
    fn extract(data: &DataSet, name: &str) -> Self {
        YearColumn::extract(data, name)
    }
    fn map(maps: &mut ColumnMaps) -> &mut HashMap<String, Arc<Self>> {
        &mut maps.years
    }
}

impl Column for TextColumn {
    fn extract(data: &DataSet, name: &str) -> Self {
        TextColumn::extract(data, name)
    }
    fn map(maps: &mut ColumnMaps) -> &mut HashMap<String, Arc<Self>> {
        &mut maps.texts
    }
}

impl Column for NumberColumn {
    fn extract(data: &DataSet, name: &str) -> Self {
        NumberColumn::extract(data, name)
    }
    fn map(maps: &mut ColumnMaps) -> &mut HashMap<String, Arc<Self>> {
        &mut maps.numbers
    }
}

/// Where one render reads its columns: each is extracted at most once per render, and, with a
/// cache, at most once while the data set stays the same.
pub(super) struct Columns<'a> {
    data: &'a DataSet,
    cache: Option<(&'a ColumnCache, &'a Arc<DataSet>)>,
    this_render: RefCell<ColumnMaps>,
}

impl<'a> Columns<'a> {
    /// Columns for one render, kept by nothing after it.
    pub(super) fn uncached(data: &'a DataSet) -> Self {
        Columns {
            data,
            cache: None,
            this_render: RefCell::default(),
        }
    }

    /// Columns kept in `cache` for as long as `data` is the data set rendered.
    pub(super) fn cached(data: &'a Arc<DataSet>, cache: &'a ColumnCache) -> Self {
        Columns {
            data,
            cache: Some((cache, data)),
            this_render: RefCell::default(),
        }
    }

    /// The data set.
    pub(super) fn data(&self) -> &'a DataSet {
        self.data
    }

    pub(super) fn years(&self, name: &str) -> Arc<YearColumn> {
        self.get(name)
    }

    pub(super) fn texts(&self, name: &str) -> Arc<TextColumn> {
        self.get(name)
    }

    pub(super) fn numbers(&self, name: &str) -> Arc<NumberColumn> {
        self.get(name)
    }

    fn get<C: Column>(&self, name: &str) -> Arc<C> {
        if let Some(column) = C::map(&mut self.this_render.borrow_mut()).get(name) {
            return Arc::clone(column);
        }
        let column = match self.cache {
            Some((cache, data)) => cache.get(data, name),
            None => Arc::new(C::extract(self.data, name)),
        };
        C::map(&mut self.this_render.borrow_mut()).insert(name.to_owned(), Arc::clone(&column));
        column
    }
}

impl ColumnCache {
    fn get<C: Column>(&self, data: &Arc<DataSet>, name: &str) -> Arc<C> {
        // A poisoned lock only means a render panicked while holding it; the maps are still
        // consistent (each change is one call), so carry on with them.
        let lock = || self.state.lock().unwrap_or_else(PoisonError::into_inner);
        {
            let mut state = lock();
            if !std::ptr::eq(state.data.as_ptr(), Arc::as_ptr(data))
                || state.data.upgrade().is_none()
            {
                *state = CacheState {
                    data: Arc::downgrade(data),
                    columns: ColumnMaps::default(),
                };
            }
            if let Some(column) = C::map(&mut state.columns).get(name) {
                return Arc::clone(column);
            }
        }
        // Extracted without the lock, so other renders are not held up; two renders that miss
        // at once both extract, and the second insert wins. Nothing is lost either way.
        let column = Arc::new(C::extract(data, name));
        let mut state = lock();
        if std::ptr::eq(state.data.as_ptr(), Arc::as_ptr(data)) {
            if state.columns.len() >= MAX_COLUMNS {
                state.columns = ColumnMaps::default();
            }
            C::map(&mut state.columns).insert(name.to_owned(), Arc::clone(&column));
        }
        column
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::dataset::Record;
    use serde_json::json;

    fn data(years: &[i64]) -> Arc<DataSet> {
        Arc::new(DataSet::new(
            years
                .iter()
                .enumerate()
                .map(|(i, y)| Record {
                    id: i.to_string(),
                    fields: json!({"year": y, "c": format!("c{}", y % 2)})
                        .as_object()
                        .unwrap()
                        .clone(),
                })
                .collect(),
        ))
    }

    #[test]
    fn a_column_is_extracted_once_per_data_set() {
        let cache = ColumnCache::default();
        let first = data(&[2000, 2001]);
        let a = Columns::cached(&first, &cache).years("year");
        let b = Columns::cached(&first, &cache).years("year");
        assert!(
            Arc::ptr_eq(&a, &b),
            "the second call is served from the cache"
        );
        assert_eq!(a.iter().collect::<Vec<_>>(), [Some(2000), Some(2001)]);

        let second = data(&[1990]);
        let c = Columns::cached(&second, &cache).years("year");
        assert_eq!(c.iter().collect::<Vec<_>>(), [Some(1990)]);
        let again = Columns::cached(&first, &cache).years("year");
        assert!(!Arc::ptr_eq(&a, &again), "a new data set emptied the cache");
        assert_eq!(again.iter().collect::<Vec<_>>(), [Some(2000), Some(2001)]);
    }

    #[test]
    fn a_dropped_data_set_is_never_confused_with_a_new_one() {
        let cache = ColumnCache::default();
        let first = data(&[2000]);
        let _ = Columns::cached(&first, &cache).years("year");
        drop(first);
        // Whatever address the new data set gets, its own values are read.
        let second = data(&[1800]);
        let years = Columns::cached(&second, &cache).years("year");
        assert_eq!(years.iter().collect::<Vec<_>>(), [Some(1800)]);
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = ColumnCache::default();
        let d = data(&[2000]);
        for i in 0..(MAX_COLUMNS * 3) {
            let _ = Columns::cached(&d, &cache).numbers(&format!("f{i}"));
            assert!(cache.state.lock().unwrap().columns.len() <= MAX_COLUMNS);
        }
    }

    #[test]
    fn text_columns_index_distinct_values() {
        let d = data(&[1, 2, 3]);
        let texts = Columns::uncached(&d).texts("c");
        assert_eq!(texts.names, ["c1", "c0"]);
        assert_eq!(texts.ids, [Some(0), Some(1), Some(0)]);
    }

    #[test]
    fn large_data_sets_are_extracted_in_record_order_across_threads() {
        // Enough records for several threads, and a count that does not split evenly.
        let years: Vec<i64> = (0..(MIN_RECORDS_PER_THREAD as i64 * 3 + 17))
            .map(|i| 1000 + i % 997)
            .collect();
        let d = data(&years);
        let extracted = Columns::uncached(&d).years("year");
        let expected: Vec<Option<i32>> = years.iter().map(|&y| Some(y as i32)).collect();
        assert_eq!(extracted.iter().collect::<Vec<_>>(), expected);
        let numbers = Columns::uncached(&d).numbers("year");
        let expected: Vec<Option<f64>> = years.iter().map(|&y| Some(y as f64)).collect();
        assert_eq!(numbers.values, expected);
    }
}
