//! Artifacts from the command line: `baton run` keeps a task's files in S3-compatible storage
//! (moto's server, started by the test) and places them in a downstream task's directory;
//! `baton show` lists each attempt's digests; OpenLineage reports them as outputs; an
//! unreachable store and a bad `[artifacts]` setting say what and where.

mod support;

use support::Test;
use support::moto::Moto;

const PIPELINE: &str = r#"name: shipped
tasks:
  build:
    working_dir: build-host
    artifacts: { upload: ["dist/*.tar.gz", bin] }
    run: |
      mkdir -p dist bin
      echo "release 1" > dist/app.tar.gz
      printf '#!/bin/sh\necho tool says hi\n' > bin/tool && chmod +x bin/tool
  test:
    needs: [build]
    working_dir: test-host
    artifacts: { download: [build] }
    run: test "$(cat dist/app.tar.gz)" = "release 1" && ./bin/tool
"#;

fn project(toml: &str) -> Test {
    Test::new()
        .file("shipped.yaml", PIPELINE)
        .file("build-host/.keep", "")
        .file("test-host/.keep", "")
        .file("s3.secret", "test-secret\n")
        .file("baton.toml", toml)
}

fn s3_toml(endpoint: &str) -> String {
    format!(
        "[artifacts]\nurl = \"s3://builds/ci\"\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\n\
         access_key_id = \"test\"\nsecret_access_key_file = \"s3.secret\"\nallow_http = true\n"
    )
}

#[test]
fn files_go_through_s3_to_the_task_downstream_and_show_their_digests() {
    let Some(moto) = Moto::start("artifacts through S3", "builds") else {
        return;
    };
    let t = project(&s3_toml(&moto.endpoint));
    let lineage = t.path().join("lineage.jsonl");
    let out = t
        .command(&["run", "shipped.yaml"])
        .env("BATON_LINEAGE_FILE", &lineage)
        .output()
        .expect("run baton");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let run = t.last_run();
    let keys = moto.keys("builds");
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|k| k.starts_with("ci/sha256/")), "{keys:?}");

    let doc = t.show(&run);
    let build = doc["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["key"] == "build")
        .expect("build");
    let files = build["attempt_records"][0]["artifacts"]
        .as_array()
        .expect("artifacts")
        .clone();
    let paths: Vec<&str> = files.iter().filter_map(|f| f["path"].as_str()).collect();
    assert_eq!(paths, ["bin/tool", "dist/app.tar.gz"]);
    assert_eq!(files[0]["executable"], true);
    let digest = files[1]["digest"].as_str().expect("digest").to_owned();
    let hex = digest.strip_prefix("sha256:").expect("sha256");
    assert!(
        keys.contains(&format!("ci/sha256/{}/{hex}", &hex[..2])),
        "{keys:?}"
    );

    let text = t.run(&["show", &run]);
    assert!(
        text.stdout
            .contains("build attempt 1 uploaded 2 artifacts:")
            && text
                .stdout
                .contains(&format!("dist/app.tar.gz  10 B  {digest}")),
        "{}",
        text.stdout
    );

    let events = std::fs::read_to_string(&lineage).expect("lineage file");
    let complete = events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["eventType"] == "COMPLETE" && e["job"]["name"] == "shipped.build")
        .expect("the build's COMPLETE event");
    let outputs = complete["outputs"].as_array().expect("outputs");
    assert!(
        outputs.iter().any(|o| o["namespace"] == "s3://builds"
            && o["name"] == format!("ci/sha256/{}/{hex}", &hex[..2])
            && o["facets"]["batonArtifact"]["path"] == "dist/app.tar.gz"),
        "{outputs:?}"
    );
}

#[test]
fn an_unreachable_store_fails_the_uploader_with_what_and_where() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let t = project(&s3_toml(&format!("http://127.0.0.1:{port}")));
    let out = t.run(&["run", "shipped.yaml"]);
    assert_ne!(out.code, 0);
    let run = t.last_run();
    let doc = t.show(&run);
    let build = doc["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["key"] == "build")
        .expect("build")
        .clone();
    let error = build["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("artifact `bin/tool` in the artifact store `s3://builds/ci`"),
        "{error}"
    );
    assert_eq!(build["state"], "failed");
}

#[test]
fn a_bad_artifacts_setting_is_refused_by_name() {
    let t = project("[artifacts]\ndir = \"a\"\nurl = \"s3://b\"\n");
    let out = t.run(&["run", "shipped.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("[artifacts] sets both `dir` and `url`"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_default_store_is_a_directory_under_the_home() {
    let t = project("");
    let out = t.run(&["run", "shipped.yaml"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let home = t.path().join(".baton");
    let objects: Vec<_> = walk(&home.join("artifacts/sha256"));
    assert_eq!(objects.len(), 2, "{objects:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
