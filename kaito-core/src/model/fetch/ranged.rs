//! One large file downloaded as several byte ranges at once, each written at its offset of the
//! part file; how far each range got is kept beside it (`PART.ranges`), so an interrupted
//! download resumes every range where it stopped. The whole file is hashed once at the end.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::http::{self, Download, Failure, Get};
use crate::error::Error;
use crate::model::store::sibling;

/// Bytes a range writes between two records of its progress.
const RECORD_EVERY: u64 = 16 << 20;

/// How far each range of a ranged download got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RangeState {
    size: u64,
    /// `[start, end)` and the bytes done from `start`.
    ranges: Vec<(u64, u64, u64)>,
}

impl RangeState {
    fn fresh(size: u64, count: usize) -> Self {
        let count = count.max(1) as u64;
        let step = size.div_ceil(count);
        let ranges = (0..count)
            .map(|k| (k * step, ((k + 1) * step).min(size), 0))
            .filter(|(start, end, _)| start < end)
            .collect();
        Self { size, ranges }
    }

    fn done(&self) -> u64 {
        self.ranges.iter().map(|r| r.2).sum()
    }

    fn is_consistent(&self, size: u64) -> bool {
        self.size == size && self.ranges.iter().all(|(s, e, d)| s < e && s + d <= *e)
    }
}

/// Where the ranges' progress of `part` is kept.
pub(crate) fn state_path(part: &Path) -> PathBuf {
    sibling(part, ".ranges")
}

/// Downloads the `size` bytes of `download` into `part` as `ranges` byte ranges at once (each
/// retried and resumed on its own), then checks the sha256 of the whole file. Returns it.
/// A part without a matching record of its ranges is started afresh; a digest mismatch deletes
/// the part and its record. A server that does not answer ranges is a [`Failure::Restart`].
pub(crate) fn download(
    agent: &ureq::Agent,
    download: &Download<'_>,
    size: u64,
    ranges: usize,
    part: &Path,
) -> Result<String, Failure> {
    let record = state_path(part);
    let recorded = std::fs::read(&record)
        .ok()
        .and_then(|b| serde_json::from_slice::<RangeState>(&b).ok())
        .filter(|s| s.is_consistent(size) && part.is_file());
    let state = match recorded {
        Some(state) => {
            tracing::info!(
                url = download.get.url,
                done = state.done(),
                of = size,
                ranges = state.ranges.len(),
                "resuming a ranged download"
            );
            state
        }
        None => {
            http::remove(part)?;
            RangeState::fresh(size, ranges)
        }
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(part)
        .and_then(|f| f.set_len(size).map(|()| f))
        .map_err(|e| http::write_failure(part, e))?;
    let shared = Shared {
        download,
        agent,
        file: &file,
        part,
        record: &record,
        size,
        state: Mutex::new(state.clone()),
        done: AtomicU64::new(state.done()),
        failed: AtomicBool::new(false),
    };
    download
        .progress
        .transferred(download.label, state.done(), Some(size));
    let results: Vec<Result<(), Failure>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..state.ranges.len())
            .map(|k| {
                let shared = &shared;
                scope.spawn(move || shared.fetch_range(k))
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| {
                    Err(Failure::Fatal(Error::Engine(
                        "a range download panicked".to_owned(),
                    )))
                })
            })
            .collect()
    });
    shared.save();
    let result = match results.into_iter().find(Result::is_err) {
        Some(Err(e)) => Err(e),
        _ => finish(download, &file, part, &record, state.done() > 0),
    };
    // Unusable, or deleted by a disk-full failure: the record goes with the part.
    let gone = match &result {
        Err(Failure::Restart { .. }) => true,
        Err(Failure::Fatal(_)) => !part.exists(),
        _ => false,
    };
    if gone {
        let _ = http::remove(part);
        let _ = http::remove(&record);
    }
    download.progress.finished(download.label, result.is_ok());
    result
}

/// Syncs, hashes and checks the complete part. A mismatch after a resume is a
/// [`Failure::Restart`] (the bytes kept may be another file's), else fatal.
fn finish(
    download: &Download<'_>,
    file: &File,
    part: &Path,
    record: &Path,
    resumed: bool,
) -> Result<String, Failure> {
    file.sync_all().map_err(|e| http::write_failure(part, e))?;
    let actual = crate::model::sha256_file(part)?;
    http::remove(record)?;
    match download.expected_sha256 {
        Some(expected) if !expected.eq_ignore_ascii_case(&actual) => {
            http::remove(part)?;
            let url = download.get.url.to_owned();
            let message = format!("sha256 mismatch: expected {expected}, got {actual}");
            if resumed {
                Err(Failure::Restart { url, message })
            } else {
                Err(Failure::Fatal(Error::Download { url, message }))
            }
        }
        _ => Ok(actual),
    }
}

