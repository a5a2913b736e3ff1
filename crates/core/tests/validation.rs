//! Invalid definitions, each checked against its exact message, location and field path.

use baton_core::load;

/// `(line, column, field, message)` of every diagnostic, in reading order.
pub(crate) fn problems(src: &str) -> Vec<(u32, u32, String, String)> {
    load(src)
        .diagnostics
        .into_iter()
        .map(|d| (d.span.line, d.span.column, d.field, d.message))
        .collect()
}

fn one(src: &str) -> (u32, u32, String, String) {
    let mut p = problems(src);
    assert_eq!(p.len(), 1, "expected one problem, got {p:#?}");
    p.remove(0)
}

fn hint(src: &str) -> Option<String> {
    load(src)
        .diagnostics
        .into_iter()
        .next()
        .and_then(|d| d.hint)
}

macro_rules! case {
    ($name:ident, $src:expr, ($line:expr, $col:expr, $field:expr, $msg:expr)) => {
        #[test]
        fn $name() {
            assert_eq!(
                one($src),
                ($line, $col, $field.to_string(), $msg.to_string())
            );
        }
    };
}

const OK_TASKS: &str = "tasks:\n  a:\n    run: echo hi\n";

case!(
    pool_names_follow_the_pool_rule,
    "name: p\ntasks:\n  a:\n    run: x\n    pool: gpu pool\n",
    (
        5,
        11,
        "tasks.a.pool",
        "invalid pool name `gpu pool`: use letters, digits, `.`, `_` and `-`, at most 100"
    )
);

#[test]
fn a_bad_default_pool_is_reported_once_at_defaults() {
    let src = "name: p\ndefaults:\n  pool: \"gpu/1\"\ntasks:\n  a:\n    run: x\n  b:\n    run: y\n";
    assert_eq!(
        problems(src),
        [(
            3,
            9,
            "defaults.pool".to_owned(),
            "invalid pool name `gpu/1`: use letters, digits, `.`, `_` and `-`, at most 100"
                .to_owned()
        )]
    );
    assert_eq!(
        hint(src).as_deref(),
        Some("`baton pool set NAME --slots N` accepts the same names")
    );
    // Good names of every allowed kind pass, inherited or not.
    let ok = "name: p\ndefaults:\n  pool: gpu.A_1-b\ntasks:\n  a:\n    run: x\n  b:\n    run: y\n    pool: cpu\n";
    assert_eq!(problems(ok), []);
}

#[test]
fn minimal_pipeline_is_valid() {
    let loaded = load(&format!("name: p\n{OK_TASKS}"));
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let p = loaded.pipeline.expect("valid");
    assert_eq!(p.id.to_string(), "default/p");
    assert_eq!(p.version.as_str().len(), 64);
}

