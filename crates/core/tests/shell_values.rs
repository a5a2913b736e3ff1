//! Hostile values, placed in every quoting context of a script and run by real shells, arrive
//! as the exact bytes of data, or the render fails before anything runs. Nothing they contain
//! ever executes: a canary file that `$(touch canary)` and friends would create never exists.

use std::path::Path;
use std::process::Command;

use baton_core::shell::placeholder::encode;
use baton_core::shell::{ShellError, substitute};
use proptest::prelude::*;

/// Every case starts each shell once, so this test takes its own count
/// (`BATON_SHELL_CASES`), not the pure fuzzers' `BATON_FUZZ_CASES`.
fn config() -> ProptestConfig {
    let cases = std::env::var("BATON_SHELL_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(128);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Each context writes the value (`@`) to `out.N`, so that the file holds exactly the value
/// (`${x%.}` keeps the trailing newlines that `$( )` would drop).
const CONTEXTS: &[(&str, &str)] = &[
    ("unquoted", "printf '%s' @ > out.N"),
    ("double", "printf '%s' \"@\" > out.N"),
    ("single", "printf '%s' '@' > out.N"),
    (
        "subst",
        "x=$(printf '%s' @; printf .); printf '%s' \"${x%.}\" > out.N",
    ),
    (
        "subst-double",
        "x=\"$(printf '%s' \"@\"; printf .)\"; printf '%s' \"${x%.}\" > out.N",
    ),
    (
        "backquote",
        "x=`printf '%s' @; printf .`; printf '%s' \"${x%.}\" > out.N",
    ),
    (
        "backquote-double",
        "x=\"`printf '%s' \"@\"; printf .`\"; printf '%s' \"${x%.}\" > out.N",
    ),
    (
        "backquote-single",
        "x=`printf '%s' '@'; printf .`; printf '%s' \"${x%.}\" > out.N",
    ),
    ("default-double", "unset u; printf '%s' \"${u:-@}\" > out.N"),
    ("default-unquoted", "unset u; printf '%s' ${u:-@} > out.N"),
    (
        "heredoc",
        "x=$(cat <<EOF\n@\nEOF\nprintf .); printf '%s' \"${x%?.}\" > out.N",
    ),
    (
        "heredoc-tabs",
        "x=$(cat <<-EOF\n\t@\n\tEOF\nprintf .); printf '%s' \"${x%?.}\" > out.N",
    ),
    ("heredoc-top", "cat > out.N <<EOF\n@\nEOF"),
    ("comment", "printf '%s' ok > out.N # @"),
    ("case", "case @ in *) printf '%s' @ > out.N;; esac"),
];

const HOSTILE: &[&str] = &[
    "'",
    "\"",
    "$(touch canary)",
    "`touch canary`",
    "${x}",
    "$x",
    "\\",
    "\n",
    "{{ x }}",
    "{% if 1 %}",
    "; touch canary",
    "&& touch canary",
    "| touch canary",
    "*",
    "~",
    "EOF",
    "\nEOF\n",
    "EOF$(touch canary)",
    "EOF)",
    "\tEOF",
    "\0",
    "}",
    ")",
    "#",
    "$((1+1))",
    "'\\''",
    "\\\n",
    "é",
    " ",
    "\r",
    "a[$(touch canary)]",
    "<<EOF",
    "<(",
    ">(touch canary",
    "$'",
    "!",
    "-n",
];

fn value() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(HOSTILE).prop_map(str::to_owned),
            1 => "[ -~]{0,3}",
        ],
        0..7,
    )
    .prop_map(|parts| parts.concat())
}

fn shells() -> Vec<&'static str> {
    let found: Vec<&str> = ["sh", "bash", "dash", "busybox"]
        .into_iter()
        .filter(|s| {
            Command::new(s)
                .args(if *s == "busybox" {
                    &["sh", "-c", "true"][..]
                } else {
                    &["-c", "true"][..]
                })
                .status()
                .is_ok_and(|st| st.success())
        })
        .collect();
    assert!(found.contains(&"sh"), "no `sh` on PATH");
    found
}

