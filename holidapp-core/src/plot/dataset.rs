//! Records and data sets: what `POST /data` loads and the renderer draws from.
//!
//! The parsers for the supported formats live in [`parse`](super::parse).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One record of a data set: an id and its fields, as loaded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The record's id (`hgnc_id` for HGNC genes, `id` for meteorites, else its position).
    pub id: String,
    /// The record's fields, exactly as loaded (including the id field).
    pub fields: Map<String, Value>,
}

impl Record {
    /// A field as text: strings as they are, numbers in decimal, anything else `None`.
    pub fn text(&self, field: &str) -> Option<std::borrow::Cow<'_, str>> {
        match self.fields.get(field)? {
            Value::String(s) => Some(std::borrow::Cow::Borrowed(s.as_str())),
            Value::Number(n) => Some(std::borrow::Cow::Owned(n.to_string())),
            _ => None,
        }
    }

    /// A field as a number: JSON numbers, or strings that parse as one.
    pub fn number(&self, field: &str) -> Option<f64> {
        match self.fields.get(field)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok().filter(|v| v.is_finite()),
            _ => None,
        }
    }
}

/// A whole data set, in load order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DataSet {
    /// The records.
    pub records: Vec<Record>,
}

impl DataSet {
    /// A data set of these records.
    pub fn new(records: Vec<Record>) -> Self {
        DataSet { records }
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}
