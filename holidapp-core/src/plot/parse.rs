//! Parsers for the data set formats Holidapp loads, and [`load_source`], which fetches a data set
//! from where `DATA_SOURCE` points.
//!
//! # Formats
//!
//! [`parse`] looks at the bytes and picks the format itself:
//!
//! | format | shape | record id |
//! |---|---|---|
//! | HGNC complete set, JSON | `{"response": {"docs": [{...}, ...]}}` | `hgnc_id` |
//! | meteorite landings, JSON | `{"meteorite_landings": [{...}, ...]}` | `id` |
//! | plain JSON array | `[{...}, ...]` | `id` when the objects have one, else `hgnc_id` when they have one, else the position (`0`, `1`, ...) |
//! | HGNC TSV | a header line of tab-separated column names, then one record per line | `hgnc_id` when the header has it, else `id`, else the position |
//!
//! Input whose first non-blank byte is `{` or `[` is read as JSON; input whose first line holds
//! a tab is read as TSV; anything else is refused at once, so a large file of garbage costs
//! almost nothing. A JSON document sent as such ([`parse_json_object`], an `application/json`
//! body) must be one of the two object layouts, not both; a plain array is read from text.
//!
//! An id is a string of at most [`MAX_ID_LEN`] characters, or an integer of at most
//! [`MAX_INTEGER_ID`] either side of zero (integers, also written with a zero fraction or an
//! exponent, become their decimal text); ids are unique within the data set: `GET /data/{id}`
//! must name one record. A data set with no records is refused.
//!
//! # Limits
//!
//! A data set is parsed within [`DataLimits`]: its size in bytes, its record count, and the
//! memory its parsed records would take (estimated while reading, so a hostile document stops
//! early). JSON is read straight into records, without a tree of the whole document. A record
//! holds at most [`MAX_FIELDS`] fields, a TSV line at most [`MAX_LINE_BYTES`] bytes; every check
//! is linear in the input. Past a limit the answer is [`Error::DataTooLarge`].
//!
//! TSV cells are strings. An empty cell means the field is absent, and the double quotes the HGNC
//! export puts around multi-value cells (`"FLJ11506|p34"`) are removed. The HGNC export also
//! drops trailing empty cells, so a row may be shorter than the header (its missing cells are
//! absent fields), and some exports carry more cells than their header names; those extra cells
//! are kept under the names `column_<n>` (`n` counts columns from 1). A row of a single cell
//! under a header of several columns is refused as not tab-separated.
//!
//! Every refusal is [`Error::InvalidData`] with a short message that says where (a line, or a
//! JSON path such as `response.docs[3]`) and what was expected.
//!
//! # Sources
//!
//! [`load_source`] accepts:
//!
//! - `bundled:hgnc` ([`BUNDLED_HGNC`], the default of `DATA_SOURCE`): the HGNC sample that ships
//!   inside the binary (266 genes, TSV);
//! - `bundled:meteorites` ([`BUNDLED_METEORITES`]): the meteorite-landings sample that ships
//!   inside the binary (300 records, JSON);
//! - an `http://` or `https://` URL, fetched with a GET ([`SOURCE_TIMEOUT`] in all, bodies up to
//!   the limits' size; an answer that is not 2xx is an error; redirects are followed only within
//!   the URL's own origin, at most five);
//! - anything else: a path to a file (up to the limits' size).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::io::AsyncReadExt;

use super::bounded::{Budget, Document, read_document};
use super::dataset::{DataSet, Record};
use crate::error::{Error, Result};
use crate::job::truncate;

/// The source name of the bundled HGNC sample (266 genes), the default data source.
pub const BUNDLED_HGNC: &str = "bundled:hgnc";

/// The source name of the bundled meteorite-landings sample (300 records).
pub const BUNDLED_METEORITES: &str = "bundled:meteorites";

/// The longest record id accepted, in characters.
pub const MAX_ID_LEN: usize = 256;

/// The largest integer id either side of zero, 2^53 - 1: the integers every JSON reader holds
/// exactly (a larger one may already have been rounded when it is read). Larger ids are sent as
/// strings.
pub const MAX_INTEGER_ID: u64 = (1 << 53) - 1;

/// The most fields one record holds, and the most columns of a TSV line.
pub const MAX_FIELDS: usize = 1024;

