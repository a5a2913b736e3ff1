//! What the Job and its pod say of an attempt, event by event: still waiting (and for how
//! long, for the limits on a failing pull and a pod no node takes), started, or ended and how.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use tokio::time::Instant;

use super::errors::PodFailure;
use super::job::CONTAINER;
use crate::executor::{Outcome, docker};

/// Waiting reasons of a container whose image may yet come (a registry hiccup, a rate
/// limit), until `image_pull_limit`.
const PULLING: [&str; 2] = ["ErrImagePull", "ImagePullBackOff"];
/// Waiting reasons that may yet clear (a Secret or ConfigMap created late), as long.
const CONFIG: [&str; 2] = ["CreateContainerConfigError", "CreateContainerError"];
/// Waiting reasons no wait can mend.
const HOPELESS: [&str; 2] = ["InvalidImageName", "ErrImageNeverPull"];

/// The pause before a failed or cut watch starts again: short at first (an attempt's end
/// must not wait out kube's backoff for controllers, which grows to 30 s and resets only
/// after two quiet minutes), doubled up to [`RECONNECT_LONGEST`] while failures follow one
/// another, and back to the start at the next event.
#[derive(Debug, Clone)]
pub(super) struct Reconnect {
    next: Duration,
}

const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_LONGEST: Duration = Duration::from_secs(5);

impl Default for Reconnect {
    fn default() -> Self {
        Self {
            next: RECONNECT_FIRST,
        }
    }
}

impl Iterator for Reconnect {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let pause = self.next;
        self.next = (self.next * 2).min(RECONNECT_LONGEST);
        Some(pause)
    }
}

impl kube::runtime::utils::Backoff for Reconnect {
    fn reset(&mut self) {
        self.next = RECONNECT_FIRST;
    }
}

/// How the attempt's container ended, as the kubelet told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Terminated {
    pub exit_code: i32,
    pub oom_killed: bool,
    /// The termination message: what the task wrote to `$BATON_OUTPUTS`.
    pub message: String,
}

impl Terminated {
    fn of(t: &ContainerStateTerminated) -> Self {
        Self {
            exit_code: t.exit_code,
            oom_killed: t.reason.as_deref() == Some("OOMKilled"),
            message: t.message.clone().unwrap_or_default(),
        }
    }

    pub(super) fn outcome(&self, memory: Option<u64>) -> Outcome {
        docker::end_outcome(i64::from(self.exit_code), self.oom_killed, memory)
    }
}

/// Where the attempt is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seen {
    Waiting,
    /// The container runs: its log can be followed.
    Started,
    Ended(Ended),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ended {
    Terminated(Terminated),
    Failed(PodFailure),
    /// The Job's `activeDeadlineSeconds` passed (the control plane's own timer is the first
    /// to fire; this one fires when they race, or where baton lost its clock).
    DeadlineExceeded,
}

/// Since when something has gone wrong, and what the cluster says of it.
#[derive(Debug, Clone)]
struct Since {
    at: Instant,
    reason: String,
    message: String,
}

/// Follows one attempt's Job and pod.
#[derive(Debug)]
pub(super) struct Tracker {
    job: String,
    image: String,
    image_pull_limit: Duration,
    unschedulable_limit: Duration,
    pulling: Option<Since>,
    unschedulable: Option<Since>,
}

impl Tracker {
    pub(super) fn new(job: &str, image: &str, settings: &super::KubernetesSettings) -> Self {
        Self {
            job: job.to_owned(),
            image: image.to_owned(),
            image_pull_limit: settings.image_pull_limit,
            unschedulable_limit: settings.unschedulable_limit,
            pulling: None,
            unschedulable: None,
        }
    }