case!(
    yaml_syntax_error,
    "name: p\ntasks: [a\n",
    (
        3,
        1,
        "",
        "invalid YAML: while parsing a flow sequence, expected ',' or ']'"
    )
);
case!(empty_file, "", (1, 1, "", "the file is empty"));
case!(
    root_not_a_mapping,
    "- a\n- b\n",
    (1, 1, "", "expected a mapping, found a list")
);
case!(
    missing_tasks,
    "name: p\n",
    (1, 1, "", "missing required key `tasks` in the pipeline")
);
case!(
    unknown_top_level_key,
    &format!("name: p\nschedules: []\n{OK_TASKS}"),
    (2, 1, "schedules", "unknown key `schedules` in the pipeline")
);
case!(
    unknown_task_key,
    "name: p\ntasks:\n  a:\n    run: x\n  b:\n    neds: [a]\n    run: x\n",
    (6, 5, "tasks.b.neds", "unknown key `neds` in a task")
);
case!(
    wrong_type,
    &format!("name: p\ntags: etl\n{OK_TASKS}"),
    (2, 7, "tags", "expected a list, found a string")
);
case!(
    wrong_type_in_list,
    &format!("name: p\ntags: [etl, 3]\n{OK_TASKS}"),
    (2, 13, "tags[1]", "expected a string, found an integer")
);
case!(
    bad_duration,
    "name: p\ntasks:\n  a:\n    run: x\n    timeout: 5 fortnights\n",
    (
        5,
        14,
        "tasks.a.timeout",
        "unknown unit `fortnights` in `5 fortnights`"
    )
);
case!(
    duration_without_unit,
    "name: p\ntasks:\n  a:\n    run: x\n    timeout: 300\n",
    (5, 14, "tasks.a.timeout", "missing unit in duration `300`")
);
case!(
    bad_cron,
    &format!("name: p\nschedule:\n  - cron: \"61 * * * *\"\n{OK_TASKS}"),
    (
        3,
        11,
        "schedule[0].cron",
        "invalid cron `61 * * * *`: component error: Number out of bounds"
    )
);
case!(
    unknown_time_zone,
    &format!("name: p\nschedule:\n  - cron: \"@daily\"\n    timezone: Mars/Olympus\n{OK_TASKS}"),
    (
        4,
        15,
        "schedule[0].timezone",
        "unknown time zone `Mars/Olympus`"
    )
);
case!(
    invalid_pipeline_name,
    &format!("name: Nightly\n{OK_TASKS}"),
    (
        1,
        7,
        "name",
        "invalid pipeline name `Nightly`: use lowercase letters, digits, `_` and `-`, starting with a letter or digit"
    )
);
case!(
    invalid_task_id,
    "name: p\ntasks:\n  Extract:\n    run: x\n",
    (
        3,
        3,
        "tasks.Extract",
        "invalid task id `Extract`: use lowercase letters, digits, `_` and `-`, starting with a letter or digit"
    )
);
case!(
    duplicate_task_id,
    "name: p\ntasks:\n  a:\n    run: x\n  a:\n    run: y\n",
    (5, 3, "tasks.a", "duplicate task id `a`")
);
case!(
    needs_missing_task,
    "name: p\ntasks:\n  extract:\n    run: x\n  load:\n    needs: [extrct]\n    run: y\n",
    (
        6,
        13,
        "tasks.load.needs[0]",
        "task `load` needs unknown task `extrct`"
    )
);
case!(
    cycle,
    "name: p\ntasks:\n  a:\n    needs: [c]\n    run: x\n  b:\n    needs: [a]\n    run: x\n  c:\n    needs: [b]\n    run: x\n",
    (
        4,
        13,
        "tasks.a.needs[0]",
        "dependency cycle: a -> b -> c -> a"
    )
);
case!(
    self_cycle,
    "name: p\ntasks:\n  a:\n    needs: a\n    run: x\n",
    (4, 12, "tasks.a.needs[0]", "dependency cycle: a -> a")
);
case!(
    template_syntax_error,
    "name: p\ntasks:\n  a:\n    run: echo {{ params.x\n",
    (
        4,
        10,
        "tasks.a.run",
        "template syntax error: unexpected end of input, expected end of variable block"
    )
);
case!(
    undeclared_param,
    "name: p\nparams:\n  date: { type: string, default: today }\ntasks:\n  a:\n    run: echo {{ params.dat }}\n",
    (6, 10, "tasks.a.run", "unknown param `dat`")
);
case!(
    task_not_upstream,
    "name: p\ntasks:\n  a:\n    run: x\n    outputs: [n]\n  b:\n    run: echo {{ tasks.a.outputs.n }}\n",
    (7, 10, "tasks.b.run", "task `a` is not upstream of `b`")
);
case!(
    undeclared_output,
    "name: p\ntasks:\n  a:\n    run: x\n    outputs: [rows]\n  b:\n    needs: [a]\n    if: tasks.a.outputs.row | int > 0\n    run: y\n",
    (8, 9, "tasks.b.if", "task `a` does not declare output `row`")
);
case!(
    item_outside_for_each,
    "name: p\ntasks:\n  a:\n    run: echo {{ item }}\n",
    (
        4,
        10,
        "tasks.a.run",
        "`item` is only defined in tasks with `for_each`"
    )
);
case!(
    unknown_variable,
    "name: p\ntasks:\n  a:\n    run: echo {{ parms.x }}\n",
    (4, 10, "tasks.a.run", "unknown variable `parms`")
);
case!(
    default_violates_type,
    "name: p\nparams:\n  limit: { type: integer, default: ten }\ntasks:\n  a:\n    run: x\n",
    (
        3,
        36,
        "params.limit.default",
        "default of param `limit` is invalid: expected an integer, found a string"
    )
);
case!(
    default_violates_min,
    "name: p\nparams:\n  limit: { type: integer, default: 0, min: 1 }\ntasks:\n  a:\n    run: x\n",
    (
        3,
        36,
        "params.limit.default",
        "default of param `limit` is invalid: value must be at least 1, got 0"
    )
);
case!(
    default_not_in_enum,
    "name: p\nparams:\n  env: { type: string, enum: [dev, prod], default: test }\ntasks:\n  a:\n    run: x\n",
    (
        3,
        52,
        "params.env.default",
        "default of param `env` is invalid: must be one of `\"dev\"`, `\"prod\"`, got `\"test\"`"
    )
);
case!(
    unknown_param_type,
    "name: p\nparams:\n  n: { type: int }\ntasks:\n  a:\n    run: x\n",
    (3, 14, "params.n.type", "unknown param type `int`")
);
case!(
    unknown_trigger_rule,
    "name: p\ntasks:\n  a:\n    run: x\n  b:\n    needs: [a]\n    trigger_rule: one_fail\n    run: y\n",
    (
        7,
        19,
        "tasks.b.trigger_rule",
        "unknown trigger rule `one_fail`"
    )
);
case!(
    nothing_to_do,
    "name: p\ntasks:\n  a:\n    needs: []\n",
    (3, 3, "tasks.a", "task `a` has nothing to do")
);
case!(
    run_and_pipeline,
    "name: p\ntasks:\n  a:\n    run: x\n    pipeline: other\n",
    (
        4,
        10,
        "tasks.a",
        "a task does one thing: `run` and `pipeline` are set"
    )
);
case!(
    max_delay_below_delay,
    "name: p\ntasks:\n  a:\n    run: x\n    retries: { limit: 2, delay: 1m, max_delay: 10s }\n",
    (
        5,
        48,
        "tasks.a.retries.max_delay",
        "`max_delay` (10s) is less than `delay` (1m)"
    )
);
case!(
    retries_wrong_shape,
    "name: p\ntasks:\n  a:\n    run: x\n    retries: lots\n",
    (
        5,
        14,
        "tasks.a.retries",
        "expected a retry count or a mapping, found a string"
    )
);
case!(
    schedule_missing_required_param,
    "name: p\nparams:\n  date: { type: string }\nschedule:\n  - cron: \"@daily\"\ntasks:\n  a:\n    run: x\n",
    (
        5,
        11,
        "schedule[0].params",
        "required param `date` is not given"
    )
);
case!(
    reserved_env,
    "name: p\nenv: { BATON_RUN_ID: x }\ntasks:\n  a:\n    run: x\n",
    (2, 8, "env.BATON_RUN_ID", "`BATON_RUN_ID` is reserved")
);
case!(
    zero_max_active_runs,
    "name: p\nconcurrency: { max_active_runs: 0 }\ntasks:\n  a:\n    run: x\n",
    (
        2,
        33,
        "concurrency.max_active_runs",
        "`max_active_runs` must be at least 1"
    )
);
case!(
    trigger_with_two_kinds,
    "name: p\ntriggers:\n  - { webhook: {}, pipeline: x }\ntasks:\n  a:\n    run: x\n",
    (3, 5, "triggers[0]", "a trigger has exactly one kind")
);
case!(
    hook_with_needs,
    "name: p\ntasks:\n  a:\n    run: x\non_failure:\n  needs: [a]\n  run: page\n",
    (
        6,
        11,
        "on_failure.needs",
        "`needs` is not allowed in `on_failure`"
    )
);
case!(
    multiple_documents,
    "name: p\n---\nname: q\n",
    (2, 1, "", "a pipeline file holds exactly one YAML document")
);

