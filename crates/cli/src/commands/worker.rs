//! `baton worker` (an agent that runs tasks for a server) and `baton workers` (a server's
//! workers, and the tasks waiting for one).

use std::path::Path;

use baton_api::worker::WorkerList;
use baton_core::model::check_worker_label;

use super::inspect::{table, timestamp};
use crate::cli::{WorkerArgs, WorkersArgs};
use crate::client::Client;
use crate::error::{ExitStatus, ExpectedError};
use crate::output::Output;

pub(crate) async fn work(
    home: &Path,
    server: Option<&str>,
    args: &WorkerArgs,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    let server = server.ok_or_else(|| {
        ExpectedError::Usage(
            "`baton worker` works for a server: pass --server URL (or set BATON_SERVER)".into(),
        )
    })?;
    let secret_file = args.secret_file.as_deref().ok_or_else(|| {
        ExpectedError::Usage(
            "`baton worker` needs the server's worker secret: pass --secret-file PATH, the file \
             the server's `[workers] secret_file` names"
                .into(),
        )
    })?;
    let secret = crate::backend::read_text_secret(secret_file, "worker secret")?;
    for label in &args.labels {
        check_worker_label(label).map_err(ExpectedError::Usage)?;
    }
    if args.slots == 0 {
        return Err(ExpectedError::Usage(
            "`--slots` must be at least 1: a worker without slots runs nothing".into(),
        ));
    }
    let client = baton_worker::Client::new(server, &secret, crate::client::ca_file())
        .map_err(|e| ExpectedError::Usage(e.to_string()))?;
    let host = baton_engine::executor::host_name().to_owned();
    let name = args.name.clone().unwrap_or_else(|| host.clone());
    let cpu = match args.cpus {
        Some(c) if !c.is_finite() || c <= 0.0 => {
            return Err(ExpectedError::Usage(format!(
                "`--cpus` must be above zero, not {c}"
            )));
        }
        Some(c) => c,
        #[allow(clippy::cast_precision_loss)] // a count of CPUs
        None => std::thread::available_parallelism().map_or(1, std::num::NonZero::get) as f64,
    };
    let memory_bytes = match &args.memory {
        Some(m) => Some(baton_core::compile::parse_memory(m).map_err(|e| {
            ExpectedError::Usage(format!("`--memory`: {e} (hint: `8Gi`, `512Mi`)"))
        })?),
        None => host_memory(),
    };
    let settings = baton_worker::AgentSettings {
        name: name.clone(),
        labels: args.labels.clone(),
        slots: args.slots,
        cpu: Some(cpu),
        memory_bytes,
        gpu: args.gpus,
        dir: args.dir.clone().unwrap_or_else(|| home.join("worker")),
        drain_grace: args.drain_grace.as_std(),
        host,
    };
    out.print(&format!(
        "baton worker `{name}` working for {server} (labels: {}; {} slot(s), {cpu} cpu, {} gpu)\n",
        if args.labels.is_empty() {
            "none".to_owned()
        } else {
            args.labels.join(", ")
        },
        args.slots,
        args.gpus
    ))?;
    baton_worker::run(
        client,
        crate::backend::executors(),
        settings,
        baton_control::shutdown::shutdown_signal(),
    )
    .await
    .map_err(|e| ExpectedError::Usage(e.to_string()))?;
    Ok(ExitStatus::Success)
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn host_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

pub(crate) async fn list(
    server: Option<&str>,
    args: &WorkersArgs,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    let server = server.ok_or_else(|| {
        ExpectedError::Usage(
            "workers connect to a server: pass --server URL (or set BATON_SERVER)".into(),
        )
    })?;
    let list: WorkerList = Client::new(server)?.get(&["workers"], &[]).await?;
    if args.json {
        out.print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        ))?;
        return Ok(ExitStatus::Success);
    }
    out.print(&render(&list))?;
    Ok(ExitStatus::Success)
}

/// What a worker offers its tasks' `resources`: `16 cpu, 64Gi, 2 gpu`.
fn offers(w: &baton_api::worker::Worker) -> String {
    let mut parts = Vec::new();
    if let Some(c) = w.cpu {
        parts.push(format!("{c} cpu"));
    }
    if let Some(m) = w.memory_bytes {
        parts.push(format!("{}Gi", m >> 30));
    }
    parts.push(format!("{} gpu", w.gpu));
    parts.join(", ")
}

fn render(list: &WorkerList) -> String {
    let mut text = String::new();
    if list.workers.is_empty() {
        text.push_str("no workers\n(hint: `baton worker --server URL --secret-file PATH --labels …` on the hosts that run tasks)\n");
    } else {
        let mut t = table();
        t.set_header([
            "name",
            "state",
            "labels",
            "slots",
            "offers",
            "running",
            "last heartbeat",
            "host",
        ]);
        for w in &list.workers {
            t.add_row([
                w.name.clone(),
                w.state.clone(),
                w.labels.join(","),
                format!("{}/{}", w.running.len(), w.slots),
                offers(w),
                w.running
                    .iter()
                    .map(|a| format!("{} {}#{}", a.run, a.task, a.attempt))
                    .collect::<Vec<_>>()
                    .join("\n"),
                timestamp(w.last_heartbeat),
                w.host.clone(),
            ]);
        }
        text.push_str(&format!("{t}\n"));
    }
    if !list.waiting.is_empty() {
        text.push_str(&format!(
            "\n{} task(s) waiting for a worker:\n",
            list.waiting.len()
        ));
        for w in &list.waiting {
            text.push_str(&format!("  {} {}: {}\n", w.run, w.task, w.reason));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use baton_api::worker::{WaitingAttempt, Worker, WorkerAttempt, WorkerList};
    use baton_core::ids::{RunId, TaskKey, WorkerId};

    #[test]
    fn workers_and_waiting_tasks_render_as_a_table_and_a_list() {
        let list = WorkerList {
            workers: vec![Worker {
                id: WorkerId::from_string("gpu-1-0a1b2c3d"),
                name: "gpu-1".into(),
                labels: vec!["gpu".into(), "eu".into()],
                slots: 4,
                cpu: Some(16.0),
                memory_bytes: Some(64 << 30),
                gpu: 2,
                state: "live".into(),
                version: "0.1.0".into(),
                host: "gpu-host-1".into(),
                registered_at: 1_796_300_000_000,
                last_heartbeat: 1_796_300_003_000,
                running: vec![WorkerAttempt {
                    run: RunId::from_string("01m8y4tss6h9s1z72gfpxxfvke"),
                    task: TaskKey::from_string("train[eu]"),
                    attempt: 2,
                }],
            }],
            waiting: vec![WaitingAttempt {
                run: RunId::from_string("01m8y56hq2pe8jdnpeemdfam0b"),
                task: TaskKey::from_string("render"),
                attempt: 1,
                labels: vec!["arm64".into()],
                since: 1_796_300_001_000,
                reason: "waiting for a worker (labels arm64): none is connected".into(),
            }],
        };
        insta::assert_snapshot!(super::render(&list));
        let empty = WorkerList {
            workers: Vec::new(),
            waiting: Vec::new(),
        };
        insta::assert_snapshot!("no_workers", super::render(&empty));
    }
}
