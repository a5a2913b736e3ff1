//! Rendering templates and evaluating expressions at run time, with the context validation
//! promised: `params`, `tasks`, `run`, `pipeline`, `item`, `env`.

use baton_core::template::{environment, expression_source};
use minijinja::Value;
use serde_json::{Map, Value as Json};

/// What every template of a run can see, built once per run.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub params: Json,
    pub run: Json,
    pub pipeline: Json,
    /// The process environment overlaid with the pipeline's `env`.
    pub env: Map<String, Json>,
}

/// The context of one render: the run's, plus finished tasks and the fan-out item.
#[derive(Debug)]
pub struct Scope<'a> {
    run: &'a RunContext,
    /// `task id -> { outputs, state }` for finished tasks.
    tasks: &'a Map<String, Json>,
    item: Option<&'a Json>,
    /// The context as minijinja sees it, built on first use: a task's templates (`run`, each
    /// `env` value, `working_dir`) share one.
    value: std::cell::OnceCell<Value>,
}

impl<'a> Scope<'a> {
    pub fn new(run: &'a RunContext, tasks: &'a Map<String, Json>, item: Option<&'a Json>) -> Self {
        Self {
            run,
            tasks,
            item,
            value: std::cell::OnceCell::new(),
        }
    }

    fn value(&self) -> Value {
        self.value.get_or_init(|| self.build()).clone()
    }

    fn build(&self) -> Value {
        let mut ctx = Map::new();
        ctx.insert("params".into(), self.run.params.clone());
        ctx.insert("run".into(), self.run.run.clone());
        ctx.insert("pipeline".into(), self.run.pipeline.clone());
        ctx.insert("env".into(), Json::Object(self.run.env.clone()));
        ctx.insert("tasks".into(), Json::Object(self.tasks.clone()));
        if let Some(item) = self.item {
            ctx.insert("item".into(), item.clone());
        }
        Value::from(minijinja::value::Serde(Json::Object(ctx)))
    }
}

fn describe(e: &minijinja::Error) -> String {
    let mut msg = e
        .detail()
        .map_or_else(|| e.kind().to_string(), str::to_owned);
    if e.kind() == minijinja::ErrorKind::UndefinedError && e.detail().is_none() {
        msg = "undefined value".into();
    }
    msg
}

/// Renders a template; plain text without template syntax is returned as is.
pub fn render(text: &str, scope: &Scope<'_>) -> Result<String, String> {
    if !text.contains("{{") && !text.contains("{%") && !text.contains("{##") {
        return Ok(text.to_owned());
    }
    environment()
        .render_str(text, scope.value())
        .map_err(|e| describe(&e))
}

/// Renders a `run:` script for `shell` so that no value can become code: for a POSIX shell
/// each `{{ }}` value is quoted for where it stands (see `baton_core::shell`); for any other
/// program a value would go in as its source, so only `| raw` values are accepted.
pub fn render_script(text: &str, scope: &Scope<'_>, shell: &[String]) -> Result<String, String> {
    use baton_core::shell::{ShellError, is_posix_shell, placeholder, substitute};
    if !text.contains("{{") && !text.contains("{%") && !text.contains("{##") {
        return Ok(text.to_owned());
    }
    if text.contains([placeholder::OPEN, placeholder::CLOSE]) {
        return Err(ShellError::Reserved.to_string());
    }
    let marked = baton_core::template::shell_environment()
        .render_str(text, scope.value())
        .map_err(|e| describe(&e))?;
    if is_posix_shell(shell) {
        return substitute(&marked).map_err(|e| format!("{e}; {}", e.hint()));
    }
    if marked.contains(placeholder::OPEN) {
        let program = shell.first().map_or("", String::as_str);
        return Err(format!(
            "a value cannot be put safely into a `{program}` script, which is not a POSIX shell; \
             read it from its environment variable (`BATON_PARAM_NAME`, `BATON_ITEM`, \
             `BATON_OUTPUT_TASK_NAME`), or mark it `| raw` to use it as code"
        ));
    }
    Ok(marked)
}

