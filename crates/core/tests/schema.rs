//! The committed JSON Schema matches the code, and accepts every example.

use std::path::{Path, PathBuf};

use baton_core::schema::pipeline_schema_text;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("examples"))
        .expect("examples/ exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn committed_schema_is_up_to_date() {
    let path = repo().join("schema/pipeline.schema.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if std::env::var_os("BATON_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, pipeline_schema_text()).expect("write schema");
        return;
    }
    assert!(
        committed == pipeline_schema_text(),
        "schema/pipeline.schema.json is stale; regenerate it with \
         `BATON_UPDATE_SCHEMA=1 cargo test -p baton-core --test schema`"
    );
}

#[test]
fn examples_are_valid() {
    let files = examples();
    assert!(files.len() >= 5, "expected at least five examples");
    for f in files {
        let src = std::fs::read_to_string(&f).expect("readable");
        let loaded = baton_core::load(&src);
        assert!(
            loaded.diagnostics.is_empty(),
            "{}: {:#?}",
            f.display(),
            loaded.diagnostics
        );
    }
}

fn yaml_to_json(src: &str) -> serde_json::Value {
    baton_core::yaml::parse(src, &mut Vec::new())
        .expect("valid yaml")
        .to_json()
}

#[test]
fn schema_accepts_examples_and_rejects_structural_errors() {
    let schema = baton_core::schema::pipeline_schema();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    for f in examples() {
        let doc = yaml_to_json(&std::fs::read_to_string(&f).expect("readable"));
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", f.display());
    }
    // What the decoder rejects structurally, the schema rejects too.
    for bad in [
        "name: p\ntasks:\n  a:\n    neds: [b]\n    run: x\n",
        "name: p\ntasks:\n  a:\n    run: x\n    timeout: 5x\n",
        "name: p\ntasks:\n  a:\n    run: x\n    trigger_rule: sometimes\n",
        "name: Bad\ntasks:\n  a:\n    run: x\n",
        "name: p\ntasks:\n  A:\n    run: x\n",
        "name: p\ntasks:\n  a:\n    run: x\n    retries: { limit: 1, jitter: some }\n",
        "name: p\nparams:\n  n: { type: int }\ntasks:\n  a:\n    run: x\n",
        "tasks:\n  a:\n    run: x\n",
        "name: p\ntasks: {}\n",
        "name: p\ntriggers:\n  - cron: x\ntasks:\n  a:\n    run: x\n",
    ] {
        assert!(
            !baton_core::load(bad).diagnostics.is_empty(),
            "decoder accepts {bad:?}"
        );
        assert!(
            !validator.is_valid(&yaml_to_json(bad)),
            "schema accepts {bad:?}"
        );
    }
}
