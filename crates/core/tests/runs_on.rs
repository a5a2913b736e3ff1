//! `runs_on:`: worker labels, the wait, `defaults`, and the tasks that cannot go to a worker.

use baton_core::load;

use crate::validation::problems;
use baton_core::model::RunsOn;

#[test]
fn runs_on_compiles_with_its_defaults() {
    let src = "\
name: p
defaults:
  runs_on: [linux]
tasks:
  train:
    runs_on: { labels: [gpu, eu, gpu], wait: 30s }
    run: python train.py
  plain: { run: echo hi }
  call: { http: { url: \"https://example.com\" } }
";
    let loaded = load(src);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let p = loaded.pipeline.expect("valid");
    assert_eq!(
        p.tasks[0].runs_on,
        Some(RunsOn {
            labels: vec!["gpu".into(), "eu".into()],
            wait: "30s".parse().expect("duration"),
        })
    );
    assert_eq!(
        p.tasks[1].runs_on,
        Some(RunsOn {
            labels: vec!["linux".into()],
            wait: RunsOn::DEFAULT_WAIT,
        })
    );
    assert_eq!(
        p.tasks[2].runs_on, None,
        "a request stays on the control plane"
    );
}

#[test]
fn every_problem_of_runs_on_is_reported_where_it_is() {
    let src = "\
name: p
tasks:
  a:
    runs_on: { labels: [\"bad label\", -x], wait: 0s }
    run: echo hi
  b:
    runs_on: [gpu]
    http: { url: \"https://example.com\" }
  c:
    runs_on: { labels: [] }
    run: echo hi
  d:
    runs_on: { tags: [x] }
    run: echo hi
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
                4,
                "tasks.a.runs_on.labels[0]",
                "invalid worker label `bad label`: use 1 to 63 letters, digits and `._-:=/`, starting with a letter or digit"
            ),
            (
                4,
                "tasks.a.runs_on.labels[1]",
                "invalid worker label `-x`: use 1 to 63 letters, digits and `._-:=/`, starting with a letter or digit"
            ),
            (
                4,
                "tasks.a.runs_on.wait",
                "`wait` must be greater than zero"
            ),
            (
                7,
                "tasks.b.runs_on",
                "`runs_on` sends a task to a worker, and baton makes an `http` step itself"
            ),
            (10, "tasks.c.runs_on.labels", "`runs_on` names no label"),
            (
                13,
                "tasks.d.runs_on",
                "missing required key `labels` in `runs_on`"
            ),
            (
                13,
                "tasks.d.runs_on.tags",
                "unknown key `tags` in `runs_on`"
            ),
        ],
        "{got:#?}"
    );
}