/// The longest TSV line, in bytes.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// The limits a data set is parsed within. The defaults fit a process with a 512 MiB memory
/// limit that holds two data sets at once (the one in use and the one being loaded) with room to
/// spare; raise them together with the memory limit to load the complete HGNC set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataLimits {
    /// The largest body or source, in bytes (`HOLIDAPP_DATA_MAX_BYTES`, default 32 MiB).
    pub max_bytes: u64,
    /// The most records (`HOLIDAPP_DATA_MAX_RECORDS`, default 100,000).
    pub max_records: u64,
    /// The most memory the parsed records may take, estimated while reading, in bytes
    /// (`HOLIDAPP_DATA_MAX_MEMORY`, default 128 MiB).
    pub max_memory: u64,
}

impl Default for DataLimits {
    fn default() -> Self {
        DataLimits {
            max_bytes: 32 * 1024 * 1024,
            max_records: 100_000,
            max_memory: 128 * 1024 * 1024,
        }
    }
}

impl DataLimits {
    fn budget(&self) -> Budget {
        Budget::new(self.max_records, MAX_FIELDS, self.max_memory)
    }

    /// [`Error::DataTooLarge`] when `len` bytes are over the size limit.
    pub fn check_size(&self, len: u64) -> Result<()> {
        if len > self.max_bytes {
            return Err(Error::DataTooLarge(format!(
                "the data set is larger than {} (HOLIDAPP_DATA_MAX_BYTES)",
                bytes_text(self.max_bytes)
            )));
        }
        Ok(())
    }
}

/// A byte count for messages: in MiB when whole, else in bytes.
fn bytes_text(n: u64) -> String {
    if n >= 1024 * 1024 && n.is_multiple_of(1024 * 1024) {
        format!("{} MiB", n / (1024 * 1024))
    } else {
        format!("{n} bytes")
    }
}

/// How long [`load_source`] waits for a URL to answer in full.
pub const SOURCE_TIMEOUT: Duration = Duration::from_secs(120);

/// How long [`load_source`] waits for a connection to a URL's host.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of a piece of input an error message quotes, in characters.
const QUOTE_LEN: usize = 60;

const HGNC_SAMPLE: &[u8] = include_bytes!("../../data/hgnc_reduced_set.txt");
const METEORITE_SAMPLE: &[u8] = include_bytes!("../../data/ML_Data_Sample.json");

/// The data sets bundled with the crate, by name: `hgnc` and `meteorites`.
///
/// `bundled("hgnc")` is what the source [`BUNDLED_HGNC`] loads. Unknown names give `None`.
pub fn bundled(name: &str) -> Option<DataSet> {
    let bytes = match name {
        "hgnc" => HGNC_SAMPLE,
        "meteorites" => METEORITE_SAMPLE,
        _ => return None,
    };
    // Both samples are checked by the test suite, so this cannot fail in a released build.
    parse(bytes).ok()
}

/// Parses a data set in any supported format (see the [module docs](self)) within the default
/// [`DataLimits`].
pub fn parse(bytes: &[u8]) -> Result<DataSet> {
    parse_with(bytes, &DataLimits::default())
}

/// Parses a data set in any supported format within `limits`. JSON that does not parse is
/// [`Error::InvalidData`] here (the input was not declared JSON).
pub fn parse_with(bytes: &[u8], limits: &DataLimits) -> Result<DataSet> {
    limits.check_size(bytes.len() as u64)?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => Err(invalid("the input is empty")),
        Some(b'{' | b'[') => parse_json(bytes, limits).map_err(|e| match e {
            Error::MalformedJson(message) => invalid(format!("not valid JSON: {message}")),
            other => other,
        }),
        Some(_) if looks_like_tsv(bytes) => parse_tsv(bytes, limits),
        Some(_) => Err(invalid(
            "unrecognised format: expected JSON (an object or an array) or tab-separated values \
             with a header line",
        )),
    }
}

/// Parses a JSON data set (the JSON formats of [`parse`]) within `limits`, straight into
/// records. JSON that does not parse is [`Error::MalformedJson`].
pub fn parse_json(bytes: &[u8], limits: &DataLimits) -> Result<DataSet> {
    parse_json_document(bytes, limits, true)
}

/// Parses a data set sent as a JSON document (an `application/json` body) within `limits`: one
/// of the two JSON layouts, `{"response": {"docs": [...]}}` or `{"meteorite_landings": [...]}`.
/// A plain array of records is refused ([`Error::InvalidData`], before any of it is read): it is
/// accepted as text ([`parse_with`]). JSON that does not parse is [`Error::MalformedJson`].
pub fn parse_json_object(bytes: &[u8], limits: &DataLimits) -> Result<DataSet> {
    parse_json_document(bytes, limits, false)
}

