//! `PipelineSpec` -> `Pipeline`: every cross-field check, collecting all problems.

use std::collections::{BTreeSet, HashMap};

use indexmap::IndexMap;

use crate::ancestry::Ancestry;
use crate::dag::{Dag, TaskIndex};
use crate::decode::Decoder;
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::duration::Duration;
use crate::ids::{Identifier, Namespace, PipelineId, PipelineName, PoolName, TaskId};
use crate::model::{
    Action, Approval, Cache, Concurrency, Dataset, DefinitionHash, Expression, ForEach, Notify,
    Param, Pipeline, Resources, RetryPolicy, Schedule, Task, Template, Trigger, WebhookUrl,
    check_webhook_url, default_shell,
};
use crate::span::{Span, Spanned};
use crate::spec::{
    Catchup, DatasetSpec, EnvSpec, ForEachSpec, NotifyEvent, NotifyFormat, NotifySpec, Overlap,
    ParamSpec, ParamType, PipelineSpec, RetryPolicySpec, ShellSpec, TaskDefaultsSpec, TaskSpec,
    TriggerRule, TriggerSpec,
};
use crate::template::{SyntaxError, expression_variables, template_variables};

mod shell;

/// Checks a decoded spec. Returns the pipeline when there are no errors, and every diagnostic
/// (errors and warnings) either way.
pub fn compile(
    spec: &PipelineSpec,
    version: DefinitionHash,
) -> (Option<Pipeline>, Vec<Diagnostic>) {
    let mut d = Decoder::new();
    let mut c = Compiler {
        spec,
        params: IndexMap::new(),
        task_names: HashMap::new(),
        outputs: Vec::new(),
        dag: None,
        ancestry: Ancestry::default(),
    };
    let pipeline = c.pipeline(&mut d, version);
    let diags = d.diags;
    let ok = !diags.iter().any(Diagnostic::is_error);
    (pipeline.filter(|_| ok), diags)
}

struct Compiler<'s> {
    spec: &'s PipelineSpec,
    params: IndexMap<String, Param>,
    task_names: HashMap<&'s str, TaskIndex>,
    /// Declared outputs per task, for checking `tasks.x.outputs.y`.
    outputs: Vec<Vec<&'s str>>,
    dag: Option<Dag>,
    /// Answers the `tasks.x` references' upstream questions, linear in total.
    ancestry: Ancestry,
}

/// What a template may refer to.
#[derive(Clone, Copy)]
struct Scope<'a> {
    tasks: TaskAccess<'a>,
    item: bool,
    /// Webhook parameter templates read the request body.
    payload: bool,
    /// Hooks run after the run ends and may read its final state.
    hook: bool,
}

#[derive(Clone, Copy)]
enum TaskAccess<'a> {
    None,
    /// Only tasks upstream of this one (named for messages).
    Upstream(&'a str, TaskIndex),
    All,
}

const ROOTS: &[&str] = &["params", "tasks", "run", "pipeline", "item", "env"];
const RUN_FIELDS: &[&str] = &["id", "logical_date", "trigger"];
const HOOK_RUN_FIELDS: &[&str] = &["id", "logical_date", "trigger", "state"];
const PIPELINE_FIELDS: &[&str] = &["name", "namespace", "version"];
const TASK_FIELDS: &[&str] = &["outputs", "state"];

