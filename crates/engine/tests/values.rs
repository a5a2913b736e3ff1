//! Through the real dispatcher and `sh`: a hostile param, upstream output and `for_each` item
//! reach the script as the exact bytes of data, in every quoting context, and nothing they
//! contain runs. The same values reach the script as environment variables too.

mod support;

use std::path::Path;

use baton_core::state::{RunState, TaskState};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn config() -> ProptestConfig {
    let cases = std::env::var("BATON_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse::<u32>().ok())
        .map_or(16, |c| (c / 16).max(4));
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The contexts a value (`V`) is written from to `F.N`; `${x%.}` keeps trailing newlines.
const CONTEXTS: &[&str] = &[
    "printf '%s' V > F.0",
    "printf '%s' \"V\" > F.1",
    "printf '%s' 'V' > F.2",
    "x=$(printf '%s' V; printf .); printf '%s' \"${x%.}\" > F.3",
    "x=\"$(printf '%s' \"V\"; printf .)\"; printf '%s' \"${x%.}\" > F.4",
    "x=`printf '%s' V; printf .`; printf '%s' \"${x%.}\" > F.5",
    "unset u; printf '%s' ${u:-V} > F.6",
    "printf '%s' \"$E\" > F.7",
];

/// One task per way a value arrives: a param, an upstream output, a `for_each` item.
fn pipeline() -> String {
    let script = |value: &str, file: &str, env: &str| {
        CONTEXTS
            .iter()
            .map(|c| {
                format!(
                    "      {}\n",
                    c.replace('V', value).replace('F', file).replace('E', env)
                )
            })
            .collect::<String>()
    };
    format!(
        "name: values\nparams:\n  v: {{ type: string }}\n  items: {{ type: array }}\ntasks:\n  produce:\n    outputs: [v]\n    run: |\n      printf 'v<<BATON_END\\n%s\\nBATON_END\\n' \"$BATON_PARAM_V\" > \"$BATON_OUTPUTS\"\n  param:\n    run: |\n{}  output:\n    needs: [produce]\n    run: |\n{}  item:\n    for_each: params.items\n    run: |\n{}",
        script("{{ params.v }}", "param", "BATON_PARAM_V"),
        script(
            "{{ tasks.produce.outputs.v }}",
            "output",
            "BATON_OUTPUT_PRODUCE_V"
        ),
        script("{{ item }}", "item", "BATON_ITEM"),
    )
}

type Ran = (
    tempfile::TempDir,
    RunState,
    Vec<baton_store::TaskRecord>,
    baton_core::ids::RunId,
);

/// Creates a run of `source` with `params` in a fresh home and drives it to its end.
async fn run_source(source: &str, params: Value) -> Ran {
    let params: Map<String, Value> = serde_json::from_value(params).expect("params");
    let (dir, store, run, opts) = support::created_with(source, params).await;
    let state = support::driving(&store, &run, &opts).await.expect("driven");
    let tasks = store.tasks(&run).await.expect("tasks");
    (dir, state, tasks, run)
}

async fn run_with(value: &str) -> Ran {
    run_source(&pipeline(), json!({ "v": value, "items": [value] })).await
}

fn check_files(dir: &Path, file: &str, want: &str) -> Result<(), TestCaseError> {
    for (n, context) in CONTEXTS.iter().enumerate() {
        let got = std::fs::read(dir.join(format!("{file}.{n}"))).unwrap_or_default();
        prop_assert_eq!(
            String::from_utf8_lossy(&got),
            want,
            "`{}` of {} changed the value",
            context,
            file
        );
    }
    Ok(())
}

async fn check(value: String) -> Result<(), TestCaseError> {
    let (dir, state, tasks, _) = run_with(&value).await;
    prop_assert!(!dir.path().join("canary").exists(), "{value:?} ran as code");
    let errors: Vec<_> = tasks.iter().filter_map(|t| t.error.clone()).collect();
    prop_assert_eq!(state, RunState::Succeeded, "{:?}: {:?}", value, errors);
    check_files(dir.path(), "param", &value)?;
    check_files(dir.path(), "item", &value)?;
    // The output is what the store recorded (the outputs file format drops a `\r` before a
    // newline), and the downstream script got exactly that.
    let produced = tasks
        .iter()
        .find(|t| t.key.as_str() == "produce")
        .and_then(|t| t.outputs.as_ref()?.get("v")?.as_str().map(str::to_owned))
        .unwrap_or_default();
    check_files(dir.path(), "output", &produced)?;
    Ok(())
}

const HOSTILE: &[&str] = &[
    "$(touch canary)",
    "`touch canary`",
    "'; touch canary; '",
    "\"; touch canary; echo \"",
    "$(id -un)\"; echo INJECTED; echo \"",
    "${x}$HOME\\",
    "a\nb; touch canary",
    "{{ params.v }}{% if true %}x{% endif %}",
    "*",
    "~",
    "}) ; touch canary #",
    "",
];

fn hostile() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(HOSTILE).prop_map(str::to_owned),
            1 => "[ -~]{0,3}",
        ],
        1..5,
    )
    .prop_map(|p| p.concat())
    .prop_filter("the outputs file delimiter", |v| !v.contains("BATON_END"))
}

