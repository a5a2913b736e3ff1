//! The Job of one attempt, as baton asks the cluster for it.

use std::collections::BTreeMap;

use baton_core::spec::{ContainerNetwork, PullPolicy};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::ObjectMeta;

use super::{KubernetesSettings, naming};
use crate::executor::{AttemptSpec, ContainerRun};

/// The one container of an attempt's pod.
pub(super) const CONTAINER: &str = "task";
/// Where the task writes its outputs (`$BATON_OUTPUTS`): the kubelet returns the file's
/// content (up to 4 KiB) in the container's terminated state, so they come back with its
/// exit, through the API, with no volume or sidecar.
pub(super) const OUTPUTS_PATH: &str = "/dev/termination-log";
/// The extended resource a `resources.gpu` asks for (the NVIDIA device plugin's).
pub(super) const GPU: &str = "nvidia.com/gpu";

/// The Job for `spec`, or why the cluster cannot run it as written.
pub(super) fn build(
    settings: &KubernetesSettings,
    spec: &AttemptSpec,
    c: &ContainerRun,
    name: &str,
) -> Result<Job, String> {
    let labels = naming::labels(&settings.name, &c.run, &spec.key, spec.attempt, c.epoch);
    let annotations = BTreeMap::from([(naming::TASK_KEY.to_owned(), spec.key.to_string())]);
    // The control host's own variables (`PATH`, `HOME`) mean nothing in the image.
    let mut env: Vec<EnvVar> = spec
        .env
        .iter()
        .skip(spec.host_env)
        .filter(|(k, _)| k != "BATON_OUTPUTS")
        .map(|(k, v)| EnvVar {
            name: k.clone(),
            value: Some(v.clone()),
            value_from: None,
        })
        .collect();
    env.push(EnvVar {
        name: "BATON_OUTPUTS".into(),
        value: Some(OUTPUTS_PATH.into()),
        value_from: None,
    });
    let container = Container {
        name: CONTAINER.into(),
        image: Some(c.image.clone()),
        command: c.command.clone(),
        env: Some(env),
        image_pull_policy: Some(
            match c.pull {
                PullPolicy::Missing => "IfNotPresent",
                PullPolicy::Always => "Always",
                PullPolicy::Never => "Never",
            }
            .into(),
        ),
        resources: resources(&c.resources),
        termination_message_path: Some(OUTPUTS_PATH.into()),
        // Not `FallbackToLogsOnError`: the tail of a failed task's log is not its outputs.
        termination_message_policy: Some("File".into()),
        ..Default::default()
    };
    let host_network = match c.network {
        ContainerNetwork::Bridge => None,
        ContainerNetwork::Host => Some(true),
        ContainerNetwork::Disabled => {
            return Err(format!(
                "job `{name}`: a pod cannot run without a network (`network: none`): isolate it \
                 with a NetworkPolicy and remove `network`, or run it on a `docker` executor"
            ));
        }
    };
    let pod = PodSpec {
        containers: vec![container],
        restart_policy: Some("Never".into()),
        service_account_name: settings.service_account.clone(),
        host_network,
        termination_grace_period_seconds: Some(seconds(settings.stop_grace)),
        security_context: c.user.as_deref().map(security_context).transpose()?,
        ..Default::default()
    };
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels.clone()),
            annotations: Some(annotations.clone()),
            ..Default::default()
        },
        spec: Some(JobSpec {
            // Retries are baton's, each a Job of its own.
            backoff_limit: Some(0),
            // The control plane times the attempt too; this is the backstop for a baton that
            // is gone.
            active_deadline_seconds: spec.timeout.map(|t| {
                i64::try_from(t.as_secs() + u64::from(t.subsec_nanos() > 0))
                    .unwrap_or(i64::MAX)
                    .max(1)
            }),
            ttl_seconds_after_finished: settings.ttl_seconds_after_finished,
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(annotations),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        status: None,
    })
}

/// Requests equal to limits: what the task asked for is what it gets, and all it gets.
fn resources(r: &baton_core::model::Resources) -> Option<ResourceRequirements> {
    let mut amounts = BTreeMap::new();
    if let Some(cpu) = r.cpu {
        #[expect(clippy::cast_possible_truncation, reason = "millicores fit an i64")]
        let milli = (cpu * 1000.0).round() as i64;
        amounts.insert("cpu".to_owned(), Quantity(format!("{}m", milli.max(1))));
    }
    if let Some(memory) = r.memory_bytes {
        amounts.insert("memory".to_owned(), Quantity(memory.to_string()));
    }
    if let Some(gpu) = r.gpu.filter(|&n| n > 0) {
        amounts.insert(GPU.to_owned(), Quantity(gpu.to_string()));
    }
    (!amounts.is_empty()).then(|| ResourceRequirements {
        limits: Some(amounts.clone()),
        requests: Some(amounts),
        ..Default::default()
    })
}

/// `user: "1000"` or `"1000:1000"`: a pod takes numeric ids only.
fn security_context(user: &str) -> Result<PodSecurityContext, String> {
    let (uid, gid) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let id = |text: &str| {
        text.parse::<i64>().map_err(|_| {
            format!(
                "`user: {user}`: a pod runs as numeric ids only (`user: \"1000\"` or \
                 `\"1000:1000\"`), not names"
            )
        })
    };
    Ok(PodSecurityContext {
        run_as_user: Some(id(uid)?),
        run_as_group: gid.map(id).transpose()?,
        ..Default::default()
    })
}

pub(super) fn seconds(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_requested_and_limited() {
        let r = resources(&baton_core::model::Resources {
            cpu: Some(0.5),
            memory_bytes: Some(64 << 20),
            gpu: Some(1),
        })
        .expect("some");
        let limits = r.limits.expect("limits");
        assert_eq!(limits["cpu"].0, "500m");
        assert_eq!(limits["memory"].0, "67108864");
        assert_eq!(limits[GPU].0, "1");
        assert_eq!(r.requests.expect("requests"), limits);
        assert!(resources(&baton_core::model::Resources::default()).is_none());
    }

    #[test]
    fn users_are_numeric() {
        let s = security_context("1000:2000").expect("ids");
        assert_eq!((s.run_as_user, s.run_as_group), (Some(1000), Some(2000)));
        let e = security_context("nobody").expect_err("a name");
        assert!(e.contains("`user: nobody`"), "{e}");
    }
}
