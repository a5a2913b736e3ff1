//! Where attempts' logs live: files under the home (the embedded default), or chunk rows in
//! the database (so every replica of a PostgreSQL deployment reads any attempt's log,
//! whichever host ran it). Writers append at the log's end; readers read bounded pieces from
//! a byte offset, so a log of any size streams in constant memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use baton_core::ids::{RunId, TaskKey};

use crate::lease::Lease;

/// The most a single [`LogStore::read`] hands out; readers ask for at most this.
pub const MAX_READ: usize = 256 * 1024;

/// `[logs] max_bytes_per_attempt` when unset: 100 MiB.
pub const DEFAULT_MAX_BYTES_PER_ATTEMPT: u64 = 100 * 1024 * 1024;

/// Where logs go (`[logs] store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStoreKind {
    /// Files under the home: one disk, the embedded default.
    Files,
    /// Chunk rows in the database, readable from every replica.
    Database,
}

/// The `[logs]` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    /// `None`: files with SQLite, the database with PostgreSQL.
    pub store: Option<LogStoreKind>,
    /// How much of one attempt's output is kept; the rest is counted and dropped.
    pub max_bytes_per_attempt: u64,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            store: None,
            max_bytes_per_attempt: DEFAULT_MAX_BYTES_PER_ATTEMPT,
        }
    }
}

/// Which attempt's log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttemptLog {
    pub run: RunId,
    pub key: TaskKey,
    pub attempt: u32,
}

/// Why a log cannot be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    #[error("cannot create log directory `{}`: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create log file `{}`: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write log file `{}`: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read log file `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The attempt ended, or its run has another owner now: a stale writer's output is not
    /// kept.
    #[error(
        "attempt {attempt} of `{key}` in run `{run}` no longer takes output\n(hint: it ended, or another process owns the run now)"
    )]
    Stale {
        run: RunId,
        key: TaskKey,
        attempt: u32,
    },
    #[error(transparent)]
    Database(#[from] crate::Error),
    /// The log lives on another host (a worker's output goes to its control plane), which
    /// did not answer: the same append may work later.
    #[error("cannot send the log to `{to}`: {reason}")]
    Unreachable { to: String, reason: String },
}

impl LogError {
    /// Whether the same append may work later: the database connection broke, and an append
    /// that landed anyway is recognised by its offset when it is tried again.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(e) => e.is_transient(),
            Self::Unreachable { .. } => true,
            _ => false,
        }
    }
}

/// Attempts' logs: appended by whoever runs the attempt, read by anyone.
#[async_trait]
pub trait LogStore: Send + Sync + std::fmt::Debug + 'static {
    /// What the attempt's record names as its log (a file's path, or where in the database).
    fn location(&self, log: &AttemptLog) -> String;

    /// Appends `bytes` to the log, whose length before them is `at`. A log holds nothing until
    /// its first append (a silent attempt has none). `lease`, when given, is the run's owner's:
    /// a store that can check it refuses ([`LogError::Stale`]) the output of an attempt that
    /// is not the running one of a run `lease` still holds.
    async fn append(
        &self,
        log: &AttemptLog,
        lease: Option<&Lease>,
        at: u64,
        bytes: &[u8],
    ) -> Result<(), LogError>;

    /// Up to `max` bytes (at most [`MAX_READ`]) of the log from byte `offset`; empty at its
    /// end or when it has no output yet.
    async fn read(&self, log: &AttemptLog, offset: u64, max: usize) -> Result<Vec<u8>, LogError>;

    /// How many bytes the log holds now.
    async fn len(&self, log: &AttemptLog) -> Result<u64, LogError>;
}

/// A file name for a task key: what is not a letter, digit or one of `._-[]` becomes `_`.
pub fn sanitize(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-[]".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Logs as files under `<home>/logs/<run>/<key>.<attempt>.log`. Appends are not fenced: a
/// file has no owner to check, and a stale writer on one disk is the local executor of a
/// process that is going away.
#[derive(Debug, Clone)]
pub struct FileLogStore {
    dir: PathBuf,
}

impl FileLogStore {
    pub fn new(home: &Path) -> Self {
        Self {
            dir: home.join("logs"),
        }
    }

    fn path(&self, log: &AttemptLog) -> PathBuf {
        self.dir.join(log.run.as_str()).join(format!(
            "{}.{}.log",
            sanitize(log.key.as_str()),
            log.attempt
        ))
    }
}

async fn open_append(path: &Path) -> Result<tokio::fs::File, LogError> {
    let mut options = tokio::fs::OpenOptions::new();
    options.create(true).append(true);
    match options.open(path).await {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|source| LogError::CreateDir {
                        path: dir.to_path_buf(),
                        source,
                    })?;
            }
            options.open(path).await
        }
        other => other,
    }
    .map_err(|source| LogError::Create {
        path: path.to_path_buf(),
        source,
    })
}

