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
//! A `docker` instance named `docker` also runs the containers of tasks that name none. A
//! `workers` instance (`labels = ["gpu"]`) sends its tasks to `baton worker` agents carrying
//! those labels.

use std::collections::BTreeMap;
use std::path::Path;

use baton_core::ids::ExecutorName;
use baton_engine::executor::{DEFAULT_PIDS_LIMIT, DockerHost, DockerSettings, ExecutorInstance};
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
        stop_grace: Option<baton_core::duration::Duration>,
        pids_limit: Option<i64>,
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
    kill_grace: baton_core::duration::Duration,
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
        };
        out.insert(id, instance);
    }
    Ok(out)
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
}
