//! Reading a JSON data set straight into records, within limits: no `Value` tree of the whole
//! document is ever built, the record count is capped, and the memory the parsed records take is
//! estimated as they are read, so a hostile document stops before it costs more than the limits
//! allow (a few megabytes of `[1,1,1,...]` would otherwise take sixteen times their size).
//!
//! The document is read by serde visitors ([`DeserializeSeed`]s) that build each record's fields
//! themselves and charge a [`Budget`] for every value. A shape the formats do not allow, or a
//! limit reached, stops the parse at once: the visitor stores the typed error in the budget and
//! hands serde an error that only ends the parse.

use std::cell::{Cell, RefCell};
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::{Error, Result};
use crate::job::truncate;

/// Estimated bytes of one JSON value held in memory, whatever it is (`serde_json::Value`).
const VALUE_BYTES: u64 = 32;

/// Estimated bytes of one field of a record or object beyond its value: the key's string and
/// the map's share of a node.
const ENTRY_BYTES: u64 = 56;

/// Estimated bytes of one record beyond its fields: its id and its map.
const RECORD_BYTES: u64 = 96;

/// The limits a parse runs under, and what it has used of them.
pub(super) struct Budget {
    max_records: u64,
    max_fields: usize,
    max_memory: u64,
    memory: Cell<u64>,
    /// Why the parse stopped, when a visitor stopped it.
    stopped: RefCell<Option<Error>>,
}

impl Budget {
    pub(super) fn new(max_records: u64, max_fields: usize, max_memory: u64) -> Self {
        Budget {
            max_records,
            max_fields,
            max_memory,
            memory: Cell::new(0),
            stopped: RefCell::new(None),
        }
    }

    /// Charges `bytes` of estimated memory: [`Error::DataTooLarge`] past the limit.
    pub(super) fn try_charge(&self, bytes: u64) -> Result<()> {
        let used = self.memory.get().saturating_add(bytes);
        self.memory.set(used);
        if used > self.max_memory {
            return Err(Error::DataTooLarge(format!(
                "parsed, the data set would take more than {} MiB of memory \
                 (HOLIDAPP_DATA_MAX_MEMORY)",
                self.max_memory / (1024 * 1024)
            )));
        }
        Ok(())
    }

    /// Charges one record of tab-separated text, whose cells are strings.
    pub(super) fn charge_record(&self) -> Result<()> {
        self.try_charge(RECORD_BYTES)
    }

    /// Charges one string field: its name's and its value's lengths.
    pub(super) fn charge_text_field(&self, name: usize, value: usize) -> Result<()> {
        self.try_charge(ENTRY_BYTES + VALUE_BYTES + name as u64 + value as u64)
    }

    /// Whether `records` records reach the record limit.
    pub(super) fn records_full(&self, records: usize) -> bool {
        records as u64 >= self.max_records
    }

    /// The error for one record too many.
    pub(super) fn too_many_records_error(&self) -> Error {
        Error::DataTooLarge(format!(
            "the data set has more than {} records (HOLIDAPP_DATA_MAX_RECORDS)",
            self.max_records
        ))
    }

    /// Charges `bytes` of estimated memory; past the limit, stops the parse.
    fn charge<E: de::Error>(&self, bytes: u64) -> std::result::Result<(), E> {
        self.try_charge(bytes).map_err(|e| self.stop(e))
    }

    /// Stops the parse with `error`: records it, and answers the serde error that ends the
    /// parse.
    fn stop<E: de::Error>(&self, error: Error) -> E {
        self.stopped.borrow_mut().get_or_insert(error);
        E::custom("stopped")
    }

    /// Why the parse stopped, if a visitor stopped it.
    fn take_stop(&self) -> Option<Error> {
        self.stopped.borrow_mut().take()
    }

    fn too_many_records<E: de::Error>(&self) -> E {
        self.stop(self.too_many_records_error())
    }
}

fn invalid<E: de::Error>(budget: &Budget, message: String) -> E {
    budget.stop(Error::InvalidData(message))
}

/// What a JSON value is, for error messages.
struct Kind(&'static str);

/// A JSON document that is a data set, read into its records' fields.
pub(super) enum Document {
    /// A plain array of objects (`path` is empty).
    Array(Vec<Map<String, Value>>),
    /// `{"response": {"docs": [...]}}`.
    Hgnc(Vec<Map<String, Value>>),
    /// `{"meteorite_landings": [...]}`.
    Meteorites(Vec<Map<String, Value>>),
}

/// Reads the whole document; a plain array of records only when `arrays` is set.
pub(super) struct DocumentSeed<'b> {
    pub(super) budget: &'b Budget,
    pub(super) arrays: bool,
}