impl<'s> Compiler<'s> {
    fn pipeline(&mut self, d: &mut Decoder, version: DefinitionHash) -> Option<Pipeline> {
        let spec = self.spec;
        let name = d.at("name", |d| {
            PipelineName::new(spec.name.value.clone())
                .map_err(|e| d.error(spec.name.span, e.to_string()))
                .ok()
        });
        let namespace = match &spec.namespace {
            None => Some(Namespace::default_namespace()),
            Some(ns) => d.at("namespace", |d| {
                Namespace::new(ns.value.clone())
                    .map_err(|e| d.error(ns.span, e.to_string()))
                    .ok()
            }),
        };
        d.at("params", |d| {
            for (name, p) in &spec.params {
                d.at(name.value.clone(), |d| {
                    if let Some(param) = check_param(d, name, p) {
                        self.params.insert(name.value.clone(), param);
                    }
                });
            }
        });
        self.index_tasks(d);
        d.at("tasks", |d| {
            shell::check_output_vars(
                d,
                spec.tasks
                    .iter()
                    .zip(&self.outputs)
                    .map(|((id, _), outputs)| (id.value.as_str(), id.span, outputs.as_slice())),
            );
        });
        self.build_dag(d);

        let base = Scope {
            tasks: TaskAccess::None,
            item: false,
            payload: false,
            hook: false,
        };
        let env = d.at("env", |d| {
            check_env(d, &spec.env, |d, span, t| self.template(d, span, t, base))
        });
        let defaults = spec.defaults.clone().unwrap_or_default();
        let default_retry = defaults
            .retries
            .as_ref()
            .map(|r| r.value.clone().into_policy())
            .unwrap_or_default();
        if defaults.retries.is_some() {
            d.at("defaults", |d| {
                d.at("retries", |d| {
                    check_retry(
                        d,
                        spec_span(defaults.retries.as_ref()),
                        default_retry.clone(),
                    )
                })
            });
        }
        d.at("defaults", |d| {
            d.at("env", |d| {
                check_env(d, &defaults.env, |d, span, t| {
                    self.template(d, span, t, base)
                })
            });
            if let Some(w) = &defaults.working_dir {
                d.at("working_dir", |d| self.template(d, w.span, &w.value, base));
            }
            if let Some(to) = &defaults.timeout {
                d.at("timeout", |d| check_timeout(d, to));
            }
            if let Some(p) = &defaults.pool {
                d.at("pool", |d| pool_name(d, p));
            }
        });

        let mut tasks = Vec::with_capacity(spec.tasks.len());
        d.at("tasks", |d| {
            for (i, (id, t)) in spec.tasks.iter().enumerate() {
                let scope = Scope {
                    tasks: TaskAccess::Upstream(&id.value, i),
                    item: t.for_each.is_some(),
                    ..base
                };
                let task = d.at(id.value.clone(), |d| {
                    self.task(d, id, t, &defaults, &default_retry, scope)
                });
                tasks.extend(task);
            }
        });
        let hook_scope = Scope {
            tasks: TaskAccess::All,
            hook: true,
            ..base
        };
        let on_success = self.hook(
            d,
            &spec.on_success,
            "on_success",
            &defaults,
            &default_retry,
            hook_scope,
        );
        let on_failure = self.hook(
            d,
            &spec.on_failure,
            "on_failure",
            &defaults,
            &default_retry,
            hook_scope,
        );
        let schedules = d.at("schedule", |d| self.schedules(d));
        let triggers = d.at("triggers", |d| self.triggers(d, namespace.as_ref()));
        let concurrency = d.at("concurrency", |d| concurrency(d, spec));
        if let Some(dl) = &spec.deadline {
            d.at("deadline", |d| check_positive(d, dl, "deadline"));
        }
        let notify = d.at("notify", |d| notify(d, &spec.notify));

        let dag = self.dag.take()?;
        let index = tasks
            .iter()
            .enumerate()
            .map(|(i, t): (usize, &Task)| (t.id.clone(), i))
            .collect();
        let id = PipelineId {
            namespace: namespace?,
            name: name?,
        };
        (tasks.len() == spec.tasks.len()).then(|| Pipeline {
            id,
            version,
            description: spec.description.clone(),
            owner: spec.owner.clone(),
            tags: spec.tags.clone(),
            params: std::mem::take(&mut self.params),
            env,
            schedules,
            triggers,
            concurrency,
            deadline: spec.deadline.as_ref().map(|d| d.value),
            notify,
            tasks,
            dag,
            on_success: on_success.flatten(),
            on_failure: on_failure.flatten(),
            index,
        })
    }

    fn index_tasks(&mut self, d: &mut Decoder) {
        let spec = self.spec;
        if spec.tasks.is_empty() {
            d.at("tasks", |d| {
                d.error(spec.name.span, "the pipeline has no tasks").hint =
                    Some("add at least one task under `tasks:`".into());
            });
        }
        for (i, (id, t)) in spec.tasks.iter().enumerate() {
            d.at("tasks", |d| {
                d.at(id.value.clone(), |d| {
                    if let Err(e) = TaskId::new(id.value.clone()) {
                        d.error(id.span, e.to_string());
                    }
                });
            });
            self.task_names.insert(&id.value, i);
            self.outputs.push(
                t.outputs
                    .iter()
                    .filter_map(|o| value_output(&o.value))
                    .collect(),
            );
        }
    }

    /// Resolves `needs` to indices, reporting unknown names, and builds the DAG, reporting
    /// every cycle.
    fn build_dag(&mut self, d: &mut Decoder) {
        let spec = self.spec;
        let names: Vec<&str> = spec.tasks.keys().map(|k| k.value.as_str()).collect();
        let mut upstream = Vec::with_capacity(spec.tasks.len());
        for (id, t) in &spec.tasks {
            let mut ups: Vec<TaskIndex> = Vec::with_capacity(t.needs.len());
            for (j, need) in t.needs.iter().enumerate() {
                let field = |d: &mut Decoder, f: &mut dyn FnMut(&mut Decoder)| {
                    d.at("tasks", |d| {
                        d.at(id.value.clone(), |d| {
                            d.at("needs", |d| d.at(format!("[{j}]"), |d| f(d)))
                        })
                    });
                };
                match self.task_names.get(need.value.as_str()) {
                    Some(&u) if ups.contains(&u) => field(d, &mut |d| {
                        let diag = Diagnostic::warning(
                            need.span,
                            d.field(),
                            format!("`{}` is listed twice in `needs`", need.value),
                        );
                        d.diags.push(diag);
                    }),
                    Some(&u) => ups.push(u),
                    None => {
                        field(d, &mut |d| {
                            let hint = did_you_mean(&need.value, names.iter().copied())
                                .unwrap_or_else(|| {
                                    "`needs` lists task ids from this pipeline's `tasks`".into()
                                });
                            d.error(
                                need.span,
                                format!("task `{}` needs unknown task `{}`", id.value, need.value),
                            )
                            .hint = Some(hint);
                        });
                    }
                }
            }
            upstream.push(ups);
        }
        // Unknown names are left out (and reported) so that cycles among the rest still show.
        match Dag::build(upstream) {
            Ok(dag) => self.dag = Some(dag),
            Err(cycles) => {
                let tasks: Vec<(&Spanned<String>, &TaskSpec)> = spec.tasks.iter().collect();
                for cycle in cycles {
                    let path: Vec<&str> =
                        cycle.iter().map(|&i| tasks[i].0.value.as_str()).collect();
                    // Point at the `needs` entry of the cycle's first task that closes it.
                    let (first, _) = tasks[cycle[0]];
                    let closing = tasks[cycle[cycle.len() - 2]].0;
                    let entry = tasks[cycle[0]]
                        .1
                        .needs
                        .iter()
                        .position(|n| n.value == closing.value)
                        .unwrap_or(0);
                    let span = tasks[cycle[0]]
                        .1
                        .needs
                        .get(entry)
                        .map_or(first.span, |n| n.span);
                    d.at("tasks", |d| {
                        d.at(first.value.clone(), |d| {
                            d.at("needs", |d| {
                                d.at(format!("[{entry}]"), |d| {
                                    d.error(
                                        span,
                                        format!("dependency cycle: {}", path.join(" -> ")),
                                    )
                                    .hint = Some(
                                        "remove one of these `needs` so the tasks can be ordered"
                                            .into(),
                                    );
                                });
                            });
                        });
                    });
                }
            }
        }
    }

