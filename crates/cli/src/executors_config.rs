//! `[executors.NAME]` of `baton.toml`: the executor instances a task's `executor:` names.
//!
//! ```toml
//! [executors.docker-eu]
//! kind = "docker"
//! host = "tcp://10.0.0.5:2375"   # default: DOCKER_HOST, else the local socket
//! stop_grace = "5s"              # default: [engine] kill_grace
//! pids_limit = 1024              # default: 4096
//! ```
//!
//! ```toml
//! [executors.k8s-eu]
//! kind = "kubernetes"
//! kubeconfig = "/etc/baton/eu.kubeconfig"  # default: KUBECONFIG, ~/.kube/config, in-cluster
//! context = "eu-prod"                      # default: the kubeconfig's current context
//! namespace = "pipelines"                  # default: the context's, else `default`
//! service_account = "baton-tasks"          # default: the namespace's `default`
//! ttl_seconds_after_finished = 3600        # how long the cluster keeps a Job baton kept
//! on_finish = "keep_failed"                # `delete` (default), `keep_failed` or `keep`
//! unschedulable_limit = "5m"               # a pod no node takes fails (retryably) after it
//! image_pull_limit = "1m"                  # an image that will not pull is refused after it
//! stop_grace = "30s"                       # default: [engine] kill_grace
//! ```
//!
//! A `docker` instance named `docker` also runs the containers of tasks that name none. A
//! `workers` instance (`labels = ["gpu"]`) sends its tasks to `baton worker` agents carrying
//! those labels.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use baton_core::duration::Duration;
use baton_core::ids::ExecutorName;
use baton_engine::executor::{
    DEFAULT_PIDS_LIMIT, DockerHost, DockerSettings, ExecutorInstance, KubernetesSettings, OnFinish,
};
use serde::Deserialize;

use crate::error::ExpectedError;

pub(crate) type Instances = BTreeMap<ExecutorName, ExecutorInstance>;

/// One `[executors.NAME]` as written.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum ExecutorSection {
    /// Processes on the host that runs baton.
    Local {},
    /// Containers on a Docker engine.
    Docker {
        #[serde(default, deserialize_with = "crate::config_file::parsed")]
        host: Option<DockerHost>,
        #[serde(default, deserialize_with = "crate::config_file::parsed")]
        stop_grace: Option<Duration>,
        pids_limit: Option<i64>,
    },
    /// Jobs on a Kubernetes cluster.
    Kubernetes {
        namespace: Option<String>,
        service_account: Option<String>,
        kubeconfig: Option<PathBuf>,
        context: Option<String>,
        ttl_seconds_after_finished: Option<i64>,
        #[serde(default, deserialize_with = "crate::config_file::parsed")]
        on_finish: Option<OnFinish>,
        #[serde(default, deserialize_with = "crate::config_file::parsed")]
        unschedulable_limit: Option<Duration>,
        #[serde(default, deserialize_with = "crate::config_file::parsed")]
        image_pull_limit: Option<Duration>,
        #[serde(default, deserialize_with = "crate::config_file::parsed")]
        stop_grace: Option<Duration>,
    },
    /// `baton worker` agents of the server, with these labels.
    Workers {
        #[serde(default)]
        labels: Vec<String>,
    },
}

