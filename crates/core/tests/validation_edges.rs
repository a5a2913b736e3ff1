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

#[test]
fn a_required_param_that_a_schedule_gives_is_not_missing() {
    let src = |given: &str| {
        format!(
            "name: p\nparams:\n  region: {{ type: string }}\nschedule:\n  - cron: \"0 2 * * *\"\n    params: {given}\ntasks:\n  a:\n    run: echo {{{{ params.region }}}}\n"
        )
    };
    assert_eq!(messages(&src("{ region: eu }")), Vec::<String>::new());
    let missing = messages(&src("{}"));
    assert_eq!(missing.len(), 1, "{missing:#?}");
    assert!(
        missing[0].contains("required param `region` is not given"),
        "{missing:#?}"
    );
}

#[test]
fn memory_sizes_are_read_in_bytes() {
    for (text, bytes) in [
        ("\"1024\"", 1024),
        ("2k", 2_000),
        ("3M", 3_000_000),
        ("512Mi", 512 << 20),
        ("16Gi", 16 << 30),
        ("1T", 1_000_000_000_000),
        ("2G", 2_000_000_000),
        ("3Ki", 3 << 10),
        ("2Ti", 2 << 40),
    ] {
        let loaded = load(&format!(
            "name: p\ntasks:\n  a:\n    run: x\n    resources: {{ memory: {text} }}\n"
        ));
        let p = loaded
            .pipeline
            .unwrap_or_else(|| panic!("{text}: {:?}", loaded.diagnostics));
        assert_eq!(p.tasks[0].resources.memory_bytes, Some(bytes), "{text}");
    }
}

#[test]
fn a_task_state_may_be_referenced() {
    assert_eq!(
        messages(
            "name: p\ntasks:\n  a:\n    run: x\n  b:\n    needs: [a]\n    trigger_rule: all_done\n    run: echo {{ tasks.a.state }}\n"
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        messages("name: p\ntasks:\n  a:\n    run: x\n  b:\n    needs: [a]\n    run: echo {{ tasks.a.stat }}\n")
            .len(),
        1
    );
}

#[test]
fn a_template_with_only_statements_is_still_checked() {
    let vars =
        baton_core::template::template_variables("{% if params.x %}yes{% endif %}").expect("valid");
    assert_eq!(vars.into_iter().collect::<Vec<_>>(), ["params.x"]);
    assert!(baton_core::template::template_variables("{% if %}").is_err());
}

#[test]
fn numbers_must_be_finite() {
    let cpu = |v: &str| {
        load(&format!(
            "name: p\ntasks:\n  a:\n    run: x\n    resources: {{ cpu: {v} }}\n"
        ))
    };
    let ok = cpu("1.5");
    assert_eq!(
        ok.pipeline.map(|p| p.tasks[0].resources.cpu),
        Some(Some(1.5))
    );
    for v in [".inf", "-.inf", ".nan"] {
        let loaded = cpu(v);
        assert!(loaded.has_errors(), "{v}");
        assert!(loaded.pipeline.is_none(), "{v}");
    }
}

#[test]
fn a_shell_is_a_program_or_an_argument_list() {
    let shell_of = |shell: &str| {
        let loaded = load(&format!(
            "name: p\ntasks:\n  a:\n    run: x\n    shell: {shell}\n"
        ));
        match loaded.pipeline.map(|p| p.tasks[0].action.clone()) {
            Some(baton_core::model::Action::Command { shell, .. }) => Ok(shell),
            other => Err(format!("{other:?} {:?}", loaded.diagnostics)),
        }
    };
    assert_eq!(
        shell_of("bash"),
        Ok(vec!["bash".to_owned(), "-c".to_owned()])
    );
    assert_eq!(
        shell_of("[python3, -c]"),
        Ok(vec!["python3".to_owned(), "-c".to_owned()])
    );
    assert_eq!(
        messages("name: p\ntasks:\n  a:\n    run: x\n    shell: []\n"),
        ["tasks.a.shell: `shell` needs at least a program"]
    );
}

#[test]
fn payload_is_known_only_in_webhook_params() {
    let head = "name: p\nparams:\n  r: { default: main }\n";
    assert_eq!(
        messages(&format!(
            "{head}triggers:\n  - webhook:\n      params:\n        r: \"{{{{ payload.after }}}}\"\ntasks:\n  a:\n    run: x\n"
        )),
        Vec::<String>::new()
    );
    let outside = messages(&format!(
        "{head}tasks:\n  a:\n    run: echo {{{{ payload.after }}}}\n"
    ));
    assert_eq!(outside.len(), 1, "{outside:#?}");
    assert!(
        outside[0].contains("unknown variable `payload`"),
        "{outside:#?}"
    );
}

#[test]
fn unknown_fields_of_known_roots_are_refused() {
    let problems = messages("name: p\ntasks:\n  a:\n    run: echo {{ run.idd }}\n");
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].contains("unknown field `idd` of `run`"),
        "{problems:#?}"
    );
    assert_eq!(
        messages("name: p\ntasks:\n  a:\n    run: echo {{ run.id }}\n"),
        Vec::<String>::new()
    );
}

