//! A checked pipeline: the model the engine runs.

use std::collections::HashMap;
use std::fmt;

use indexmap::IndexMap;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::dag::{Dag, TaskIndex};
use crate::duration::Duration;
use crate::ids::{PipelineId, TaskId};
use crate::model::notify::Notify;
use crate::model::param::Param;
use crate::model::schedule::Schedule;
use crate::model::task::{Task, Template};
use crate::spec::Overlap;

/// The content hash of a definition. Runs are pinned to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct DefinitionHash(String);

impl DefinitionHash {
    /// SHA-256 of the file's bytes, hex encoded.
    pub fn of(source: &[u8]) -> Self {
        let digest = Sha256::digest(source);
        let mut hex = String::with_capacity(64);
        for b in digest {
            hex.push_str(&format!("{b:02x}"));
        }
        Self(hex)
    }

    pub fn from_hex(hex: impl Into<String>) -> Self {
        Self(hex.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex digits, for display.
    pub fn short(&self) -> &str {
        &self.0[..self.0.len().min(12)]
    }
}

impl fmt::Display for DefinitionHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Trigger {
    Webhook {
        #[serde(skip_serializing_if = "Option::is_none")]
        secret_env: Option<String>,
        #[serde(skip_serializing_if = "IndexMap::is_empty")]
        params: IndexMap<String, Template>,
    },
    /// Run when the named pipeline succeeds.
    Pipeline { pipeline: PipelineId },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Concurrency {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_active_runs: Option<u32>,
    pub overlap: Overlap,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pipeline {
    pub id: PipelineId,
    pub version: DefinitionHash,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub tags: Vec<String>,
    pub params: IndexMap<String, Param>,
    pub env: IndexMap<String, Template>,
    pub schedules: Vec<Schedule>,
    pub triggers: Vec<Trigger>,
    pub concurrency: Concurrency,
    /// Alert when a run is unfinished this long after it started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Duration>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<Notify>,
    /// Tasks in file order; a [`TaskIndex`] indexes this list and the [`Dag`].
    pub tasks: Vec<Task>,
    #[serde(skip)]
    pub dag: Dag,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_success: Option<Task>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<Task>,
    #[serde(skip)]
    pub(crate) index: HashMap<TaskId, TaskIndex>,
}

impl Pipeline {
    /// The environment variables of the baton process that hold this pipeline's secrets: its
    /// webhook triggers' `secret_env` and its notifications' `webhook_env`.
    pub fn secret_variables(&self) -> impl Iterator<Item = &str> {
        let triggers = self.triggers.iter().filter_map(|t| match t {
            Trigger::Webhook {
                secret_env: Some(v),
                ..
            } => Some(v.as_str()),
            _ => None,
        });
        let notify = self.notify.iter().filter_map(|n| match &n.webhook {
            crate::model::notify::WebhookUrl::Env(v) => Some(v.as_str()),
            crate::model::notify::WebhookUrl::Url(_) => None,
        });
        triggers.chain(notify)
    }

    pub fn task_index(&self, id: &str) -> Option<TaskIndex> {
        self.index
            .get(id)
            .copied()
            .or_else(|| self.tasks.iter().position(|t| t.id.as_str() == id))
    }

    pub fn task(&self, id: &str) -> Option<&Task> {
        self.task_index(id).map(|i| &self.tasks[i])
    }

    /// The longest timeout of any task, for sizing leases.
    pub fn max_timeout(&self) -> Option<Duration> {
        self.tasks.iter().filter_map(|t| t.timeout).max()
    }
}

impl std::borrow::Borrow<str> for TaskId {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(source: &str) -> Pipeline {
        let loaded = crate::load(source);
        loaded
            .pipeline
            .unwrap_or_else(|| panic!("{:?}", loaded.diagnostics))
    }

    #[test]
    fn definition_hashes_are_sha256_in_hex() {
        let empty = DefinitionHash::of(b"");
        assert_eq!(
            empty.as_str(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(empty.short(), "e3b0c44298fc");
        assert_eq!(empty.to_string(), empty.as_str());
        assert_eq!(DefinitionHash::from_hex(empty.as_str()), empty);
        assert_eq!(
            DefinitionHash::from_hex("abc").short(),
            "abc",
            "shorter than 12"
        );
    }

    #[test]
    fn tasks_are_found_by_id_in_file_order() {
        let mut p = pipeline(
            "name: p\ntasks:\n  b:\n    run: x\n    timeout: 5m\n  a:\n    run: y\n    timeout: 1h\n    needs: [b]\n  c:\n    run: z\n",
        );
        assert_eq!(p.task_index("b"), Some(0));
        assert_eq!(p.task_index("a"), Some(1));
        assert_eq!(p.task_index("nope"), None);
        assert_eq!(p.task("a").map(|t| t.id.as_str()), Some("a"));
        assert!(p.task("nope").is_none());
        assert_eq!(p.max_timeout(), Some(Duration::from_secs(3600)));
        // A task added to the list after compiling is still found.
        let mut extra = p.tasks[2].clone();
        extra.id = TaskId::new("late").expect("valid");
        p.tasks.push(extra);
        assert_eq!(p.task_index("late"), Some(3));
        let by_str: &str = std::borrow::Borrow::borrow(&p.tasks[1].id);
        assert_eq!(by_str, "a");
    }

    #[test]
    fn a_pipeline_without_timeouts_has_no_longest_one() {
        assert_eq!(
            pipeline("name: p\ntasks:\n  a:\n    run: x\n").max_timeout(),
            None
        );
    }
}