struct Shared<'a> {
    download: &'a Download<'a>,
    agent: &'a ureq::Agent,
    file: &'a File,
    part: &'a Path,
    record: &'a Path,
    size: u64,
    state: Mutex<RangeState>,
    done: AtomicU64,
    failed: AtomicBool,
}

impl Shared<'_> {
    /// Range `k` until it is complete: retried with the bytes it still lacks.
    fn fetch_range(&self, k: usize) -> Result<(), Failure> {
        let mut attempt = 1;
        loop {
            if self.failed.load(Ordering::Relaxed) {
                return Ok(());
            }
            match self.try_range(k) {
                Ok(()) => return Ok(()),
                Err(Failure::Transient { url, message }) if attempt < http::MAX_ATTEMPTS => {
                    tracing::warn!(%url, range = k, attempt, "range interrupted ({message}); resuming");
                    std::thread::sleep(Duration::from_millis(250 << attempt));
                }
                Err(e) => {
                    self.failed.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
            attempt += 1;
        }
    }

    fn try_range(&self, k: usize) -> Result<(), Failure> {
        let (start, end, done) = self.lock().ranges[k];
        if start + done >= end {
            return Ok(());
        }
        let get = Get {
            range_from: start + done,
            range_end: Some(end - 1),
            ..self.download.get
        };
        let fetched = http::get(self.agent, &get)?;
        let url = fetched.url.clone();
        let resumed_at = (fetched.response.status().as_u16() == 206)
            .then(|| http::header(fetched.response.headers(), "content-range"))
            .flatten()
            .as_deref()
            .and_then(http::parse_content_range)
            .map(|(s, _)| s);
        if resumed_at != Some(start + done) {
            return Err(Failure::Restart {
                url,
                message: "the server does not answer byte ranges".to_owned(),
            });
        }
        let mut body = fetched.response.into_body().into_reader();
        let mut buf = vec![0u8; http::CHUNK];
        let mut offset = start + done;
        let mut unrecorded = 0u64;
        while offset < end {
            let want = ((end - offset) as usize).min(buf.len());
            let n = match body.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let message = e.to_string();
                    return Err(Failure::Transient { url, message });
                }
            };
            self.file
                .write_all_at(&buf[..n], offset)
                .map_err(|e| http::write_failure(self.part, e))?;
            offset += n as u64;
            unrecorded += n as u64;
            self.advance(k, offset - start, n as u64, unrecorded >= RECORD_EVERY);
            if unrecorded >= RECORD_EVERY {
                unrecorded = 0;
            }
        }
        if offset < end {
            let message = format!("range {k} closed at byte {offset} of {start}..{end}");
            return Err(Failure::Transient { url, message });
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RangeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Range `k` has `done` bytes; `n` more since the last call. `record`: write the state
    /// (after syncing the data it describes).
    fn advance(&self, k: usize, done: u64, n: u64, record: bool) {
        self.lock().ranges[k].2 = done;
        let total = self.done.fetch_add(n, Ordering::Relaxed) + n;
        self.download
            .progress
            .transferred(self.download.label, total, Some(self.size));
        if record {
            let _ = self.file.sync_data();
            self.save();
        }
    }

    /// Writes the ranges' progress beside the part (best effort: without it a resume starts over).
    fn save(&self) {
        let state = self.lock().clone();
        let tmp = sibling(self.record, ".tmp");
        let written = serde_json::to_vec(&state)
            .map_err(io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, self.record));
        if let Err(e) = written {
            tracing::debug!(record = %self.record.display(), error = %e, "cannot record the ranges' progress");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_file_once() {
        let s = RangeState::fresh(10, 4);
        assert_eq!(s.ranges, [(0, 3, 0), (3, 6, 0), (6, 9, 0), (9, 10, 0)]);
        let s = RangeState::fresh(2, 4);
        assert_eq!(s.ranges, [(0, 1, 0), (1, 2, 0)]);
        assert!(s.is_consistent(2) && !s.is_consistent(3));
        let bad = RangeState {
            size: 4,
            ranges: vec![(0, 4, 5)],
        };
        assert!(!bad.is_consistent(4));
    }
}
