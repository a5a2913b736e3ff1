//! The fake cluster's Job controller and kubelet: a created Job gets its pod, and the pod's
//! container runs as a local process group in a directory of its own, its output the pod's
//! log, its termination-message file read back at its end; a deadline or a delete stops it.

use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

use super::{Kind, Shared, remove_job};

/// The Job controller and the kubelet: makes the pod and runs its container.
pub(super) async fn kubelet(shared: Arc<Shared>, job: Value) {
    let name = job["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let template = &job["spec"]["template"];
    let pod_name = {
        let mut c = shared.lock();
        c.pod_seq += 1;
        format!("{name}-{:05x}", c.pod_seq)
    };
    let mut labels = template["metadata"]["labels"].clone();
    labels["batch.kubernetes.io/job-name"] = json!(name);
    labels["job-name"] = json!(name);
    labels["controller-uid"] = job["metadata"]["uid"].clone();
    let container = template["spec"]["containers"][0].clone();
    let image = container["image"].as_str().unwrap_or_default().to_owned();
    shared.emit(
        Kind::Pod,
        "ADDED",
        json!({
            "metadata": {"name": pod_name, "labels": labels,
                         "annotations": template["metadata"]["annotations"]},
            "spec": template["spec"],
            "status": {"phase": "Pending"},
        }),
    );
    shared.modify(Kind::Job, &name, |j| {
        j["status"] = json!({"active": 1, "startTime": jiff::Timestamp::now().to_string()});
    });
    let waiting = |reason: &str, message: &str| {
        json!({"phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{"name": "task", "image": image, "imageID": "", "ready": false,
                "restartCount": 0, "state": {"waiting": {"reason": reason, "message": message}}}]})
    };
    if image.contains("unschedulable") {
        shared.modify(Kind::Pod, &pod_name, |p| {
            p["status"] = json!({"phase": "Pending", "conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
            }]});
        });
        return;
    }
    if image.contains("pull-fails") {
        let why = format!(
            "rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": not found"
        );
        shared.modify(Kind::Pod, &pod_name, |p| {
            p["status"] = waiting("ErrImagePull", &why)
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        shared.modify(Kind::Pod, &pod_name, |p| {
            p["status"] = waiting(
                "ImagePullBackOff",
                &format!("Back-off pulling image \"{image}\""),
            );
        });
        return;
    }
    run_container(shared, &name, &pod_name, &job, &container, &image).await;
}

async fn run_container(
    shared: Arc<Shared>,
    name: &str,
    pod_name: &str,
    job: &Value,
    container: &Value,
    image: &str,
) {
    let dir = shared.dir.join(pod_name);
    std::fs::create_dir_all(&dir).expect("pod dir");
    let message_path = container["terminationMessagePath"]
        .as_str()
        .unwrap_or("/dev/termination-log")
        .to_owned();
    let message_file = dir.join("termination-log");
    std::fs::write(&message_file, "").expect("termination file");
    let argv: Vec<String> = container["command"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let (reader, writer) = std::io::pipe().expect("pipe");
    let mut command = tokio::process::Command::new(argv.first().map_or("true", String::as_str));
    command
        .args(argv.iter().skip(1))
        .current_dir(&dir)
        .env_clear()
        // The image's own.
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &dir)
        .env("HOSTNAME", pod_name)
        .stdin(std::process::Stdio::null())
        .stdout(writer.try_clone().expect("pipe"))
        .stderr(writer)
        .process_group(0);
    for var in container["env"].as_array().into_iter().flatten() {
        let value = var["value"].as_str().unwrap_or_default();
        // The termination-message path, as the kubelet mounts it, is a file of the pod's.
        let value = if value == message_path {
            message_file.display().to_string()
        } else {
            value.to_owned()
        };
        command.env(var["name"].as_str().unwrap_or_default(), value);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let reason = "StartError";
            finish(&shared, name, pod_name, 128, reason, &e.to_string(), image);
            return;
        }
    };
    drop(command);
    let pgid = i32::try_from(child.id().unwrap_or_default()).unwrap_or_default();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<u64>();
    shared
        .lock()
        .running
        .insert(name.to_owned(), (pgid, Some(stop_tx)));
    shared.lock().logs.entry(pod_name.to_owned()).or_default();
    let copier = {
        let shared = Arc::clone(&shared);
        let pod = pod_name.to_owned();
        std::thread::spawn(move || {
            let mut reader = std::io::BufReader::new(reader);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                let text = String::from_utf8_lossy(&line)
                    .trim_end_matches('\n')
                    .to_owned();
                {
                    let mut c = shared.lock();
                    let log = c.logs.entry(pod.clone()).or_default();
                    let mut at = jiff::Timestamp::now();
                    if let Some((last, _)) = log.lines.last()
                        && at <= *last
                    {
                        at = *last + jiff::SignedDuration::from_nanos(1);
                    }
                    log.lines.push((at, text));
                }
                shared.bump();
                line.clear();
            }
        })
    };
    let started = jiff::Timestamp::now().to_string();
    shared.modify(Kind::Pod, pod_name, |p| {
        p["status"] = json!({"phase": "Running", "startTime": started,
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "task", "image": image, "imageID": "", "ready": true,
                "restartCount": 0, "state": {"running": {"startedAt": started}}}]});
    });
    let deadline = job["spec"]["activeDeadlineSeconds"].as_u64();
    let past_deadline = async {
        match deadline {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => std::future::pending().await,
        }
    };
    enum End {
        Exited(i32),
        Deleted,
        Deadline,
    }
    let end = tokio::select! {
        status = child.wait() => End::Exited(status.ok().and_then(|s| s.code()).unwrap_or(137)),
        grace = stop_rx => {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
            let grace = Duration::from_secs(grace.unwrap_or(0));
            if tokio::time::timeout(grace, child.wait()).await.is_err() {
                let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
                let _ = child.wait().await;
            }
            End::Deleted
        }
        () = past_deadline => {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
            let _ = child.wait().await;
            End::Deadline
        }
    };
    // Descendants that kept the pipe open go with the pod.
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    let _ = tokio::task::spawn_blocking(move || copier.join()).await;
    let deleting = {
        let mut c = shared.lock();
        c.running.remove(name);
        if let Some(log) = c.logs.get_mut(pod_name) {
            log.done = true;
        }
        c.deleting.contains(name)
    };
    shared.bump();
    if deleting {
        remove_job(&shared, name);
        return;
    }
    match end {
        End::Deleted => remove_job(&shared, name),
        End::Deadline => {
            if let Some(pod) = shared.get(Kind::Pod, pod_name) {
                shared.emit(Kind::Pod, "DELETED", pod);
            }
            shared.modify(Kind::Job, name, |j| {
                j["status"] = json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True",
                    "reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline"}]});
            });
        }
        End::Exited(code) => {
            let mut message = std::fs::read_to_string(&message_file).unwrap_or_default();
            message.truncate(4096);
            let (code, reason) = match code {
                _ if image.contains("oom") => (137, "OOMKilled"),
                0 => (0, "Completed"),
                code => (code, "Error"),
            };
            finish(&shared, name, pod_name, code, reason, &message, image);
        }
    }
}

fn finish(
    shared: &Shared,
    name: &str,
    pod: &str,
    code: i32,
    reason: &str,
    message: &str,
    image: &str,
) {
    let now = jiff::Timestamp::now().to_string();
    shared.modify(Kind::Pod, pod, |p| {
        p["status"] = json!({"phase": if code == 0 { "Succeeded" } else { "Failed" },
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{"name": "task", "image": image, "imageID": "", "ready": false,
                "restartCount": 0, "state": {"terminated": {"exitCode": code, "reason": reason,
                    "message": message, "finishedAt": now}}}]});
    });
    shared.modify(Kind::Job, name, |j| {
        j["status"] = if code == 0 {
            json!({"succeeded": 1, "completionTime": now,
                   "conditions": [{"type": "Complete", "status": "True"}]})
        } else {
            json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True",
                "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]})
        };
    });
}