fn parse_json_document(bytes: &[u8], limits: &DataLimits, arrays: bool) -> Result<DataSet> {
    limits.check_size(bytes.len() as u64)?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match read_document(bytes, &limits.budget(), arrays)? {
        Document::Array(items) => {
            let id_field = array_id_field(&items);
            records_from_json(items, "", id_field)
        }
        Document::Hgnc(docs) => records_from_json(docs, "response.docs", IdField::Named("hgnc_id")),
        Document::Meteorites(items) => {
            records_from_json(items, "meteorite_landings", IdField::Named("id"))
        }
    }
}

/// Loads a data set from a source: `bundled:<name>`, an http(s) URL or a file path (see the
/// [module docs](self)), within `limits`.
///
/// Failing to reach or read the source is [`Error::Source`]; content that does not parse is
/// [`Error::InvalidData`], its message prefixed with the source; a source over the limits is
/// [`Error::DataTooLarge`].
pub async fn load_source(source: &str, limits: &DataLimits) -> Result<DataSet> {
    let source = source.trim();
    if let Some(name) = source.strip_prefix("bundled:") {
        return bundled(name).ok_or_else(|| {
            Error::Source(format!(
                "unknown bundled data set '{}'; expected {BUNDLED_HGNC} or {BUNDLED_METEORITES}",
                truncate(name, QUOTE_LEN)
            ))
        });
    }
    let (shown, bytes) = if source.starts_with("http://") || source.starts_with("https://") {
        let shown = redact_url(source);
        let bytes = fetch_url(source, &shown, limits).await?;
        (shown, bytes)
    } else {
        let shown = truncate(source, 200);
        let bytes = read_file(source, &shown, limits).await?;
        (shown, bytes)
    };
    let limits = *limits;
    let parsed = tokio::task::spawn_blocking(move || parse_with(&bytes, &limits))
        .await
        .map_err(|e| Error::Internal(format!("parsing task failed: {e}")))?;
    parsed.map_err(|e| match e {
        Error::InvalidData(msg) => Error::InvalidData(format!("{shown}: {msg}")),
        other => other,
    })
}

async fn read_file(path: &str, shown: &str, limits: &DataLimits) -> Result<Vec<u8>> {
    if path.is_empty() {
        return Err(Error::Source(
            "the data source is empty; give a file path, an http(s) URL or bundled:hgnc".into(),
        ));
    }
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| Error::Source(format!("cannot open '{shown}': {e}")))?;
    let mut bytes = Vec::new();
    // `take` rather than the file's length: special files (pipes, /dev/zero) report none.
    file.take(limits.max_bytes + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| Error::Source(format!("cannot read '{shown}': {e}")))?;
    limits.check_size(bytes.len() as u64)?;
    Ok(bytes)
}

/// The most redirects [`load_source`] follows.
const MAX_REDIRECTS: usize = 5;

/// Follows a redirect only to the origin (scheme, host and port) of the URL first asked for:
/// a data source must not send the server to another host of its network.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().map(reqwest::Url::origin);
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else if first.as_ref() == Some(&attempt.url().origin()) {
            attempt.follow()
        } else {
            attempt.error("a redirect to another origin")
        }
    })
}

async fn fetch_url(url: &str, shown: &str, limits: &DataLimits) -> Result<Vec<u8>> {
    let fail = |what: &str, e: reqwest::Error| {
        Error::Source(truncate(
            &format!("{what} {shown}: {}", error_chain(&e.without_url())),
            300,
        ))
    };
    let client = reqwest::Client::builder()
        .timeout(SOURCE_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(same_origin_redirects())
        .build()
        .map_err(|e| fail("cannot set up a client for", e))?;
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|e| fail("cannot GET", e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(Error::Source(format!("GET {shown} answered {status}")));
    }
    if let Some(len) = response.content_length() {
        limits.check_size(len)?;
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| fail("cannot read the body of", e))?
    {
        limits.check_size((bytes.len() + chunk.len()) as u64)?;
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The URL as it may appear in messages and logs: without its password, and not too long.
fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Only fails for URLs that cannot carry credentials, which then have none.
                let _ = parsed.set_password(Some("***"));
            }
            truncate(parsed.as_str(), 200)
        }
        Err(_) => truncate(url, 200),
    }
}

