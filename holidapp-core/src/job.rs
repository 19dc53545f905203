//! Jobs: their identifiers, queues, parameters, and where they are in their life.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::machine::JobStatus;

/// A job's identifier: a random UUID v4, rendered in its hyphenated lower-case form.
///
/// Its first byte is the job's *slot tag* (see [`QueueName::tag`]): the Redis backend keeps
/// every key of a queue under one hash tag, and a job's id names that tag, so any process can
/// find the job from its id alone. The other 114 bits of randomness are untouched, and the id
/// stays a valid version 4 UUID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(Uuid);

impl JobId {
    /// A fresh random identifier for a job of `queue`.
    pub fn new_in(queue: &QueueName) -> Self {
        Self::new_with_tag(queue.tag())
    }

    /// A fresh random identifier with the slot tag `tag`: for a job of a queue partition whose
    /// tag is not the queue's own (see the Redis backend's partitioned queues).
    pub fn new_with_tag(tag: u8) -> Self {
        let mut bytes = *Uuid::new_v4().as_bytes();
        bytes[0] = tag;
        JobId(Uuid::from_bytes(bytes))
    }

    /// The slot tag written in the id (its first byte).
    pub fn tag(&self) -> u8 {
        self.0.as_bytes()[0]
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl From<Uuid> for JobId {
    fn from(uuid: Uuid) -> Self {
        JobId(uuid)
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({})", self.0.hyphenated())
    }
}

/// Reads an id in the form it is shown in: a UUID of 36 characters, hyphenated (`xxxxxxxx-xxxx-
/// xxxx-xxxx-xxxxxxxxxxxx`; hex digits in either case). The other spellings of a UUID (32
/// digits without hyphens, in braces, as a `urn:uuid:` URN) are refused, so that a job's id has
/// one text.
impl FromStr for JobId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        // Of the spellings `Uuid` reads, only the hyphenated one has 36 characters.
        (s.len() == 36)
            .then(|| Uuid::try_parse(s).ok())
            .flatten()
            .map(JobId)
            .ok_or_else(|| {
                Error::InvalidParams(format!(
                    "'{}' is not a valid job id (a hyphenated UUID)",
                    truncate(s, 64)
                ))
            })
    }
}

/// The longest queue or kind name, in characters.
pub const MAX_NAME_LEN: usize = 64;

/// Checks a queue or kind name: 1 to [`MAX_NAME_LEN`] ASCII letters, digits, `-`, `_` or `.`.
/// Such names are safe inside Redis keys, URLs and metric labels.
fn check_name(what: &str, name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidParams(format!(
            "'{}' is not a valid {what} name: use 1 to {MAX_NAME_LEN} ASCII letters, digits, \
             '-', '_' or '.'",
            truncate(name, 64)
        )))
    }
}

/// The name of a queue: 1 to 64 ASCII letters, digits, `-`, `_` or `.` (`default` unless a job
/// names another). Cheap to clone: clones share the text.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueName(Arc<str>);

/// The `default` queue's name, allocated once.
static DEFAULT_QUEUE: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(QueueName::DEFAULT));

impl QueueName {
    /// The queue jobs go to when they name none.
    pub const DEFAULT: &'static str = "default";

    /// A checked queue name.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        check_name("queue", &name)?;
        Ok(QueueName(Arc::from(name)))
    }

    /// The `default` queue.
    pub fn default_queue() -> Self {
        QueueName(Arc::clone(&DEFAULT_QUEUE))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The slot tag of this queue: a byte from a stable hash (FNV-1a) of the name. The ids of
    /// the queue's jobs start with it, and the Redis backend keeps the queue's keys and its jobs'
    /// keys under the hash tag `{tag}`, so that every script touches one Redis Cluster slot.
    pub fn tag(&self) -> u8 {
        let mut hash: u32 = 0x811c_9dc5;
        for byte in self.0.bytes() {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
        (hash ^ (hash >> 8) ^ (hash >> 16) ^ (hash >> 24)) as u8
    }
}

impl Default for QueueName {
    fn default() -> Self {
        Self::default_queue()
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueueName({})", self.0)
    }
}

impl FromStr for QueueName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        QueueName::new(s)
    }
}

impl Serialize for QueueName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for QueueName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        QueueName::new(name).map_err(serde::de::Error::custom)
    }
}

/// A name a job carries: its kind, or the worker that took it. Cheap to clone: clones share
/// the text, so a job's copies (in its lease, its events, the answers of the calls that change
/// it) cost no allocation. Any text is kept as given: a kind name is checked where a job is
/// submitted ([`check_kind_name`]), and a worker names itself.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Arc<str>);

