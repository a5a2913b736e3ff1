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

/// Each diagnostic as `line:column field: message`.
fn located(src: &str) -> Vec<String> {
    load(src)
        .diagnostics
        .into_iter()
        .map(|d| {
            format!(
                "{}:{} {}: {}",
                d.span.line, d.span.column, d.field, d.message
            )
        })
        .collect()
}

#[test]
fn a_task_needed_twice_is_warned_of_once() {
    assert_eq!(
        located("name: p\ntasks:\n  a:\n    run: x\n  b:\n    needs: [a, a]\n    run: x\n"),
        ["6:16 tasks.b.needs[1]: `a` is listed twice in `needs`"]
    );
}

#[test]
fn a_cycle_is_shown_at_the_need_that_closes_it() {
    // `a`'s second need closes the cycle, not its first.
    let problems = located(
        "name: p\ntasks:\n  a:\n    needs: [c, b]\n    run: x\n  b:\n    needs: [a]\n    run: x\n  c:\n    run: x\n",
    );
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with("4:16 tasks.a.needs[1]: "),
        "{problems:#?}"
    );
}

#[test]
fn a_template_error_says_its_line_only_in_a_script_of_several() {
    assert_eq!(
        messages("name: p\ntasks:\n  a:\n    run: echo {{ x\n"),
        [
            "tasks.a.run: template syntax error: unexpected end of input, expected end of variable block"
        ]
    );
    assert_eq!(
        messages("name: p\ntasks:\n  a:\n    run: |\n      echo ok\n      echo {{ x\n"),
        [
            "tasks.a.run: template syntax error: unexpected end of input, expected end of variable block (line 2 of the template)"
        ]
    );
}

#[test]
fn a_param_range_of_one_value_is_allowed() {
    let range = |min: i64, max: i64| {
        format!(
            "name: p\nparams:\n  n: {{ type: integer, min: {min}, max: {max} }}\ntasks:\n  a:\n    run: echo {{{{ params.n }}}}\n"
        )
    };
    assert_eq!(messages(&range(3, 3)), Vec::<String>::new());
    assert_eq!(
        messages(&range(4, 3)),
        ["params.n.max: `max` (3) is less than `min` (4)"]
    );
}

#[test]
fn a_bound_alone_on_a_boolean_is_refused() {
    for bound in ["min", "max"] {
        let problems = messages(&format!(
            "name: p\nparams:\n  on: {{ type: boolean, {bound}: 1 }}\ntasks:\n  a:\n    run: x\n"
        ));
        assert_eq!(problems.len(), 1, "{bound}: {problems:#?}");
        assert!(problems[0].starts_with("params.on"), "{problems:#?}");
    }
}

#[test]
fn one_webhook_may_be_notified_in_two_formats() {
    let notify = |second: &str| {
        format!(
            "name: p\nnotify:\n  - on: failure\n    webhook: https://hooks.example.com/a\n  - on: success\n    webhook: {second}\n    format: slack\ntasks:\n  a:\n    run: x\n"
        )
    };
    // The same webhook in another format, and another webhook in the same format: both fine.
    assert_eq!(
        messages(&notify("https://hooks.example.com/a")),
        Vec::<String>::new()
    );
    let twice = "name: p\nnotify:\n  - on: failure\n    webhook: https://hooks.example.com/a\n  - on: success\n    webhook: https://hooks.example.com/a\ntasks:\n  a:\n    run: x\n";
    assert_eq!(
        messages(twice),
        ["notify[1]: this webhook is already notified with the same format"]
    );
}

#[test]
fn a_max_delay_equal_to_the_delay_is_allowed() {
    let retries = |max: &str| {
        format!(
            "name: p\ntasks:\n  a:\n    run: x\n    retries: {{ limit: 3, delay: 10s, max_delay: {max} }}\n"
        )
    };
    assert_eq!(messages(&retries("10s")), Vec::<String>::new());
    assert_eq!(messages(&retries("9s")).len(), 1);
}

#[test]
fn an_environment_value_must_be_text() {
    for value in ["[1, 2]", "{ a: 1 }", "~"] {
        let problems = messages(&format!(
            "name: p\nenv:\n  X: {value}\ntasks:\n  a:\n    run: x\n"
        ));
        assert_eq!(problems.len(), 1, "{value}: {problems:#?}");
        assert!(problems[0].starts_with("env.X: "), "{value}: {problems:#?}");
    }
}

#[test]
fn a_task_with_only_inputs_or_only_outputs_is_in_the_lineage() {
    let p = load(
        "name: p\ntasks:\n  read:\n    run: x\n    inputs: [postgres://db/raw]\n  write:\n    run: x\n    outputs: [postgres://db/out]\n  neither:\n    run: x\n",
    )
    .pipeline
    .expect("valid");
    let lineage = baton_core::lineage::lineage(&p, []);
    let tasks: Vec<&str> = lineage.tasks.iter().map(|t| t.task.as_str()).collect();
    assert_eq!(tasks, ["read", "write"]);
}