/// Evaluates an expression (with or without `{{ }}`) to a JSON value.
pub fn evaluate(text: &str, scope: &Scope<'_>) -> Result<Json, String> {
    let expr = environment()
        .compile_expression(expression_source(text))
        .map_err(|e| describe(&e))?;
    let value = expr.eval(scope.value()).map_err(|e| describe(&e))?;
    serde_json::to_value(&value).map_err(|e| e.to_string())
}

/// Evaluates a condition with Jinja truthiness (`0`, `""`, `[]`, `false`, `none` are false).
pub fn condition(text: &str, scope: &Scope<'_>) -> Result<bool, String> {
    let expr = environment()
        .compile_expression(expression_source(text))
        .map_err(|e| describe(&e))?;
    expr.eval(scope.value())
        .map(|v| v.is_true())
        .map_err(|e| describe(&e))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run_ctx() -> RunContext {
        RunContext {
            params: json!({"date": "2026-11-01", "regions": ["eu", "us"]}),
            run: json!({"id": "r1", "trigger": "manual", "logical_date": null}),
            pipeline: json!({"name": "p", "namespace": "default", "version": "abc"}),
            env: Map::new(),
        }
    }

    #[test]
    fn renders_and_evaluates_against_the_run() {
        let rc = run_ctx();
        let tasks = json!({"extract": {"outputs": {"rows": "42"}, "state": "succeeded"}});
        let tasks = tasks.as_object().expect("object");
        let item = json!("eu");
        let scope = Scope::new(&rc, tasks, Some(&item));
        assert_eq!(
            render("load {{ params.date }} {{ item }}", &scope).expect("ok"),
            "load 2026-11-01 eu"
        );
        assert!(condition("tasks.extract.outputs.rows | int > 0", &scope).expect("ok"));
        assert_eq!(
            evaluate("{{ params.regions }}", &scope).expect("ok"),
            json!(["eu", "us"])
        );
        assert_eq!(render("n=${#x}", &scope).expect("ok"), "n=${#x}");
    }

    fn sh() -> Vec<String> {
        baton_core::model::default_shell()
    }

    #[test]
    fn scripts_get_values_as_data() {
        let mut rc = run_ctx();
        rc.params = json!({"who": "$(id -un)\"; echo INJECTED; echo \"", "n": 3, "cmd": "ls -l"});
        let tasks = Map::new();
        let scope = Scope::new(&rc, &tasks, None);
        assert_eq!(
            render_script(
                "greeting=\"Hello, {{ params.who }}!\"; echo {{ params.n }}",
                &scope,
                &sh()
            )
            .expect("ok"),
            r#"greeting="Hello, \$(id -un)\"; echo INJECTED; echo \"!"; echo 3"#
        );
        assert_eq!(
            render_script("{{ params.cmd | raw }} {{ params.cmd }}", &scope, &sh()).expect("ok"),
            "ls -l 'ls -l'"
        );
        let python = vec!["python3".to_owned(), "-c".to_owned()];
        let err = render_script("print('{{ params.who }}')", &scope, &python).expect_err("refused");
        assert!(
            err.contains("`python3`") && err.contains("BATON_PARAM_NAME"),
            "{err}"
        );
        assert_eq!(
            render_script("print({{ params.n | raw }})", &scope, &python).expect("ok"),
            "print(3)"
        );
        let err =
            render_script("echo \u{E000}{{ params.n }}", &scope, &sh()).expect_err("reserved");
        assert!(err.contains("U+E000"), "{err}");
    }

    #[test]
    fn undefined_values_are_errors_not_empty_strings() {
        let rc = run_ctx();
        let tasks = Map::new();
        let scope = Scope::new(&rc, &tasks, None);
        let err = render("{{ tasks.missing.outputs.x }}", &scope).expect_err("undefined");
        assert!(err.contains("undefined"), "{err}");
    }
}
