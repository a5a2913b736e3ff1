//! `PipelineSpec` -> `Pipeline`: every cross-field check, collecting all problems.

use std::collections::{BTreeSet, HashMap};

use indexmap::IndexMap;

use crate::ancestry::Ancestry;
use crate::dag::{Dag, TaskIndex};
use crate::decode::Decoder;
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::ids::{ExecutorName, Identifier, Namespace, PipelineId, PipelineName, PoolName, TaskId};
use crate::model::{
    Action, Approval, Cache, DefinitionHash, ForEach, Param, Pipeline, Resources, Task, Template,
    default_shell,
};
use crate::span::Spanned;
use crate::spec::{
    ForEachSpec, PipelineSpec, RetryPolicySpec, ShellSpec, TaskDefaultsSpec, TaskSpec, TriggerRule,
};

mod artifacts;
mod container;
mod fields;
pub use fields::parse_memory;
mod http;
mod runs_on;
mod shell;
mod templates;
mod triggers;

pub use container::unknown_executors;
use fields::*;
use http::check_http_fields;
use templates::{Scope, TaskAccess};

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
            if let Some(c) = &defaults.container {
                d.at("container", |d| self.container_image(d, &c.value, base));
            }
            if let Some(r) = &defaults.runs_on {
                d.at("runs_on", |d| runs_on::runs_on(d, r));
            }
            if let Some(e) = &defaults.executor {
                d.at("executor", |d| container::executor_name(d, e));
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
        let http_fields_ok = check_http_fields(d, id, t);
        // A task's own `container` beside a request or a sub-pipeline is a conflict; the one of
        // `defaults` applies to commands only.
        let own_container = t
            .container
            .as_ref()
            .filter(|_| t.http.is_none() && t.pipeline.is_none());
        let container = own_container.map(|c| (c, false)).or_else(|| {
            t.run
                .as_ref()
                .and(defaults.container.as_ref())
                .map(|c| (c, true))
        });
        let action = match (&t.run, &t.pipeline, &t.http) {
            (Some(run), None, None) => d.at("run", |d| {
                let run = self.template(d, run.span, &run.value, scope).inspect(|_| {
                    shell::check_script(d, run.span, &run.value, &shell);
                })?;
                Some(Action::Command {
                    run,
                    shell: shell.clone(),
                })
            }),
            (None, Some(p), None) => d
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
            (None, None, Some(h)) => d
                .at("http", |d| {
                    self.http_call(d, h, t.outputs_from.as_ref().map(|o| o.value), scope)
                })
                .map(Action::Http),
            (None, None, None) if own_container.is_some() => Some(Action::Gate),
            (None, None, None) if t.approval.is_some() => Some(Action::Gate),
            (None, None, None) => {
                d.error(id.span, format!("task `{}` has nothing to do", id.value))
                    .hint = Some(
                    "add `run` (a command), `http` (a request), `pipeline` (a sub-pipeline) \
                     or `approval` (a gate)"
                        .into(),
                );
                None
            }
            (run, pipeline, http) => {
                let set: Vec<&str> = [
                    run.is_some().then_some("`run`"),
                    t.container.is_some().then_some("`container`"),
                    pipeline.is_some().then_some("`pipeline`"),
                    http.is_some().then_some("`http`"),
                ]
                .into_iter()
                .flatten()
                .collect();
                let span = run
                    .as_ref()
                    .map(|r| r.span)
                    .or(pipeline.as_ref().map(|p| p.span))
                    .unwrap_or(id.span);
                d.error(
                    span,
                    format!("a task does one thing: {} are set", set.join(" and ")),
                )
                .hint = Some("split it into two tasks, one needing the other".into());
                None
            }
        };
        let conflict = t.container.is_some() && own_container.is_none();
        if conflict && t.run.is_none() && (t.http.is_some() != t.pipeline.is_some()) {
            let c = t.container.as_ref().map_or(id.span, |c| c.span);
            let other = if t.http.is_some() { "http" } else { "pipeline" };
            d.at("container", |d| {
                d.error(
                    c,
                    format!("a task does one thing: `container` and `{other}` are set"),
                )
                .hint = Some("split it into two tasks, one needing the other".into());
            });
        }
        // A command, or nothing but its own container (the image's command), runs in it.
        let action = match (action, container) {
            (Some(Action::Command { run, shell }), Some((c, inherited))) => self
                .container_call(d, c, inherited, Some(run), shell, scope)
                .map(Action::Container),
            (Some(Action::Gate), Some((c, false))) => self
                .container_call(d, c, false, None, shell, scope)
                .map(Action::Container),
            (action, _) => action,
        };
        let action = action.filter(|_| http_fields_ok && !conflict);
        let action_kind = runs_on::placement(action.as_ref());
        let artifacts = self.artifacts(d, t, action.as_ref(), scope);
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
            artifacts,
            runs_on: runs_on::of_task(d, t, defaults, action_kind),
            // Inherited from `defaults.executor`, which was checked there.
            executor: match (&t.executor, &defaults.executor) {
                (Some(e), _) => d.at("executor", |d| container::executor_name(d, e)),
                (None, Some(e)) => ExecutorName::new(e.value.clone()).ok(),
                (None, None) => None,
            },
        })
    }
}
