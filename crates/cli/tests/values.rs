//! Values never run as code, through the real binary: the attack of issue 12 on the README's
//! hello pipeline, a trigger through the API and a webhook payload field, and `validate`'s
//! warnings about scripts that defeat the quoting.

mod support;

use support::{Test, http, repo, wait_until};

const ATTACK: &str = "$(id -un)\"; echo INJECTED; echo \"";

#[test]
fn the_hello_attack_is_printed_not_run() {
    let t = Test::new();
    let file = repo().join("examples/hello.yaml");
    let param = format!("who={ATTACK}");
    let out = t.run(&["run", file.to_str().expect("utf-8"), "-p", &param]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let logs = t.run(&["logs", &t.last_run(), "greet"]);
    assert_eq!(logs.stdout, format!("Hello, {ATTACK}!\n"));
    let logs = t.run(&["logs", &t.last_run(), "shout"]);
    assert_eq!(logs.stdout, format!("HELLO, {}!\n", ATTACK.to_uppercase()));
}

#[test]
fn api_triggers_and_webhook_payloads_arrive_as_data() {
    let script = "name: p\nparams:\n  ref: { type: string }\ntriggers:\n  - webhook:\n      params:\n        ref: \"{{ payload.ref }}\"\ntasks:\n  a:\n    run: |\n      printf '%s' \"{{ params.ref }}\" > \"$BATON_RUN_ID.quoted\"\n      printf '%s' {{ params.ref }} > \"$BATON_RUN_ID.bare\"\n      printf '%s' \"$BATON_PARAM_REF\" > \"$BATON_RUN_ID.env\"\n";
    let t = Test::new().file("pipelines/p.yaml", script);
    let server = t.server();
    let hostile = "refs/heads/$(touch canary)`touch canary`'; touch canary #\"";
    let body = serde_json::json!({ "params": { "ref": hostile } }).to_string();
    let (status, run) = http(
        &server.addr,
        "POST",
        "/api/v1/pipelines/default/p/runs",
        &body,
    );
    assert_eq!(status, 201, "{run}");
    let body = serde_json::json!({ "ref": hostile }).to_string();
    let (status, hook) = http(
        &server.addr,
        "POST",
        "/api/v1/pipelines/default/p/webhook",
        &body,
    );
    assert!(status == 201 || status == 202, "{status} {hook}");
    for doc in [run, hook] {
        let id = doc["id"].as_str().expect("run id").to_owned();
        wait_until("run finished", || {
            let (_, doc) = http(&server.addr, "GET", &format!("/api/v1/runs/{id}"), "");
            doc["state"] == "succeeded" || doc["state"] == "failed"
        });
        for how in ["quoted", "bare", "env"] {
            assert_eq!(t.read(&format!("pipelines/{id}.{how}")), hostile, "{how}");
        }
    }
    assert!(!t.path().join("pipelines/canary").exists(), "a value ran");
}

#[test]
fn validate_warns_about_scripts_that_defeat_quoting_but_passes() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\nparams:\n  cmd: { type: string, default: ls }\ntasks:\n  a:\n    run: |\n      echo start\n      {{ params.cmd | raw }}\n      eval \"{{ params.cmd }}\"\n",
    );
    let out = t.run(&["validate", "p.yaml"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains("p.yaml:8:7: warning: `{{params.cmd | raw}}` puts its value into the script as code (line 2 of the script)"),
        "{text}"
    );
    assert!(text.contains("is read again as code by `eval`"), "{text}");
}