/// An error and its causes, joined: reqwest puts the useful part ("connection refused") in the
/// source chain.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidData(msg.into())
}

/// What a JSON value is, for error messages.
fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Where a record's id comes from.
#[derive(Clone, Copy)]
enum IdField {
    /// This field, which every record must have.
    Named(&'static str),
    /// The record's position in the data set.
    Position,
}

/// The id rule for a plain array: `id` if the objects have it, else `hgnc_id`, else positions.
/// Whether *every* record has the chosen field is checked while building the records.
fn array_id_field(items: &[Map<String, Value>]) -> IdField {
    let any_has = |field: &str| items.iter().any(|item| item.contains_key(field));
    if any_has("id") {
        IdField::Named("id")
    } else if any_has("hgnc_id") {
        IdField::Named("hgnc_id")
    } else {
        IdField::Position
    }
}

fn records_from_json(
    items: Vec<Map<String, Value>>,
    path: &str,
    id_field: IdField,
) -> Result<DataSet> {
    let mut records = Vec::with_capacity(items.len());
    let mut seen = Ids::with_capacity(items.len());
    for (index, fields) in items.into_iter().enumerate() {
        let at = || format!("{path}[{index}]");
        let id = match id_field {
            IdField::Position => index.to_string(),
            IdField::Named(name) => match fields.get(name) {
                Some(value) => {
                    json_id(value).map_err(|why| invalid(format!("{}.{name} {why}", at())))?
                }
                None => {
                    return Err(invalid(format!(
                        "{} has no '{name}'; every record needs one (it is the record's id)",
                        at()
                    )));
                }
            },
        };
        seen.insert(&id, at())?;
        records.push(Record { id, fields });
    }
    finish(records)
}

/// A record id from a JSON value, or why it is not one. An integer written with a zero
/// fraction or an exponent (`5.0`, `5e0`) is that integer: its id is `5`.
fn json_id(value: &Value) -> std::result::Result<String, String> {
    let id = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => integer_id(n)?,
        other => {
            return Err(format!(
                "is {}; an id must be a string or an integer",
                describe(other)
            ));
        }
    };
    check_id(&id).map(|()| id)
}

/// The id of an integer, within [`MAX_INTEGER_ID`] either side of zero.
fn integer_id(n: &serde_json::Number) -> std::result::Result<String, String> {
    let exact = n.as_i64().map(i128::from).or(n.as_u64().map(i128::from));
    let value = match exact {
        Some(value) => value,
        None => {
            // A float: past the integers of i64 and u64, or written with a fraction or an
            // exponent. Beyond MAX_INTEGER_ID it may have been rounded: refused below.
            let float = n.as_f64().unwrap_or(f64::NAN);
            if float.fract() != 0.0 {
                return Err(
                    "is a number with a fraction; an id must be a string or an integer".into(),
                );
            }
            match crate::integer::whole(float) {
                Some(crate::integer::Whole::Signed(v)) => i128::from(v),
                Some(crate::integer::Whole::Unsigned(v)) => i128::from(v),
                None => i128::MAX,
            }
        }
    };
    if value.unsigned_abs() > u128::from(MAX_INTEGER_ID) {
        return Err(format!(
            "is an integer beyond ±{MAX_INTEGER_ID} (2^53-1); send a larger id as a string"
        ));
    }
    Ok(value.to_string())
}

fn check_id(id: &str) -> std::result::Result<(), String> {
    if id.trim().is_empty() {
        Err("is empty; an id must not be blank".into())
    } else if id.chars().count() > MAX_ID_LEN {
        Err(format!("is longer than {MAX_ID_LEN} characters"))
    } else if id.chars().any(char::is_control) {
        Err("holds control characters".into())
    } else {
        Ok(())
    }
}

/// The ids seen so far, with where each was seen, to refuse duplicates.
struct Ids(HashMap<String, String>);

impl Ids {
    fn with_capacity(n: usize) -> Self {
        Ids(HashMap::with_capacity(n))
    }

    fn insert(&mut self, id: &str, at: String) -> Result<()> {
        if let Some(first) = self.0.get(id) {
            return Err(invalid(format!(
                "duplicate id '{}' at {first} and {at}; ids must be unique",
                truncate(id, QUOTE_LEN)
            )));
        }
        self.0.insert(id.to_owned(), at);
        Ok(())
    }
}

fn finish(records: Vec<Record>) -> Result<DataSet> {
    if records.is_empty() {
        Err(invalid("the data set is empty"))
    } else {
        Ok(DataSet::new(records))
    }
}