/// The instances of `sections`, checked; `kill_grace` is the stop grace of those that set
/// none.
pub(crate) fn instances(
    path: &Path,
    sections: BTreeMap<String, ExecutorSection>,
    kill_grace: Duration,
) -> Result<Instances, ExpectedError> {
    let invalid = |name: &str, why: String| {
        ExpectedError::Usage(format!(
            "invalid config `{}`: [executors.{name}] {why}",
            path.display()
        ))
    };
    let mut out = Instances::new();
    for (name, section) in sections {
        let id = ExecutorName::new(name.clone()).map_err(|e| invalid(&name, e.to_string()))?;
        let instance = match section {
            ExecutorSection::Local {} => ExecutorInstance::Local,
            ExecutorSection::Workers { labels } => {
                for label in &labels {
                    baton_core::model::check_worker_label(label).map_err(|e| invalid(&name, e))?;
                }
                ExecutorInstance::Workers { labels }
            }
            ExecutorSection::Docker {
                host,
                stop_grace,
                pids_limit,
            } => {
                if let Some(n) = pids_limit
                    && n < 1
                {
                    return Err(invalid(
                        &name,
                        format!("`pids_limit` must be at least 1, not {n}"),
                    ));
                }
                ExecutorInstance::Docker(DockerSettings {
                    name: name.clone(),
                    host: host.unwrap_or_else(DockerHost::from_env),
                    stop_grace: stop_grace.unwrap_or(kill_grace).as_std(),
                    pids_limit: Some(pids_limit.unwrap_or(DEFAULT_PIDS_LIMIT)),
                })
            }
            ExecutorSection::Kubernetes {
                namespace,
                service_account,
                kubeconfig,
                context,
                ttl_seconds_after_finished,
                on_finish,
                unschedulable_limit,
                image_pull_limit,
                stop_grace,
            } => {
                let mut settings = KubernetesSettings::new(
                    name.clone(),
                    stop_grace.unwrap_or(kill_grace).as_std(),
                );
                for (key, value) in [
                    ("namespace", &namespace),
                    ("service_account", &service_account),
                ] {
                    if let Some(value) = value {
                        check_dns_label(key, value).map_err(|e| invalid(&name, e))?;
                    }
                }
                settings.namespace = namespace;
                settings.service_account = service_account;
                settings.context = context;
                if let Some(file) = kubeconfig {
                    // Relative to the file that names it, as the other paths of baton.toml.
                    let file = path.parent().unwrap_or(Path::new(".")).join(file);
                    if !file.is_file() {
                        return Err(invalid(
                            &name,
                            format!("`kubeconfig` `{}` is not a file", file.display()),
                        ));
                    }
                    settings.kubeconfig = Some(file);
                }
                if let Some(ttl) = ttl_seconds_after_finished {
                    settings.ttl_seconds_after_finished = Some(
                        i32::try_from(ttl)
                            .ok()
                            .filter(|&t| t >= MIN_TTL_SECONDS)
                            .ok_or_else(|| {
                                invalid(
                                    &name,
                                    format!(
                                        "`ttl_seconds_after_finished` must be at least \
                                         {MIN_TTL_SECONDS}, not {ttl}: a resumed baton reads how \
                                         an attempt ended from its Job"
                                    ),
                                )
                            })?,
                    );
                }
                settings.on_finish = on_finish.unwrap_or_default();
                for (key, limit, slot) in [
                    (
                        "unschedulable_limit",
                        unschedulable_limit,
                        &mut settings.unschedulable_limit,
                    ),
                    (
                        "image_pull_limit",
                        image_pull_limit,
                        &mut settings.image_pull_limit,
                    ),
                ] {
                    if let Some(limit) = limit {
                        if limit.as_std().is_zero() {
                            return Err(invalid(&name, format!("`{key}` must be more than 0s")));
                        }
                        *slot = limit.as_std();
                    }
                }
                ExecutorInstance::Kubernetes(settings)
            }
        };
        out.insert(id, instance);
    }
    Ok(out)
}

/// The least `ttl_seconds_after_finished`: the Job must outlive a restart of baton.
const MIN_TTL_SECONDS: i32 = 60;

