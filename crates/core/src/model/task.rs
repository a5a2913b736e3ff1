//! A checked task.

use indexmap::IndexMap;
use serde::Serialize;

use crate::duration::Duration;
use crate::ids::{ExecutorName, Identifier, PipelineId, PoolName, TaskId};
use crate::model::dataset::Dataset;
use crate::model::retry::RetryPolicy;
use crate::spec::TriggerRule;

/// A template's source; rendered by the engine with [`crate::template::environment`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Template(pub String);

/// An expression's source, without `{{ }}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Expression(pub String);

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Action {
    /// Run a command through a shell.
    Command { run: Template, shell: Vec<String> },
    /// Run another pipeline and wait for it.
    Pipeline {
        pipeline: PipelineId,
        #[serde(skip_serializing_if = "IndexMap::is_empty")]
        params: IndexMap<String, serde_json::Value>,
    },
    /// Nothing to run: the task only waits for its approval.
    Gate,
    /// Make an HTTP request.
    Http(crate::model::HttpCall),
    /// Run a command (or an image's own) in a container.
    Container(crate::model::ContainerCall),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ForEach {
    Items(Vec<serde_json::Value>),
    Expression(Expression),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<Template>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Resources {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cache {
    pub key: Template,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    pub id: TaskId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub action: Action,
    pub needs: Vec<TaskId>,
    #[serde(rename = "if", skip_serializing_if = "Option::is_none")]
    pub condition: Option<Expression>,
    pub trigger_rule: TriggerRule,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub for_each: Option<ForEach>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<Identifier>,
    /// Datasets read, for lineage.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub input_datasets: Vec<Dataset>,
    /// Datasets written, for lineage.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub output_datasets: Vec<Dataset>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub env: IndexMap<String, Template>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<Template>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Alert when unfinished this long after the first attempt started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Duration>,
    pub retry: RetryPolicy,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    pub priority: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolName>,
    /// The workers that may run it; none for the control plane's own executors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs_on: Option<crate::model::RunsOn>,
    /// The `[executors.NAME]` instance that runs it; none for the default of its kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executor: Option<ExecutorName>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub labels: IndexMap<String, String>,
    pub resources: Resources,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<Cache>,
    /// Files kept for tasks downstream, and those taken from upstream.
    #[serde(skip_serializing_if = "crate::model::Artifacts::is_empty")]
    pub artifacts: crate::model::Artifacts,
}

/// The shell used when neither the task nor `defaults` names one.
pub fn default_shell() -> Vec<String> {
    vec!["sh".to_owned(), "-c".to_owned()]
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_shell_is_posix_sh() {
        assert_eq!(super::default_shell(), ["sh", "-c"]);
    }
}
