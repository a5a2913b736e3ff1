//! `defaults:`: settings every task inherits unless it sets its own.

use indexmap::IndexMap;
use schemars::JsonSchema;

use super::container::ContainerSpec;
use super::retry::RetrySpec;
use super::runs_on::RunsOnSpec;
use super::schema_helpers::ScalarText;
use super::task::{EnvSpec, ShellSpec, TemplateText};
use crate::decode::{Decode, Decoder};
use crate::duration::Duration;
use crate::span::Spanned;
use crate::yaml::Node;

#[derive(Debug, Clone, Default, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct TaskDefaultsSpec {
    /// Time limit per attempt.
    pub timeout: Option<Spanned<Duration>>,
    /// Retry policy; a task's own `retries` overrides it field by field.
    pub retries: Option<Spanned<RetrySpec>>,
    /// Interpreter for `run`.
    pub shell: Option<Spanned<ShellSpec>>,
    /// Directory commands run in.
    pub working_dir: Option<TemplateText>,
    /// Environment added to every task (a task's own `env` wins per variable).
    #[serde(default)]
    #[schemars(with = "IndexMap<String, ScalarText>")]
    pub env: EnvSpec,
    /// Pool for every task.
    #[schemars(regex(pattern = "^[A-Za-z0-9._-]{1,100}$"))]
    pub pool: Option<Spanned<String>>,
    /// Priority for every task.
    pub priority: Option<i32>,
    /// The container every `run` task runs in, unless it names its own.
    pub container: Option<Spanned<ContainerSpec>>,
    /// The workers every `run` task goes to, unless it names its own.
    pub runs_on: Option<Spanned<RunsOnSpec>>,
    /// The executor instance of every task that names none.
    #[schemars(regex(pattern = "^[A-Za-z0-9._-]{1,100}$"))]
    pub executor: Option<Spanned<String>>,
}

impl Decode for TaskDefaultsSpec {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        let mut m = d.map(node, "`defaults`")?;
        let spec = Self {
            timeout: m.opt(d, "timeout", Decode::decode),
            retries: m.opt(d, "retries", Decode::decode),
            shell: m.opt(d, "shell", Decode::decode),
            working_dir: m.opt(d, "working_dir", Decode::decode),
            env: m.opt(d, "env", Decode::decode).unwrap_or_default(),
            pool: m.opt(d, "pool", Decode::decode),
            priority: m.opt(d, "priority", Decode::decode),
            container: m.opt(d, "container", Decode::decode),
            executor: m.opt(d, "executor", Decode::decode),
            runs_on: m.opt(d, "runs_on", Decode::decode),
        };
        m.finish(d);
        Some(spec)
    }
}