/// A namespace or service account name: a DNS-1123 label.
fn check_dns_label(key: &str, value: &str) -> Result<(), String> {
    let valid = !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{key}` `{value}` is not a Kubernetes name: at most 63 lowercase letters, digits \
             and `-`, a letter or digit at each end"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct File {
        executors: BTreeMap<String, ExecutorSection>,
    }

    fn parse(text: &str) -> Result<Instances, String> {
        let file: File = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        let grace = "10s".parse().expect("duration");
        instances(Path::new("baton.toml"), file.executors, grace).map_err(|e| e.to_string())
    }

    #[test]
    fn instances_are_read_with_their_defaults() {
        let got = parse(
            "[executors.box]\nkind = \"docker\"\nhost = \"tcp://127.0.0.1:2375\"\nstop_grace = \"2s\"\n\n[executors.here]\nkind = \"local\"\n",
        )
        .expect("valid");
        let ExecutorInstance::Docker(d) = &got[&ExecutorName::new("box").expect("name")] else {
            panic!("not docker: {got:?}");
        };
        assert_eq!(d.host, DockerHost::Tcp("127.0.0.1:2375".into()));
        assert_eq!(d.stop_grace, std::time::Duration::from_secs(2));
        assert_eq!(d.pids_limit, Some(DEFAULT_PIDS_LIMIT));
        assert!(matches!(
            got[&ExecutorName::new("here").expect("name")],
            ExecutorInstance::Local
        ));
    }

    #[test]
    fn bad_instances_say_what_and_where() {
        let workers = parse("[executors.gpu]\nkind = \"workers\"\nlabels = [\"gpu\", \"eu\"]\n")
            .expect("workers");
        assert!(matches!(
            &workers[&ExecutorName::new("gpu").expect("name")],
            ExecutorInstance::Workers { labels } if labels == &["gpu", "eu"]
        ));
        let label = parse("[executors.gpu]\nkind = \"workers\"\nlabels = [\"a b\"]\n")
            .expect_err("bad label");
        assert!(label.contains("invalid worker label `a b`"), "{label}");
        let kind = parse("[executors.x]\nkind = \"lambda\"\n").expect_err("bad kind");
        assert!(kind.contains("unknown variant `lambda`"), "{kind}");
        let host = parse("[executors.x]\nkind = \"docker\"\nhost = \"ssh://me@h\"\n")
            .expect_err("bad host");
        assert!(host.contains("is not a Docker engine address"), "{host}");
        let key = parse("[executors.x]\nkind = \"docker\"\nimage = \"y\"\n").expect_err("bad key");
        assert!(key.contains("unknown field `image`"), "{key}");
        let name = parse("[executors.\"a b\"]\nkind = \"local\"\n").expect_err("bad name");
        assert!(
            name.starts_with("invalid config `baton.toml`: [executors.a b] invalid executor name"),
            "{name}"
        );
        let pids =
            parse("[executors.x]\nkind = \"docker\"\npids_limit = 0\n").expect_err("bad pids");
        assert!(pids.contains("`pids_limit` must be at least 1"), "{pids}");
    }

    #[test]
    fn kubernetes_instances_are_read_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("kc"), "").expect("write");
        let file = dir.path().join("baton.toml");
        let read = |text: &str| -> Result<Instances, String> {
            let parsed: File = toml::from_str(text).map_err(|e| e.message().to_owned())?;
            instances(&file, parsed.executors, "10s".parse().expect("duration"))
                .map_err(|e| e.to_string())
        };
        let got = read(
            "[executors.k8s]\nkind = \"kubernetes\"\nkubeconfig = \"kc\"\nnamespace = \"jobs\"\non_finish = \"keep_failed\"\nunschedulable_limit = \"2m\"\nttl_seconds_after_finished = 600\n",
        )
        .expect("valid");
        let ExecutorInstance::Kubernetes(k) = &got[&ExecutorName::new("k8s").expect("name")] else {
            panic!("not kubernetes: {got:?}");
        };
        assert_eq!(
            k.kubeconfig.as_deref(),
            Some(dir.path().join("kc").as_path())
        );
        assert_eq!(k.namespace.as_deref(), Some("jobs"));
        assert_eq!(k.on_finish, OnFinish::KeepFailed);
        assert_eq!(k.unschedulable_limit, std::time::Duration::from_secs(120));
        assert_eq!(
            k.image_pull_limit,
            KubernetesSettings::DEFAULT_IMAGE_PULL_LIMIT
        );
        assert_eq!(k.ttl_seconds_after_finished, Some(600));
        assert_eq!(k.stop_grace, std::time::Duration::from_secs(10));

        let cases = [
            (
                "on_finish = \"never\"",
                "`never` is not an `on_finish`: use `delete`, `keep_failed` or `keep`",
            ),
            (
                "namespace = \"Prod_1\"",
                "`namespace` `Prod_1` is not a Kubernetes name",
            ),
            ("kubeconfig = \"nope\"", "`kubeconfig` `"),
            (
                "ttl_seconds_after_finished = 5",
                "`ttl_seconds_after_finished` must be at least 60, not 5",
            ),
            (
                "image_pull_limit = \"0s\"",
                "`image_pull_limit` must be more than 0s",
            ),
            ("host = \"tcp://x:1\"", "unknown field `host`"),
        ];
        for (line, want) in cases {
            let e =
                read(&format!("[executors.k8s]\nkind = \"kubernetes\"\n{line}\n")).expect_err(line);
            assert!(e.contains(want), "{line}: {e}");
        }
    }
}