case!(
    pipeline_triggers_itself,
    "name: p\ntriggers:\n  - pipeline: default/p\ntasks:\n  a:\n    run: x\n",
    (
        3,
        15,
        "triggers[0].pipeline",
        "pipeline `default/p` triggers itself"
    )
);
case!(
    fractional_duration,
    "name: p\ntasks:\n  a:\n    run: x\n    timeout: 1.5h\n",
    (5, 14, "tasks.a.timeout", "fractional duration `1.5h`")
);
case!(
    zero_default_timeout,
    "name: p\ndefaults:\n  timeout: 0s\ntasks:\n  a:\n    run: x\n",
    (
        3,
        12,
        "defaults.timeout",
        "`timeout` must be greater than zero"
    )
);
case!(
    defaults_env_path,
    "name: p\ndefaults:\n  env: { A: \"{{ nope }}\" }\ntasks:\n  a:\n    run: x\n",
    (3, 13, "defaults.env.A", "unknown variable `nope`")
);
case!(
    defaults_working_dir_is_checked,
    "name: p\ndefaults:\n  working_dir: \"{{ bogus.x }}\"\ntasks:\n  a:\n    run: x\n",
    (3, 16, "defaults.working_dir", "unknown variable `bogus`")
);
case!(
    tasks_unavailable_in_pipeline_env,
    "name: p\nenv: { A: \"{{ tasks }}\" }\ntasks:\n  a:\n    run: x\n",
    (2, 11, "env.A", "task results are not available here")
);
case!(
    sub_pipeline_param_path,
    "name: p\ntasks:\n  a:\n    pipeline: other\n    params: { x: \"{{ nope }}\" }\n",
    (5, 18, "tasks.a.params.x", "unknown variable `nope`")
);
case!(
    zero_cpu,
    "name: p\ntasks:\n  a:\n    run: x\n    resources: { cpu: 0 }\n",
    (
        5,
        23,
        "tasks.a.resources.cpu",
        "`cpu` must be greater than zero"
    )
);
case!(
    approval_in_hook,
    "name: p\ntasks:\n  a:\n    run: x\non_failure:\n  approval: true\n  run: page\n",
    (
        6,
        3,
        "on_failure.approval",
        "`approval` is not allowed in `on_failure`"
    )
);
case!(
    empty_required_value,
    "name:\ntasks:\n  a:\n    run: x\n",
    (1, 5, "name", "`name` has no value")
);