    fn hook(
        &self,
        d: &mut Decoder,
        spec: &'s Option<Spanned<TaskSpec>>,
        key: &'static str,
        defaults: &TaskDefaultsSpec,
        default_retry: &RetryPolicySpec,
        scope: Scope<'_>,
    ) -> Option<Option<Task>> {
        let Some(hook) = spec else {
            return Some(None);
        };
        let t = &hook.value;
        let id = Spanned::new(key.to_owned(), hook.span);
        d.at(key, |d| {
            let forbidden = [
                (
                    "needs",
                    !t.needs.is_empty(),
                    t.needs.first().map(|n| n.span),
                ),
                (
                    "for_each",
                    t.for_each.is_some(),
                    t.for_each.as_ref().map(|f| f.span),
                ),
                ("approval", t.approval.is_some(), None),
                ("trigger_rule", t.trigger_rule.is_some(), None),
            ];
            let mut ok = true;
            for (field, set, span) in forbidden {
                if set {
                    ok = false;
                    d.at(field, |d| {
                        d.error(
                            span.unwrap_or(hook.span),
                            format!("`{field}` is not allowed in `{key}`"),
                        )
                        .hint = Some(format!("`{key}` runs once after every task has finished"));
                    });
                }
            }
            let task = self.task(d, &id, t, defaults, default_retry, scope)?;
            ok.then_some(Some(task))
        })
    }

