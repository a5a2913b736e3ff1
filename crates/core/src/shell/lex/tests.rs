//! The lexer's contexts, quoting and refusals, one script at a time.

use super::*;
use crate::shell::placeholder::encode;

/// `@` in `script` stands for the value.
fn put(script: &str, value: &str) -> Result<String, ShellError> {
    let mut marked = String::new();
    encode(value, &mut marked);
    substitute(&script.replace('@', &marked))
}

#[test]
fn quotes_for_each_context() {
    let v = r#"a'b"c$d`e\f}"#;
    let cases = [
        ("echo @", r#"echo 'a'\''b"c$d`e\f}'"#),
        ("echo 'x@y'", r#"echo 'xa'\''b"c$d`e\f}y'"#),
        ("echo \"x@y\"", r#"echo "xa'b\"c\$d\`e\\f}y""#),
        ("echo ${u:-@}", r#"echo ${u:-'a'\''b"c$d`e\f}'}"#),
        ("echo \"$(echo @)\"", r#"echo "$(echo 'a'\''b"c$d`e\f}')""#),
        ("echo `echo @`", r#"echo `echo 'a'\\''b"c\$d\`e\\f}'`"#),
        (
            "# say @\necho",
            r#"# say a'b"c$d`e\f}
echo"#,
        ),
        (
            "cat <<EOF\n@\nEOF\n",
            "cat <<EOF\na'b\"c\\$d\\`e\\\\f}\nEOF\n",
        ),
        (
            "cat <<'EOF'\n@\nEOF\necho @",
            "cat <<'EOF'\na'b\"c$d`e\\f}\nEOF\necho 'a'\\''b\"c$d`e\\f}'",
        ),
    ];
    for (script, want) in cases {
        assert_eq!(put(script, v).as_deref(), Ok(want), "{script:?}");
    }
    assert_eq!(
        put("load @ --x=@", "eu-1").as_deref(),
        Ok("load eu-1 --x=eu-1")
    );
    assert_eq!(put("echo @", "").as_deref(), Ok("echo ''"));
    assert_eq!(
        put("echo \"${u:-@}\"", "a\"b$d}").as_deref(),
        Ok(r#"echo "${u:-a\"b\$d\}}""#)
    );
    assert!(matches!(
        put("echo \"${u:-@}\"", "'"),
        Err(ShellError::QuoteInBraces { .. })
    ));
    // bash would read an unbalanced process substitution there and fail the whole script.
    for v in ["<(", "a>(b"] {
        assert!(matches!(
            put("echo \"${u:-@}\"", v),
            Err(ShellError::QuoteInBraces { .. })
        ));
    }
    assert_eq!(put("echo ${u:-@}", "<(").as_deref(), Ok("echo ${u:-'<('}"));
}

#[test]
fn knows_where_contexts_end() {
    // The `)` of a case pattern does not end the `$( )` around it.
    let s = put("x=\"$(case a in a) echo @;; esac)\"", "$(id)").expect("quotes");
    assert!(s.contains("echo '$(id)';;"), "{s}");
    // A `#` inside a word is not a comment.
    assert_eq!(put("echo a#@", "b c").as_deref(), Ok("echo a#'b c'"));
    assert_eq!(put("echo $# @", "b c").as_deref(), Ok("echo $# 'b c'"));
    // Here-documents start after the line, and end at their delimiter.
    assert_eq!(
        put("cat <<-E; echo @\n\t@\n\tE\necho @", "$x").as_deref(),
        Ok("cat <<-E; echo '$x'\n\t\\$x\n\tE\necho '$x'")
    );
    assert_eq!(put("cat <<<@", "a b").as_deref(), Ok("cat <<<'a b'"));
    assert_eq!(
        put("echo $((1 + @))", "42").as_deref(),
        Ok("echo $((1 + 42))")
    );
}

#[test]
fn refuses_what_it_cannot_quote() {
    let err = |script: &str, value: &str| put(script, value).expect_err(script);
    assert!(matches!(err("echo @", "a\0b"), ShellError::Nul { .. }));
    assert!(matches!(
        err("cat <<EOF\n@\nEOF", "x\nEOF\nid"),
        ShellError::Delimiter { .. }
    ));
    // dash garbled the bytes after a delimiter prefix at the top level (`EOFé` → `EOF\u{fffd}`).
    assert!(matches!(
        err("cat <<EOF\n@\nEOF", "EOF\u{e9}"),
        ShellError::Delimiter { .. }
    ));
    assert!(matches!(
        err("cat <<EOF\n@\nEOF", "EOF"),
        ShellError::Delimiter { .. }
    ));
    assert!(matches!(
        err("echo $((@))", "a[$(id)]"),
        ShellError::NotInteger { .. }
    ));
    assert!(matches!(
        err("((x = @))", "y"),
        ShellError::NotInteger { .. }
    ));
    assert!(matches!(
        err("echo $'@'", "'"),
        ShellError::DollarSingle { .. }
    ));
    assert!(matches!(err("echo \\@", "x"), ShellError::Adjacent { .. }));
    assert!(matches!(
        err("echo \"\\@\"", "x"),
        ShellError::Adjacent { .. }
    ));
    assert!(matches!(err("echo $@", "x"), ShellError::Adjacent { .. }));
    assert!(matches!(
        err("echo \"$@\"", "x"),
        ShellError::Adjacent { .. }
    ));
    assert!(matches!(
        err("echo `echo \\`echo @\\``", "x"),
        ShellError::NestedBackquotes { .. }
    ));
    assert!(matches!(
        err("cat <<@\nx\n", "E"),
        ShellError::InDelimiter { .. }
    ));
    assert!(matches!(
        substitute("echo \u{E001}"),
        Err(ShellError::Mangled { .. })
    ));
    assert!(matches!(
        substitute("echo \u{E000}zz\u{E001}"),
        Err(ShellError::Mangled { .. })
    ));
}

#[test]
fn reports_contexts_for_validation() {
    let mut marked = String::new();
    encode("0", &mut marked);
    let text = "python3 - <<'PY'\nprint(@)\nPY\necho \"@\" `echo @`".replace('@', &marked);
    let placed = contexts(&text).expect("lexes");
    let got: Vec<_> = placed
        .iter()
        .map(|p| (p.context, p.line, p.backquoted))
        .collect();
    assert_eq!(
        got,
        vec![
            (Context::QuotedHeredoc, 2, false),
            (Context::Double, 4, false),
            (Context::Unquoted, 4, true)
        ]
    );
}

// Pinned by cargo-mutants: each test below failed on a mutant of the lexer that no other
// test noticed (docs/testing.md).

#[test]
fn a_backslash_quotes_a_heredoc_delimiter() {
    // `<<\EOF` is a quoted delimiter: the body is another program's text, taken as is.
    assert_eq!(
        put("cat <<\\EOF\n@\nEOF\n", "$x").as_deref(),
        Ok("cat <<\\EOF\n$x\nEOF\n")
    );
}

#[test]
fn blanks_may_stand_between_the_operator_and_the_delimiter() {
    assert_eq!(
        put("cat << EOF\n@\nEOF\necho @", "a b").as_deref(),
        Ok("cat << EOF\na b\nEOF\necho 'a b'")
    );
}

#[test]
fn an_input_redirection_is_not_a_heredoc() {
    assert_eq!(
        put("cat < in.txt\necho @", "a b").as_deref(),
        Ok("cat < in.txt\necho 'a b'")
    );
}

#[test]
fn a_heredoc_body_starts_after_the_command_line_not_inside_its_quotes() {
    // The newline inside the double quotes does not end the command line.
    assert_eq!(
        put("cat <<EOF; echo \"x\n@\"\n@\nEOF\n", "a\"b").as_deref(),
        Ok("cat <<EOF; echo \"x\na\\\"b\"\na\"b\nEOF\n")
    );
}

#[test]
fn a_substitution_inside_quoted_braces_is_code() {
    assert_eq!(
        put("echo \"${u:-$(echo @)}\"", "a b").as_deref(),
        Ok("echo \"${u:-$(echo 'a b')}\"")
    );
}

#[test]
fn arithmetic_follows_nested_parentheses_and_substitutions() {
    assert_eq!(
        put("echo $(( ((1)) + @ ))", "2").as_deref(),
        Ok("echo $(( ((1)) + 2 ))")
    );
    assert!(matches!(
        put("echo $(( ((1)) + @ ))", "x"),
        Err(ShellError::NotInteger { .. })
    ));
    assert_eq!(
        put("echo $(( $(echo @) + 1 ))", "a b").as_deref(),
        Ok("echo $(( $(echo 'a b') + 1 ))")
    );
}

#[test]
fn let_and_double_bracket_comparisons_take_integers_only() {
    assert_eq!(put("let n=@+1", "4").as_deref(), Ok("let n=4+1"));
    assert!(matches!(
        put("let n=@+1", "x"),
        Err(ShellError::NotInteger { .. })
    ));
    assert!(matches!(
        put("[[ @ -eq 1 ]]", "a[$(id)]"),
        Err(ShellError::NotInteger { .. })
    ));
    // Past the `let` words the value is an ordinary word again.
    assert_eq!(
        put("let n=1; echo @", "a b").as_deref(),
        Ok("let n=1; echo 'a b'")
    );
}

#[test]
fn refusals_name_the_script_line_after_comments_and_heredocs() {
    assert_eq!(
        put("# one\n# two\necho @", "a\0"),
        Err(ShellError::Nul { line: 3 })
    );
    assert_eq!(
        put("cat <<EOF\nx\nEOF\necho @", "a\0"),
        Err(ShellError::Nul { line: 4 })
    );
}

#[test]
fn contexts_resume_after_substitutions_and_arithmetic() {
    // `)` of `$( )` returns to the double quotes around it, also after a four-letter word
    // (which is not `case`).
    assert_eq!(
        put("echo \"$(echo x) @\"", "a b").as_deref(),
        Ok("echo \"$(echo x) a b\"")
    );
    assert_eq!(
        put("echo \"$(true) @\"", "a b").as_deref(),
        Ok("echo \"$(true) a b\"")
    );
    // `))` ends the arithmetic, and what follows is read again.
    assert_eq!(
        put("echo $((1)) @", "a b").as_deref(),
        Ok("echo $((1)) 'a b'")
    );
    assert_eq!(
        put("echo $((1))\"@\"", "a b").as_deref(),
        Ok("echo $((1))\"a b\"")
    );
}

#[test]
fn a_value_line_is_checked_from_its_own_start() {
    // The line before (`cat <<F`) ends in the delimiter's text: it is not the value's line.
    assert_eq!(
        put("cat <<F\n@\nF\n", "x").as_deref(),
        Ok("cat <<F\nx\nF\n")
    );
}

#[test]
fn parentheses_inside_arithmetic_balance() {
    assert_eq!(
        put("echo $(( (1) )) @", "a b").as_deref(),
        Ok("echo $(( (1) )) 'a b'")
    );
}

#[test]
fn backquotes_in_a_heredoc_body_are_code() {
    assert_eq!(
        put("cat <<EOF\n`echo @`\nEOF\n", "a b").as_deref(),
        Ok("cat <<EOF\n`echo 'a b'`\nEOF\n")
    );
}

#[test]
fn line_continuations_count_as_lines() {
    assert_eq!(
        put("echo a \\\nb @", "\0"),
        Err(ShellError::Nul { line: 2 })
    );
}

#[test]
fn redirections_and_subshells_inside_a_substitution_keep_its_end() {
    assert_eq!(
        put("echo \"$(echo x > y) @\"", "a b").as_deref(),
        Ok("echo \"$(echo x > y) a b\"")
    );
    assert_eq!(
        put("echo \"$( (echo x); echo @ )\"", "a b").as_deref(),
        Ok("echo \"$( (echo x); echo 'a b' )\"")
    );
    assert_eq!(
        put("true; let n=1; echo @", "a b").as_deref(),
        Ok("true; let n=1; echo 'a b'")
    );
}

#[test]
fn quotes_inside_unquoted_braces_are_quotes() {
    assert_eq!(
        put("echo ${u:-'@'}", "a b").as_deref(),
        Ok("echo ${u:-'a b'}")
    );
    assert_eq!(
        put("echo ${u:-\"@\"}", "a$b").as_deref(),
        Ok("echo ${u:-\"a\\$b\"}")
    );
}

#[test]
fn every_refusal_says_what_to_do_instead() {
    assert!(ShellError::Reserved.hint().contains("BATON_PARAM_"));
}

#[test]
fn a_backslash_escapes_a_quote_inside_dollar_single_quotes() {
    // `$'a\'b'` is one word: the `\'` does not end it, so the value after it is unquoted code.
    assert_eq!(
        put("echo $'a\\'b' @", "x y").as_deref(),
        Ok("echo $'a\\'b' 'x y'")
    );
}

#[test]
fn a_backslash_escapes_a_dollar_in_an_unquoted_heredoc() {
    // `\$(` in the body is text, not a command substitution around the value.
    assert_eq!(
        put("cat <<EOF\n\\$(x @\nEOF\n", "a b").as_deref(),
        Ok("cat <<EOF\n\\$(x a b\nEOF\n")
    );
}

#[test]
fn a_quoted_heredoc_body_is_text_whatever_it_holds() {
    assert_eq!(
        put("cat <<'EOF'\n`@` \\@ $@\nEOF\n", "$x").as_deref(),
        Ok("cat <<'EOF'\n`$x` \\$x $$x\nEOF\n")
    );
}

#[test]
fn a_substitution_in_an_unquoted_heredoc_is_code() {
    assert_eq!(
        put("cat <<EOF\n$(echo @)\nEOF\n", "a b").as_deref(),
        Ok("cat <<EOF\n$(echo 'a b')\nEOF\n")
    );
}

#[test]
fn dollar_single_quotes_are_not_special_inside_double_quotes() {
    assert_eq!(
        put("echo \"$'@'\"", "a\"b").as_deref(),
        Ok("echo \"$'a\\\"b'\"")
    );
}

#[test]
fn a_backquote_closes_its_substitution() {
    assert_eq!(
        put("x=`echo @`; echo @", "$x").as_deref(),
        Ok("x=`echo '\\$x'`; echo '$x'")
    );
}

#[test]
fn a_here_string_is_a_word() {
    assert_eq!(put("cat <<< @", "a b").as_deref(), Ok("cat <<< 'a b'"));
}

#[test]
fn a_process_substitution_ends_at_its_own_parenthesis() {
    // Its `case` pattern's `)` ends neither it nor the `$( )` around it.
    assert_eq!(
        put("echo \"$(cat <(case a in a) :;; esac) @)\"", "a b").as_deref(),
        Ok("echo \"$(cat <(case a in a) :;; esac) 'a b')\"")
    );
}

#[test]
fn every_let_of_a_script_takes_integers_only() {
    assert!(put("let b=@", "1; id").is_err());
    assert!(put("let a=1; let b=@", "1; id").is_err());
    assert_eq!(
        put("let a=1; let b=@", "2").as_deref(),
        Ok("let a=1; let b=2")
    );
}

#[test]
fn a_closing_brace_ends_the_expansion_inside_double_quotes() {
    assert_eq!(
        put("echo \"${u:-x} @\"", "a}b").as_deref(),
        Ok("echo \"${u:-x} a}b\"")
    );
}

#[test]
fn what_an_expansion_default_holds_is_read_as_sh_reads_it() {
    // A backslash before a value, as everywhere, is refused.
    assert!(put("echo ${u:-\\@}", "x").is_err());
    // A substitution inside is code, and backquotes take their level of backslashes.
    assert_eq!(
        put("echo ${u:-`echo @`}", "$x").as_deref(),
        Ok("echo ${u:-`echo '\\$x'`}")
    );
    // Inside `"${…}"`, a `'` is no quote.
    assert_eq!(
        put("echo \"${u:-'@'}\"", "$x").as_deref(),
        Ok("echo \"${u:-'\\$x'}\"")
    );
}

#[test]
fn arithmetic_holds_escapes_and_substitutions() {
    assert!(put("echo $(( \\@ + 1 ))", "1").is_err());
    assert_eq!(
        put("echo $(( `echo @` + 1 ))", "a b").as_deref(),
        Ok("echo $(( `echo 'a b'` + 1 ))")
    );
}

#[test]
fn a_dash_after_the_operator_strips_tabs_and_nothing_else_does() {
    assert_eq!(
        put("cat <<-EOF\n\t@\n\tEOF\necho @", "$x").as_deref(),
        Ok("cat <<-EOF\n\t\\$x\n\tEOF\necho '$x'")
    );
    assert_eq!(
        put("cat <<EOF\n@\nEOF\necho @", "$x").as_deref(),
        Ok("cat <<EOF\n\\$x\nEOF\necho '$x'")
    );
}

#[test]
fn a_value_cannot_be_an_escaped_delimiter() {
    assert!(matches!(
        put("cat <<\\@\nx\n", "EOF"),
        Err(ShellError::InDelimiter { .. })
    ));
}

#[test]
fn the_words_after_a_let_are_not_arithmetic() {
    assert_eq!(
        put("let a=1; echo @", "a b").as_deref(),
        Ok("let a=1; echo 'a b'")
    );
}

#[test]
fn dollar_single_quotes_take_a_value_without_quotes_or_backslashes() {
    assert_eq!(put("echo $'@'", "a b").as_deref(), Ok("echo $'a b'"));
    assert!(put("echo $'@'", "a'b").is_err());
}

#[test]
fn a_here_string_starts_no_here_document() {
    assert_eq!(
        put("cat <<< @\necho @", "$x").as_deref(),
        Ok("cat <<< '$x'\necho '$x'")
    );
}

#[test]
fn a_value_cannot_be_a_quoted_delimiter() {
    assert!(matches!(
        put("cat <<'@'\nx\n", "EOF"),
        Err(ShellError::InDelimiter { .. })
    ));
}

#[test]
fn a_let_ends_at_its_separator() {
    assert_eq!(put("let a=1;@", "a b").as_deref(), Ok("let a=1;'a b'"));
}