#[test]
fn null_means_absent_for_optional_keys() {
    let loaded = load("name: p\ndescription:\nowner: ~\ntasks:\n  a:\n    run: x\n    timeout:\n");
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let loaded = load("name: p\ntriggers:\n  - webhook:\ntasks:\n  a:\n    run: x\n");
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    assert_eq!(loaded.pipeline.expect("valid").triggers.len(), 1);
}

#[test]
fn hints_suggest_fixes() {
    assert_eq!(
        hint("name: p\ntasks:\n  a:\n    neds: [b]\n    run: x\n").as_deref(),
        Some("did you mean `needs`?")
    );
    assert_eq!(
        hint("name: p\ntasks:\n  extract:\n    run: x\n  b:\n    needs: [extrct]\n    run: x\n")
            .as_deref(),
        Some("did you mean `extract`?")
    );
    assert_eq!(
        hint("name: p\ntasks:\n  a:\n    run: x\n  b:\n    needs: [a]\n    trigger_rule: al_done\n    run: x\n").as_deref(),
        Some("did you mean `all_done`?")
    );
    assert_eq!(
        hint("name: p\ntasks:\n  a:\n    run: x\n    outputs: [n]\n  b:\n    run: echo {{ tasks.a.outputs.n }}\n").as_deref(),
        Some("add `a` to the `needs` of `b`")
    );
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let src = "name: Bad Name\nparams:\n  n: { type: integer, default: x }\ntasks:\n  a:\n    neds: [b]\n    run: echo {{ params.m }}\n    timeout: soon\n  b:\n    needs: [a, zz]\n";
    let p = problems(src);
    let messages: Vec<&str> = p.iter().map(|p| p.3.as_str()).collect();
    assert_eq!(
        messages,
        vec![
            "invalid pipeline name `Bad Name`: use lowercase letters, digits, `_` and `-`, starting with a letter or digit",
            "default of param `n` is invalid: expected an integer, found a string",
            "unknown key `neds` in a task",
            "unknown param `m`",
            "invalid duration `soon`",
            "task `b` has nothing to do",
            "task `b` needs unknown task `zz`",
        ]
    );
}