impl Name {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Name {
    fn from(text: &str) -> Self {
        Name(Arc::from(text))
    }
}

impl From<String> for Name {
    fn from(text: String) -> Self {
        Name(Arc::from(text))
    }
}

impl From<&String> for Name {
    fn from(text: &String) -> Self {
        Name(Arc::from(text.as_str()))
    }
}

impl From<Arc<str>> for Name {
    fn from(text: Arc<str>) -> Self {
        Name(text)
    }
}

impl From<Name> for Arc<str> {
    fn from(name: Name) -> Self {
        name.0
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<Name> for str {
    fn eq(&self, other: &Name) -> bool {
        *self == *other.0
    }
}

impl PartialEq<Name> for &str {
    fn eq(&self, other: &Name) -> bool {
        **self == *other.0
    }
}

impl PartialEq<Name> for String {
    fn eq(&self, other: &Name) -> bool {
        **self == *other.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d).map(Name::from)
    }
}

/// Checks a kind name (the same rules as a queue name).
pub fn check_kind_name(name: &str) -> Result<()> {
    check_name("kind", name)
}

/// A job's parameters: one JSON value, kept as its text.
///
/// The engine never looks inside: the job's kind ([`Renderer`](crate::Renderer)) decodes them
/// into its own `Params` type. They are stored as one field (`params` in a Redis job hash),
/// readable with `HGETALL`. Cheap to clone: clones share the text.
#[derive(Clone)]
pub struct Params(Arc<RawValue>);

impl Serialize for Params {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Box::<RawValue>::deserialize(d).map(|raw| Params(Arc::from(raw)))
    }
}

/// Parameters are equal when their JSON text is.
impl PartialEq for Params {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Eq for Params {}

impl Params {
    /// Parameters holding `value`, serialized.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self> {
        serde_json::value::to_raw_value(value)
            .map(|raw| Params(Arc::from(raw)))
            .map_err(|e| Error::InvalidParams(format!("parameters cannot be serialized: {e}")))
    }

    /// Parameters from JSON text; the text must be one valid JSON value.
    pub fn from_json(text: impl Into<String>) -> Result<Self> {
        RawValue::from_string(text.into())
            .map(|raw| Params(Arc::from(raw)))
            .map_err(|e| Error::Internal(format!("stored parameters are not JSON: {e}")))
    }

    /// The parameters decoded as `T`. A mismatch is [`Error::ParamsShape`] with serde's message.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(self.0.get()).map_err(|e| Error::ParamsShape(e.to_string()))
    }

    /// The JSON text.
    pub fn as_json(&self) -> &str {
        self.0.get()
    }
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Params({})", self.0.get())
    }
}

/// The lowest priority a job may have.
pub const MIN_PRIORITY: i32 = -1000;

/// The highest priority a job may have.
pub const MAX_PRIORITY: i32 = 1000;

/// Checks a priority: from [`MIN_PRIORITY`] to [`MAX_PRIORITY`].
pub fn check_priority(priority: i32) -> Result<()> {
    if (MIN_PRIORITY..=MAX_PRIORITY).contains(&priority) {
        Ok(())
    } else {
        Err(Error::InvalidParams(format!(
            "priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}, got {priority}"
        )))
    }
}

/// The longest progress message, in characters; longer ones are cut.
pub const MAX_PROGRESS_MESSAGE: usize = 200;

/// How far a running job has come, as its render last reported
/// ([`Context::progress`](crate::Context::progress)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Percent done, 0 to 100.
    pub percent: f64,
    /// What it is doing; at most [`MAX_PROGRESS_MESSAGE`] characters.
    #[serde(default)]
    pub message: String,
}

impl Progress {
    /// A report: `percent` clamped to 0..=100 (a NaN reads as 0), `message` cut to
    /// [`MAX_PROGRESS_MESSAGE`] characters.
    pub fn new(percent: f64, message: impl Into<String>) -> Self {
        let mut message: String = message.into();
        if let Some((at, _)) = message.char_indices().nth(MAX_PROGRESS_MESSAGE) {
            message.truncate(at);
        }
        let percent = if percent.is_nan() {
            0.0
        } else {
            percent.clamp(0.0, 100.0)
        };
        Progress { percent, message }
    }
}

