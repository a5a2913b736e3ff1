//! `baton runs`, `baton show`, `baton logs`: reading runs back from the home or a server.

use baton_api::{Attempt, Task};
use baton_core::ids::TaskKey;
use baton_core::state::{AttemptState, RunState};
use baton_store::{Millis, RunFilter};
use comfy_table::{ContentArrangement, Table, presets};
use serde_json::json;

use crate::backend::{Backend, RunView};
use crate::cli::{LogsArgs, RunsArgs, ShowArgs};
use crate::error::{ExitStatus, ExpectedError};
use crate::output::Output;

/// Rows shown in a run's task table before the rest are summarised.
const MAX_ROWS: usize = 60;

fn duration(from: Option<Millis>, to: Option<Millis>) -> String {
    match (from, to) {
        (Some(a), Some(b)) => {
            let ms = (b - a).max(0);
            if ms < 1000 {
                format!("{ms}ms")
            } else if ms < 60_000 {
                format!("{:.1}s", ms as f64 / 1000.0)
            } else {
                let s = ms / 1000;
                format!("{}m{:02}s", s / 60, s % 60)
            }
        }
        _ => "-".into(),
    }
}

pub(crate) fn timestamp(ms: Millis) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

pub(crate) fn table() -> Table {
    let mut t = Table::new();
    t.load_style(presets::UTF8_HORIZONTAL_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic);
    t
}

/// Tasks in pipeline order, each fan-out's instances right after it.
fn in_pipeline_order(mut tasks: Vec<Task>) -> Vec<Task> {
    let order: std::collections::HashMap<String, i64> = tasks
        .iter()
        .filter(|t| t.key.as_str() == t.task_id)
        .map(|t| (t.task_id.clone(), t.position))
        .collect();
    tasks.sort_by_key(|t| {
        (
            order.get(&t.task_id).copied().unwrap_or(t.position),
            t.key.as_str() != t.task_id,
            t.position,
        )
    });
    tasks
}

/// Reads `--since` / `--until`: an RFC 3339 instant, or a duration meaning that long before
/// `now`.
fn instant(
    flag: &str,
    text: Option<&str>,
    now: jiff::Timestamp,
) -> Result<Option<Millis>, ExpectedError> {
    let Some(text) = text else {
        return Ok(None);
    };
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(Some(t.as_millisecond()));
    }
    match text.parse::<baton_core::duration::Duration>() {
        Ok(ago) => Ok(Some(
            now.as_millisecond()
                .saturating_sub(i64::try_from(ago.as_millis()).unwrap_or(i64::MAX)),
        )),
        Err(_) => Err(ExpectedError::Usage(format!(
            "`{flag} {text}` is neither an RFC 3339 instant nor a duration\n(hint: e.g. 2026-03-29T03:00:00Z, or 2h for two hours ago)"
        ))),
    }
}

pub(crate) async fn runs(
    backend: &Backend,
    args: &RunsArgs,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    let state = match &args.state {
        Some(s) => Some(RunState::from_name(s).ok_or_else(|| {
            ExpectedError::Usage(format!(
                "unknown run state `{s}`\n(hint: queued, running, succeeded, failed, cancelled)"
            ))
        })?),
        None => None,
    };
    let now = jiff::Timestamp::now();
    let runs = backend
        .runs(
            args.pipeline.as_deref(),
            RunFilter {
                state,
                limit: args.limit,
                created_after: instant("--since", args.since.as_deref(), now)?,
                created_before: instant("--until", args.until.as_deref(), now)?,
                ..RunFilter::default()
            },
        )
        .await?;
    if args.json {
        out.print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&runs).unwrap_or_default()
        ))?;
        return Ok(ExitStatus::Success);
    }
    if runs.is_empty() {
        out.print("no runs yet\n")?;
        return Ok(ExitStatus::Success);
    }
    let mut t = table();
    t.set_header(["run", "pipeline", "state", "trigger", "created", "duration"]);
    for r in &runs {
        t.add_row([
            r.id.to_string(),
            format!("{}/{}", r.namespace, r.pipeline),
            r.state.to_string(),
            r.trigger.clone(),
            timestamp(r.created_at),
            duration(r.started_at, r.finished_at),
        ]);
    }
    out.print(&format!("{t}\n"))?;
    Ok(ExitStatus::Success)
}