#[test]
fn the_secrets_of_a_pipeline_are_its_webhook_and_notification_variables() {
    let p = load(
        "name: p\ntriggers:\n  - webhook: {}\n  - webhook:\n      secret_env: HOOK_SECRET\nnotify:\n  - on: failure\n    webhook_env: SLACK_URL\n  - on: success\n    webhook: https://hooks.example.com/a\ntasks:\n  a:\n    run: x\n",
    )
    .pipeline
    .expect("valid");
    let secrets: Vec<&str> = p.secret_variables().collect();
    assert_eq!(secrets, ["HOOK_SECRET", "SLACK_URL"]);
}

#[test]
fn a_nul_anywhere_in_an_object_param_is_refused() {
    use baton_core::model::ParamValueError;
    let p =
        load("name: p\nparams:\n  o: { type: object, default: {} }\ntasks:\n  a:\n    run: x\n")
            .pipeline
            .expect("valid");
    let param = &p.params["o"];
    for bad in [
        serde_json::json!({ "a\u{0}": 1 }),
        serde_json::json!({ "a": "b\u{0}" }),
        serde_json::json!({ "a": { "b": ["\u{0}"] } }),
    ] {
        assert!(
            matches!(param.check(&bad), Err(ParamValueError::Nul)),
            "{bad}"
        );
    }
    assert!(
        param
            .check(&serde_json::json!({ "a": { "b": ["c"] } }))
            .is_ok()
    );
}

#[test]
fn a_quoted_literal_in_a_script_is_not_a_quote_of_the_script() {
    assert_eq!(
        messages("name: p\ntasks:\n  a:\n    run: echo {{ 'x' }} \"{{ \"y\" }}\"\n"),
        Vec::<String>::new()
    );
}

#[test]
fn expression_source_unwraps_one_whole_expression_only() {
    use baton_core::template::expression_source;
    assert_eq!(expression_source(" {{ a.b }} "), "a.b");
    assert_eq!(expression_source("a.b"), "a.b");
    // Two templates, or braces that do not pair up, are not one wrapped expression.
    assert_eq!(
        expression_source("{{ a }} and {{ b }}"),
        "{{ a }} and {{ b }}"
    );
    assert_eq!(expression_source("{{ a }} }}"), "{{ a }} }}");
    assert_eq!(expression_source("{{ {{ a }}"), "{{ {{ a }}");
}

#[test]
fn scripts_render_their_values_as_placeholders_unless_raw() {
    let env = baton_core::template::shell_environment();
    let out = env
        .render_str(
            "echo {{ v }} {{ v | raw }}",
            minijinja::context! { v => "a b" },
        )
        .expect("renders");
    let quoted = baton_core::shell::substitute(&out).expect("substitutes");
    assert_eq!(quoted, "echo 'a b' a b");
}

#[test]
fn an_approval_and_a_cache_keep_what_they_say() {
    let p = load(
        "name: p\ntasks:\n  a:\n    run: x\n    approval:\n      message: ship it?\n      timeout: 1h\n      approvers: [ana]\n    cache:\n      key: k1\n      ttl: 1d\n",
    )
    .pipeline
    .expect("valid");
    let task = serde_json::to_value(&p.tasks[0]).expect("json");
    assert_eq!(task["approval"]["message"], "ship it?", "{task}");
    assert_eq!(task["approval"]["approvers"], serde_json::json!(["ana"]));
    assert!(!task["approval"]["timeout"].is_null(), "{task}");
    assert_eq!(task["cache"]["key"], "k1", "{task}");
    assert!(!task["cache"]["ttl"].is_null(), "{task}");
}

#[test]
fn a_str_tag_makes_a_string_and_other_tags_do_not() {
    let p = load("name: p\ndescription: !!str 123\ntasks:\n  a:\n    run: x\n")
        .pipeline
        .expect("valid");
    assert_eq!(p.description.as_deref(), Some("123"));
    assert_eq!(
        messages("name: p\ndescription: !!int 123\ntasks:\n  a:\n    run: x\n").len(),
        1
    );
}

#[test]
fn a_merge_key_takes_a_list_of_mappings() {
    let src =
        "name: p\ntasks:\n  a: &base\n    run: echo base\n  b:\n    <<: [*base]\n    needs: [a]\n";
    assert_eq!(messages(src), Vec::<String>::new());
    let p = load(src).pipeline.expect("valid");
    let b = serde_json::to_value(&p.tasks[1]).expect("json");
    assert_eq!(b["action"]["run"], "echo base", "{b}");
}

#[test]
fn the_text_after_a_value_is_read_from_the_end_of_its_tag() {
    // Read from two characters early, `a'}}` would open a quote that hides the here-document.
    let problems = messages(
        "name: p\nparams:\n  y: { default: v }\ntasks:\n  a:\n    run: |\n      echo {{ 'a'}}\n      cat <<'EOF'\n      {{ params.y }}\n      EOF\n",
    );
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].contains("inside a quoted here-document"),
        "{problems:#?}"
    );
}