#[test]
fn transitive_upstream_outputs_are_allowed() {
    let src = "name: p\ntasks:\n  a:\n    run: x\n    outputs: [n]\n  b:\n    needs: [a]\n    run: y\n  c:\n    needs: [b]\n    run: echo {{ tasks.a.outputs.n }}\n";
    let loaded = load(src);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
}

#[test]
fn expressions_accept_braces_or_not() {
    for for_each in ["params.regions", "\"{{ params.regions }}\""] {
        let src = format!(
            "name: p\nparams:\n  regions: {{ type: array, default: [eu, us] }}\ntasks:\n  a:\n    for_each: {for_each}\n    run: echo {{{{ item }}}}\n"
        );
        let loaded = load(&src);
        assert!(
            loaded.diagnostics.is_empty(),
            "{for_each}: {:#?}",
            loaded.diagnostics
        );
        let task = &loaded.pipeline.expect("valid").tasks[0];
        assert_eq!(
            task.for_each,
            Some(baton_core::model::ForEach::Expression(
                baton_core::model::Expression("params.regions".into())
            ))
        );
    }
}

#[test]
fn task_settings_inherit_defaults_field_by_field() {
    let src = "name: p\ndefaults:\n  timeout: 30m\n  retries: { limit: 3, delay: 2s, backoff: exponential }\n  env: { A: one }\ntasks:\n  a:\n    run: x\n    retries: 5\n    env: { B: two }\n";
    let p = load(src).pipeline.expect("valid");
    let t = &p.tasks[0];
    assert_eq!(t.timeout.map(|d| d.to_string()).as_deref(), Some("30m"));
    assert_eq!(t.retry.limit, 5);
    assert_eq!(t.retry.delay.to_string(), "2s");
    assert_eq!(t.retry.backoff, baton_core::spec::Backoff::Exponential);
    assert_eq!(t.env.keys().collect::<Vec<_>>(), vec!["B", "A"]);
}

#[test]
fn warnings_do_not_invalidate() {
    let loaded = load("name: p\ntasks:\n  a:\n    trigger_rule: all_done\n    run: x\n");
    assert!(loaded.pipeline.is_some());
    assert_eq!(loaded.diagnostics.len(), 1);
    assert_eq!(
        loaded.diagnostics[0].message,
        "`trigger_rule: all_done` has no effect on a task without `needs`"
    );
}

#[test]
fn an_overlap_policy_alone_limits_to_one_active_run() {
    use baton_core::spec::Overlap;
    let limit = |c: &str| {
        let p = load(&format!("name: p\n{c}tasks:\n  a:\n    run: x\n"))
            .pipeline
            .expect("valid");
        (p.concurrency.max_active_runs, p.concurrency.overlap)
    };
    assert_eq!(
        limit(""),
        (None, Overlap::Queue),
        "no limit without `concurrency`"
    );
    assert_eq!(limit("concurrency: {}\n"), (None, Overlap::Queue));
    assert_eq!(
        limit("concurrency: { overlap: skip }\n"),
        (Some(1), Overlap::Skip)
    );
    assert_eq!(
        limit("concurrency: { max_active_runs: 3 }\n"),
        (Some(3), Overlap::Queue)
    );
}

