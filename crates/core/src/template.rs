//! Templates (`run: ./load.sh {{ item }}`) and expressions (`if: tasks.a.outputs.n | int > 0`).
//!
//! One minijinja environment serves both validation and rendering, so a template that
//! validates is one the engine can render. Variables are checked statically: validation lists
//! the variables a template reads and the compiler checks each against what will exist.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use minijinja::{Environment, UndefinedBehavior};

/// The shared environment: strict about undefined values, because a typo that renders as an
/// empty string in a shell command is worse than a failed task.
pub fn environment() -> &'static Environment<'static> {
    static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Jinja's `{# #}` comments would swallow shell's `${#var}` in `run:` scripts.
        #[expect(
            clippy::expect_used,
            reason = "constant delimiters that are known to be valid"
        )]
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .comment_delimiters("{##", "##}")
            .build()
            .expect("valid syntax");
        env.set_syntax(syntax);
        // `{{ params.cmd | raw }}`: the one way to put a value into a script as code.
        env.add_filter("raw", |v: minijinja::Value| {
            minijinja::Value::from_safe_string(v.to_string())
        });
        env
    });
    &ENV
}

/// The environment `run:` scripts of POSIX shells render with: the same syntax and filters,
/// but each `{{ }}` value is written as a [`crate::shell::placeholder`] for
/// [`crate::shell::substitute`] to quote, unless it is marked `| raw` (or `| safe`).
pub fn shell_environment() -> &'static Environment<'static> {
    static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
        let mut env = environment().clone();
        env.set_formatter(|out, _state, value| {
            let text = if value.is_undefined() {
                String::new()
            } else {
                value.to_string()
            };
            if value.is_safe() {
                out.write_str(&text)?;
            } else {
                let mut marked = String::with_capacity(text.len() * 2 + 6);
                crate::shell::placeholder::encode(&text, &mut marked);
                out.write_str(&marked)?;
            }
            Ok(())
        });
        env
    });
    &ENV
}

/// A template or expression that failed to parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: String,
    /// 1-based line within the template text.
    pub line: usize,
}

/// An expression's text, without the optional `{{ }}` around it.
pub fn expression_source(text: &str) -> &str {
    let t = text.trim();
    match t.strip_prefix("{{").and_then(|r| r.strip_suffix("}}")) {
        // `{{ a }} and {{ b }}` is two templates, not one wrapped expression.
        Some(inner) if !inner.contains("{{") && !inner.contains("}}") => inner.trim(),
        _ => t,
    }
}

/// Checks a template and returns the dotted variable paths it reads (`params.date`).
pub fn template_variables(text: &str) -> Result<BTreeSet<String>, SyntaxError> {
    if !text.contains("{{") && !text.contains("{%") && !text.contains("{##") {
        return Ok(BTreeSet::new());
    }
    let tmpl = environment()
        .template_from_str(text)
        .map_err(syntax_error)?;
    Ok(without_globals(tmpl.undeclared_variables(true)))
}

/// Checks an expression (with or without `{{ }}`) and returns the variable paths it reads.
pub fn expression_variables(text: &str) -> Result<BTreeSet<String>, SyntaxError> {
    let source = expression_source(text);
    if source.is_empty() {
        return Err(SyntaxError {
            message: "empty expression".into(),
            line: 1,
        });
    }
    let expr = environment()
        .compile_expression(source)
        .map_err(syntax_error)?;
    Ok(without_globals(expr.undeclared_variables(true)))
}

fn syntax_error(e: minijinja::Error) -> SyntaxError {
    SyntaxError {
        message: e
            .detail()
            .map_or_else(|| e.kind().to_string(), str::to_owned),
        line: e.line().unwrap_or(1),
    }
}

/// Drops built-in functions such as `range` and `dict` from a variable list.
fn without_globals(vars: std::collections::HashSet<String>) -> BTreeSet<String> {
    let env = environment();
    vars.into_iter()
        .filter(|v| {
            let root = v.split('.').next().unwrap_or(v);
            !env.globals().any(|(name, _)| name == root)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_braces_around_one_expression_only() {
        assert_eq!(expression_source("{{ params.regions }}"), "params.regions");
        assert_eq!(expression_source("params.regions"), "params.regions");
        assert_eq!(
            expression_source("{{ a }} and {{ b }}"),
            "{{ a }} and {{ b }}"
        );
    }

    #[test]
    fn lists_nested_variables_without_builtins() {
        let vars = template_variables(
            "{% for i in range(3) %}{{ i }}{{ params.date }}{% endfor %}{{ tasks.x.outputs.rows }}",
        )
        .expect("valid");
        assert_eq!(
            vars.into_iter().collect::<Vec<_>>(),
            vec!["params.date".to_owned(), "tasks.x.outputs.rows".to_owned()]
        );
        let vars = expression_variables("tasks.extract.outputs.rows | int > 0").expect("valid");
        assert_eq!(vars.len(), 1);
    }

    #[test]
    fn shell_length_syntax_is_not_a_comment() {
        let vars =
            template_variables("n=${#items[@]}; echo {{ params.x }} {## note ##}").expect("valid");
        assert_eq!(
            vars.into_iter().collect::<Vec<_>>(),
            vec!["params.x".to_owned()]
        );
    }

    #[test]
    fn reports_syntax_errors() {
        let err = template_variables("echo {{ params.date").expect_err("unclosed");
        assert_eq!(err.line, 1);
        assert!(
            err.message.contains("expected end of variable block"),
            "{}",
            err.message
        );
        assert!(expression_variables("{{  }}").is_err());
    }
}
