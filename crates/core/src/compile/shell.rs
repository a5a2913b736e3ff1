//! Checks of `run:` scripts against the ways a value could still become code: the engine
//! quotes every `{{ }}` value for a POSIX shell (`crate::shell`), and these find what defeats
//! that (`| raw`, `eval`, a nested `sh -c`, a quoted here-document) or what cannot be quoted.

use std::collections::HashMap;

use crate::decode::Decoder;
use crate::diagnostic::Diagnostic;
use crate::shell::env::output_var;
use crate::shell::lex::{Context, contexts};
use crate::shell::{is_posix_shell, placeholder};
use crate::span::Span;

/// One `{{ }}` of a script: its expression and where it starts.
struct Expr<'t> {
    source: &'t str,
    line: usize,
    /// The text of its line before it.
    before: &'t str,
    /// Characters from `{{` to `}}`.
    width: usize,
}

/// Where `e` is in the file: a block scalar (`run: |`) keeps the script's lines and their
/// columns, shifted by its indentation.
fn expr_span(run: Span, e: &Expr<'_>) -> Span {
    let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    Span {
        line: run.line.saturating_add(to_u32(e.line - 1)),
        column: run.column.saturating_add(to_u32(e.before.chars().count())),
        offset: run.offset,
        len: to_u32(e.width),
    }
}

/// Checks the script `text` of a task that runs with `shell`.
pub(super) fn check_script(d: &mut Decoder, span: Span, text: &str, shell: &[String]) {
    let (marked, exprs) = mark(text);
    if exprs.is_empty() {
        return;
    }
    if text.contains([placeholder::OPEN, placeholder::CLOSE]) {
        d.error(
            span,
            "the script contains the private-use characters U+E000 or U+E001",
        )
        .hint = Some("baton marks template values with them; remove them".into());
        return;
    }
    if !is_posix_shell(shell) {
        let program = shell.first().map_or("", String::as_str);
        for e in exprs.iter().filter(|e| !is_raw(e.source)) {
            d.error(
                expr_span(span, e),
                format!(
                    "`{{{{{}}}}}` cannot be quoted for `{program}`, which is not a POSIX shell (line {} of the script)",
                    e.source, e.line
                ),
            )
            .hint = Some(
                "read the value from its environment variable (`os.environ[\"BATON_PARAM_NAME\"]`), or mark it `| raw` to use it as code".into(),
            );
        }
        return;
    }
    let placed = match contexts(&marked) {
        Ok(p) => p,
        Err(e) => {
            d.error(span, e.to_string()).hint = Some(e.hint().into());
            return;
        }
    };
    let mut warn = |at: Span, message: String, hint: &str| {
        let diag = Diagnostic::warning(at, d.field(), message).with_hint(hint);
        d.diags.push(diag);
    };
    for p in &placed {
        let Some(e) = p.value.parse::<usize>().ok().and_then(|i| exprs.get(i)) else {
            continue;
        };
        let shown = format!("{{{{{}}}}}", e.source);
        let at = format!("line {} of the script", e.line);
        let here = expr_span(span, e);
        if is_raw(e.source) {
            warn(
                here,
                format!("`{shown}` puts its value into the script as code ({at})"),
                "anyone who sets this value can run commands; drop `| raw` unless the value is trusted",
            );
        }
        if p.context == Context::QuotedHeredoc {
            warn(
                here,
                format!(
                    "`{shown}` inside a quoted here-document goes in unquoted: the body is another program's source ({at})"
                ),
                "read the value from its environment variable in that program (`os.environ[\"BATON_PARAM_NAME\"]`, `$ENV{BATON_ITEM}`)",
            );
        }
        if let Some(runner) = reparsed_by(e.before) {
            warn(
                here,
                format!(
                    "`{shown}` is read again as code by `{runner}`: quoting cannot protect it ({at})"
                ),
                "pass the value as an argument or environment variable (`\"$BATON_PARAM_NAME\"`) instead",
            );
        }
    }
}