#[test]
fn every_problem_of_an_http_step_is_reported_where_it_is() {
    let src = "name: p\ntasks:\n  a:\n    http:\n      url: ftp://x\n      method: GET\n      body: { a: 1 }\n      headers: { \"Bad Header\": x }\n      expect: { status: [200, 700] }\n      poll: { interval: 0s }\n    shell: bash\n  b:\n    run: x\n    http: { url: \"https://x\" }\n  c:\n    run: x\n    outputs_from: json\n  d:\n    http: { url: \"https://x/{{ params.nope }}\", method: FETCH }\n";
    let p = problems(src);
    let found: Vec<(u32, u32, &str, &str)> = p
        .iter()
        .map(|(l, c, f, m)| (*l, *c, f.as_str(), m.as_str()))
        .collect();
    assert_eq!(
        found,
        vec![
            (
                5,
                12,
                "tasks.a.http.url",
                "`ftp://x` is not an `http://` or `https://` URL"
            ),
            (7, 13, "tasks.a.http.body", "a `GET` request has no body"),
            (
                8,
                18,
                "tasks.a.http.headers.Bad Header",
                "`Bad Header` is not a header name"
            ),
            (
                9,
                31,
                "tasks.a.http.expect.status",
                "700 is not an HTTP status code"
            ),
            (
                10,
                25,
                "tasks.a.http.poll.interval",
                "`interval` must be greater than zero"
            ),
            (
                11,
                12,
                "tasks.a.shell",
                "`shell` is not used by an `http` step"
            ),
            (
                13,
                10,
                "tasks.b",
                "a task does one thing: `run` and `http` are set"
            ),
            (
                17,
                19,
                "tasks.c.outputs_from",
                "`outputs_from` is only used with `http`"
            ),
            (19, 18, "tasks.d.http.url", "unknown param `nope`"),
            (19, 57, "tasks.d.http.method", "unknown HTTP method `FETCH`"),
        ]
    );
}

#[test]
fn an_http_step_compiles_to_its_request() {
    let src = "name: p\nparams:\n  r: { type: string }\ntasks:\n  a:\n    http:\n      url: \"https://api.example.com/{{ params.r }}\"\n      body: { region: \"{{ params.r }}\" }\n      expect: { status: 202 }\n      poll: true\n    outputs_from: json\n    outputs: [id]\n";
    let loaded = load(src);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let pipeline = loaded.pipeline.expect("valid");
    let baton_core::model::Action::Http(call) = &pipeline.tasks[0].action else {
        panic!("not an http step: {:?}", pipeline.tasks[0].action);
    };
    assert_eq!(
        call.method,
        baton_core::spec::HttpMethod::Post,
        "a body means POST"
    );
    assert_eq!(call.expect_status, [202]);
    assert_eq!(call.poll, Some(baton_core::model::HttpCall::DEFAULT_POLL));
    assert_eq!(call.outputs_from, Some(baton_core::spec::OutputsFrom::Json));
    assert!(call.expects(202) && !call.expects(200));
}

#[test]
fn a_callback_compiles_with_its_wait_and_does_not_go_with_poll() {
    let src = "\
name: p
tasks:
  a:
    http: { url: \"https://x.example/a\", callback: true }
  b:
    http: { url: \"https://x.example/b\", callback: { wait: 5m } }
  c:
    http: { url: \"https://x.example/c\", callback: { wait: 0s }, poll: true }
";
    let got = problems(src);
    let fields: Vec<(u32, &str, &str)> = got
        .iter()
        .map(|(l, _, f, m)| (*l, f.as_str(), m.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            (
                8,
                "tasks.c.http.callback",
                "`poll` and `callback` are two ways to wait for the result: keep one"
            ),
            (
                8,
                "tasks.c.http.callback.wait",
                "`wait` must be greater than zero"
            ),
        ]
    );
    let ok = "name: p\ntasks:\n  a:\n    http: { url: \"https://x.example/a\", callback: true }\n  b:\n    http: { url: \"https://x.example/b\", callback: { wait: 5m } }\n";
    let p = baton_core::load(ok).pipeline.expect("valid");
    let wait = |i: usize| match &p.tasks[i].action {
        baton_core::model::Action::Http(h) => h.callback.map(|d| d.to_string()),
        _ => None,
    };
    assert_eq!(wait(0).as_deref(), Some("1h"));
    assert_eq!(wait(1).as_deref(), Some("5m"));
}
