//! `artifacts:`: patterns, downloads from upstream uploaders, and the tasks that have no
//! working directory to move files into.

use baton_core::load;

use crate::validation::problems;

#[test]
fn artifacts_compile_with_one_name_as_a_list_of_one() {
    let src = "\
name: p
tasks:
  build:
    artifacts: { upload: [\"dist/*.tar.gz\", bin, \"dist/*.tar.gz\"] }
    run: make
  test:
    needs: [build]
    artifacts: { download: build }
    run: make test
";
    let loaded = load(src);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let p = loaded.pipeline.expect("valid");
    assert_eq!(p.tasks[0].artifacts.upload, ["dist/*.tar.gz", "bin"]);
    assert_eq!(p.tasks[1].artifacts.download[0].as_str(), "build");
    assert!(p.tasks[1].artifacts.upload.is_empty());
}

#[test]
fn every_problem_of_artifacts_is_reported_where_it_is() {
    let src = "\
name: p
tasks:
  a:
    artifacts: { upload: [/etc/passwd, \"../up\", \"x/[y\"] }
    run: echo hi
  b:
    artifacts: { download: [a, c, nobody, b] }
    run: echo hi
  c:
    artifacts: { upload: [out] }
    http: { url: \"https://example.com\" }
  d:
    needs: [a]
    cache: { key: k }
    artifacts: { upload: [out], download: [e] }
    run: echo hi
  e:
    needs: [d]
    artifacts: { sizes: 1 }
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
                "tasks.a.artifacts.upload[0]",
                "artifact pattern `/etc/passwd` is absolute: patterns are relative to the task's working directory"
            ),
            (
                4,
                "tasks.a.artifacts.upload[1]",
                "artifact pattern `../up` leaves the working directory (`..`)"
            ),
            (
                4,
                "tasks.a.artifacts.upload[2]",
                "artifact pattern `x/[y` is not a glob: unclosed character class; missing ']'"
            ),
            (
                7,
                "tasks.b.artifacts.download[0]",
                "task `a` is not upstream of `b`"
            ),
            (
                7,
                "tasks.b.artifacts.download[1]",
                "task `c` is not upstream of `b`"
            ),
            (7, "tasks.b.artifacts.download[2]", "unknown task `nobody`"),
            (
                7,
                "tasks.b.artifacts.download[3]",
                "task `b` is not upstream of `b`"
            ),
            (
                10,
                "tasks.c.artifacts",
                "`artifacts` needs a command or a container: an `http` step has no working directory"
            ),
            (
                15,
                "tasks.d.artifacts",
                "`artifacts.upload` cannot be combined with `cache`: a cached result keeps outputs, not files"
            ),
            (
                15,
                "tasks.d.artifacts.download[0]",
                "task `e` is not upstream of `d`"
            ),
            (
                19,
                "tasks.e.artifacts.sizes",
                "unknown key `sizes` in `artifacts`"
            ),
        ]
    );
}

#[test]
fn a_download_from_a_task_that_uploads_nothing_is_told() {
    let src = "\
name: p
tasks:
  a: { run: echo hi }
  b:
    needs: [a]
    artifacts: { download: [a] }
    run: echo hi
";
    let got = problems(src);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].2, "tasks.b.artifacts.download[0]");
    assert_eq!(got[0].3, "task `a` uploads no artifacts");
}
