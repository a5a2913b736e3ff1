//! Putting template values into shell scripts as data, never as code.
//!
//! A `run:` script is rendered with [`crate::template::shell_environment`], whose formatter
//! writes each `{{ }}` value as a [`placeholder`] instead of its text. [`lex::substitute`]
//! then reads the rendered script as POSIX `sh` does, and replaces each placeholder with the
//! value quoted for the context it stands in ([`quote`]). The placeholder carries its value,
//! so rendering needs no state besides the text.

pub mod env;
pub mod lex;
pub mod placeholder;
pub mod quote;

pub use lex::{Context, substitute};

/// A value that cannot be put into a script safely: the script is never run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    #[error(
        "a value contains a NUL byte, which no program can receive (line {line} of the script)"
    )]
    Nul { line: usize },
    #[error(
        "a value contains the line `{delimiter}`, which would end the here-document early (line {line} of the script)"
    )]
    Delimiter { delimiter: String, line: usize },
    #[error(
        "a value inside `$(( ))` or `(( ))` must be an integer, not `{value}` (line {line} of the script)"
    )]
    NotInteger { value: String, line: usize },
    #[error(
        "a value with `'` or `\\` cannot be quoted inside `$'…'` for every shell (line {line} of the script)"
    )]
    DollarSingle { line: usize },
    #[error(
        "a value with `'`, `<(` or `>(` cannot be quoted inside `\"${{…}}\"` for every shell (line {line} of the script)"
    )]
    QuoteInBraces { line: usize },
    #[error(
        "a template value right after `{what}` would change its quoting (line {line} of the script)"
    )]
    Adjacent { what: &'static str, line: usize },
    #[error(
        "a template value inside nested backquotes cannot be quoted (line {line} of the script)"
    )]
    NestedBackquotes { line: usize },
    #[error("a template value in a here-document's delimiter (line {line} of the script)")]
    InDelimiter { line: usize },
    #[error("the script's text contains the private-use characters U+E000 or U+E001")]
    Reserved,
    #[error("a template value was mangled by a filter block (line {line} of the script)")]
    Mangled { line: usize },
}

impl ShellError {
    /// What to do instead, for error messages.
    pub fn hint(&self) -> &'static str {
        "read the value from its environment variable instead (`\"$BATON_PARAM_NAME\"`, `\"$BATON_ITEM\"`, `\"$BATON_OUTPUT_TASK_NAME\"`)"
    }
}

/// The programs whose `-c` script [`substitute`] understands: POSIX shells.
const POSIX_SHELLS: &[&str] = &[
    "sh", "bash", "dash", "ash", "ksh", "mksh", "zsh", "posh", "yash",
];

/// Whether `argv` (a task's `shell`) runs its script as a POSIX shell does, so that values
/// can be quoted for it. `busybox sh` counts; `python3 -c` does not.
pub fn is_posix_shell(argv: &[String]) -> bool {
    let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_owned();
    match argv.first().map(|p| base(p)) {
        Some(p) if p == "busybox" => argv
            .get(1)
            .is_some_and(|a| POSIX_SHELLS.contains(&a.as_str())),
        Some(p) if p == "env" => argv
            .get(1)
            .is_some_and(|a| POSIX_SHELLS.contains(&base(a).as_str())),
        Some(p) => POSIX_SHELLS.contains(&p.as_str()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_posix_shells() {
        let argv = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(is_posix_shell(&argv(&["sh", "-c"])));
        assert!(is_posix_shell(&argv(&["/bin/bash", "-eu", "-c"])));
        assert!(is_posix_shell(&argv(&["busybox", "sh", "-c"])));
        assert!(is_posix_shell(&argv(&["/usr/bin/env", "zsh", "-c"])));
        assert!(!is_posix_shell(&argv(&["python3", "-c"])));
        assert!(!is_posix_shell(&argv(&["busybox", "awk"])));
        assert!(!is_posix_shell(&argv(&[])));
    }
}
