//! Running simple commands without a shell, as GNU make does: a `run:` line with no shell
//! syntax (`python3 train.py --epochs 3`) means the same whether `sh -c` runs it or it is
//! executed directly, and skipping the shell halves the cost of starting a short task.

/// Words that are shell syntax or builtins: a command starting with one of them needs `sh`.
const SHELL_WORDS: &[&str] = &[
    ".", ":", "alias", "bg", "break", "cd", "command", "continue", "eval", "exec", "exit",
    "export", "fc", "fg", "getopts", "hash", "jobs", "local", "read", "readonly", "return", "set",
    "shift", "source", "times", "trap", "type", "ulimit", "umask", "unalias", "unset", "wait",
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac",
    "function", "select", "time", "!", "{", "}",
];

/// The argument list for `script` when it can be executed without a shell: only plain words
/// (letters, digits and `_ . / - + , : @ % =`) separated by spaces, and a first word that is
/// neither shell syntax nor a variable assignment.
pub(crate) fn simple_command(script: &str) -> Option<Vec<String>> {
    let script = script.trim();
    if script.is_empty() || script.contains('\n') {
        return None;
    }
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./-+,:@%=".contains(c) || c == ' ';
    if !script.chars().all(plain) {
        return None;
    }
    let words: Vec<String> = script
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    let first = words.first()?;
    if first.contains('=') || SHELL_WORDS.contains(&first.as_str()) {
        return None;
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_commands_skip_the_shell() {
        assert_eq!(simple_command("true"), Some(vec!["true".to_owned()]));
        assert_eq!(
            simple_command("python3 train.py --epochs=3  --lr 0.1"),
            Some(
                vec!["python3", "train.py", "--epochs=3", "--lr", "0.1"]
                    .into_iter()
                    .map(str::to_owned)
                    .collect()
            )
        );
        for needs_shell in [
            "echo $HOME",
            "a | b",
            "a && b",
            "a; b",
            "exit 3",
            "cd /tmp",
            "FOO=1 run",
            "echo 'quoted'",
            "ls *.txt",
            "cmd > out",
            "a\nb",
            "sleep 1 &",
            "echo ~",
            "x=1",
            "echo \"hi\"",
            "(sub)",
            "echo `date`",
            "# comment",
            "",
        ] {
            assert_eq!(simple_command(needs_shell), None, "{needs_shell:?}");
        }
    }
}
