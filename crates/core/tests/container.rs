//! `container:` tasks: what they compile to, and every problem reported where it is.

use baton_core::load;

use crate::validation::problems;
use baton_core::model::Action;
use baton_core::spec::{ContainerNetwork, PullPolicy};

#[test]
fn a_container_task_compiles_to_its_image_command_and_executor() {
    let src = "\
name: p
defaults:
  executor: docker-eu
tasks:
  a:
    container: { image: \"python:3.12-slim\", pull: never, user: \"1000:1000\", network: none }
    run: echo hi
    resources: { cpu: 0.5, memory: 64Mi }
  b:
    container: { image: \"registry.example.com/etl:{{ params.v }}\" }
    executor: k8s
params:
  v: { type: string, default: \"1\" }
";
    let loaded = load(src);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let p = loaded.pipeline.expect("valid");
    let Action::Container(a) = &p.tasks[0].action else {
        panic!("not a container task: {:?}", p.tasks[0].action);
    };
    assert_eq!(a.image.0, "python:3.12-slim");
    assert_eq!(a.pull, PullPolicy::Never);
    assert_eq!(a.user.as_deref(), Some("1000:1000"));
    assert_eq!(a.network, ContainerNetwork::Disabled);
    assert_eq!(a.run.as_ref().map(|r| r.0.as_str()), Some("echo hi"));
    assert_eq!(a.shell, ["sh", "-c"]);
    assert_eq!(p.tasks[0].resources.memory_bytes, Some(64 << 20));
    assert_eq!(
        p.tasks[0].executor.as_ref().map(|e| e.as_str()),
        Some("docker-eu")
    );
    let Action::Container(b) = &p.tasks[1].action else {
        panic!("not a container task: {:?}", p.tasks[1].action);
    };
    assert_eq!(b.run, None, "no `run`: the image's own command");
    assert_eq!(b.pull, PullPolicy::Missing);
    assert_eq!(b.network, ContainerNetwork::Bridge);
    assert_eq!(
        p.tasks[1].executor.as_ref().map(|e| e.as_str()),
        Some("k8s")
    );
}

#[test]
fn the_default_container_holds_commands_only() {
    let src = "\
name: p
defaults:
  container: { image: busybox }
tasks:
  cmd: { run: echo hi }
  own: { run: echo hi, container: { image: alpine } }
  call: { http: { url: \"https://example.com\" } }
  gate: { approval: true }
";
    let loaded = load(src);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let p = loaded.pipeline.expect("valid");
    let image = |i: usize| match &p.tasks[i].action {
        Action::Container(c) => Some(c.image.0.clone()),
        _ => None,
    };
    assert_eq!(image(0).as_deref(), Some("busybox"));
    assert_eq!(image(1).as_deref(), Some("alpine"));
    assert_eq!(image(2), None);
    assert_eq!(image(3), None);
    assert!(matches!(p.tasks[3].action, Action::Gate));
}

#[test]
fn every_problem_of_a_container_is_reported_where_it_is() {
    let src = "\
name: p
defaults:
  container: { image: \"Bad Image\" }
  executor: \"no/slash\"
tasks:
  a:
    container: { image: \"Python:3\", pull: sometimes, network: overlay, user: \" \" }
    run: echo hi
  b:
    container: { image: busybox }
    http: { url: \"https://example.com\" }
  c:
    container: { image: busybox }
    pipeline: other
  d:
    container: { tag: x }
  e:
    run: echo hi
    resources: { memory: lots }
    executor: \"\"
";
    let name = |n: &str| {
        baton_core::ids::ExecutorName::new(n)
            .expect_err("invalid")
            .to_string()
    };
    let expected: Vec<(u32, u32, &str, String)> = vec![
        (
            3,
            23,
            "defaults.container.image",
            "`Bad Image` is not an image reference: it contains ' '".into(),
        ),
        (4, 13, "defaults.executor", name("no/slash")),
        (
            7,
            25,
            "tasks.a.container.image",
            "`Python:3` is not an image reference: a repository name is lowercase".into(),
        ),
        (
            7,
            43,
            "tasks.a.container.pull",
            "unknown pull policy `sometimes`".into(),
        ),
        (
            7,
            63,
            "tasks.a.container.network",
            "unknown container network `overlay`".into(),
        ),
        (7, 78, "tasks.a.container.user", "`user` is empty".into()),
        (
            10,
            16,
            "tasks.b.container",
            "a task does one thing: `container` and `http` are set".into(),
        ),
        (
            13,
            16,
            "tasks.c.container",
            "a task does one thing: `container` and `pipeline` are set".into(),
        ),
        (15, 3, "tasks.d", "task `d` has nothing to do".into()),
        (
            16,
            16,
            "tasks.d.container",
            "missing required key `image` in `container`".into(),
        ),
        (
            16,
            18,
            "tasks.d.container.tag",
            "unknown key `tag` in `container`".into(),
        ),
        (
            19,
            26,
            "tasks.e.resources.memory",
            "invalid memory size `lots`".into(),
        ),
        (20, 15, "tasks.e.executor", name("")),
    ];
    let expected: Vec<(u32, u32, String, String)> = expected
        .into_iter()
        .map(|(l, c, f, m)| (l, c, f.to_owned(), m))
        .collect();
    assert_eq!(problems(src), expected);
}

#[test]
fn executor_names_are_checked_against_the_setting_when_one_is_given() {
    let src = "name: p\ndefaults:\n  executor: eu\ntasks:\n  a: { run: echo, executor: gpu }\n  b: { run: echo }\n";
    assert!(
        load(src).diagnostics.is_empty(),
        "without a setting, any name"
    );
    let known = [baton_core::ids::ExecutorName::new("eu").expect("name")];
    let loaded = baton_core::load_in(
        src,
        baton_core::Setting {
            executors: Some(&known),
        },
    );
    let got: Vec<(u32, u32, String, String)> = loaded
        .diagnostics
        .iter()
        .map(|d| {
            (
                d.span.line,
                d.span.column,
                d.field.clone(),
                d.message.clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [(
            5,
            29,
            "tasks.a.executor".to_owned(),
            "no executor `gpu` is configured (configured: `eu`)".to_owned()
        )]
    );
    assert!(loaded.pipeline.is_none());
}