    fn task(
        &self,
        d: &mut Decoder,
        id: &Spanned<String>,
        t: &TaskSpec,
        defaults: &TaskDefaultsSpec,
        default_retry: &RetryPolicySpec,
        scope: Scope<'_>,
    ) -> Option<Task> {
        let task_id = TaskId::new(id.value.clone()).ok();
        let shell = t
            .shell
            .as_ref()
            .or(defaults.shell.as_ref())
            .map_or_else(default_shell, |s| match &s.value {
                ShellSpec::Program(p) => vec![p.clone(), "-c".to_owned()],
                ShellSpec::Argv(argv) => argv.clone(),
            });
        let action = match (&t.run, &t.pipeline) {
            (Some(run), None) => d.at("run", |d| {
                let run = self.template(d, run.span, &run.value, scope).inspect(|_| {
                    shell::check_script(d, run.span, &run.value, &shell);
                })?;
                Some(Action::Command { run, shell })
            }),
            (None, Some(p)) => d
                .at("pipeline", |d| {
                    let ns = self
                        .spec
                        .namespace
                        .as_ref()
                        .and_then(|n| Namespace::new(n.value.clone()).ok())
                        .unwrap_or_else(Namespace::default_namespace);
                    PipelineId::parse(&p.value, &ns)
                        .map_err(|e| d.error(p.span, e.to_string()))
                        .ok()
                })
                .map(|pipeline| {
                    let params = d.at("params", |d| {
                        let mut out = IndexMap::new();
                        for (k, v) in &t.params {
                            if let Some(text) = v.value.as_str() {
                                d.at(k.value.clone(), |d| self.template(d, v.span, text, scope));
                            }
                            out.insert(k.value.clone(), v.value.clone());
                        }
                        out
                    });
                    Action::Pipeline { pipeline, params }
                }),
            (Some(run), Some(_)) => {
                d.error(run.span, "a task has either `run` or `pipeline`, not both")
                    .hint = Some("split it into two tasks, one needing the other".into());
                None
            }
            (None, None) if t.approval.is_some() => Some(Action::Gate),
            (None, None) => {
                d.error(id.span, format!("task `{}` has nothing to do", id.value))
                    .hint = Some(
                    "add `run` (a command), `pipeline` (a sub-pipeline) or `approval` (a gate)"
                        .into(),
                );
                None
            }
        };
        if t.pipeline.is_none() && !t.params.is_empty() {
            d.at("params", |d| {
                let span = t.params.keys().next().map_or(id.span, |k| k.span);
                d.error(span, "`params` is only used with `pipeline`").hint =
                    Some("a command reads run parameters as `{{ params.NAME }}`".into());
            });
        }
        let condition = t
            .condition
            .as_ref()
            .and_then(|c| d.at("if", |d| self.expression(d, c.span, &c.value, scope)));
        let for_each = t.for_each.as_ref().and_then(|f| {
            d.at("for_each", |d| match &f.value {
                ForEachSpec::Items(items) => Some(ForEach::Items(items.clone())),
                ForEachSpec::Expression(e) => self
                    .expression(
                        d,
                        f.span,
                        e,
                        Scope {
                            item: false,
                            ..scope
                        },
                    )
                    .map(ForEach::Expression),
            })
        });
        let (outputs, output_datasets) = d.at("outputs", |d| {
            let mut seen = BTreeSet::new();
            let mut out = Vec::new();
            let mut datasets = Vec::new();
            for (i, o) in t.outputs.iter().enumerate() {
                d.at(format!("[{i}]"), |d| match value_output(&o.value) {
                    Some(text) => match Identifier::new(text.to_owned()) {
                        Ok(name) if !seen.insert(text) => {
                            d.error(o.span, format!("output `{name}` is declared twice"));
                        }
                        Ok(name) => out.push(name),
                        Err(e) => {
                            d.error(o.span, e.to_string()).hint = Some(
                                "a dataset is a URI with `://`, e.g. `s3://bucket/path`".into(),
                            );
                        }
                    },
                    None => datasets.extend(dataset(d, o)),
                });
            }
            (out, unique_datasets(d, datasets))
        });
        let input_datasets = d.at("inputs", |d| {
            let datasets = t
                .inputs
                .iter()
                .enumerate()
                .filter_map(|(i, o)| d.at(format!("[{i}]"), |d| dataset(d, o)))
                .collect();
            unique_datasets(d, datasets)
        });
        if let Some(dl) = &t.deadline {
            d.at("deadline", |d| check_positive(d, dl, "deadline"));
        }
        let mut task_env: IndexMap<String, Template> = d.at("env", |d| {
            check_env(d, &t.env, |d, span, text| {
                self.template(d, span, text, scope)
            })
        });
        for (k, v) in &defaults.env {
            // Defaults were checked once at `defaults.env`; tasks only inherit them.
            task_env
                .entry(k.value.clone())
                .or_insert_with(|| Template(v.value.0.clone()));
        }
        let working_dir = t
            .working_dir
            .as_ref()
            .map(|w| d.at("working_dir", |d| self.template(d, w.span, &w.value, scope)))
            .unwrap_or_else(|| {
                defaults
                    .working_dir
                    .as_ref()
                    .map(|w| Template(w.value.clone()))
            });
        let timeout = t.timeout.as_ref().or(defaults.timeout.as_ref());
        if let Some(to) = &t.timeout {
            d.at("timeout", |d| check_timeout(d, to));
        }
        let retry = d.at("retries", |d| {
            let own = t
                .retries
                .as_ref()
                .map(|r| r.value.clone().into_policy())
                .unwrap_or_default();
            // Inherited fields were checked at `defaults.retries`; report only this task's.
            match t.retries {
                Some(_) => check_retry(d, spec_span(t.retries.as_ref()), own.over(default_retry)),
                None => Some(to_policy(own.over(default_retry))),
            }
        });
        let approval = t.approval.as_ref().map(|a| {
            d.at("approval", |d| Approval {
                message: a
                    .message
                    .as_ref()
                    .and_then(|m| d.at("message", |d| self.template(d, m.span, &m.value, scope))),
                timeout: a.timeout.as_ref().map(|t| t.value),
                approvers: a.approvers.clone(),
            })
        });
        let resources = t.resources.as_ref().map_or_else(Resources::default, |r| {
            d.at("resources", |d| Resources {
                cpu: r.cpu.as_ref().and_then(|c| {
                    if c.value > 0.0 {
                        return Some(c.value);
                    }
                    d.at("cpu", |d| {
                        d.error(c.span, "`cpu` must be greater than zero");
                    });
                    None
                }),
                memory_bytes: r.memory.as_ref().and_then(|m| {
                    d.at("memory", |d| {
                        parse_memory(&m.value)
                            .map_err(|e| {
                                d.error(m.span, e).hint =
                                    Some("write a number with a unit: `512Mi`, `2Gi`, `1G`".into());
                            })
                            .ok()
                    })
                }),
                gpu: r.gpu,
            })
        });
        let cache = t.cache.as_ref().and_then(|c| {
            d.at("cache", |d| {
                d.at("key", |d| self.template(d, c.key.span, &c.key.value, scope))
                    .map(|key| Cache {
                        key,
                        ttl: c.ttl.as_ref().map(|t| t.value),
                    })
            })
        });
        let trigger_rule = t.trigger_rule.unwrap_or(TriggerRule::AllSuccess);
        if t.trigger_rule.is_some_and(|r| r != TriggerRule::AllSuccess) && t.needs.is_empty() {
            let diag = Diagnostic::warning(
                id.span,
                d.field(),
                format!("`trigger_rule: {trigger_rule}` has no effect on a task without `needs`"),
            );
            d.diags.push(diag);
        }
        let needs = t
            .needs
            .iter()
            .filter_map(|n| TaskId::new(n.value.clone()).ok())
            .fold(Vec::new(), |mut acc: Vec<TaskId>, n| {
                if !acc.contains(&n) {
                    acc.push(n);
                }
                acc
            });
        Some(Task {
            id: task_id?,
            description: t.description.clone(),
            action: action?,
            needs,
            condition,
            trigger_rule,
            for_each,
            outputs,
            input_datasets,
            output_datasets,
            env: task_env,
            working_dir,
            timeout: timeout.map(|t| t.value),
            deadline: t.deadline.as_ref().map(|t| t.value),
            retry: retry?,
            approval,
            priority: t.priority.or(defaults.priority).unwrap_or(0),
            // Inherited from `defaults.pool`, which was checked there.
            pool: match (&t.pool, &defaults.pool) {
                (Some(p), _) => d.at("pool", |d| pool_name(d, p)),
                (None, Some(p)) => PoolName::new(p.value.clone()).ok(),
                (None, None) => None,
            },
            labels: t
                .labels
                .iter()
                .map(|(k, v)| (k.value.clone(), v.value.0.clone()))
                .collect(),
            resources,
            cache,
        })
    }

