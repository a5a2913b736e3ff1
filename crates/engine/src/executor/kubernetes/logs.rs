//! The pod's log, followed into the attempt's log as it is written. A follow the API server
//! or the network cuts is started again from where it stopped: lines come with the kubelet's
//! timestamps, the next follow asks for those since the last one's second (`sinceTime` has
//! no finer grain), and the lines already kept are dropped, so none is lost or doubled. Once
//! the container has ended, one last read without `follow` takes what a cut follow missed.

use std::time::Duration;

use futures_util::io::{AsyncBufRead, AsyncBufReadExt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::LogParams;
use tokio::sync::watch;

use super::errors::{message, status};
use super::job::CONTAINER;
use crate::executor::log_sink::LogWriter;

/// The pause before following again after a cut, doubled up to the longest.
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

/// What the attempt has seen of its pod, for the log's follower.
#[derive(Debug, Clone, Default)]
pub(super) struct Progress {
    pub pod: Option<String>,
    /// Its container runs, or ran: it has a log.
    pub started: bool,
    /// The attempt is over: read what is left and stop.
    pub ended: bool,
}

/// The last line kept: its timestamp and how many kept lines carry that very timestamp.
#[derive(Debug, Clone, Copy, Default)]
struct Position {
    last: Option<(Timestamp, usize)>,
}

impl Position {
    fn keep(&mut self, at: Timestamp) {
        self.last = match self.last {
            Some((t, n)) if t == at => Some((t, n + 1)),
            _ => Some((at, 1)),
        };
    }
}

/// Copies the log of the pod `progress` names into `log` until the attempt is over.
pub(super) async fn pump(
    pods: Api<Pod>,
    mut progress: watch::Receiver<Progress>,
    mut log: LogWriter,
) -> Result<(), String> {
    let pod = loop {
        let now = progress.borrow_and_update().clone();
        match (now.pod, now.started, now.ended) {
            // An attempt stopped before its start was seen may have written already: one
            // read says (a container that never started has no log, and says so).
            (Some(pod), true, _) | (Some(pod), _, true) => break pod,
            (None, _, true) => return log.finish().await,
            _ => {}
        }
        if progress.changed().await.is_err() {
            return log.finish().await;
        }
    };
    let mut position = Position::default();
    let mut pause = FIRST_PAUSE;
    loop {
        let last_pass = progress.borrow().ended;
        let params = LogParams {
            container: Some(CONTAINER.into()),
            follow: !last_pass,
            timestamps: true,
            since_time: position.last.map(|(t, _)| whole_second(t)),
            ..Default::default()
        };
        match pods.log_stream(&pod, &params).await {
            Ok(stream) => {
                match copy(stream, &mut position, &mut log, &mut progress, !last_pass).await {
                    Ok(true) => pause = FIRST_PAUSE,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::debug!(pod, error = %e, "the pod's log stream was cut; following again")
                    }
                }
            }
            // A pod gone took its log along; one that never started has none.
            Err(e) if last_pass && matches!(status(&e), Some(400 | 404)) => {}
            Err(e) if last_pass => {
                let line = format!(
                    "[baton] cannot read the rest of pod `{pod}`'s log: {}\n",
                    message(&e)
                );
                log.write(line.as_bytes()).await;
            }
            Err(e) => {
                tracing::debug!(pod, error = %message(&e), "cannot follow the pod's log; trying again")
            }
        }
        if last_pass {
            break;
        }
        // Cut, or ended with its container: either way the next read says which.
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = progress.changed() => {}
        }
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
    log.finish().await
}

/// Copies one stream's lines past `position` into `log`, until it ends or the attempt is
/// over (the last read takes the rest); whether it brought any new line.
async fn copy(
    stream: impl AsyncBufRead,
    position: &mut Position,
    log: &mut LogWriter,
    progress: &mut watch::Receiver<Progress>,
    following: bool,
) -> std::io::Result<bool> {
    let mut stream = std::pin::pin!(stream);
    // The stream starts at the second of the last kept line: those before it and the ones
    // kept at its very timestamp come again.
    let replay = position.last;
    let mut replayed = 0;
    let mut any = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        let flush = log.flush_due();
        tokio::select! {
            read = stream.read_until(b'\n', &mut line) => { read?; }
            () = flush => {
                log.flush().await;
                // What the cancelled read took is in `line` already: read on after it.
                stream.read_until(b'\n', &mut line).await?;
            }
            // A line cut here was not kept: the last read takes it whole.
            changed = progress.changed(), if following => {
                if changed.is_err() || progress.borrow().ended {
                    return Ok(any);
                }
                continue;
            }
        }
        if line.is_empty() {
            return Ok(any);
        }
        let (at, text) = split_timestamp(&line);
        if let (Some(at), Some((last, kept))) = (at, replay) {
            if at < last {
                continue;
            }
            if at == last && replayed < kept {
                replayed += 1;
                continue;
            }
        }
        if let Some(at) = at {
            position.keep(at);
        }
        log.write(text).await;
        if !text.ends_with(b"\n") {
            log.write(b"\n").await;
        }
        any = true;
    }
}

/// The second `at` falls in: `kube` rounds `sinceTime` to the nearest second, which past
/// the half would skip the rest of the last line's second.
fn whole_second(at: Timestamp) -> Timestamp {
    let round = jiff::TimestampRound::new()
        .smallest(jiff::Unit::Second)
        .mode(jiff::RoundMode::Floor);
    at.round(round).unwrap_or(at)
}

/// `2026-01-02T03:04:05.123456789Z text` → the timestamp and the text.
fn split_timestamp(line: &[u8]) -> (Option<Timestamp>, &[u8]) {
    let Some(space) = line.iter().position(|&b| b == b' ') else {
        return (None, line);
    };
    match std::str::from_utf8(&line[..space])
        .ok()
        .and_then(|t| t.parse::<Timestamp>().ok())
    {
        Some(at) => (Some(at), &line[space + 1..]),
        None => (None, line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_split_off() {
        let (at, text) = split_timestamp(b"2026-01-02T03:04:05.123456789Z hello world\n");
        assert_eq!(
            at.map(|t| t.to_string()).as_deref(),
            Some("2026-01-02T03:04:05.123456789Z")
        );
        assert_eq!(text, b"hello world\n");
        assert_eq!(split_timestamp(b"no stamp\n"), (None, &b"no stamp\n"[..]));
        let late: Timestamp = "2026-01-02T03:04:05.9Z".parse().expect("timestamp");
        assert_eq!(whole_second(late).to_string(), "2026-01-02T03:04:05Z");
    }
}
