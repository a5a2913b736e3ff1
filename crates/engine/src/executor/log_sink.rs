//! An attempt's output on its way into its [`LogStore`]: batched (a chatty task does not make a
//! write per line) and capped (a task printing without end cannot fill the disk or the
//! database). Past the cap the output is still read, so the task never blocks on a full pipe,
//! and counted: the log ends with a line saying how much was dropped.

use std::sync::Arc;
use std::time::Duration;

use baton_core::ids::PipelineId;
use baton_store::{AttemptLog, DEFAULT_MAX_BYTES_PER_ATTEMPT, FileLogStore, Lease, LogStore};
use tokio::time::Instant;

/// A write to the store once this much is waiting...
const FLUSH_BYTES: usize = 64 * 1024;
/// ...or once the oldest waiting byte is this old.
const FLUSH_AFTER: Duration = Duration::from_millis(200);
/// How long a write that lost its database connection is tried again (as the dispatcher's
/// commits are), the pause before the first retry, and the longest pause.
const RETRY_FOR: Duration = Duration::from_secs(60);
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Where attempts' logs go (`[logs]`).
#[derive(Debug, Clone)]
pub struct Logs {
    pub store: Arc<dyn LogStore>,
    /// How much of one attempt's output is kept.
    pub max_bytes_per_attempt: u64,
}

impl Logs {
    /// Files under `home`, with the default cap.
    pub fn files(home: &std::path::Path) -> Self {
        Self {
            store: Arc::new(FileLogStore::new(home)),
            max_bytes_per_attempt: DEFAULT_MAX_BYTES_PER_ATTEMPT,
        }
    }

    /// Where the output of `log` goes, written on behalf of the holder of `lease`.
    pub fn sink(&self, log: AttemptLog, lease: Option<Lease>) -> LogSink {
        LogSink {
            store: Arc::clone(&self.store),
            log,
            lease,
            max_bytes: self.max_bytes_per_attempt,
            pipeline: None,
        }
    }
}

/// Where one attempt's output goes, and how much of it is kept.
#[derive(Debug, Clone)]
pub struct LogSink {
    pub store: Arc<dyn LogStore>,
    pub log: AttemptLog,
    /// The run's lease: a store that can check it refuses the output of an owner that lost
    /// the run.
    pub lease: Option<Lease>,
    pub max_bytes: u64,
    /// Whose output it is, to label what the cap drops.
    pub pipeline: Option<PipelineId>,
}

/// Bytes of attempts' output the cap (`[logs] max_bytes_per_attempt`) did not keep.
pub const LOG_BYTES_DROPPED_TOTAL: &str = "baton_log_bytes_dropped_total";

impl LogSink {
    /// What the attempt's record names as its log.
    pub fn location(&self) -> String {
        self.store.location(&self.log)
    }

    /// The same sink, its drops counted under `pipeline`.
    #[must_use]
    pub fn of_pipeline(mut self, pipeline: PipelineId) -> Self {
        self.pipeline = Some(pipeline);
        self
    }
}

/// Writes one attempt's output into its sink.
#[derive(Debug)]
pub(crate) struct LogWriter {
    sink: LogSink,
    /// Kept, not yet in the store.
    pending: Vec<u8>,
    /// When the oldest pending byte arrived.
    since: Option<Instant>,
    /// Bytes already in the store.
    stored: u64,
    /// Bytes kept (stored or pending), at most the cap.
    kept: u64,
    dropped: u64,
    last: Option<u8>,
    failure: Option<String>,
}

impl LogWriter {
    pub(crate) fn new(sink: LogSink) -> Self {
        Self {
            sink,
            pending: Vec::new(),
            since: None,
            stored: 0,
            kept: 0,
            dropped: 0,
            last: None,
            failure: None,
        }
    }

    /// Takes a piece of output: keeps what fits under the cap, writing to the store when
    /// enough is waiting.
    pub(crate) async fn write(&mut self, bytes: &[u8]) {
        let room =
            usize::try_from(self.sink.max_bytes.saturating_sub(self.kept)).unwrap_or(usize::MAX);
        let take = bytes.len().min(room);
        self.dropped += (bytes.len() - take) as u64;
        if take == 0 || self.failure.is_some() {
            return;
        }
        self.pending.extend_from_slice(&bytes[..take]);
        self.since.get_or_insert_with(Instant::now);
        self.kept += take as u64;
        self.last = bytes[..take].last().copied();
        if self.pending.len() >= FLUSH_BYTES {
            self.flush().await;
        }
    }