    fn schedules(&self, d: &mut Decoder) -> Vec<Schedule> {
        let mut out = Vec::new();
        for (i, s) in self.spec.schedule.iter().enumerate() {
            d.at(format!("[{i}]"), |d| {
                let cron = d.at("cron", |d| {
                    crate::model::parse_cron(&s.cron.value)
                        .map_err(|e| {
                            d.error(s.cron.span, format!("invalid cron `{}`: {}", s.cron.value, lowercase_first(e.trim_end_matches('.'))))
                                .hint = Some("five fields `minute hour day-of-month month day-of-week` (an optional leading seconds field), or `@daily`, `@hourly`, ...".into());
                        })
                        .ok()
                });
                let tz_name = s.timezone.as_ref().map_or("UTC", |t| t.value.as_str());
                let tz_ok = d.at("timezone", |d| match crate::model::parse_timezone(tz_name) {
                    Ok(_) => true,
                    Err(_) => {
                        let span = s.timezone.as_ref().map_or(s.cron.span, |t| t.span);
                        d.error(span, format!("unknown time zone `{tz_name}`")).hint = Some(
                            "use an IANA name such as `UTC`, `Europe/Berlin` or `America/New_York`"
                                .into(),
                        );
                        false
                    }
                });
                let params = d.at("params", |d| self.given_params(d, &s.params, true, s.cron.span));
                if let (Some(_), true) = (cron, tz_ok) {
                    let catchup = s.catchup.unwrap_or(Catchup::Latest);
                    match Schedule::new(&s.cron.value, tz_name, catchup, params) {
                        Ok(sched) => out.push(sched),
                        Err(e) => {
                            d.error(s.cron.span, e);
                        }
                    }
                }
            });
        }
        out
    }

    /// Checks params given by a schedule or a sub-pipeline call against the declarations.
    fn given_params(
        &self,
        d: &mut Decoder,
        given: &IndexMap<Spanned<String>, Spanned<serde_json::Value>>,
        require_all: bool,
        at: Span,
    ) -> IndexMap<String, serde_json::Value> {
        let mut out = IndexMap::new();
        for (k, v) in given {
            d.at(k.value.clone(), |d| match self.params.get(&k.value) {
                None => {
                    let hint = did_you_mean(&k.value, self.params.keys().map(String::as_str))
                        .unwrap_or_else(|| "declare it under `params:`".into());
                    d.error(k.span, format!("unknown param `{}`", k.value)).hint = Some(hint);
                }
                Some(p) => match p.check(&v.value) {
                    Ok(()) => {
                        out.insert(k.value.clone(), v.value.clone());
                    }
                    Err(e) => {
                        d.error(v.span, format!("param `{}`: {e}", k.value));
                    }
                },
            });
        }
        if require_all {
            for (name, p) in &self.params {
                let has_default = self
                    .spec
                    .params
                    .get(name.as_str())
                    .is_some_and(|p| p.default.is_some());
                if p.is_required() && !has_default && !given.contains_key(name.as_str()) {
                    d.error(at, format!("required param `{name}` is not given"))
                        .hint = Some(format!(
                        "give it under `params:` here, or declare a `default` for `{name}`"
                    ));
                }
            }
        }
        out
    }

    fn triggers(&self, d: &mut Decoder, ns: Option<&Namespace>) -> Vec<Trigger> {
        let ns = ns.cloned().unwrap_or_else(Namespace::default_namespace);
        let mut out = Vec::new();
        for (i, t) in self.spec.triggers.iter().enumerate() {
            d.at(format!("[{i}]"), |d| match t {
                TriggerSpec::Pipeline(p) => {
                    d.at("pipeline", |d| match PipelineId::parse(&p.value, &ns) {
                        Ok(pipeline) if pipeline.name.as_str() == self.spec.name.value && pipeline.namespace == ns => {
                            d.error(p.span, format!("pipeline `{pipeline}` triggers itself")).hint =
                                Some("an upstream trigger names another pipeline; this one would run forever".into());
                        }
                        Ok(pipeline) => out.push(Trigger::Pipeline { pipeline }),
                        Err(e) => {
                            d.error(p.span, e.to_string());
                        }
                    })
                }
                TriggerSpec::Webhook(w) => d.at("webhook", |d| {
                    let scope = Scope {
                        tasks: TaskAccess::None,
                        item: false,
                        payload: true,
                        hook: false,
                    };
                    let mut params = IndexMap::new();
                    d.at("params", |d| {
                        for (k, v) in &w.params {
                            d.at(k.value.clone(), |d| {
                                if !self.params.contains_key(&k.value) {
                                    let hint = did_you_mean(
                                        &k.value,
                                        self.params.keys().map(String::as_str),
                                    )
                                    .unwrap_or_else(|| "declare it under `params:`".into());
                                    d.error(k.span, format!("unknown param `{}`", k.value)).hint =
                                        Some(hint);
                                } else if let Some(t) = self.template(d, v.span, &v.value, scope) {
                                    params.insert(k.value.clone(), t);
                                }
                            });
                        }
                    });
                    out.push(Trigger::Webhook {
                        secret_env: w.secret_env.clone(),
                        params,
                    });
                }),
            });
        }
        out
    }

    fn template(
        &self,
        d: &mut Decoder,
        span: Span,
        text: &str,
        scope: Scope<'_>,
    ) -> Option<Template> {
        let vars = template_variables(text)
            .map_err(|e| syntax(d, span, text, &e))
            .ok()?;
        self.check_vars(d, span, &vars, scope)
            .then(|| Template(text.to_owned()))
    }