/// A job as stored and shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Its identifier.
    pub id: JobId,
    /// Which kind of job it is: the name its [`Renderer`](crate::Renderer) is registered under.
    pub kind: Name,
    /// The queue it waits in.
    pub queue: QueueName,
    /// Where it is in its life.
    pub status: JobStatus,
    /// Its priority within its queue: higher runs first, equal ones in submission order
    /// (from [`MIN_PRIORITY`] to [`MAX_PRIORITY`]; 0 unless given).
    #[serde(default)]
    pub priority: i32,
    /// When it may run, for a job submitted with a delay: it is not leased before then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<DateTime<Utc>>,
    /// What it asks for, as its kind reads it.
    pub params: Params,
    /// Attempts allowed before it is `failed`.
    pub max_attempts: u32,
    /// How many times a worker has taken it.
    pub attempts: u32,
    /// Identity (IP) of the worker that took it last; absent until taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<Name>,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
    /// When its last attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached `complete` or `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it failed (or why its last attempt failed, while it waits for a retry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The content type of its result, once it is `complete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_type: Option<Cow<'static, str>>,
    /// Its unique key (an idempotency key): a second submit with the same key to the same queue,
    /// while the key's scope holds, answers this job instead of storing another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
    /// How long its unique key holds, when it was submitted with a scope of its own (else for the
    /// backend's [`unique_ttl`](crate::QueueSettings::unique_ttl) while the job is kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_scope: Option<UniqueScope>,
    /// The longest one attempt may run, in seconds, when the job asks for less than the worker's
    /// limit (`HOLIDAPP_JOB_TIMEOUT_SECONDS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
    /// The last progress its render reported (in any attempt), once one has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
}

impl Job {
    /// A new job of `kind` in `queue`, in `submitted`, created at `now`, with a fresh id of that
    /// queue. The caller has checked `params` (the [`Jobs`](crate::Jobs) use cases do, with the
    /// kind's renderer).
    pub fn new(
        kind: impl Into<Name>,
        queue: QueueName,
        params: Params,
        max_attempts: u32,
        now: DateTime<Utc>,
    ) -> Self {
        Job {
            id: JobId::new_in(&queue),
            kind: kind.into(),
            queue,
            status: JobStatus::Submitted,
            priority: 0,
            run_at: None,
            params,
            max_attempts: max_attempts.max(1),
            attempts: 0,
            worker: None,
            created_at: now,
            started_at: None,
            finished_at: None,
            error: None,
            result_type: None,
            unique_key: None,
            unique_scope: None,
            timeout: None,
            progress: None,
        }
    }
}

/// How long a unique key holds its job. On the wire: `"active"`, or `{"for": seconds}` (an
/// integer, which may be written with a zero fraction).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UniqueScope {
    /// While the job waits or runs (`submitted` or `in progress`): once it is finished, cancelled
    /// or deleted, the key is free for a new job. (At most for the backend's
    /// [`unique_ttl`](crate::QueueSettings::unique_ttl) or a day, whichever is longer, so that
    /// keys of jobs lost to a crash cannot hold for ever.)
    Active,
    /// For this many seconds from the submit (1 to 31,622,400), while the job is kept.
    For(u32),
}

impl<'de> Deserialize<'de> for UniqueScope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct For {
            #[serde(rename = "for", deserialize_with = "crate::integer::deserialize")]
            seconds: u32,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Name(String),
            For(For),
        }
        match Wire::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "a unique scope is \"active\" or {\"for\": seconds}, seconds a whole number",
            )
        })? {
            Wire::Name(name) if name == "active" => Ok(UniqueScope::Active),
            Wire::Name(name) => Err(serde::de::Error::custom(format!(
                "unknown unique scope '{}'; expected \"active\" or {{\"for\": seconds}}",
                truncate(&name, 40)
            ))),
            Wire::For(For { seconds }) => Ok(UniqueScope::For(seconds)),
        }
    }
}

/// The longest [`UniqueScope::For`], in seconds (366 days).
pub const MAX_UNIQUE_FOR: u32 = 366 * 86_400;

impl UniqueScope {
    /// Checks the scope's duration.
    pub fn check(self) -> Result<()> {
        match self {
            UniqueScope::For(seconds) if !(1..=MAX_UNIQUE_FOR).contains(&seconds) => {
                Err(Error::InvalidParams(format!(
                    "a unique key holds for 1 to {MAX_UNIQUE_FOR} seconds, got {seconds}"
                )))
            }
            _ => Ok(()),
        }
    }

    /// How long the key is kept at most, given the backend's default `unique_ttl`.
    pub fn key_ttl(self, unique_ttl: std::time::Duration) -> std::time::Duration {
        match self {
            UniqueScope::Active => unique_ttl.max(std::time::Duration::from_secs(86_400)),
            UniqueScope::For(seconds) => std::time::Duration::from_secs(u64::from(seconds)),
        }
    }

    /// The scope as a job hash field keeps it: `active`, or `for:` and the seconds.
    pub fn to_field(self) -> String {
        match self {
            UniqueScope::Active => "active".to_owned(),
            UniqueScope::For(seconds) => format!("for:{seconds}"),
        }
    }

    /// The scope from its hash field.
    pub fn from_field(text: &str) -> Option<Self> {
        match text {
            "active" => Some(UniqueScope::Active),
            other => other
                .strip_prefix("for:")
                .and_then(|s| s.parse().ok())
                .map(UniqueScope::For),
        }
    }
}

/// The longest unique key, in characters.
pub const MAX_UNIQUE_KEY_LEN: usize = 256;

