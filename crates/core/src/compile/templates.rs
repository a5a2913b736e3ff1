//! Templates and expressions: parsed by the engine's environment, every variable checked
//! against what its place may read.

use std::collections::BTreeSet;

use crate::dag::TaskIndex;
use crate::decode::Decoder;
use crate::diagnostic::did_you_mean;
use crate::model::{Expression, Template};
use crate::span::Span;
use crate::template::{SyntaxError, expression_variables, template_variables};

use super::Compiler;

/// What a template may refer to.
#[derive(Clone, Copy)]
pub(super) struct Scope<'a> {
    pub(super) tasks: TaskAccess<'a>,
    pub(super) item: bool,
    /// Webhook parameter templates read the request body.
    pub(super) payload: bool,
    /// Hooks run after the run ends and may read its final state.
    pub(super) hook: bool,
}

#[derive(Clone, Copy)]
pub(super) enum TaskAccess<'a> {
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

impl Compiler<'_> {
    pub(super) fn template(
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

    pub(super) fn expression(
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
    pub(super) fn check_vars(
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

    pub(super) fn check_var(
        &self,
        var: &str,
        scope: Scope<'_>,
    ) -> Result<(), (String, Option<String>)> {
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

    pub(super) fn check_task_var(
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

pub(super) fn syntax(d: &mut Decoder, span: Span, text: &str, e: &SyntaxError) {
    let line = if text.lines().count() > 1 {
        format!(" (line {} of the template)", e.line)
    } else {
        String::new()
    };
    d.error(span, format!("template syntax error: {}{line}", e.message));
}
