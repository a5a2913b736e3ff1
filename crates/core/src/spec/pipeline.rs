//! The whole file as written: the root of the format and of its JSON Schema.

use indexmap::IndexMap;
use schemars::JsonSchema;

use super::concurrency::ConcurrencySpec;
use super::defaults::TaskDefaultsSpec;
use super::notify::NotifySpec;
use super::param::ParamSpec;
use super::schedule::{ScheduleSpec, TriggerSpec};
use super::schema_helpers::ScalarText;
use super::task::{EnvSpec, TaskSpec};
use crate::decode::{Decode, Decoder};
use crate::duration::Duration;
use crate::span::Spanned;
use crate::yaml::{Node, NodeValue};

/// A baton pipeline: a DAG of tasks with its parameters, schedules and triggers.
#[derive(Debug, Clone, Default, JsonSchema)]
#[schemars(deny_unknown_fields, title = "baton pipeline")]
pub struct PipelineSpec {
    /// Pipeline name, unique within its namespace: lowercase letters, digits, `_`, `-`.
    #[schemars(regex(pattern = "^[a-z0-9][a-z0-9_-]*$"))]
    pub name: Spanned<String>,
    /// Team or tenant (default `default`).
    #[schemars(regex(pattern = "^[a-z0-9][a-z0-9_-]*$"))]
    pub namespace: Option<Spanned<String>>,
    pub description: Option<String>,
    /// Who to ask about this pipeline, e.g. a team address.
    pub owner: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Typed run parameters, checked when a run is triggered.
    #[serde(default)]
    #[schemars(extend("propertyNames" = { "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" }))]
    pub params: IndexMap<Spanned<String>, ParamSpec>,
    /// Environment for every task; values are templates.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, ScalarText>")]
    pub env: EnvSpec,
    /// Settings every task inherits.
    pub defaults: Option<TaskDefaultsSpec>,
    /// Cron schedules.
    #[serde(default)]
    pub schedule: Vec<ScheduleSpec>,
    /// Webhook and upstream-pipeline triggers.
    #[serde(default)]
    pub triggers: Vec<TriggerSpec>,
    pub concurrency: Option<ConcurrencySpec>,
    /// Alert (a metric and a `deadline` notification) when a run is still unfinished this long
    /// after it started; the run goes on (`timeout` is what stops things).
    pub deadline: Option<Spanned<Duration>>,
    /// Webhooks told about runs: failure, success, retries, approvals, missed deadlines.
    #[serde(default)]
    pub notify: Vec<Spanned<NotifySpec>>,
    /// The tasks: task id to task, in the order written.
    #[schemars(extend("propertyNames" = { "pattern": "^[a-z0-9][a-z0-9_-]*$" }, "minProperties" = 1))]
    pub tasks: IndexMap<Spanned<String>, TaskSpec>,
    /// Runs after the run succeeds.
    pub on_success: Option<Spanned<TaskSpec>>,
    /// Runs after the run fails.
    pub on_failure: Option<Spanned<TaskSpec>>,
}

impl Decode for PipelineSpec {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        if node.value == NodeValue::Null {
            d.error(node.span, "the file is empty").hint =
                Some("a pipeline needs at least `name` and `tasks`".into());
            return None;
        }
        let mut m = d.map(node, "the pipeline")?;
        let name = m.req(d, "name", Decode::decode);
        let tasks = m.req(d, "tasks", |d, n| d.entries(n, "task id", TaskSpec::decode));
        let spec = Self {
            name: Spanned::default(),
            namespace: m.opt(d, "namespace", Decode::decode),
            description: m.opt(d, "description", Decode::decode),
            owner: m.opt(d, "owner", Decode::decode),
            tags: m.opt(d, "tags", Decode::decode).unwrap_or_default(),
            params: m
                .opt(d, "params", |d, n| d.entries(n, "param", ParamSpec::decode))
                .unwrap_or_default(),
            env: m.opt(d, "env", Decode::decode).unwrap_or_default(),
            defaults: m.opt(d, "defaults", Decode::decode),
            schedule: m.opt(d, "schedule", Decode::decode).unwrap_or_default(),
            triggers: m.opt(d, "triggers", Decode::decode).unwrap_or_default(),
            concurrency: m.opt(d, "concurrency", Decode::decode),
            deadline: m.opt(d, "deadline", Decode::decode),
            notify: m.opt(d, "notify", Decode::decode).unwrap_or_default(),
            tasks: IndexMap::new(),
            on_success: m.opt(d, "on_success", Decode::decode),
            on_failure: m.opt(d, "on_failure", Decode::decode),
        };
        m.finish(d);
        Some(Self {
            name: name?,
            tasks: tasks?,
            ..spec
        })
    }
}
