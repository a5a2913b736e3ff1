//! Quoting one value for one context of a POSIX shell script.

/// Characters that mean nothing to the shell anywhere in a word.
fn is_plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c)
}

/// A word outside quotes: plain values as they are (`2026-11-01`, `eu`), anything else in
/// single quotes.
pub fn unquoted(value: &str) -> String {
    if !value.is_empty() && value.chars().all(is_plain) {
        return value.to_owned();
    }
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Inside `'…'`: close, an escaped quote, reopen.
pub fn single(value: &str) -> String {
    value.replace('\'', r"'\''")
}

/// Inside `"…"`, where `\` escapes only `$`, `` ` ``, `"` and `\` itself; inside `"${x:-…}"`
/// `}` too.
pub fn double(value: &str, in_braces: bool) -> String {
    backslash(value, if in_braces { "$`\"\\}" } else { "$`\"\\" })
}

/// The body of a here-document with an unquoted delimiter.
pub fn heredoc(value: &str) -> String {
    backslash(value, "$`\\")
}

/// A comment: only a newline could end it.
pub fn comment(value: &str) -> String {
    value.replace('\n', "\\n")
}

/// One layer of backquotes, which remove a `\` before `` ` ``, `\` and `$` (inside double
/// quotes `"` too) before the command inside is read.
pub fn backquoted(text: &str, in_double: bool) -> String {
    backslash(text, if in_double { "`\\$\"" } else { "`\\$" })
}

fn backslash(value: &str, special: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if special.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_per_context() {
        assert_eq!(unquoted("eu-west_1.csv"), "eu-west_1.csv");
        assert_eq!(unquoted(""), "''");
        assert_eq!(unquoted("it's $x"), r"'it'\''s $x'");
        assert_eq!(single("it's"), r"it'\''s");
        assert_eq!(double(r#"$a`b"c\d}"#, false), r#"\$a\`b\"c\\d}"#);
        assert_eq!(double("}", true), r"\}");
        assert_eq!(heredoc(r#"$a"b\"#), r#"\$a"b\\"#);
        assert_eq!(comment("a\nb"), r"a\nb");
        assert_eq!(backquoted(r"'a\b`'", false), r"'a\\b\`'");
        assert_eq!(backquoted(r#"\""#, true), r#"\\\""#);
    }
}