/// Warns when two upstream outputs share one environment variable name.
pub(super) fn check_output_vars<'a>(
    d: &mut Decoder,
    tasks: impl IntoIterator<Item = (&'a str, Span, &'a [&'a str])>,
) {
    // Variable name -> the output that has it, first in the file.
    let mut seen: HashMap<String, String> = HashMap::new();
    for (task, span, outputs) in tasks {
        for output in outputs {
            let var = output_var(task, output);
            let name = format!("{task}.{output}");
            if let Some(first) = seen.get(&var) {
                let diag = Diagnostic::warning(
                    span,
                    d.field(),
                    format!("outputs `{first}` and `{name}` share the variable `{var}`"),
                )
                .with_hint(format!(
                    "the task first in the file gets `{var}`; rename one"
                ));
                d.diags.push(diag);
            } else {
                seen.insert(var, name);
            }
        }
    }
}

fn is_raw(expr: &str) -> bool {
    expr.split('|')
        .skip(1)
        .any(|f| matches!(f.trim().split(['(', ' ']).next(), Some("raw" | "safe")))
}

/// A command on the value's line, before it, that parses its arguments as code again.
fn reparsed_by(before: &str) -> Option<String> {
    for segment in before.split([';', '&', '|', '(', '`']) {
        let mut words = segment
            .split_whitespace()
            .map(|w| w.trim_matches(['"', '\'']))
            .skip_while(|w| {
                w.contains('=')
                    || matches!(
                        *w,
                        "then"
                            | "do"
                            | "else"
                            | "exec"
                            | "command"
                            | "sudo"
                            | "env"
                            | "nohup"
                            | "time"
                            | "!"
                            | "{"
                    )
            });
        let Some(first) = words.next() else { continue };
        let base = first.rsplit('/').next().unwrap_or(first);
        if matches!(base, "eval" | "trap" | "ssh" | "source" | ".") {
            return Some(base.to_owned());
        }
        let shellish = matches!(base, "sh" | "bash" | "dash" | "zsh" | "ksh" | "ash" | "su");
        if shellish && words.any(|a| a.starts_with('-') && !a.starts_with("--") && a.contains('c'))
        {
            return Some(format!("{base} -c"));
        }
    }
    None
}

/// The script with each `{{ }}` replaced by a placeholder holding its index, and `{% %}` and
/// `{## ##}` tags by their newlines, so the lexer sees where each value stands.
fn mark(text: &str) -> (String, Vec<Expr<'_>>) {
    let mut out = String::with_capacity(text.len());
    let mut exprs = Vec::new();
    let mut rest = text;
    let mut line = 1;
    let mut line_start = 0;
    loop {
        let next = ["{{", "{%", "{##"]
            .iter()
            .filter_map(|open| rest.find(open).map(|i| (i, *open)))
            .min();
        let Some((i, open)) = next else {
            out.push_str(rest);
            break;
        };
        let close = match open {
            "{{" => "}}",
            "{%" => "%}",
            _ => "##}",
        };
        out.push_str(&rest[..i]);
        let offset = text.len() - rest.len();
        line += rest[..i].matches('\n').count();
        if let Some(nl) = rest[..i].rfind('\n') {
            line_start = offset + nl + 1;
        }
        let body_start = i + open.len();
        let Some(len) = rest[body_start..].find(close) else {
            out.push_str(&rest[i..]);
            break;
        };
        let body = &rest[body_start..body_start + len];
        let mut end = body_start + len + close.len();
        if open == "{{" {
            placeholder::encode(&exprs.len().to_string(), &mut out);
            exprs.push(Expr {
                source: body
                    .trim()
                    .trim_start_matches('-')
                    .trim_end_matches('-')
                    .trim(),
                line,
                before: &text[line_start..offset + i],
                width: rest[i..body_start + len + close.len()].chars().count(),
            });
        } else if let Some((literal, after)) = raw_block(body, &rest[end..]) {
            // `{% raw %}…{% endraw %}` is script text, `{{` and all.
            out.push_str(literal);
            end += after;
        } else {
            out.extend(body.matches('\n').map(|_| '\n'));
        }
        let consumed = &rest[i..end];
        if let Some(nl) = consumed.rfind('\n') {
            line_start = offset + i + nl + 1;
        }
        line += consumed.matches('\n').count();
        rest = &rest[end..];
    }
    (out, exprs)
}

/// For a `{% raw %}` tag (`body`), the text up to its `{% endraw %}` in `rest`, and where
/// that tag ends.
fn raw_block<'t>(body: &str, rest: &'t str) -> Option<(&'t str, usize)> {
    if body.trim().trim_matches('-').trim() != "raw" {
        return None;
    }
    let e = rest.find("endraw")?;
    let tag = rest[..e].rfind("{%")?;
    let close = rest[e..].find("%}")?;
    Some((&rest[..tag], e + close + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, shell: &[&str]) -> Vec<String> {
        let mut d = Decoder::new();
        let shell: Vec<String> = shell.iter().map(|s| (*s).to_owned()).collect();
        check_script(&mut d, Span::default(), text, &shell);
        d.diags
            .iter()
            .map(|x| format!("{:?}: {}", x.severity, x.message))
            .collect()
    }

    #[test]
    fn natural_scripts_pass() {
        for text in [
            "echo \"Hello, {{ params.who }}!\"",
            "./load.sh {{ item }} --date={{ params.date }}",
            "{% if params.full %}\necho full {{ item }}\n{% endif %}\ncat <<EOF\n{{ params.x }}\nEOF",
            "n=${#x}; echo {{ params.x }} {## note ##}",
            "eval x\n{% raw %}eval \"{{ x }}\"{% endraw %}\necho \"{{ params.x }}\"",
        ] {
            assert_eq!(check(text, &["sh", "-c"]), Vec::<String>::new(), "{text}");
        }
    }

    #[test]
    fn warns_about_what_defeats_quoting() {
        let w = check("{{ params.cmd | raw }}", &["sh", "-c"]);
        assert!(
            w[0].starts_with("Warning: `{{params.cmd | raw}}` puts its value"),
            "{w:?}"
        );
        let w = check("x=1\neval \"echo {{ params.x }}\"", &["bash", "-c"]);
        assert!(
            w[0].contains("by `eval`") && w[0].contains("line 2"),
            "{w:?}"
        );
        let w = check("bash -ec \"echo {{ params.x }}\"", &["sh", "-c"]);
        assert!(w[0].contains("by `bash -c`"), "{w:?}");
        let w = check(
            "python3 - <<'PY'\nprint('{{ params.x }}')\nPY",
            &["sh", "-c"],
        );
        assert!(w[0].contains("quoted here-document"), "{w:?}");
        let w = check(
            "print('{{ params.x }}')\nprint({{ params.n | raw }})",
            &["python3", "-c"],
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("Error: `{{params.x}}` cannot be quoted for `python3`"),
            "{w:?}"
        );
        let w = check("{% raw %}print('{{ x }}'){% endraw %}", &["python3", "-c"]);
        assert_eq!(w, Vec::<String>::new());
        let w = check("echo \\{{ params.x }}", &["sh", "-c"]);
        assert!(
            w[0].starts_with("Error: a template value right after `\\`"),
            "{w:?}"
        );
    }

    #[test]
    fn only_the_values_own_line_counts_for_eval() {
        // `eval` on an earlier line does not read this value again.
        let w = check("x; eval y\necho {{ params.x }}", &["sh", "-c"]);
        assert_eq!(w, Vec::<String>::new());
    }

    /// Where each diagnostic of `text` points, with the run field at line 10, column 5.
    fn spans(text: &str) -> Vec<(u32, u32, u32, String)> {
        let mut d = Decoder::new();
        let run = Span {
            line: 10,
            column: 5,
            offset: 7,
            len: 0,
        };
        check_script(&mut d, run, text, &["sh".to_owned(), "-c".to_owned()]);
        d.diags
            .iter()
            .map(|x| {
                assert_eq!(x.span.offset, 7, "{}", x.message);
                let at = x.message.rsplit(" (").next().unwrap_or_default();
                (x.span.line, x.span.column, x.span.len, at.to_owned())
            })
            .collect()
    }

    // Pinned by cargo-mutants: the line and column of a warning, after what can stand
    // before a value (lines, tags that span lines, comments, raw blocks, other values).
    #[test]
    fn warnings_point_at_the_value() {
        let at = |line: u32, column: u32, len: u32, script_line: u32| {
            (
                line,
                column,
                len,
                format!("line {script_line} of the script)"),
            )
        };
        let cases = [
            ("echo {{ x | raw }}", vec![at(10, 10, 13, 1)]),
            ("a\nb {{ x | raw }}", vec![at(11, 7, 13, 2)]),
            ("a\n\nccc{{x|raw}}", vec![at(12, 8, 9, 3)]),
            (
                "{% if a %}\n  {{ x | raw }}\n{% endif %}",
                vec![at(11, 7, 13, 2)],
            ),
            ("{% if a\n %}x {{ y | raw }}", vec![at(11, 10, 13, 2)]),
            ("ab {% if a\n %}x {{ y | raw }}", vec![at(11, 10, 13, 2)]),
            ("{## a\nb ##}{{ z | raw }}", vec![at(11, 10, 13, 2)]),
            ("{## a ##}{{ z | raw }}", vec![at(10, 14, 13, 1)]),
            (
                "{% raw %}\n{{ no }}\n{% endraw %} {{ v | raw }}",
                vec![at(12, 18, 13, 3)],
            ),
            (
                "{% raw %}{{ no }}{% endraw %}{{ v | raw }}",
                vec![at(10, 34, 13, 1)],
            ),
            ("é {{ 'é' | raw }}", vec![at(10, 7, 15, 1)]),
            (
                "{{ a | raw }} {{ b | raw }}\n{{ c | raw }}",
                vec![at(10, 5, 13, 1), at(10, 19, 13, 1), at(11, 5, 13, 2)],
            ),
            ("{%- if a -%}\n{{ x | raw }}", vec![at(11, 5, 13, 2)]),
        ];
        for (text, want) in cases {
            assert_eq!(spans(text), want, "{text:?}");
        }
    }

    #[test]
    fn raw_blocks_need_their_end_tag() {
        // Without `{% endraw %}`, the `{% raw %}` tag is only a tag: the value after it counts.
        assert_eq!(spans("{% raw %}{{ v | raw }}").len(), 1);
        assert_eq!(raw_block(" raw ", "x{% endraw %}y"), Some(("x", 13)));
        assert_eq!(raw_block("-raw-", "{%- endraw -%}"), Some(("", 14)));
        assert_eq!(raw_block(" if x ", "{% endraw %}"), None);
        assert_eq!(raw_block(" raw ", "endraw %}"), None);
        assert_eq!(raw_block(" raw ", "{% endraw"), None);
    }

    #[test]
    fn only_a_shell_with_a_c_flag_reads_its_argument_again() {
        for text in [
            "bash --rcfile rc ./s.sh {{ params.x }}",
            "bash ./check.sh {{ params.x }}",
            "grep -c foo {{ params.x }}",
            "echo sh -c {{ params.x }}",
        ] {
            assert_eq!(check(text, &["sh", "-c"]), Vec::<String>::new(), "{text}");
        }
        for (text, runner) in [
            ("X=1 eval \"echo {{ params.x }}\"", "eval"),
            ("sudo sh -ec \"{{ params.x }}\"", "sh -c"),
            ("a && /bin/bash -xc \"{{ params.x }}\"", "bash -c"),
            ("if true; then . {{ params.x }}; fi", "."),
        ] {
            let w = check(text, &["sh", "-c"]);
            assert_eq!(w.len(), 1, "{text}: {w:?}");
            assert!(w[0].contains(&format!("by `{runner}`")), "{text}: {w:?}");
        }
    }

    #[test]
    fn warns_about_shared_variables() {
        let mut d = Decoder::new();
        check_output_vars(
            &mut d,
            [
                ("a_b", Span::default(), &["c"][..]),
                ("a", Span::default(), &["b_c"][..]),
            ],
        );
        assert_eq!(d.diags.len(), 1);
        assert!(
            d.diags[0].message.contains("`BATON_OUTPUT_A_B_C`"),
            "{}",
            d.diags[0].message
        );
    }
}