pub(crate) fn run_json(view: &RunView) -> serde_json::Value {
    let RunView {
        run,
        tasks,
        attempts,
        children,
        ..
    } = view;
    let tasks: Vec<serde_json::Value> = tasks
        .iter()
        .map(|t| {
            let mine: Vec<&Attempt> = attempts.iter().filter(|a| a.key == t.key).collect();
            let mut v = serde_json::to_value(t).unwrap_or_default();
            v["attempt_records"] = serde_json::to_value(mine).unwrap_or_default();
            v
        })
        .collect();
    let mut doc = serde_json::to_value(run).unwrap_or_default();
    doc["tasks"] = json!(tasks);
    doc["children"] = json!(children);
    doc
}

/// A task's state, and whether its result came from the cache.
fn state_label(task: &Task) -> String {
    if task.cached_from.is_some() {
        format!("{} (cached)", task.state)
    } else {
        task.state.to_string()
    }
}

/// Prints a run: a header, then a row per task (or per attempt with `detail`).
pub(crate) fn print_run(
    view: &RunView,
    out: &mut Output,
    detail: bool,
) -> Result<(), ExpectedError> {
    let run = &view.run;
    let tasks = in_pipeline_order(view.tasks.clone());
    let attempts = &view.attempts;
    let mut text = String::new();
    if detail {
        text.push_str(&format!(
            "run:      {}\npipeline: {}/{} ({})\nstate:    {}\ntrigger:  {}\nparams:   {}\ncreated:  {}\nduration: {}\n",
            run.id,
            run.namespace,
            run.pipeline,
            &run.version[..run.version.len().min(12)],
            run.state,
            run.trigger,
            run.params,
            timestamp(run.created_at),
            duration(run.started_at, run.finished_at),
        ));
        if let Some(e) = &run.error {
            text.push_str(&format!("error:    {e}\n"));
        }
        if run.no_cache {
            text.push_str("cache:    not used (--no-cache)\n");
        }
        if let Some(p) = &run.parent {
            text.push_str(&format!(
                "parent:   run {} task {} (attempt {})\n",
                p.run, p.task, p.attempt
            ));
        }
    }
    let mut t = table();
    if detail {
        t.set_header([
            "task",
            "attempt",
            "state",
            "exit",
            "duration",
            "cpu user/sys",
            "max rss",
            "error",
        ]);
    } else {
        t.set_header(["task", "state", "attempts", "duration", "error"]);
    }
    let mut rows = 0;
    for task in &tasks {
        if rows >= MAX_ROWS {
            break;
        }
        let mine: Vec<&Attempt> = attempts.iter().filter(|a| a.key == task.key).collect();
        if detail && !mine.is_empty() {
            for a in mine {
                let exit = match (a.exit_code, a.signal) {
                    (Some(c), _) => c.to_string(),
                    (None, Some(s)) => format!("signal {s}"),
                    _ => "-".into(),
                };
                let (cpu, rss) = a.rusage.map_or(("-".into(), "-".into()), |r| {
                    (
                        format!(
                            "{:.2}s/{:.2}s",
                            r.cpu_user_ms as f64 / 1000.0,
                            r.cpu_sys_ms as f64 / 1000.0
                        ),
                        format!("{:.1} MiB", r.max_rss_kb as f64 / 1024.0),
                    )
                });
                t.add_row([
                    task.key.to_string(),
                    a.attempt.to_string(),
                    a.state.to_string(),
                    exit,
                    duration(Some(a.started_at), a.finished_at),
                    cpu,
                    rss,
                    a.error
                        .clone()
                        .or_else(|| {
                            (a.state == AttemptState::Running)
                                .then(|| task.waiting_for.clone())
                                .flatten()
                        })
                        .unwrap_or_default(),
                ]);
                rows += 1;
            }
        } else {
            t.add_row([
                task.key.to_string(),
                state_label(task),
                task.attempts.to_string(),
                duration(task.started_at, task.finished_at),
                task.error
                    .clone()
                    .or_else(|| task.waiting_for.clone())
                    .unwrap_or_default(),
            ]);
            rows += 1;
        }
    }
    text.push_str(&format!("{t}\n"));
    if detail {
        text.push_str(&artifacts_text(&tasks, attempts));
        for task in &tasks {
            if let Some(from) = &task.cached_from {
                text.push_str(&format!(
                    "{} reused the cached result of {} in run {}\n",
                    task.key, from.task, from.run
                ));
            }
        }
        for child in &view.children {
            if let Some(p) = &child.parent {
                text.push_str(&format!(
                    "{} attempt {} started run {} of {}/{} ({})\n",
                    p.task, p.attempt, child.id, child.namespace, child.pipeline, child.state
                ));
            }
        }
    }
    if tasks.len() > rows {
        text.push_str(&format!(
            "... and {} more tasks (baton show {} --json for all)\n",
            tasks.len() - rows,
            run.id
        ));
    }
    if !detail {
        text.push_str(&format!(
            "run {} {} in {}\n",
            run.id,
            run.state,
            duration(run.started_at, run.finished_at)
        ));
    }
    out.print(&text)?;
    Ok(())
}

