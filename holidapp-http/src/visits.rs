//! The visits log: one line per `GET /`, kept bounded on disk by rotation, read back by its tail.
//!
//! The log file never grows past [`ROTATE_AT`]: the append that would pass it first renames the
//! file to `<path>.1` (replacing the one before), so the disk holds at most twice that. `GET
//! /visits` answers the newest [`TAIL_BYTES`] of it, from the rotated file too when the current
//! one is shorter, cut at a line boundary.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::error::ApiError;

/// The size at which the log is rotated, in bytes.
pub(crate) const ROTATE_AT: u64 = 1024 * 1024;

/// The most bytes `GET /visits` answers.
pub(crate) const TAIL_BYTES: u64 = 64 * 1024;

/// The rotated log beside `path`: `<path>.1`.
fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> ApiError {
    ApiError::Internal(format!("{what} {}: {e}", path.display()))
}

/// Appends `line` to the log at `path`, rotating it first when it would pass [`ROTATE_AT`].
/// Callers serialize appends.
pub(crate) async fn append(path: &Path, line: &str) -> Result<(), ApiError> {
    let size = match tokio::fs::metadata(path).await {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(io_error("reading", path, e)),
    };
    if size > 0 && size + line.len() as u64 > ROTATE_AT {
        tokio::fs::rename(path, rotated(path))
            .await
            .map_err(|e| io_error("rotating", path, e))?;
    }
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
        .map_err(|e| io_error("opening", path, e))?;
    file.write_all(line.as_bytes())
        .await
        .map_err(|e| io_error("writing", path, e))?;
    file.flush().await.map_err(|e| io_error("writing", path, e))
}

/// The last `max` bytes of the file at `path` (all of it when shorter; nothing when absent).
async fn last_bytes(path: &Path, max: u64) -> Result<Vec<u8>, ApiError> {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("opening", path, e)),
    };
    let size = file
        .metadata()
        .await
        .map_err(|e| io_error("reading", path, e))?
        .len();
    let start = size.saturating_sub(max);
    file.seek(SeekFrom::Start(start))
        .await
        .map_err(|e| io_error("reading", path, e))?;
    let mut bytes = Vec::with_capacity((size - start) as usize);
    file.take(max)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| io_error("reading", path, e))?;
    Ok(bytes)
}

/// The newest lines of the log, at most [`TAIL_BYTES`], oldest first: the end of the rotated
/// file, then the current one, starting at a whole line.
pub(crate) async fn tail(path: &Path) -> Result<Vec<u8>, ApiError> {
    let current = last_bytes(path, TAIL_BYTES).await?;
    let room = TAIL_BYTES - current.len() as u64;
    let mut log = if room > 0 {
        last_bytes(&rotated(path), room).await?
    } else {
        Vec::new()
    };
    log.extend_from_slice(&current);
    // A cut in the middle of a line drops that line's start.
    let whole = log.len() as u64 == TAIL_BYTES && !log.is_empty();
    if whole && let Some(newline) = log.iter().position(|&b| b == b'\n') {
        log.drain(..=newline);
    }
    Ok(log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_log_rotates_and_the_tail_stays_bounded_and_whole_lined() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("visits.log");
        assert!(tail(&path).await.unwrap().is_empty());
        // A log just under the rotation size, of numbered 20-byte lines.
        let full = ROTATE_AT / 20;
        let text: String = (0..full).map(|i| format!("visit {i:013}\n")).collect();
        tokio::fs::write(&path, text).await.unwrap();
        for i in full..full + 3 {
            append(&path, &format!("visit {i:013}\n")).await.unwrap();
        }
        let current = tokio::fs::metadata(&path).await.unwrap().len();
        let old = tokio::fs::metadata(rotated(&path)).await.unwrap().len();
        assert_eq!(current, 60, "the append past the size started a new file");
        assert!(old <= ROTATE_AT, "{old}");
        let log = String::from_utf8(tail(&path).await.unwrap()).unwrap();
        assert!(log.len() as u64 <= TAIL_BYTES);
        assert!(log.starts_with("visit "), "starts at a whole line");
        assert!(log.ends_with(&format!("visit {:013}\n", full + 2)));
        let numbers: Vec<u64> = log
            .lines()
            .map(|l| l["visit ".len()..].parse().unwrap())
            .collect();
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "in order");
        assert!(numbers.len() as u64 >= TAIL_BYTES / 20 - 1);
    }

    #[tokio::test]
    async fn a_short_log_spans_the_rotated_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("visits.log");
        tokio::fs::write(rotated(&path), "a\nb\n").await.unwrap();
        append(&path, "c\n").await.unwrap();
        assert_eq!(tail(&path).await.unwrap(), b"a\nb\nc\n");
    }
}
