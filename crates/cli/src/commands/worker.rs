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
    let host = nix_hostname();
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
        crate::commands::shutdown_signal(),
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

fn nix_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
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