    fn expression(
        &self,
        d: &mut Decoder,
        span: Span,
        text: &str,
        scope: Scope<'_>,
    ) -> Option<Expression> {
        let vars = expression_variables(text)
            .map_err(|e| syntax(d, span, text, &e))
            .ok()?;
        self.check_vars(d, span, &vars, scope)
            .then(|| Expression(crate::template::expression_source(text).to_owned()))
    }

    /// Checks each variable a template reads against what will exist when it renders.
    fn check_vars(
        &self,
        d: &mut Decoder,
        span: Span,
        vars: &BTreeSet<String>,
        scope: Scope<'_>,
    ) -> bool {
        let mut ok = true;
        for var in vars {
            if let Err((message, hint)) = self.check_var(var, scope) {
                d.error(span, message).hint = hint;
                ok = false;
            }
        }
        ok
    }

    fn check_var(&self, var: &str, scope: Scope<'_>) -> Result<(), (String, Option<String>)> {
        let parts: Vec<&str> = var.split('.').collect();
        let field_of = |allowed: &[&str], root: &str| -> Result<(), (String, Option<String>)> {
            match parts.get(1) {
                Some(f) if !allowed.contains(f) => Err((
                    format!("unknown field `{f}` of `{root}`"),
                    Some(
                        did_you_mean(f, allowed.iter().copied())
                            .unwrap_or_else(|| crate::diagnostic::one_of(allowed)),
                    ),
                )),
                _ => Ok(()),
            }
        };
        match parts[0] {
            "params" => match parts.get(1) {
                Some(p) if !self.params.contains_key(*p) && !self.spec.params.contains_key(*p) => {
                    Err((
                        format!("unknown param `{p}`"),
                        Some(
                            did_you_mean(p, self.spec.params.keys().map(|k| k.value.as_str()))
                                .unwrap_or_else(|| format!("declare `{p}` under `params:`")),
                        ),
                    ))
                }
                _ => Ok(()),
            },
            "env" => Ok(()),
            "run" => field_of(
                if scope.hook {
                    HOOK_RUN_FIELDS
                } else {
                    RUN_FIELDS
                },
                "run",
            ),
            "pipeline" => field_of(PIPELINE_FIELDS, "pipeline"),
            "item" if scope.item => Ok(()),
            "item" => Err((
                "`item` is only defined in tasks with `for_each`".into(),
                None,
            )),
            "payload" if scope.payload => Ok(()),
            "tasks" => self.check_task_var(&parts, scope),
            other => {
                let mut roots: Vec<&str> = ROOTS.to_vec();
                if scope.payload {
                    roots.push("payload");
                }
                Err((
                    format!("unknown variable `{other}`"),
                    Some(
                        did_you_mean(other, roots.iter().copied()).unwrap_or_else(|| {
                            format!(
                                "templates can use {}",
                                roots
                                    .iter()
                                    .map(|r| format!("`{r}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        }),
                    ),
                ))
            }
        }
    }

    fn check_task_var(
        &self,
        parts: &[&str],
        scope: Scope<'_>,
    ) -> Result<(), (String, Option<String>)> {
        let current = match scope.tasks {
            TaskAccess::None => {
                return Err((
                    "task results are not available here".into(),
                    Some("only tasks and hooks can read `tasks.*`".into()),
                ));
            }
            TaskAccess::Upstream(name, i) => Some((name, i)),
            TaskAccess::All => None,
        };
        let Some(&name) = parts.get(1) else {
            return Ok(());
        };
        let Some(&idx) = self.task_names.get(name) else {
            return Err((
                format!("unknown task `{name}`"),
                did_you_mean(name, self.task_names.keys().copied()),
            ));
        };
        if let Some((current, i)) = current {
            // Without a DAG (a cycle was reported) upstream-ness is unknown; don't pile on.
            let upstream = self
                .dag
                .as_ref()
                .is_none_or(|g| self.ancestry.is_ancestor(g, idx, i));
            if !upstream || current == name {
                return Err((
                    format!("task `{name}` is not upstream of `{current}`"),
                    Some(format!("add `{name}` to the `needs` of `{current}`")),
                ));
            }
        }
        match parts.get(2) {
            None => Ok(()),
            Some(&"outputs") => match parts.get(3) {
                Some(out) if !self.outputs[idx].contains(out) => Err((
                    format!("task `{name}` does not declare output `{out}`"),
                    Some(
                        did_you_mean(out, self.outputs[idx].iter().copied())
                            .unwrap_or_else(|| format!("add `{out}` to the `outputs` of `{name}`")),
                    ),
                )),
                _ => Ok(()),
            },
            Some(f) if TASK_FIELDS.contains(f) => Ok(()),
            Some(f) => Err((
                format!("unknown field `{f}` of task `{name}`"),
                Some(
                    did_you_mean(f, TASK_FIELDS.iter().copied())
                        .unwrap_or_else(|| crate::diagnostic::one_of(TASK_FIELDS)),
                ),
            )),
        }
    }
}

fn syntax(d: &mut Decoder, span: Span, text: &str, e: &SyntaxError) {
    let line = if text.lines().count() > 1 {
        format!(" (line {} of the template)", e.line)
    } else {
        String::new()
    };
    d.error(span, format!("template syntax error: {}{line}", e.message));
}

fn check_env(
    d: &mut Decoder,
    spec: &EnvSpec,
    mut template: impl FnMut(&mut Decoder, Span, &str) -> Option<Template>,
) -> IndexMap<String, Template> {
    let mut out = IndexMap::new();
    for (k, v) in spec {
        d.at(k.value.clone(), |d| {
            let valid_name = !k.value.is_empty()
                && !k.value.starts_with(|c: char| c.is_ascii_digit())
                && k.value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid_name {
                d.error(
                    k.span,
                    format!("invalid environment variable name `{}`", k.value),
                )
                .hint = Some("use letters, digits and `_`, not starting with a digit".into());
            } else if k.value.starts_with("BATON_") {
                d.error(k.span, format!("`{}` is reserved", k.value)).hint =
                    Some("baton sets `BATON_*` variables itself; pick another name".into());
            } else if let Some(t) = template(d, v.span, &v.value.0) {
                out.insert(k.value.clone(), t);
            }
        });
    }
    out
}

/// A pool's name as written, checked as `baton pool set` checks it.
fn pool_name(d: &mut Decoder, p: &Spanned<String>) -> Option<PoolName> {
    PoolName::new(p.value.clone())
        .map_err(|e| {
            d.error(p.span, e.to_string()).hint =
                Some("`baton pool set NAME --slots N` accepts the same names".into());
        })
        .ok()
}

fn check_param(d: &mut Decoder, name: &Spanned<String>, p: &ParamSpec) -> Option<Param> {
    let ident = Identifier::new(name.value.clone())
        .map_err(|e| d.error(name.span, e.to_string()))
        .ok();
    let ty =
        p.ty.as_ref()
            .map(|t| t.value)
            .or_else(|| p.default.as_ref().and_then(|v| ParamType::of(&v.value)))
            .unwrap_or(ParamType::String);
    let (min, max) = (
        p.min.as_ref().map(|m| m.value),
        p.max.as_ref().map(|m| m.value),
    );
    if let (Some(lo), Some(hi)) = (&p.min, &p.max)
        && lo.value > hi.value
    {
        d.at("max", |d| {
            d.error(
                hi.span,
                format!("`max` ({}) is less than `min` ({})", hi.value, lo.value),
            );
        });
    }
    if (min.is_some() || max.is_some()) && matches!(ty, ParamType::Boolean | ParamType::Object) {
        let span = p
            .min
            .as_ref()
            .or(p.max.as_ref())
            .map_or(name.span, |m| m.span);
        d.error(
            span,
            format!("`min`/`max` do not apply to {} param", ty.article()),
        )
        .hint = Some("they bound numbers, and the length of strings and arrays".into());
    }
    let mut param = Param {
        name: ident?,
        ty,
        default: None,
        description: p.description.clone(),
        choices: None,
        min,
        max,
    };
    if let Some(choices) = &p.choices {
        d.at("enum", |d| {
            if choices.value.is_empty() {
                d.error(choices.span, "`enum` is empty").hint =
                    Some("list the allowed values, or remove `enum`".into());
            }
            for (i, c) in choices.value.iter().enumerate() {
                if !ty.matches(c) {
                    d.at(format!("[{i}]"), |d| {
                        d.error(
                            choices.span,
                            format!("`enum` value {c} is not {}", ty.article()),
                        );
                    });
                }
            }
        });
        param.choices = Some(choices.value.clone());
    }
    if let Some(default) = &p.default {
        d.at("default", |d| match param.check(&default.value) {
            Ok(()) => param.default = Some(default.value.clone()),
            Err(e) => {
                d.error(
                    default.span,
                    format!("default of param `{}` is invalid: {e}", name.value),
                );
            }
        });
    }
    Some(param)
}

fn to_policy(spec: RetryPolicySpec) -> RetryPolicy {
    let base = RetryPolicy::default();
    RetryPolicy {
        limit: spec.limit.unwrap_or(base.limit),
        delay: spec.delay.as_ref().map_or(base.delay, |d| d.value),
        backoff: spec.backoff.unwrap_or(base.backoff),
        max_delay: spec.max_delay.as_ref().map(|m| m.value),
        jitter: spec.jitter.unwrap_or(base.jitter),
        on_exit_codes: spec.on_exit_codes,
    }
}

fn check_timeout(d: &mut Decoder, timeout: &Spanned<Duration>) {
    check_positive(d, timeout, "timeout");
}

fn check_positive(d: &mut Decoder, value: &Spanned<Duration>, key: &str) {
    if value.value == Duration::ZERO {
        d.error(value.span, format!("`{key}` must be greater than zero"))
            .hint = Some(format!("remove `{key}` for no time limit"));
    }
}

/// An `outputs:` entry that names a value (no `://`, not a mapping) rather than a dataset.
fn value_output(o: &DatasetSpec) -> Option<&str> {
    match o {
        DatasetSpec::Text(t) if !t.contains("://") => Some(t),
        _ => None,
    }
}

fn dataset(d: &mut Decoder, o: &Spanned<DatasetSpec>) -> Option<Spanned<Dataset>> {
    let parsed = match &o.value {
        DatasetSpec::Text(uri) => Dataset::parse_uri(uri),
        DatasetSpec::Named(n) => Dataset::named(&n.namespace.value, &n.name.value),
    };
    match parsed {
        Ok(ds) => Some(Spanned::new(ds, o.span)),
        Err(e) => {
            d.error(o.span, e.to_string()).hint = Some(e.hint().into());
            None
        }
    }
}

/// Drops, and reports, datasets listed twice in one list.
fn unique_datasets(d: &mut Decoder, datasets: Vec<Spanned<Dataset>>) -> Vec<Dataset> {
    let mut out: Vec<(Dataset, u32)> = Vec::with_capacity(datasets.len());
    for ds in datasets {
        match out.iter().find(|(seen, _)| *seen == ds.value) {
            Some((_, line)) => {
                let line = *line;
                d.error(ds.span, format!("dataset `{}` is listed twice", ds.value))
                    .hint = Some(format!("first listed at line {line}"));
            }
            None => out.push((ds.value, ds.span.line)),
        }
    }
    out.into_iter().map(|(ds, _)| ds).collect()
}

fn notify(d: &mut Decoder, specs: &[Spanned<NotifySpec>]) -> Vec<Notify> {
    let mut out: Vec<(Notify, u32)> = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let n = &spec.value;
        let checked = d.at(format!("[{i}]"), |d| {
            let mut events: Vec<NotifyEvent> = Vec::with_capacity(n.on.len());
            if n.on.is_empty() {
                d.error(spec.span, "`on` lists no events").hint =
                    Some("write e.g. `on: [failure, deadline]`".into());
            }
            for e in &n.on {
                if events.contains(&e.value) {
                    d.at("on", |d| {
                        d.error(e.span, format!("event `{}` is listed twice", e.value));
                    });
                } else {
                    events.push(e.value);
                }
            }
            let webhook = match (&n.webhook, &n.webhook_env) {
                (Some(url), None) => d.at("webhook", |d| match check_webhook_url(&url.value) {
                    Ok(()) => Some(WebhookUrl::Url(url.value.clone())),
                    Err(why) => {
                        d.error(url.span, format!("webhook `{}` {why}", url.value))
                            .hint = Some(
                            "write an absolute URL such as `https://hooks.example.com/baton`, or name an environment variable with `webhook_env`".into(),
                        );
                        None
                    }
                }),
                (None, Some(var)) => d.at("webhook_env", |d| {
                    let ok = !var.value.is_empty()
                        && var
                            .value
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !var.value.starts_with(|c: char| c.is_ascii_digit());
                    if ok {
                        Some(WebhookUrl::Env(var.value.clone()))
                    } else {
                        d.error(
                            var.span,
                            format!("`{}` is not an environment variable name", var.value),
                        )
                        .hint = Some("use letters, digits and `_`, e.g. `SLACK_WEBHOOK_URL`".into());
                        None
                    }
                }),
                (Some(url), Some(_)) => {
                    d.error(url.span, "a notification has either `webhook` or `webhook_env`, not both");
                    None
                }
                (None, None) => {
                    d.error(spec.span, "a notification needs `webhook` or `webhook_env`")
                        .hint = Some("write `webhook: https://hooks.example.com/baton`".into());
                    None
                }
            };
            (!events.is_empty()).then_some(())?;
            Some(Notify {
                on: events,
                webhook: webhook?,
                format: n.format.unwrap_or(NotifyFormat::Json),
            })
        });
        let Some(checked) = checked else { continue };
        match out
            .iter()
            .find(|(seen, _)| seen.webhook == checked.webhook && seen.format == checked.format)
        {
            Some((_, line)) => {
                let line = *line;
                d.at(format!("[{i}]"), |d| {
                    d.error(
                        spec.span,
                        "this webhook is already notified with the same format",
                    )
                    .hint = Some(format!(
                        "merge the `on` lists into the entry at line {line}"
                    ));
                });
            }
            None => out.push((checked, spec.span.line)),
        }
    }
    out.into_iter().map(|(n, _)| n).collect()
}

fn check_retry(d: &mut Decoder, span: Span, spec: RetryPolicySpec) -> Option<RetryPolicy> {
    let max_delay = spec.max_delay.clone();
    let policy = to_policy(spec);
    if let Some(max) = &max_delay
        && max.value < policy.delay
    {
        d.at("max_delay", |d| {
            d.error(
                max.span,
                format!(
                    "`max_delay` ({}) is less than `delay` ({})",
                    max.value, policy.delay
                ),
            )
            .hint = Some("raise `max_delay` or lower `delay`".into());
        });
        return None;
    }
    const MAX_RETRIES: u32 = 1000;
    if policy.limit > MAX_RETRIES {
        d.error(
            span,
            format!(
                "{} retries is more than the maximum of {MAX_RETRIES}",
                policy.limit
            ),
        );
        return None;
    }
    Some(policy)
}

fn concurrency(d: &mut Decoder, spec: &PipelineSpec) -> Concurrency {
    let c = spec.concurrency.clone().unwrap_or_default();
    if let Some(m) = c.max_active_runs.as_ref().filter(|m| m.value == 0) {
        d.at("max_active_runs", |d| {
            d.error(m.span, "`max_active_runs` must be at least 1").hint =
                Some("pause the pipeline to stop it from running".into());
        });
    }
    // An overlap policy only means something against a limit: given alone, it limits the
    // pipeline to one active run (`overlap: skip` is the common "never overlap").
    let default_max = c.overlap.is_some().then_some(1);
    Concurrency {
        max_active_runs: c.max_active_runs.map(|m| m.value).or(default_max),
        overlap: c.overlap.unwrap_or(Overlap::Queue),
    }
}

/// Parses `512Mi`, `2Gi`, `1G`, `1000` into bytes.
fn parse_memory(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let factor: u64 = match unit {
        "" => 1,
        "K" | "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return Err(format!("invalid memory size `{text}`")),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| format!("invalid memory size `{text}`"))
}

fn spec_span<T>(s: Option<&Spanned<T>>) -> Span {
    s.map(|s| s.span).unwrap_or_default()
}

fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}
