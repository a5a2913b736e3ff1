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
    let mut vars = without_globals(tmpl.undeclared_variables(true));
    for (open, close) in [("{{", "}}"), ("{%", "%}")] {
        for tag in tags(text, open, close) {
            vars.extend(subscripted_paths(tag));
        }
    }
    Ok(vars)
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
    let mut vars = without_globals(expr.undeclared_variables(true));
    vars.extend(subscripted_paths(source));
    Ok(vars)
}

/// The text inside each `open`…`close` tag of a template.
fn tags<'t>(text: &'t str, open: &str, close: &str) -> impl Iterator<Item = &'t str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let start = rest.find(open)? + open.len();
        let len = rest[start..].find(close)?;
        let tag = &rest[start..start + len];
        rest = &rest[start + len + close.len()..];
        Some(tag)
    })
}

/// The dotted paths that `params['x']`-style subscripts with a literal key read, which
/// minijinja's variable list reports only as `params`: `tasks["a"].outputs['n']` is
/// `tasks.a.outputs.n`. A subscript with a computed key ends the path there.
fn subscripted_paths(code: &str) -> Vec<String> {
    const ROOTS: &[&str] = &["params", "tasks", "run", "pipeline"];
    let bytes = code.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut paths = Vec::new();
    for root in ROOTS {
        for (at, _) in code.match_indices(root) {
            if at > 0 && (is_ident(bytes[at - 1]) || bytes[at - 1] == b'.') {
                continue;
            }
            let mut path = (*root).to_owned();
            let mut i = at + root.len();
            let mut subscripted = false;
            loop {
                if bytes.get(i) == Some(&b'.') {
                    let start = i + 1;
                    let end = start + bytes[start..].iter().take_while(|&&b| is_ident(b)).count();
                    if end == start {
                        break;
                    }
                    path = format!("{path}.{}", &code[start..end]);
                    i = end;
                } else if let Some((key, end)) = literal_subscript(code, i) {
                    path = format!("{path}.{key}");
                    subscripted = true;
                    i = end;
                } else {
                    break;
                }
            }
            if subscripted {
                paths.push(path);
            }
        }
    }
    paths
}

/// A `['key']` or `["key"]` at `at`: the key and where the subscript ends.
fn literal_subscript(code: &str, at: usize) -> Option<(&str, usize)> {
    let inner = code.get(at..)?.strip_prefix('[')?;
    let trimmed = inner.trim_start();
    let quote = trimmed.chars().next().filter(|c| matches!(c, '\'' | '"'))?;
    let body = &trimmed[1..];
    let len = body.find(quote)?;
    let key = &body[..len];
    let after = body[len + 1..].trim_start().strip_prefix(']')?;
    (!key.is_empty() && !key.contains('.')).then(|| (key, code.len() - after.len()))
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
    fn literal_subscripts_are_paths_too() {
        let vars = template_variables(
            "echo {{ params['nope'] }} {{ tasks[\"a\"].outputs[ 'n' ] }} ${params['shell']}",
        )
        .expect("valid");
        assert!(vars.contains("params.nope"), "{vars:?}");
        assert!(vars.contains("tasks.a.outputs.n"), "{vars:?}");
        // Outside a tag, `params[...]` is the script's own (a bash array here).
        assert!(!vars.contains("params.shell"), "{vars:?}");
        let vars =
            expression_variables("tasks['a'].outputs.rows | int > params[\"min\"]").expect("valid");
        assert!(vars.contains("tasks.a.outputs.rows"), "{vars:?}");
        assert!(vars.contains("params.min"), "{vars:?}");
        // Computed keys, keys with dots and names that only end in a root are not paths.
        let vars =
            expression_variables("params[k] ~ params['a.b'] ~ myparams['x'] ~ x.params['y']")
                .expect("valid");
        assert!(
            !vars
                .iter()
                .any(|v| v.starts_with("params.") || v.contains(".x") || v.contains(".y")),
            "{vars:?}"
        );
        let vars = template_variables("{% if params['flag'] %}x{% endif %}").expect("valid");
        assert!(vars.contains("params.flag"), "{vars:?}");
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