/// Checks a unique (idempotency) key: 1 to [`MAX_UNIQUE_KEY_LEN`] characters, none of them a
/// control character.
pub fn check_unique_key(key: &str) -> Result<()> {
    if key.is_empty()
        || key.chars().count() > MAX_UNIQUE_KEY_LEN
        || key.chars().any(char::is_control)
    {
        return Err(Error::InvalidParams(format!(
            "a unique key must be 1 to {MAX_UNIQUE_KEY_LEN} characters, none of them a control \
             character; got '{}'",
            truncate(key, 40).escape_debug()
        )));
    }
    Ok(())
}

/// Shortens `s` to at most `max` characters for an error message, so hostile input cannot make
/// error bodies arbitrarily large.
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_round_trip_carry_their_queue_tag_and_refuse_garbage() {
        let queue = QueueName::new("thumbnails").unwrap();
        for _ in 0..50 {
            let id = JobId::new_in(&queue);
            assert_eq!(id.to_string().parse::<JobId>().unwrap(), id);
            assert_eq!(id.tag(), queue.tag());
            assert_eq!(id.as_uuid().get_version_num(), 4);
            assert_eq!(id.as_uuid().get_variant(), uuid::Variant::RFC4122);
        }
        assert!("not-a-uuid".parse::<JobId>().is_err());
        let id = "2d6f2c39-3f0a-4d6e-9a4e-2d1c8a7f5e10";
        assert_eq!(
            id.to_uppercase().parse::<JobId>().unwrap(),
            id.parse::<JobId>().unwrap()
        );
        for other_spelling in [
            "2d6f2c393f0a4d6e9a4e2d1c8a7f5e10",
            "{2d6f2c39-3f0a-4d6e-9a4e-2d1c8a7f5e10}",
            "urn:uuid:2d6f2c39-3f0a-4d6e-9a4e-2d1c8a7f5e10",
        ] {
            assert!(other_spelling.parse::<JobId>().is_err(), "{other_spelling}");
        }
        let long = "x".repeat(10_000);
        let msg = long.parse::<JobId>().unwrap_err().to_string();
        assert!(msg.len() < 200, "error text is bounded: {}", msg.len());
    }

    #[test]
    fn queue_tags_are_stable_and_spread() {
        // Stable across releases: the tag is part of every stored job id and key.
        assert_eq!(QueueName::default_queue().tag(), 0x2d);
        let tags: std::collections::HashSet<u8> = (0..64)
            .map(|i| QueueName::new(format!("q{i}")).unwrap().tag())
            .collect();
        assert!(tags.len() > 40, "64 names gave only {} tags", tags.len());
    }

    #[test]
    fn names_are_checked() {
        for good in ["default", "a", "img.small", "A-1_b", &"q".repeat(64)] {
            assert!(QueueName::new(good).is_ok(), "{good}");
            assert!(check_kind_name(good).is_ok(), "{good}");
        }
        for bad in ["", "has space", "{tag}", "é", "a:b", &"q".repeat(65)] {
            assert!(QueueName::new(bad).is_err(), "{bad}");
            assert!(check_kind_name(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<QueueName>("\"no way\"").is_err());
        assert_eq!(
            serde_json::from_str::<QueueName>("\"fast\"")
                .unwrap()
                .as_str(),
            "fast"
        );
    }

    #[test]
    fn names_read_and_write_as_plain_text_and_clones_share_it() {
        let name = Name::from("thumb");
        assert_eq!(serde_json::to_string(&name).unwrap(), r#""thumb""#);
        assert_eq!(serde_json::from_str::<Name>(r#""thumb""#).unwrap(), name);
        assert_eq!(name, "thumb");
        assert_eq!("thumb", name);
        assert_eq!(name.to_string(), "thumb");
        assert_eq!(format!("{name:?}"), r#""thumb""#);
        let copy = name.clone();
        assert!(std::ptr::eq(copy.as_str(), name.as_str()));
    }

    #[test]
    fn params_keep_their_json_and_decode_typed() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Thumb {
            url: String,
            width: u32,
        }
        let params = Params::encode(&Thumb {
            url: "a".into(),
            width: 3,
        })
        .unwrap();
        assert_eq!(params.as_json(), r#"{"url":"a","width":3}"#);
        assert_eq!(
            params.decode::<Thumb>().unwrap(),
            Thumb {
                url: "a".into(),
                width: 3
            }
        );
        assert!(matches!(params.decode::<u32>(), Err(Error::ParamsShape(_))));
        assert!(Params::from_json("{").is_err());
        let job = Job::new("thumb", QueueName::default_queue(), params, 3, Utc::now());
        let json = serde_json::to_value(&job).unwrap();
        assert_eq!(json["params"]["width"], 3);
        let back: Job = serde_json::from_value(json).unwrap();
        assert_eq!(back, job);
    }
}