/// What the context must produce for `value`, or `None` when the render must fail.
fn expected(name: &str, value: &str) -> Option<String> {
    if value.contains('\0') {
        return None;
    }
    if name == "default-double"
        && (value.contains('\'') || value.contains("<(") || value.contains(">("))
    {
        return None;
    }
    if name == "heredoc-top" {
        // Any value line starting with the delimiter is refused (dash garbles what follows a
        // delimiter prefix even at the top level: `EOFé` arrived as `EOF\u{fffd}`).
        if value.split('\n').any(|l| l.starts_with("EOF")) {
            return None;
        }
        return Some(format!("{value}\n"));
    }
    if name.starts_with("heredoc") {
        let stripped = |l: &str| {
            if name == "heredoc-tabs" {
                l.trim_start_matches('\t').to_owned()
            } else {
                l.to_owned()
            }
        };
        let first = format!("{}{value}", if name == "heredoc-tabs" { "\t" } else { "" });
        // Inside `$( )` bash ends a here-document at a line that only starts with the
        // delimiter (`EOF)`, `EOF\$(…`): baton refuses any such line, as everywhere.
        let ends = |l: String| l.starts_with("EOF");
        if first.split('\n').any(|l| ends(stripped(l))) {
            return None;
        }
        // `<<-` strips leading tabs from every body line, the value's too.
        if name == "heredoc-tabs" {
            return Some(
                value
                    .split('\n')
                    .map(|l| l.trim_start_matches('\t'))
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
        }
    }
    Some(if name == "comment" {
        "ok".to_owned()
    } else {
        value.to_owned()
    })
}

fn check(value: &str, shells: &[&str], dir: &Path) -> Result<(), TestCaseError> {
    let mut marked = String::new();
    encode(value, &mut marked);
    let mut script = String::new();
    let mut want = Vec::new();
    for (n, (name, ctx)) in CONTEXTS.iter().enumerate() {
        let text = ctx
            .replace('@', &marked)
            .replace("out.N", &format!("out.{n}"));
        let result = substitute(&text);
        match (expected(name, value), result) {
            (Some(w), Ok(s)) => {
                script.push_str(&s);
                script.push('\n');
                want.push((n, w));
            }
            (
                None,
                Err(
                    ShellError::Nul { .. }
                    | ShellError::Delimiter { .. }
                    | ShellError::QuoteInBraces { .. },
                ),
            ) => {}
            (w, r) => {
                return Err(TestCaseError::fail(format!(
                    "{name}: value {value:?}: expected {w:?}, rendered {r:?}"
                )));
            }
        }
    }
    for shell in shells {
        for entry in std::fs::read_dir(dir).map_err(|e| TestCaseError::fail(e.to_string()))? {
            let _ = std::fs::remove_file(
                entry
                    .map_err(|e| TestCaseError::fail(e.to_string()))?
                    .path(),
            );
        }
        let mut cmd = Command::new(shell);
        if *shell == "busybox" {
            cmd.arg("sh");
        }
        let output = cmd
            .arg("-c")
            .arg(&script)
            .current_dir(dir)
            .output()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(
            !dir.join("canary").exists(),
            "{shell} ran code from {value:?}:\n{script}"
        );
        for (n, w) in &want {
            let got = std::fs::read(dir.join(format!("out.{n}"))).unwrap_or_default();
            prop_assert_eq!(
                String::from_utf8_lossy(&got),
                w.as_str(),
                "{} under {} for {:?}; script:\n{}\nstderr: {}",
                CONTEXTS[*n].0,
                shell,
                value,
                script,
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    Ok(())
}

#[test]
fn hostile_values_arrive_as_data_in_every_context() {
    let shells = shells();
    eprintln!("shells tried: {shells:?}");
    let dir = std::env::temp_dir().join(format!("baton-shell-values-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    // Every fragment on its own first, then random mixes.
    for v in HOSTILE {
        check(v, &shells, &dir).expect("fragment");
    }
    let result = proptest::test_runner::TestRunner::new(config())
        .run(&value(), |v| check(&v, &shells, &dir));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn integers_only_in_arithmetic() {
    let mut marked = String::new();
    encode("a[$(touch canary)]", &mut marked);
    let err = substitute(&format!("echo $(( {marked} + 1 ))")).expect_err("refused");
    assert!(matches!(err, ShellError::NotInteger { .. }), "{err}");
    let mut marked = String::new();
    encode("-12", &mut marked);
    assert_eq!(
        substitute(&format!("echo $(( {marked} + 1 ))")).as_deref(),
        Ok("echo $(( -12 + 1 ))")
    );
}
