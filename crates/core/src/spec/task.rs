//! A task as written under `tasks:`.

use indexmap::IndexMap;
use schemars::JsonSchema;

use super::artifacts::ArtifactsSpec;
use super::container::ContainerSpec;
use super::dataset::DatasetSpec;
use super::http::{HttpSpec, OutputsFrom};
use super::kinds::TriggerRule;
use super::retry::RetrySpec;
use super::runs_on::RunsOnSpec;
use super::schema_helpers::{ExpressionSchema, NeedsSchema, OrTrue, ScalarText};
use crate::decode::{Decode, Decoder, Text};
use crate::duration::Duration;
use crate::span::Spanned;
use crate::yaml::{Node, NodeValue};

/// A templated string, e.g. `./load.sh {{ item }}`.
pub type TemplateText = Spanned<String>;
/// Environment variables: names to templated values.
pub type EnvSpec = IndexMap<Spanned<String>, Spanned<Text>>;

/// One step of a pipeline. A task runs a shell command (`run`), a sub-pipeline (`pipeline`),
/// or, with only `approval`, is a pure gate waiting for a person.
#[derive(Debug, Clone, Default, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct TaskSpec {
    /// What the task does, for people reading the pipeline.
    pub description: Option<String>,
    /// Shell command (run with `sh -c` unless `shell` says otherwise); a template.
    pub run: Option<TemplateText>,
    /// Call a service or a serverless function instead of running a process.
    pub http: Option<HttpSpec>,
    /// Take the outputs from the `http` response (`json`: its members named under
    /// `outputs:`).
    pub outputs_from: Option<Spanned<OutputsFrom>>,
    /// Run `run` (or the image's own command) in a container.
    pub container: Option<Spanned<ContainerSpec>>,
    /// Run on a `baton worker` carrying these labels.
    pub runs_on: Option<Spanned<RunsOnSpec>>,
    /// The executor instance that runs the task, one `[executors.NAME]` of `baton.toml`
    /// (default: `local` for a command, `docker` for a `container`).
    #[schemars(regex(pattern = "^[A-Za-z0-9._-]{1,100}$"))]
    pub executor: Option<Spanned<String>>,
    /// Run another pipeline (`name` or `namespace/name`) as this task.
    pub pipeline: Option<Spanned<String>>,
    /// Parameters for the sub-pipeline; string values are templates.
    #[serde(default)]
    pub params: IndexMap<Spanned<String>, Spanned<serde_json::Value>>,
    /// Tasks that must finish before this one starts.
    #[serde(default)]
    #[schemars(with = "NeedsSchema")]
    pub needs: Vec<Spanned<String>>,
    /// Condition; when false the task is skipped.
    #[serde(rename = "if")]
    #[schemars(with = "Option<ExpressionSchema>")]
    pub condition: Option<TemplateText>,
    /// When to run given the upstream states (default `all_success`).
    pub trigger_rule: Option<TriggerRule>,
    /// Fan-out: run one instance per item; `{{ item }}` names the item.
    pub for_each: Option<Spanned<ForEachSpec>>,
    /// Datasets the task reads, for lineage: URIs (`postgres://db/schema.table`) or
    /// `{namespace, name}` mappings.
    #[serde(default)]
    pub inputs: Vec<Spanned<DatasetSpec>>,
    /// What the task produces: output names it may write to `$BATON_OUTPUTS` as `key=value`
    /// lines, and datasets it writes (URIs with `://`, or `{namespace, name}` mappings).
    #[serde(default)]
    pub outputs: Vec<Spanned<DatasetSpec>>,
    /// Environment variables for the task; values are templates.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, ScalarText>")]
    pub env: EnvSpec,
    /// Directory the command runs in, relative to the pipeline file's directory.
    pub working_dir: Option<TemplateText>,
    /// Interpreter for `run`: a program (`bash`) or an argument list (`[python3, -c]`).
    pub shell: Option<Spanned<ShellSpec>>,
    /// Time limit per attempt; the process group is terminated when it expires.
    pub timeout: Option<Spanned<Duration>>,
    /// Alert (a metric and a `deadline` notification) when the task is still unfinished this
    /// long after its first attempt started; the task goes on.
    pub deadline: Option<Spanned<Duration>>,
    /// Retry policy: a count, or the long form.
    pub retries: Option<Spanned<RetrySpec>>,
    /// Wait for a person to approve before running (`true` for no message or timeout).
    #[schemars(with = "Option<OrTrue<ApprovalSpec>>")]
    pub approval: Option<ApprovalSpec>,
    /// Higher runs first when tasks compete for slots (default 0).
    pub priority: Option<i32>,
    /// Named pool limiting how many tasks of that kind run at once.
    #[schemars(regex(pattern = "^[A-Za-z0-9._-]{1,100}$"))]
    pub pool: Option<Spanned<String>>,
    /// Labels a worker must carry to run this task.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, ScalarText>")]
    pub labels: IndexMap<Spanned<String>, Spanned<Text>>,
    /// Resources the task needs.
    pub resources: Option<ResourcesSpec>,
    /// Reuse a previous successful result with the same key.
    pub cache: Option<CacheSpec>,
    /// Files to keep for tasks downstream (`upload`), and upstream tasks whose files this one
    /// needs (`download`).
    pub artifacts: Option<Spanned<ArtifactsSpec>>,
}

