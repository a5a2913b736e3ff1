//! `inputs`/`outputs` datasets, `deadline` and `notify`: what they accept and the exact messages
//! for what they refuse.

use baton_core::load;
use baton_core::model::{Dataset, WebhookUrl};
use baton_core::spec::{NotifyEvent, NotifyFormat};

/// `(line, column, field, message, hint)` of every diagnostic, in reading order.
fn problems(src: &str) -> Vec<(u32, u32, String, String, Option<String>)> {
    load(src)
        .diagnostics
        .into_iter()
        .map(|d| (d.span.line, d.span.column, d.field, d.message, d.hint))
        .collect()
}

fn one(src: &str) -> (u32, u32, String, String, Option<String>) {
    let mut p = problems(src);
    assert_eq!(p.len(), 1, "expected one problem, got {p:#?}");
    p.remove(0)
}

fn ds(namespace: &str, name: &str) -> Dataset {
    Dataset {
        namespace: namespace.into(),
        name: name.into(),
    }
}

#[test]
fn datasets_deadlines_and_notifications_compile() {
    let src = "name: p
deadline: 2h
notify:
  - on: [failure, deadline]
    webhook: https://hooks.example.com/baton
  - on: success
    webhook_env: SLACK_URL
    format: slack
tasks:
  load:
    run: x
    deadline: 30m
    inputs:
      - postgres://db/raw.orders
      - { namespace: kafka://broker:9092, name: events }
    outputs:
      - rows
      - s3://lake/orders/
      - file:///tmp/out.csv
";
    let loaded = load(src);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let p = loaded.pipeline.expect("valid");
    assert_eq!(p.deadline.map(|d| d.as_millis()), Some(7_200_000));
    let t = &p.tasks[0];
    assert_eq!(t.deadline.map(|d| d.as_millis()), Some(1_800_000));
    assert_eq!(
        t.input_datasets,
        [
            ds("postgres://db", "raw.orders"),
            ds("kafka://broker:9092", "events")
        ]
    );
    assert_eq!(
        t.output_datasets,
        [ds("s3://lake", "orders/"), ds("file", "/tmp/out.csv")]
    );
    assert_eq!(t.outputs.len(), 1);
    assert_eq!(t.outputs[0].as_str(), "rows");
    assert_eq!(p.notify.len(), 2);
    assert_eq!(
        p.notify[0].on,
        [NotifyEvent::Failure, NotifyEvent::Deadline]
    );
    assert_eq!(
        p.notify[0].webhook,
        WebhookUrl::Url("https://hooks.example.com/baton".into())
    );
    assert_eq!(p.notify[0].format, NotifyFormat::Json);
    assert_eq!(p.notify[1].on, [NotifyEvent::Success]);
    assert_eq!(p.notify[1].webhook, WebhookUrl::Env("SLACK_URL".into()));
    assert_eq!(p.notify[1].format, NotifyFormat::Slack);
}

macro_rules! case {
    ($name:ident, $src:expr, ($line:expr, $col:expr, $field:expr, $msg:expr, $hint:expr)) => {
        #[test]
        fn $name() {
            assert_eq!(
                one($src),
                (
                    $line,
                    $col,
                    $field.to_string(),
                    $msg.to_string(),
                    Option::<&str>::from($hint).map(str::to_string)
                )
            );
        }
    };
}

case!(
    input_not_a_uri,
    "name: p\ntasks:\n  a:\n    run: x\n    inputs: [orders]\n",
    (
        5,
        14,
        "tasks.a.inputs[0]",
        "dataset `orders` is not a URI",
        "write `scheme://host/name` (`postgres://db/schema.table`, `s3://bucket/path`, `file:///data/x.csv`) or `{ namespace: ..., name: ... }`"
    )
);
case!(
    input_without_name,
    "name: p\ntasks:\n  a:\n    run: x\n    inputs:\n      - s3://bucket\n",
    (
        6,
        9,
        "tasks.a.inputs[0]",
        "dataset `s3://bucket` names no dataset after its host or bucket",
        "add the dataset's path, e.g. `postgres://db/schema.table`"
    )
);
case!(
    output_dataset_without_host,
    "name: p\ntasks:\n  a:\n    run: x\n    outputs: [rows, 's3:///x']\n",
    (
        5,
        21,
        "tasks.a.outputs[1]",
        "dataset `s3:///x` names no host or bucket",
        "write `scheme://host/name` (`postgres://db/schema.table`, `s3://bucket/path`, `file:///data/x.csv`) or `{ namespace: ..., name: ... }`"
    )
);
case!(
    dataset_listed_twice,
    "name: p\ntasks:\n  a:\n    run: x\n    inputs:\n      - postgres://db/t\n      - { namespace: postgres://db, name: t }\n",
    (
        7,
        9,
        "tasks.a.inputs",
        "dataset `postgres://db/t` is listed twice",
        "first listed at line 6"
    )
);
#[test]
fn dataset_mapping_with_a_misspelt_key() {
    let p = problems(
        "name: p\ntasks:\n  a:\n    run: x\n    inputs:\n      - { namespace: n, nam: t }\n",
    );
    let p: Vec<_> = p.into_iter().map(|p| (p.0, p.1, p.2, p.3, p.4)).collect();
    assert_eq!(
        p,
        [
            (
                6,
                9,
                "tasks.a.inputs[0]".to_string(),
                "missing required key `name` in a dataset".to_string(),
                None
            ),
            (
                6,
                25,
                "tasks.a.inputs[0].nam".to_string(),
                "unknown key `nam` in a dataset".to_string(),
                Some("did you mean `name`?".to_string())
            ),
        ]
    );
}
case!(
    dataset_of_wrong_kind,
    "name: p\ntasks:\n  a:\n    run: x\n    inputs: [3]\n",
    (
        5,
        14,
        "tasks.a.inputs[0]",
        "expected a dataset URI or a mapping, found an integer",
        "write `postgres://db/schema.table` or `{ namespace: s3://bucket, name: path }`"
    )
);
case!(
    zero_deadline,
    "name: p\ndeadline: 0s\ntasks:\n  a:\n    run: x\n",
    (
        2,
        11,
        "deadline",
        "`deadline` must be greater than zero",
        "remove `deadline` for no time limit"
    )
);
case!(
    bad_task_deadline,
    "name: p\ntasks:\n  a:\n    run: x\n    deadline: soon\n",
    (
        5,
        15,
        "tasks.a.deadline",
        "invalid duration `soon`",
        "write a number followed by a unit (`ms`, `s`, `m`, `h`, `d`), e.g. `90s` or `1h30m`"
    )
);
case!(
    unknown_notify_event,
    "name: p\nnotify:\n  - on: [failure, sucess]\n    webhook: https://h.example/x\ntasks:\n  a:\n    run: x\n",
    (
        3,
        19,
        "notify[0].on[1]",
        "unknown notification event `sucess`",
        "did you mean `success`?"
    )
);
case!(
    notify_event_twice,
    "name: p\nnotify:\n  - on: [failure, failure]\n    webhook: https://h.example/x\ntasks:\n  a:\n    run: x\n",
    (
        3,
        19,
        "notify[0].on",
        "event `failure` is listed twice",
        None
    )
);
case!(
    notify_bad_url,
    "name: p\nnotify:\n  - on: failure\n    webhook: hooks.example.com/x\ntasks:\n  a:\n    run: x\n",
    (
        4,
        14,
        "notify[0].webhook",
        "webhook `hooks.example.com/x` must start with `http://` or `https://`",
        "write an absolute URL such as `https://hooks.example.com/baton`, or name an environment variable with `webhook_env`"
    )
);
case!(
    notify_without_target,
    "name: p\nnotify:\n  - on: failure\ntasks:\n  a:\n    run: x\n",
    (
        3,
        5,
        "notify[0]",
        "a notification needs `webhook` or `webhook_env`",
        "write `webhook: https://hooks.example.com/baton`"
    )
);
case!(
    notify_with_both_targets,
    "name: p\nnotify:\n  - on: failure\n    webhook: https://h.example/x\n    webhook_env: URL\ntasks:\n  a:\n    run: x\n",
    (
        4,
        14,
        "notify[0]",
        "a notification has either `webhook` or `webhook_env`, not both",
        None
    )
);
case!(
    notify_bad_env_name,
    "name: p\nnotify:\n  - on: failure\n    webhook_env: slack-url\ntasks:\n  a:\n    run: x\n",
    (
        4,
        18,
        "notify[0].webhook_env",
        "`slack-url` is not an environment variable name",
        "use letters, digits and `_`, e.g. `SLACK_WEBHOOK_URL`"
    )
);
case!(
    notify_duplicate_entry,
    "name: p\nnotify:\n  - on: failure\n    webhook: https://h.example/x\n  - on: success\n    webhook: https://h.example/x\ntasks:\n  a:\n    run: x\n",
    (
        5,
        5,
        "notify[1]",
        "this webhook is already notified with the same format",
        "merge the `on` lists into the entry at line 3"
    )
);
case!(
    notify_unknown_format,
    "name: p\nnotify:\n  - on: failure\n    webhook: https://h.example/x\n    format: teams\ntasks:\n  a:\n    run: x\n",
    (
        5,
        13,
        "notify[0].format",
        "unknown notification format `teams`",
        "expected one of `json`, `slack`"
    )
);
case!(
    notify_empty_on,
    "name: p\nnotify:\n  - on: []\n    webhook: https://h.example/x\ntasks:\n  a:\n    run: x\n",
    (
        3,
        5,
        "notify[0]",
        "`on` lists no events",
        "write e.g. `on: [failure, deadline]`"
    )
);