/// Whether the first line holds a tab: the sign of a TSV header. Looks at no more than
/// [`MAX_LINE_BYTES`].
fn looks_like_tsv(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(MAX_LINE_BYTES)];
    let first_line = head.split(|&b| b == b'\n').next().unwrap_or(head);
    first_line.contains(&b'\t')
}

/// [`Error::DataTooLarge`] for a line longer than [`MAX_LINE_BYTES`].
fn check_line(line: &str, line_no: usize) -> Result<()> {
    if line.len() > MAX_LINE_BYTES {
        return Err(Error::DataTooLarge(format!(
            "line {line_no} is longer than {} bytes",
            MAX_LINE_BYTES
        )));
    }
    Ok(())
}

/// The cells of a TSV line, at most [`MAX_FIELDS`].
fn tsv_cells(line: &str, line_no: usize) -> Result<Vec<&str>> {
    let mut cells = Vec::new();
    for cell in line.split('\t') {
        if cells.len() == MAX_FIELDS {
            return Err(Error::DataTooLarge(format!(
                "line {line_no} has more than {MAX_FIELDS} columns"
            )));
        }
        cells.push(cell);
    }
    Ok(cells)
}

fn parse_tsv(bytes: &[u8], limits: &DataLimits) -> Result<DataSet> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        invalid(format!(
            "line {line} is not valid UTF-8; tab-separated data must be UTF-8 text"
        ))
    })?;
    let budget = limits.budget();
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let header_line = lines.next().unwrap_or_default();
    check_line(header_line, 1)?;
    let header = tsv_header(header_line)?;
    let names: HashSet<&str> = header.iter().map(String::as_str).collect();
    let id_column = ["hgnc_id", "id"]
        .iter()
        .find_map(|name| header.iter().position(|h| h == name));

    let mut records = Vec::new();
    let mut seen = Ids::with_capacity(1024);
    for (index, line) in lines.enumerate() {
        let line_no = index + 2;
        check_line(line, line_no)?;
        if line.trim().is_empty() {
            continue;
        }
        let cells = tsv_cells(line, line_no)?;
        if cells.len() == 1 {
            return Err(invalid(format!(
                "line {line_no} has 1 column but the header has {}; expected tab-separated values",
                header.len()
            )));
        }
        if budget.records_full(records.len()) {
            return Err(budget.too_many_records_error());
        }
        budget.charge_record()?;
        let mut fields = Map::new();
        for (column, cell) in cells.iter().enumerate() {
            let value = unquote(cell);
            if value.is_empty() {
                continue;
            }
            let name = match header.get(column) {
                Some(name) => name.clone(),
                None => {
                    let name = format!("column_{}", column + 1);
                    if names.contains(name.as_str()) {
                        return Err(invalid(format!(
                            "line {line_no} has {} columns but the header has {}, and the name \
                             for the extra column, {name}, is taken by the header",
                            cells.len(),
                            header.len()
                        )));
                    }
                    name
                }
            };
            budget.charge_text_field(name.len(), value.len())?;
            fields.insert(name, Value::String(value.to_owned()));
        }
        let id = match id_column {
            None => records.len().to_string(),
            Some(column) => {
                let name = &header[column];
                let id = fields
                    .get(name)
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("line {line_no} has no {name}")))?;
                check_id(id).map_err(|why| invalid(format!("line {line_no}: {name} {why}")))?;
                id.to_owned()
            }
        };
        seen.insert(&id, format!("line {line_no}"))?;
        records.push(Record { id, fields });
    }
    finish(records)
}

/// The column names of a TSV header, at most [`MAX_FIELDS`]; blank or repeated names are
/// refused.
fn tsv_header(line: &str) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for (column, cell) in tsv_cells(line, 1)?.into_iter().enumerate() {
        let name = unquote(cell.trim());
        if name.is_empty() {
            return Err(invalid(format!(
                "column {} of the header line is blank; every column needs a name",
                column + 1
            )));
        }
        if !seen.insert(name) {
            return Err(invalid(format!(
                "the header names column '{}' twice",
                truncate(name, QUOTE_LEN)
            )));
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

/// A cell without the double quotes the HGNC export wraps multi-value cells in.
fn unquote(cell: &str) -> &str {
    if cell.len() >= 2 && cell.starts_with('"') && cell.ends_with('"') {
        &cell[1..cell.len() - 1]
    } else {
        cell
    }
}