impl<'de> DeserializeSeed<'de> for DocumentSeed<'_> {
    type Value = Document;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Document, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DocumentSeed<'_> {
    type Value = Document;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object or an array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> std::result::Result<Document, A::Error> {
        if !self.arrays {
            // Refused at its first byte: nothing of the array is read.
            return Err(invalid(
                self.budget,
                "a JSON document is a data set in one of the JSON layouts, {\"response\": \
                 {\"docs\": [...]}} or {\"meteorite_landings\": [...]}; send a plain array of \
                 records as text (text/tab-separated-values) or bytes \
                 (application/octet-stream)"
                    .to_owned(),
            ));
        }
        RecordsSeed {
            budget: self.budget,
            path: "",
        }
        .visit_seq(seq)
        .map(Document::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Document, A::Error> {
        let budget = self.budget;
        let mut found: Option<Document> = None;
        let mut keys: Vec<String> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if matches!(key.as_str(), "response" | "meteorite_landings") && found.is_some() {
                // Which one was meant cannot be told: refused, whatever the keys' order.
                return Err(invalid(
                    budget,
                    "the document holds both layouts, 'response' (HGNC) and \
                     'meteorite_landings'; send one data set"
                        .to_owned(),
                ));
            }
            match key.as_str() {
                "response" => {
                    let docs = map.next_value_seed(ResponseSeed(budget))?;
                    found = Some(Document::Hgnc(docs));
                }
                "meteorite_landings" => {
                    let records = map.next_value_seed(RecordsSeed {
                        budget,
                        path: "meteorite_landings",
                    })?;
                    found = Some(Document::Meteorites(records));
                }
                _ => {
                    if keys.len() < 5 {
                        keys.push(key);
                    }
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        found.ok_or_else(|| {
            invalid(
                budget,
                format!(
                    "unrecognised JSON object (keys: {}); expected {}",
                    truncate(&keys.join(", "), 60),
                    expected_document(self.arrays)
                ),
            )
        })
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<Document, E> {
        Err(not_a_document(self.budget, self.arrays, Kind("a boolean")))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<Document, E> {
        Err(not_a_document(self.budget, self.arrays, Kind("a number")))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<Document, E> {
        Err(not_a_document(self.budget, self.arrays, Kind("a number")))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<Document, E> {
        Err(not_a_document(self.budget, self.arrays, Kind("a number")))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<Document, E> {
        Err(not_a_document(self.budget, self.arrays, Kind("a string")))
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<Document, E> {
        Err(not_a_document(self.budget, self.arrays, Kind("null")))
    }
}

fn not_a_document<E: de::Error>(budget: &Budget, arrays: bool, kind: Kind) -> E {
    invalid(
        budget,
        format!(
            "the JSON document is {}; expected {}",
            kind.0,
            expected_document(arrays)
        ),
    )
}

/// The JSON documents that are data sets, for error messages.
fn expected_document(arrays: bool) -> &'static str {
    if arrays {
        "{\"response\": {\"docs\": [...]}}, {\"meteorite_landings\": [...]} or an array of objects"
    } else {
        "{\"response\": {\"docs\": [...]}} or {\"meteorite_landings\": [...]}"
    }
}

/// Reads `response` of the HGNC layout: an object whose `docs` is the array of records.
struct ResponseSeed<'b>(&'b Budget);

impl<'de> DeserializeSeed<'de> for ResponseSeed<'_> {
    type Value = Vec<Map<String, Value>>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ResponseSeed<'_> {
    type Value = Vec<Map<String, Value>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with 'docs'")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut docs = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "docs" {
                docs = Some(map.next_value_seed(RecordsSeed {
                    budget: self.0,
                    path: "response.docs",
                })?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        docs.ok_or_else(|| {
            invalid(
                self.0,
                "'response' has no 'docs'; the HGNC format is {\"response\": {\"docs\": [...]}}"
                    .to_owned(),
            )
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> std::result::Result<Self::Value, A::Error> {
        Err(not_a_response(self.0, Kind("an array")))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<Self::Value, E> {
        Err(not_a_response(self.0, Kind("a boolean")))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<Self::Value, E> {
        Err(not_a_response(self.0, Kind("a number")))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<Self::Value, E> {
        Err(not_a_response(self.0, Kind("a number")))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<Self::Value, E> {
        Err(not_a_response(self.0, Kind("a number")))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<Self::Value, E> {
        Err(not_a_response(self.0, Kind("a string")))
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
        Err(not_a_response(self.0, Kind("null")))
    }
}

fn not_a_response<E: de::Error>(budget: &Budget, kind: Kind) -> E {
    invalid(
        budget,
        format!(
            "'response' is {}; the HGNC format is {{\"response\": {{\"docs\": [...]}}}}",
            kind.0
        ),
    )
}

/// Reads an array of records at `path`, each an object.
struct RecordsSeed<'b> {
    budget: &'b Budget,
    path: &'static str,
}

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_> {
    type Value = Vec<Map<String, Value>>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl RecordsSeed<'_> {
    fn not_an_array<E: de::Error>(&self, kind: Kind) -> E {
        let what = if self.path == "response.docs" {
            "gene records"
        } else {
            "records"
        };
        invalid(
            self.budget,
            format!("'{}' is {}; expected an array of {what}", self.path, kind.0),
        )
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'_> {
    type Value = Vec<Map<String, Value>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut records = Vec::new();
        loop {
            let index = records.len();
            let item = RecordSeed {
                budget: self.budget,
                path: self.path,
                index,
            };
            match seq.next_element_seed(item)? {
                None => return Ok(records),
                Some(fields) => {
                    if self.budget.records_full(records.len()) {
                        return Err(self.budget.too_many_records());
                    }
                    records.push(fields);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> std::result::Result<Self::Value, A::Error> {
        Err(self.not_an_array(Kind("an object")))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<Self::Value, E> {
        Err(self.not_an_array(Kind("a boolean")))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<Self::Value, E> {
        Err(self.not_an_array(Kind("a number")))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<Self::Value, E> {
        Err(self.not_an_array(Kind("a number")))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<Self::Value, E> {
        Err(self.not_an_array(Kind("a number")))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<Self::Value, E> {
        Err(self.not_an_array(Kind("a string")))
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
        Err(self.not_an_array(Kind("null")))
    }
}

/// Reads one record: an object, its fields charged to the budget.
struct RecordSeed<'b> {
    budget: &'b Budget,
    path: &'static str,
    index: usize,
}

impl RecordSeed<'_> {
    fn not_an_object<E: de::Error>(&self, kind: Kind) -> E {
        invalid(
            self.budget,
            format!(
                "{}[{}] is {}; every record must be a JSON object",
                self.path, self.index, kind.0
            ),
        )
    }
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = Map<String, Value>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        self.budget.charge(RECORD_BYTES)?;
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if fields.len() >= self.budget.max_fields {
                return Err(self.budget.stop(Error::DataTooLarge(format!(
                    "{}[{}] has more than {} fields",
                    self.path, self.index, self.budget.max_fields
                ))));
            }
            self.budget.charge(ENTRY_BYTES + key.len() as u64)?;
            let value = map.next_value_seed(ValueSeed(self.budget))?;
            fields.insert(key, value);
        }
        Ok(fields)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> std::result::Result<Self::Value, A::Error> {
        Err(self.not_an_object(Kind("an array")))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<Self::Value, E> {
        Err(self.not_an_object(Kind("a boolean")))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<Self::Value, E> {
        Err(self.not_an_object(Kind("a number")))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<Self::Value, E> {
        Err(self.not_an_object(Kind("a number")))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<Self::Value, E> {
        Err(self.not_an_object(Kind("a number")))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<Self::Value, E> {
        Err(self.not_an_object(Kind("a string")))
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
        Err(self.not_an_object(Kind("null")))
    }
}

/// Reads any JSON value, charging the budget for every part of it.
struct ValueSeed<'b>(&'b Budget);

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Value, E> {
        self.0.charge(VALUE_BYTES)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Value, E> {
        self.0.charge(VALUE_BYTES)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Value, E> {
        self.0.charge(VALUE_BYTES)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Value, E> {
        self.0.charge(VALUE_BYTES)?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Value, E> {
        self.0.charge(VALUE_BYTES + v.len() as u64)?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Value, E> {
        self.0.charge(VALUE_BYTES + v.len() as u64)?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<Value, E> {
        self.0.charge(VALUE_BYTES)?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> std::result::Result<Value, E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        self.0.charge(VALUE_BYTES)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(ValueSeed(self.0))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        self.0.charge(VALUE_BYTES)?;
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.0.charge(ENTRY_BYTES + key.len() as u64)?;
            let value = map.next_value_seed(ValueSeed(self.0))?;
            fields.insert(key, value);
        }
        Ok(Value::Object(fields))
    }
}

/// Reads `bytes` as a JSON data set document within `budget`, a plain array of records only when
/// `arrays` is set. A syntax error is
/// [`Error::MalformedJson`]; a shape the formats do not allow, or a limit reached, is the error
/// the visitor recorded.
pub(super) fn read_document(bytes: &[u8], budget: &Budget, arrays: bool) -> Result<Document> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let read = DocumentSeed { budget, arrays }
        .deserialize(&mut de)
        .and_then(|doc| de.end().map(|()| doc));
    match read {
        Ok(doc) => Ok(doc),
        Err(e) => Err(budget
            .take_stop()
            .unwrap_or_else(|| Error::MalformedJson(e.to_string()))),
    }
}