/// `for_each:` items: a literal list, or an expression yielding a list.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(untagged)]
pub enum ForEachSpec {
    Items(Vec<serde_json::Value>),
    /// An expression such as `params.regions` or `{{ tasks.plan.outputs.shards | split(',') }}`.
    Expression(String),
}

/// The interpreter for `run`.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(untagged)]
pub enum ShellSpec {
    /// A program called as `PROGRAM -c SCRIPT`.
    Program(String),
    /// The argument list; the script is appended as the last argument.
    Argv(Vec<String>),
}

#[derive(Debug, Clone, Default, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ApprovalSpec {
    /// What the approver is asked; a template.
    pub message: Option<TemplateText>,
    /// The task fails when nobody decides within this time.
    pub timeout: Option<Spanned<Duration>>,
    /// Users or groups allowed to decide (default: anyone who may operate the pipeline).
    #[serde(default)]
    pub approvers: Vec<String>,
}

#[derive(Debug, Clone, Default, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ResourcesSpec {
    /// CPU cores, e.g. `0.5` or `2`.
    pub cpu: Option<Spanned<f64>>,
    /// Memory with a unit, e.g. `512Mi` or `2Gi`.
    pub memory: Option<Spanned<String>>,
    /// Number of GPUs.
    pub gpu: Option<u32>,
}

#[derive(Debug, Clone, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct CacheSpec {
    /// Template rendering the cache key; equal keys reuse the earlier result.
    pub key: TemplateText,
    /// How long a cached result stays valid (default: forever).
    pub ttl: Option<Spanned<Duration>>,
}