#[test]
fn environment_variable_names_are_letters_digits_and_underscores() {
    let env = |name: &str| format!("name: p\nenv:\n  {name}: v\ntasks:\n  a:\n    run: x\n");
    assert_eq!(messages(&env("A_1")), Vec::<String>::new());
    assert_eq!(messages(&env("_x")), Vec::<String>::new());
    for bad in ["1A", "A-B", "\"\"", "\"A B\""] {
        let problems = messages(&env(bad));
        assert_eq!(problems.len(), 1, "{bad}: {problems:#?}");
        assert!(
            problems[0].contains("invalid environment variable name"),
            "{bad}: {problems:#?}"
        );
    }
}

#[test]
fn a_retry_problem_points_at_the_retries_it_is_about() {
    let src = "name: p\ndefaults:\n  retries: 1001\ntasks:\n  a:\n    run: x\n  b:\n    run: y\n    retries: 2000\n";
    let lines: Vec<(u32, String)> = load(src)
        .diagnostics
        .into_iter()
        .map(|d| (d.span.line, d.message))
        .collect();
    assert_eq!(
        lines,
        [
            (
                3,
                "1001 retries is more than the maximum of 1000".to_owned()
            ),
            (
                9,
                "2000 retries is more than the maximum of 1000".to_owned()
            ),
        ]
    );
}

#[test]
fn booleans_are_only_true_and_false() {
    use baton_core::decode::{Decode, Decoder};
    let node = baton_core::yaml::parse("[true, false, yes]", &mut Vec::new()).expect("yaml");
    let baton_core::yaml::NodeValue::Seq(items) = node.value else {
        panic!("not a list")
    };
    let mut d = Decoder::new();
    let decoded: Vec<Option<bool>> = items.iter().map(|n| bool::decode(&mut d, n)).collect();
    assert_eq!(decoded, [Some(true), Some(false), None]);
    assert_eq!(d.diags.len(), 1);
}

#[test]
fn a_literal_boolean_condition_is_kept_as_its_text() {
    let condition = |v: &str| {
        load(&format!("name: p\ntasks:\n  a:\n    run: x\n    if: {v}\n"))
            .pipeline
            .and_then(|p| p.tasks[0].condition.clone())
            .map(|e| e.0)
    };
    assert_eq!(condition("false"), Some("false".to_owned()));
    assert_eq!(condition("true"), Some("true".to_owned()));
    assert_eq!(
        condition("\"params.x\""),
        None,
        "an unknown param is refused"
    );
}

#[test]
fn a_param_with_an_invalid_name_is_reported_once() {
    // The name's own error is the one to fix; calling every use of the param unknown as well
    // would bury it. A 129-letter name is too long for a param, but templates can still name
    // it, so the use is checked.
    let long = "a".repeat(129);
    let problems = messages(&format!(
        "name: p\nparams:\n  {long}: {{ default: x }}\ntasks:\n  a:\n    run: echo {{{{ params.{long} }}}}\n"
    ));
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].contains("is longer than 128") || problems[0].contains("invalid name"),
        "{problems:#?}"
    );
}

#[test]
fn a_for_each_expression_cannot_read_its_own_item() {
    let problems =
        messages("name: p\ntasks:\n  a:\n    for_each: item.list\n    run: echo {{ item }}\n");
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].contains("`item` is only defined in tasks with `for_each`"),
        "{problems:#?}"
    );
}

#[test]
fn subscripts_with_a_literal_key_are_checked_like_attributes() {
    let problems = messages(
        "name: p\nparams:\n  who: { type: string, default: x }\ntasks:\n  a:\n    run: echo\n    outputs: [n]\n  b:\n    needs: [a]\n    run: echo {{ params['who'] }} {{ params['nope'] }} {{ tasks[\"a\"].outputs['m'] }}\n    if: tasks['c'].outputs.n\n",
    );
    assert_eq!(
        problems,
        [
            "tasks.b.run: unknown param `nope`",
            "tasks.b.run: task `a` does not declare output `m`",
            "tasks.b.if: unknown task `c`",
        ],
        "{problems:#?}"
    );
}
