//! Edges of validation checks that mutation testing found unpinned: the exact boundary of a
//! limit, a check that must not fire twice, a comment that never closes.

use baton_core::load;

fn messages(src: &str) -> Vec<String> {
    load(src)
        .diagnostics
        .into_iter()
        .map(|d| format!("{}: {}", d.field, d.message))
        .collect()
}

#[test]
fn a_thousand_retries_are_allowed_and_more_are_not() {
    let retries = |n: u32| format!("name: p\ntasks:\n  a:\n    run: x\n    retries: {n}\n");
    assert_eq!(messages(&retries(1000)), Vec::<String>::new());
    assert_eq!(
        messages(&retries(1001)),
        ["tasks.a.retries: 1001 retries is more than the maximum of 1000"]
    );
    assert_eq!(
        messages(&retries(5000)),
        ["tasks.a.retries: 5000 retries is more than the maximum of 1000"]
    );
}

#[test]
fn a_param_whose_declaration_is_wrong_is_not_also_unknown() {
    // The declaration's own error is the one to fix; calling every use of the param unknown
    // as well would bury it.
    let problems = messages(
        "name: p\nparams:\n  n: { type: integer, default: x }\ntasks:\n  a:\n    run: echo {{ params.n }}\n",
    );
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].starts_with("params.n"), "{problems:#?}");
}

#[test]
fn a_comment_that_never_closes_is_a_syntax_error() {
    assert!(baton_core::template::template_variables("echo {## note").is_err());
    assert_eq!(
        baton_core::template::template_variables("echo {## note ##} done")
            .expect("closed")
            .len(),
        0
    );
    assert!(!messages("name: p\ntasks:\n  a:\n    run: echo {## note\n").is_empty());
}