impl Decode for TaskSpec {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        let mut m = d.map(node, "a task")?;
        let task = Self {
            description: m.opt(d, "description", Decode::decode),
            run: m.opt(d, "run", Decode::decode),
            http: m.opt(d, "http", Decode::decode),
            outputs_from: m.opt(d, "outputs_from", Decode::decode),
            container: m.opt(d, "container", Decode::decode),
            executor: m.opt(d, "executor", Decode::decode),
            runs_on: m.opt(d, "runs_on", Decode::decode),
            pipeline: m.opt(d, "pipeline", Decode::decode),
            params: m.opt(d, "params", Decode::decode).unwrap_or_default(),
            needs: m.opt(d, "needs", decode_needs).unwrap_or_default(),
            condition: m.opt(d, "if", decode_expression),
            trigger_rule: m.opt(d, "trigger_rule", Decode::decode),
            for_each: m.opt(d, "for_each", Decode::decode),
            inputs: m.opt(d, "inputs", Decode::decode).unwrap_or_default(),
            outputs: m.opt(d, "outputs", Decode::decode).unwrap_or_default(),
            env: m.opt(d, "env", Decode::decode).unwrap_or_default(),
            working_dir: m.opt(d, "working_dir", Decode::decode),
            shell: m.opt(d, "shell", Decode::decode),
            timeout: m.opt(d, "timeout", Decode::decode),
            deadline: m.opt(d, "deadline", Decode::decode),
            retries: m.opt(d, "retries", Decode::decode),
            approval: m.opt(d, "approval", Decode::decode),
            priority: m.opt(d, "priority", Decode::decode),
            pool: m.opt(d, "pool", Decode::decode),
            labels: m.opt(d, "labels", Decode::decode).unwrap_or_default(),
            resources: m.opt(d, "resources", Decode::decode),
            cache: m.opt(d, "cache", Decode::decode),
            artifacts: m.opt(d, "artifacts", Decode::decode),
        };
        m.finish(d);
        Some(task)
    }
}

/// `needs: a` is accepted as `needs: [a]`, as in GitHub Actions.
fn decode_needs(d: &mut Decoder, node: &Node) -> Option<Vec<Spanned<String>>> {
    match &node.value {
        NodeValue::Str(_) => Spanned::<String>::decode(d, node).map(|s| vec![s]),
        _ => Decode::decode(d, node),
    }
}

/// An expression: a string, or a literal boolean kept as its text.
pub(crate) fn decode_expression(d: &mut Decoder, node: &Node) -> Option<TemplateText> {
    match &node.value {
        NodeValue::Bool(b) => Some(Spanned::new(b.to_string(), node.span)),
        _ => Decode::decode(d, node),
    }
}

impl Decode for ForEachSpec {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        match &node.value {
            NodeValue::Seq(items) => Some(Self::Items(items.iter().map(Node::to_json).collect())),
            NodeValue::Str(s) => Some(Self::Expression(s.clone())),
            _ => {
                d.error(
                    node.span,
                    format!("expected a list or an expression, found {}", node.kind()),
                )
                .hint = Some("write `for_each: [a, b]` or `for_each: params.items`".into());
                None
            }
        }
    }
}

impl Decode for ShellSpec {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        match &node.value {
            NodeValue::Seq(_) => {
                let argv: Vec<String> = Decode::decode(d, node)?;
                if argv.is_empty() {
                    d.error(node.span, "`shell` needs at least a program");
                    return None;
                }
                Some(Self::Argv(argv))
            }
            _ => String::decode(d, node).map(Self::Program),
        }
    }
}

impl Decode for ApprovalSpec {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        // `approval: true` asks with no message and no timeout.
        if node.value == NodeValue::Bool(true) {
            return Some(Self::default());
        }
        let mut m = d.map(node, "`approval`")?;
        let spec = Self {
            message: m.opt(d, "message", Decode::decode),
            timeout: m.opt(d, "timeout", Decode::decode),
            approvers: m.opt(d, "approvers", Decode::decode).unwrap_or_default(),
        };
        m.finish(d);
        Some(spec)
    }
}

impl Decode for ResourcesSpec {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        let mut m = d.map(node, "`resources`")?;
        let spec = Self {
            cpu: m.opt(d, "cpu", Decode::decode),
            memory: m.opt(d, "memory", Decode::decode),
            gpu: m.opt(d, "gpu", Decode::decode),
        };
        m.finish(d);
        Some(spec)
    }
}

impl Decode for CacheSpec {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        let mut m = d.map(node, "`cache`")?;
        let key = m.req(d, "key", Decode::decode);
        let ttl = m.opt(d, "ttl", Decode::decode);
        m.finish(d);
        Some(Self { key: key?, ttl })
    }
}