    /// When what is waiting must be written, if anything is.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.since.map(|t| t + FLUSH_AFTER)
    }

    /// Resolves when what is waiting must be written; never while nothing waits. Taken
    /// before a `select!` that also writes (the future holds no borrow of the writer).
    pub(crate) fn flush_due(&self) -> impl std::future::Future<Output = ()> + use<> {
        let due = self.due();
        async move {
            match due {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        }
    }

    /// Writes what is waiting. After a failure the rest is dropped: one error is reported.
    pub(crate) async fn flush(&mut self) {
        self.since = None;
        if self.pending.is_empty() {
            return;
        }
        let bytes = std::mem::take(&mut self.pending);
        if self.failure.is_some() {
            return;
        }
        let give_up = Instant::now() + RETRY_FOR;
        let mut pause = RETRY_FIRST;
        loop {
            let sink = &self.sink;
            match sink
                .store
                .append(&sink.log, sink.lease.as_ref(), self.stored, &bytes)
                .await
            {
                Ok(()) => {
                    self.stored += bytes.len() as u64;
                    return;
                }
                // The task waits on a full pipe meanwhile: slower, but nothing is lost.
                Err(e) if e.is_transient() && Instant::now() + pause < give_up => {
                    tracing::warn!(error = %e, "cannot write a log chunk; trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_MAX);
                }
                Err(e) => {
                    self.failure = Some(e.to_string());
                    return;
                }
            }
        }
    }

    /// Writes the rest, with the truncation line if output was dropped; the first failure to
    /// keep output, if any.
    pub(crate) async fn finish(mut self) -> Result<(), String> {
        if self.dropped > 0 {
            let newline = if self.last.is_some_and(|b| b != b'\n') {
                "\n"
            } else {
                ""
            };
            let marker = format!(
                "{newline}[baton: log truncated after {} bytes; {} more bytes dropped]\n",
                self.kept, self.dropped
            );
            self.pending.extend_from_slice(marker.as_bytes());
            self.count_dropped();
        }
        self.flush().await;
        self.failure.map_or(Ok(()), Err)
    }

    /// Tells the metrics (the server's scrape) and baton's log what the cap dropped: an
    /// operator sees a chatty task without reading its log to the end.
    fn count_dropped(&self) {
        let (namespace, pipeline) = self.sink.pipeline.as_ref().map_or_else(
            || (String::new(), String::new()),
            |p| (p.namespace.to_string(), p.name.to_string()),
        );
        tracing::warn!(
            run = %self.sink.log.run,
            task = %self.sink.log.key,
            attempt = self.sink.log.attempt,
            kept = self.kept,
            dropped = self.dropped,
            "log truncated at `[logs] max_bytes_per_attempt`"
        );
        metrics::describe_counter!(
            LOG_BYTES_DROPPED_TOTAL,
            metrics::Unit::Bytes,
            "Output of attempts past `[logs] max_bytes_per_attempt`, not kept in their logs."
        );
        metrics::counter!(LOG_BYTES_DROPPED_TOTAL, "namespace" => namespace, "pipeline" => pipeline)
            .increment(self.dropped);
    }
}

#[cfg(test)]
mod tests {
    use baton_core::ids::{RunId, TaskKey};

    use super::*;

    fn sink(home: &std::path::Path, max_bytes: u64) -> LogSink {
        Logs {
            max_bytes_per_attempt: max_bytes,
            ..Logs::files(home)
        }
        .sink(
            AttemptLog {
                run: RunId::from_string("r"),
                key: TaskKey::from_string("t"),
                attempt: 1,
            },
            None,
        )
    }

    async fn read_all(sink: &LogSink) -> String {
        let mut all = Vec::new();
        loop {
            let piece = sink
                .store
                .read(&sink.log, all.len() as u64, usize::MAX)
                .await
                .expect("read");
            if piece.is_empty() {
                return String::from_utf8(all).expect("text");
            }
            all.extend_from_slice(&piece);
        }
    }

    #[tokio::test]
    async fn output_past_the_cap_is_counted_and_marked() {
        let home = tempfile::tempdir().expect("temp dir");
        let sink = sink(home.path(), 10);
        let mut w = LogWriter::new(sink.clone());
        w.write(b"12345").await;
        w.write(b"6789abcdef").await;
        w.write(&[b'x'; 100_000]).await;
        w.finish().await.expect("kept");
        assert_eq!(
            read_all(&sink).await,
            "123456789a\n[baton: log truncated after 10 bytes; 100005 more bytes dropped]\n"
        );
    }

    #[test]
    fn what_the_cap_drops_is_counted_by_pipeline() {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshot = recorder.snapshotter();
        let home = tempfile::tempdir().expect("temp dir");
        let ops = baton_core::ids::Namespace::new("ops").expect("namespace");
        let sink =
            sink(home.path(), 4).of_pipeline(PipelineId::parse("chatty", &ops).expect("pipeline"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        metrics::with_local_recorder(&recorder, || {
            runtime.block_on(async {
                let mut w = LogWriter::new(sink);
                w.write(b"0123456789").await;
                w.finish().await.expect("kept");
            });
        });
        let counted: Vec<_> = snapshot
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let labels: Vec<String> = key
                    .key()
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                (key.key().name().to_owned(), labels, value)
            })
            .collect();
        assert_eq!(
            counted,
            vec![(
                LOG_BYTES_DROPPED_TOTAL.to_owned(),
                vec!["namespace=ops".to_owned(), "pipeline=chatty".to_owned()],
                metrics_util::debugging::DebugValue::Counter(6)
            )]
        );
    }

    #[tokio::test]
    async fn output_is_written_in_batches() {
        let home = tempfile::tempdir().expect("temp dir");
        let sink = sink(home.path(), u64::MAX);
        let mut w = LogWriter::new(sink.clone());
        w.write(b"line\n").await;
        assert!(w.due().is_some());
        assert_eq!(read_all(&sink).await, "", "a line waits for more");
        w.write(&vec![b'y'; FLUSH_BYTES]).await;
        assert_eq!(w.due(), None, "enough waiting is written at once");
        assert_eq!(read_all(&sink).await.len(), FLUSH_BYTES + 5);
        w.finish().await.expect("kept");
    }
}