    /// What a new state of the pod says.
    pub(super) fn pod(&mut self, pod: &Pod, now: Instant) -> Seen {
        let Some(status) = &pod.status else {
            return Seen::Waiting;
        };
        let unschedulable = status.conditions.iter().flatten().find(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        });
        match unschedulable {
            Some(c) => {
                self.unschedulable.get_or_insert_with(|| Since {
                    at: now,
                    reason: "Unschedulable".into(),
                    message: c.message.clone().unwrap_or_default(),
                });
            }
            None => self.unschedulable = None,
        }
        let container = status
            .container_statuses
            .iter()
            .flatten()
            .find(|s| s.name == CONTAINER);
        let state = container.and_then(|s| s.state.as_ref());
        if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
            return Seen::Ended(Ended::Terminated(Terminated::of(t)));
        }
        if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
            let reason = w.reason.clone().unwrap_or_default();
            let message = w.message.clone().unwrap_or_default();
            if HOPELESS.contains(&reason.as_str()) {
                return Seen::Ended(Ended::Failed(self.pull_failure(reason, message, None)));
            }
            if PULLING.contains(&reason.as_str()) || CONFIG.contains(&reason.as_str()) {
                let since = self.pulling.get_or_insert_with(|| Since {
                    at: now,
                    reason: reason.clone(),
                    message: message.clone(),
                });
                // The latest words, the first time.
                since.reason = reason;
                since.message = message;
                return self.check(now).map_or(Seen::Waiting, Seen::Ended);
            }
        }
        if state.is_some_and(|s| s.running.is_some()) {
            self.pulling = None;
            return Seen::Started;
        }
        // A pod that failed as a whole, its container never ending on its own.
        if status.phase.as_deref() == Some("Failed") {
            let reason = status.reason.clone().unwrap_or_default();
            if reason == "DeadlineExceeded" {
                return Seen::Ended(Ended::DeadlineExceeded);
            }
            return Seen::Ended(Ended::Failed(PodFailure::JobFailed {
                job: self.job.clone(),
                reason,
                message: status.message.clone().unwrap_or_default(),
            }));
        }
        self.check(now).map_or(Seen::Waiting, Seen::Ended)
    }

    /// What a new state of the Job says: only its failure counts, a success is read from
    /// its pod (which holds the exit code and outputs).
    pub(super) fn job(&self, job: &Job) -> Option<Ended> {
        let failed = job
            .status
            .as_ref()?
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Failed" && c.status == "True")?;
        let reason = failed.reason.clone().unwrap_or_default();
        Some(if reason == "DeadlineExceeded" {
            Ended::DeadlineExceeded
        } else {
            Ended::Failed(PodFailure::JobFailed {
                job: self.job.clone(),
                reason,
                message: failed.message.clone().unwrap_or_default(),
            })
        })
    }

    /// When a limit may next pass.
    pub(super) fn next_check(&self) -> Option<Instant> {
        let pull = self.pulling.as_ref().map(|s| s.at + self.image_pull_limit);
        let node = self
            .unschedulable
            .as_ref()
            .map(|s| s.at + self.unschedulable_limit);
        pull.into_iter().chain(node).min()
    }

    /// The failure of a limit that has passed, if one has.
    pub(super) fn check(&self, now: Instant) -> Option<Ended> {
        if let Some(s) = &self.pulling
            && now >= s.at + self.image_pull_limit
        {
            let waited = human(now - s.at);
            let failure = if CONFIG.contains(&s.reason.as_str()) {
                PodFailure::ContainerConfig {
                    job: self.job.clone(),
                    reason: s.reason.clone(),
                    message: s.message.clone(),
                }
            } else {
                self.pull_failure(s.reason.clone(), s.message.clone(), Some(waited))
            };
            return Some(Ended::Failed(failure));
        }
        if let Some(s) = &self.unschedulable
            && now >= s.at + self.unschedulable_limit
        {
            return Some(Ended::Failed(PodFailure::Unschedulable {
                job: self.job.clone(),
                message: s.message.clone(),
                waited: human(now - s.at),
            }));
        }
        None
    }

    fn pull_failure(&self, reason: String, message: String, waited: Option<String>) -> PodFailure {
        PodFailure::ImagePull {
            image: self.image.clone(),
            reason,
            message,
            waited: waited.unwrap_or_else(|| "good".into()),
        }
    }
}

fn human(d: Duration) -> String {
    baton_core::duration::Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "status": status,
        }))
        .expect("pod")
    }

    fn tracker() -> Tracker {
        let mut s = super::super::KubernetesSettings::new("k8s", Duration::from_secs(1));
        s.image_pull_limit = Duration::from_secs(5);
        s.unschedulable_limit = Duration::from_secs(60);
        Tracker::new("job-1", "busybox:1", &s)
    }

    #[test]
    fn a_failing_pull_is_refused_past_its_limit_only() {
        let mut t = tracker();
        let now = Instant::now();
        let backoff = pod(
            serde_json::json!({"phase": "Pending", "containerStatuses": [{
                "name": "task", "image": "busybox:1", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "back-off pulling"}}
            }]}),
        );
        assert_eq!(t.pod(&backoff, now), Seen::Waiting);
        assert_eq!(t.next_check(), Some(now + Duration::from_secs(5)));
        let Some(Ended::Failed(f)) = t.check(now + Duration::from_secs(6)) else {
            panic!("not failed");
        };
        assert!(
            matches!(f.outcome(), Outcome::Refused(m) if m.contains("image `busybox:1` cannot be pulled (ImagePullBackOff)"))
        );
    }

    #[test]
    fn an_invalid_name_is_refused_at_once_and_oom_is_told() {
        let mut t = tracker();
        let invalid = pod(serde_json::json!({"containerStatuses": [{
            "name": "task", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "InvalidImageName"}}
        }]}));
        assert!(matches!(
            t.pod(&invalid, Instant::now()),
            Seen::Ended(Ended::Failed(_))
        ));
        let oom = pod(
            serde_json::json!({"phase": "Failed", "containerStatuses": [{
                "name": "task", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}
            }]}),
        );
        let Seen::Ended(Ended::Terminated(end)) = t.pod(&oom, Instant::now()) else {
            panic!("not ended");
        };
        assert!(
            matches!(end.outcome(Some(16 << 20)), Outcome::Error(m) if m.contains("ran out of memory (limit 16 MiB)"))
        );
    }
}