#[test]
fn hostile_values_arrive_as_data() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for v in HOSTILE {
        rt.block_on(check((*v).to_owned())).expect("fragment");
    }
    let result =
        proptest::test_runner::TestRunner::new(config()).run(&hostile(), |v| rt.block_on(check(v)));
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The attack of the issue: the README's hello pipeline, with a param that closes its quotes.
#[tokio::test]
async fn the_hello_attack_prints_the_value() {
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello.yaml"),
    )
    .expect("hello.yaml");
    let (dir, state, tasks, run) = run_source(
        &source,
        json!({ "who": "$(id -un)\"; echo INJECTED; echo \"" }),
    )
    .await;
    assert_eq!(state, RunState::Succeeded);
    let greet = tasks
        .iter()
        .find(|t| t.key.as_str() == "greet")
        .expect("greet");
    assert_eq!(greet.state, TaskState::Succeeded);
    let log = std::fs::read_dir(dir.path().join("logs").join(run.as_str()))
        .expect("logs dir")
        .flatten()
        .map(|f| std::fs::read_to_string(f.path()).unwrap_or_default())
        .collect::<String>();
    assert!(
        log.contains("Hello, $(id -un)\"; echo INJECTED; echo \"!"),
        "the greeting shows the value as written:\n{log}"
    );
    assert!(
        !log.lines().any(|l| l == "INJECTED"),
        "the value ran:\n{log}"
    );
}

/// A NUL cannot reach a process: a param with one is refused when the run is created, and an
/// output with one fails the task that would receive it before it starts, saying why.
#[tokio::test]
async fn a_nul_never_reaches_a_process() {
    let source = pipeline();
    let pipeline = baton_core::load(&source).pipeline.expect("valid");
    let (dir, store, _, _) = support::created_with(
        &source,
        serde_json::from_value(json!({ "v": "", "items": [] })).expect("params"),
    )
    .await;
    let refused = baton_engine::create_run(
        store.as_ref(),
        baton_engine::RunRequest {
            params: serde_json::from_value(json!({ "v": "a\0b", "items": [] })).expect("params"),
            ..baton_engine::RunRequest::new(&pipeline, &source, dir.path().display().to_string())
        },
    )
    .await
    .expect_err("refused");
    assert!(
        refused
            .to_string()
            .contains("param `v`: contains a NUL byte"),
        "{refused}"
    );

    let source = r#"
name: nul
tasks:
  produce:
    outputs: [v]
    run: printf 'v=a\000$(touch canary)\n' >> "$BATON_OUTPUTS"
  use:
    needs: [produce]
    run: echo {{ tasks.produce.outputs.v }}
"#;
    let (dir, state, tasks, _) = run_source(source, json!({})).await;
    assert_eq!(state, RunState::Failed);
    let used = tasks.iter().find(|t| t.key.as_str() == "use").expect("use");
    let error = used.error.clone().unwrap_or_default();
    assert!(error.contains("NUL"), "{error}");
    assert_eq!(used.attempts, 0, "no process started");
    assert!(!dir.path().join("canary").exists());
}

/// `BATON_OUTPUT_<TASK>_<NAME>` holds the outputs of upstream tasks only: a task that merely
/// finished earlier is not one the script may depend on.
#[tokio::test]
async fn upstream_outputs_are_environment_variables() {
    let source = r#"
name: env
tasks:
  other:
    outputs: [y]
    run: echo "y=2" >> "$BATON_OUTPUTS"
  first-step:
    outputs: [x]
    # Gives `other` time to finish first, so that its absence below means something.
    run: sleep 0.3; printf 'x<<E\nline one\nline two\nE\n' >> "$BATON_OUTPUTS"
  second:
    needs: [first-step]
    run: |
      printf '%s' "$BATON_OUTPUT_FIRST_STEP_X" > x.txt
      printf '%s' "${BATON_OUTPUT_OTHER_Y-unset}" > y.txt
"#;
    let (dir, store, run, opts) = support::created(source).await;
    assert_eq!(
        support::drive(&store, &run, &opts).await,
        RunState::Succeeded
    );
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).expect("written");
    assert_eq!(read("x.txt"), "line one\nline two");
    assert_eq!(read("y.txt"), "unset");
}
