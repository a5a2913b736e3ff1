//! The run's timeline: one bar per attempt, split into the wait in the queue (from the task
//! becoming ready to the attempt's start) and the running time.

use std::collections::HashMap;

use baton_store::{AttemptRecord, EventRecord, Millis};
use maud::{Markup, html};

use super::widgets::{duration, icon, task_href};

/// Bars drawn at most; a run with more attempts shows the first ones and says so.
const MAX_BARS: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bar {
    pub key: String,
    pub attempt: u32,
    pub state: String,
    /// When the task became ready for this attempt (its start when unknown).
    pub queued: Millis,
    pub start: Millis,
    /// `None` while running.
    pub end: Option<Millis>,
}

/// The bars of a run's attempts, in start order; queue waits come from the run's events
/// (the last `queued` state of the task before each attempt started).
pub(crate) fn bars(attempts: &[AttemptRecord], events: &[EventRecord]) -> Vec<Bar> {
    let mut queued: HashMap<&str, Vec<Millis>> = HashMap::new();
    for e in events {
        if e.kind == "task_state"
            && e.data.get("state").and_then(|s| s.as_str()) == Some("queued")
            && let Some(k) = &e.task_key
        {
            queued.entry(k.as_str()).or_default().push(e.at);
        }
    }
    let mut out: Vec<Bar> = attempts
        .iter()
        .map(|a| {
            let ready = queued
                .get(a.key.as_str())
                .and_then(|times| times.iter().rev().find(|&&t| t <= a.started_at))
                .copied()
                .unwrap_or(a.started_at);
            Bar {
                key: a.key.to_string(),
                attempt: a.attempt,
                state: a.state.to_string(),
                queued: ready,
                start: a.started_at,
                end: a.finished_at,
            }
        })
        .collect();
    out.sort_by(|a, b| (a.start, &a.key, a.attempt).cmp(&(b.start, &b.key, b.attempt)));
    out
}

#[expect(clippy::cast_precision_loss, reason = "display percentages")]
fn pct(part: Millis, whole: Millis) -> String {
    format!("{:.3}%", part.max(0) as f64 * 100.0 / whole.max(1) as f64)
}

/// `#gantt`: a row per attempt with a `.bar` made of a `.wait` and a `.run` segment.
pub(crate) fn render(run: &str, bars: &[Bar], now: Millis) -> Markup {
    let from = bars.iter().map(|b| b.queued).min().unwrap_or(now);
    let to = bars
        .iter()
        .map(|b| b.end.unwrap_or(now))
        .max()
        .unwrap_or(now)
        .max(from + 1);
    let span = to - from;
    html! {
        div #gantt data-start=(from) data-end=(to) {
            @if bars.is_empty() {
                p.empty { "No attempts yet." }
            }
            @for b in bars.iter().take(MAX_BARS) {
                @let end = b.end.unwrap_or(now);
                @let wait = b.start - b.queued;
                @let ran = end - b.start;
                div.gantt-row {
                    a.gantt-label href=(task_href(run, &b.key)) title=(b.key) {
                        (b.key) " #" (b.attempt)
                    }
                    div.gantt-track {
                        div class={ "bar state-" (b.state) } data-task=(b.key) data-attempt=(b.attempt)
                            style={ "left:" (pct(b.queued - from, span)) ";width:" (pct(end - b.queued, span)) }
                            title={ (b.key) " #" (b.attempt) ": " (b.state) ", waited " (duration(wait)) ", ran " (duration(ran)) } {
                            span.wait style={ "width:" (pct(wait, end - b.queued)) } {}
                            span.run style={ "width:" (pct(ran, end - b.queued)) } { (icon(&b.state)) }
                        }
                    }
                }
            }
            @if bars.len() > MAX_BARS {
                p.note { "Showing the first " (MAX_BARS) " of " (bars.len()) " attempts." }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use baton_core::ids::TaskKey;
    use baton_core::state::AttemptState;
    use serde_json::json;

    use super::*;

    fn attempt(key: &str, n: u32, start: Millis, end: Option<Millis>) -> AttemptRecord {
        AttemptRecord {
            key: TaskKey::from_string(key),
            attempt: n,
            state: if end.is_some() {
                AttemptState::Succeeded
            } else {
                AttemptState::Running
            },
            started_at: start,
            finished_at: end,
            exit_code: None,
            signal: None,
            rusage: None,
            log_path: String::new(),
            error: None,
            pid: None,
            owner: None,
            process: None,
        }
    }

    #[test]
    fn queue_wait_is_the_last_queued_state_before_the_start() {
        let queued = |at| EventRecord {
            seq: at,
            at,
            kind: "task_state".into(),
            task_key: Some(TaskKey::from_string("a")),
            attempt: None,
            data: json!({"state": "queued"}),
            epoch: None,
        };
        let b = bars(
            &[attempt("a", 1, 100, Some(200)), attempt("a", 2, 500, None)],
            &[queued(40), queued(450)],
        );
        assert_eq!((b[0].queued, b[0].start), (40, 100));
        assert_eq!((b[1].queued, b[1].end), (450, None));
        let html = render("r1", &b, 600).into_string();
        assert_eq!(html.matches("class=\"bar ").count(), 2);
        assert!(html.contains("class=\"wait\""));
    }
}
