//! What a person sees while a run executes: a live view on a terminal, timestamped lines
//! otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use baton_core::ids::TaskKey;
use baton_core::state::TaskState;
use baton_engine::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc;

/// Consumes progress until the channel closes. `total` is the number of tasks known at start
/// (fan-out instances add to it as they appear).
pub(crate) async fn watch(mut rx: mpsc::UnboundedReceiver<Progress>, total: usize) {
    if std::io::stderr().is_terminal() {
        terminal(&mut rx, total).await;
    } else {
        plain(&mut rx).await;
    }
}

fn clock(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let day = secs.rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day / 3600,
        day / 60 % 60,
        day % 60,
        ms.rem_euclid(1000)
    )
}

fn describe(state: TaskState, attempt: u32, error: Option<&str>) -> String {
    let mut s = state.to_string();
    if attempt > 0 && (matches!(state, TaskState::Running | TaskState::Retrying) || attempt > 1) {
        s.push_str(&format!(" (attempt {attempt})"));
    }
    if let Some(e) = error {
        s.push_str(&format!(": {}", e.lines().next().unwrap_or(e)));
    }
    s
}

/// A sub-pipeline task's child run, taken up or ended.
fn child_line(
    key: &TaskKey,
    run: &baton_core::ids::RunId,
    pipeline: &baton_core::ids::PipelineId,
    state: baton_core::state::RunState,
    at: i64,
) -> String {
    if state.is_final() {
        format!("{} {key} sub-pipeline run {run} {state}", clock(at))
    } else {
        format!("{} {key} runs {pipeline} as run {run}", clock(at))
    }
}

async fn plain(rx: &mut mpsc::UnboundedReceiver<Progress>) {
    use std::io::Write;
    let mut stderr = std::io::stderr();
    while let Some(p) = rx.recv().await {
        let line = match p {
            Progress::Task {
                key,
                state,
                attempt,
                at,
                error,
            } => {
                // Queued is a moment between decided and started; the event log keeps it.
                if matches!(state, TaskState::Pending | TaskState::Queued) {
                    continue;
                }
                format!(
                    "{} {key} {}",
                    clock(at),
                    describe(state, attempt, error.as_deref())
                )
            }
            Progress::Run { state, at } => format!("{} run {state}", clock(at)),
            Progress::Cached { key, from, at } => format!(
                "{} {key} reuses the cached result of {} in run {}",
                clock(at),
                from.task,
                from.run
            ),
            Progress::Child {
                key,
                run,
                pipeline,
                state,
                at,
            } => child_line(&key, &run, &pipeline, state, at),
        };
        let _ = writeln!(stderr, "{line}");
    }
}

async fn terminal(rx: &mut mpsc::UnboundedReceiver<Progress>, total: usize) {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let overall = multi.add(ProgressBar::new(total as u64));
    overall.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} tasks done {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    overall.enable_steady_tick(Duration::from_millis(200));
    let spinner = ProgressStyle::with_template("  {spinner} {prefix} {msg} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let mut bars: HashMap<TaskKey, ProgressBar> = HashMap::new();
    let mut seen: std::collections::HashSet<TaskKey> = std::collections::HashSet::new();
    while let Some(p) = rx.recv().await {
        match p {
            Progress::Task {
                key,
                state,
                attempt,
                error,
                ..
            } => {
                if seen.insert(key.clone()) && seen.len() > total {
                    overall.inc_length(1);
                }
                if matches!(
                    state,
                    TaskState::Running | TaskState::WaitingApproval | TaskState::Retrying
                ) {
                    let bar = bars.entry(key.clone()).or_insert_with(|| {
                        let b = multi.add(ProgressBar::new_spinner());
                        b.set_style(spinner.clone());
                        b.set_prefix(key.to_string());
                        b.enable_steady_tick(Duration::from_millis(120));
                        b
                    });
                    bar.set_message(describe(state, attempt, error.as_deref()));
                }
                if state.is_final() {
                    if let Some(bar) = bars.remove(&key) {
                        bar.finish_and_clear();
                        multi.remove(&bar);
                    }
                    overall.inc(1);
                    if state != TaskState::Succeeded {
                        let _ = multi.println(format!(
                            "  {key} {}",
                            describe(state, attempt, error.as_deref())
                        ));
                    }
                }
            }
            Progress::Run { state, .. } => overall.set_message(format!("run {state}")),
            // Its success follows; the summary marks it `(cached)`.
            Progress::Cached { .. } => {}
            Progress::Child {
                key,
                run,
                pipeline,
                state,
                at,
            } => {
                let _ = multi.println(format!(
                    "  {}",
                    child_line(&key, &run, &pipeline, state, at)
                ));
            }
        }
    }
    overall.finish_and_clear();
    let _ = multi.clear();
}