#[async_trait]
impl LogStore for FileLogStore {
    fn location(&self, log: &AttemptLog) -> String {
        self.path(log).display().to_string()
    }

    async fn append(
        &self,
        log: &AttemptLog,
        _lease: Option<&Lease>,
        _at: u64,
        bytes: &[u8],
    ) -> Result<(), LogError> {
        use tokio::io::AsyncWriteExt;
        let path = self.path(log);
        let mut file = open_append(&path).await?;
        let write_err = |source| LogError::Write {
            path: path.clone(),
            source,
        };
        file.write_all(bytes).await.map_err(write_err)?;
        file.flush().await.map_err(write_err)
    }

    async fn read(&self, log: &AttemptLog, offset: u64, max: usize) -> Result<Vec<u8>, LogError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let path = self.path(log);
        let read_err = |source| LogError::Read {
            path: path.clone(),
            source,
        };
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(read_err(e)),
        };
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(read_err)?;
        let mut buf = vec![0; max.min(MAX_READ)];
        let mut filled = 0;
        while filled < buf.len() {
            let n = file.read(&mut buf[filled..]).await.map_err(read_err)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        buf.truncate(filled);
        Ok(buf)
    }

    async fn len(&self, log: &AttemptLog) -> Result<u64, LogError> {
        let path = self.path(log);
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(source) => Err(LogError::Read { path, source }),
        }
    }
}

/// The log store in use over the one a home used before (`[logs] store` changed): new output
/// goes to `current`, and a log `current` has none of is read from `earlier`, so switching
/// either way leaves every earlier attempt's log readable.
#[derive(Debug, Clone)]
pub struct LayeredLogStore {
    pub current: Arc<dyn LogStore>,
    pub earlier: Arc<dyn LogStore>,
}

#[async_trait]
impl LogStore for LayeredLogStore {
    fn location(&self, log: &AttemptLog) -> String {
        self.current.location(log)
    }

    async fn append(
        &self,
        log: &AttemptLog,
        lease: Option<&Lease>,
        at: u64,
        bytes: &[u8],
    ) -> Result<(), LogError> {
        self.current.append(log, lease, at, bytes).await
    }

    async fn read(&self, log: &AttemptLog, offset: u64, max: usize) -> Result<Vec<u8>, LogError> {
        let read = self.current.read(log, offset, max).await?;
        if read.is_empty() && self.current.len(log).await? == 0 {
            return self.earlier.read(log, offset, max).await;
        }
        Ok(read)
    }

    async fn len(&self, log: &AttemptLog) -> Result<u64, LogError> {
        match self.current.len(log).await? {
            0 => self.earlier.len(log).await,
            n => Ok(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> AttemptLog {
        AttemptLog {
            run: RunId::from_string("r1"),
            key: TaskKey::from_string("fan[0]/a b"),
            attempt: 2,
        }
    }

    #[tokio::test]
    async fn files_are_created_on_the_first_append_and_read_in_bounded_pieces() {
        let home = tempfile::tempdir().expect("temp dir");
        let logs = FileLogStore::new(home.path());
        let log = log();
        assert_eq!(
            logs.location(&log),
            home.path()
                .join("logs/r1/fan[0]_a_b.2.log")
                .display()
                .to_string()
        );
        assert_eq!(logs.len(&log).await.expect("len"), 0);
        assert!(logs.read(&log, 0, 10).await.expect("read").is_empty());
        assert!(!home.path().join("logs").exists());
        let big = vec![b'x'; MAX_READ * 2 + 10];
        logs.append(&log, None, 0, &big[..MAX_READ])
            .await
            .expect("append");
        logs.append(&log, None, MAX_READ as u64, &big[MAX_READ..])
            .await
            .expect("append");
        assert_eq!(logs.len(&log).await.expect("len"), big.len() as u64);
        let mut offset = 0;
        let mut pieces = 0;
        loop {
            let piece = logs.read(&log, offset, usize::MAX).await.expect("read");
            if piece.is_empty() {
                break;
            }
            assert!(piece.len() <= MAX_READ);
            offset += piece.len() as u64;
            pieces += 1;
        }
        assert_eq!((offset, pieces), (big.len() as u64, 3));
        assert_eq!(logs.read(&log, 5, 3).await.expect("read"), b"xxx");
    }
}