/// What each attempt uploaded, task by task: path, size, digest.
fn artifacts_text(tasks: &[Task], attempts: &[Attempt]) -> String {
    let mut text = String::new();
    for task in tasks {
        for a in attempts
            .iter()
            .filter(|a| a.key == task.key && !a.artifacts.is_empty())
        {
            text.push_str(&format!(
                "{} attempt {} uploaded {} artifact{}:\n",
                task.key,
                a.attempt,
                a.artifacts.len(),
                if a.artifacts.len() == 1 { "" } else { "s" }
            ));
            for f in &a.artifacts {
                text.push_str(&format!(
                    "  {}  {}  {}\n",
                    f.path,
                    crate::output::bytes(f.size),
                    f.digest
                ));
            }
        }
    }
    text
}

pub(crate) async fn show(
    backend: &Backend,
    args: &ShowArgs,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    let view = backend.run_view(&args.run).await?;
    if args.json {
        out.print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&run_json(&view)).unwrap_or_default()
        ))?;
    } else {
        print_run(&view, out, true)?;
    }
    Ok(ExitStatus::Success)
}

pub(crate) async fn logs(
    backend: &Backend,
    args: &LogsArgs,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    let view = backend.run_view(&args.run).await?;
    let id = &view.run.id;
    let Some(task) = &args.task else {
        for t in &in_pipeline_order(view.tasks.clone()) {
            if let Some(a) = view
                .attempts
                .iter()
                .filter(|a| a.key == t.key)
                .max_by_key(|a| a.attempt)
            {
                out.print(&format!("==> {} (attempt {}) <==\n", t.key, a.attempt))?;
                backend.print_log(id, &t.key, Some(a.attempt), out).await?;
            }
        }
        return Ok(ExitStatus::Success);
    };
    let key = TaskKey::from_string(task.clone());
    // The latest attempt now, so following it stays on it even if a retry starts another.
    let attempt = args.attempt.or_else(|| {
        view.attempts
            .iter()
            .filter(|a| a.key == key)
            .map(|a| a.attempt)
            .max()
    });
    if args.follow {
        backend.follow_log(id, &key, attempt, out).await?;
    } else {
        backend.print_log(id, &key, args.attempt, out).await?;
    }
    Ok(ExitStatus::Success)
}
