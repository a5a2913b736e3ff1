use super::*;

// `a` and `c` fail until their files exist; `b` waits for `a`.
const FLAKY: &str = "name: f\ntasks:\n  a:\n    retries: { limit: 1, delay: 0s }\n    run: test -f ../fixed-a\n  b:\n    needs: [a]\n    run: \"true\"\n  c:\n    run: test -f ../fixed-c\n";

async fn failed_run(s: &Server) -> String {
    let (_, run) = s
        .call("POST", "/api/v1/pipelines/default/f/runs", Some(json!({})))
        .await;
    let id = run["id"].as_str().expect("id").to_owned();
    s.wait_for(&id, |d| d["state"] == "failed").await;
    id
}

async fn letters(s: &Server) -> Vec<(String, String)> {
    let (status, page) = s.call("GET", "/api/v1/dead-letters", None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let mut items: Vec<(String, String)> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|d| {
            (
                d["run"].as_str().unwrap_or_default().to_owned(),
                d["key"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    items.sort();
    items
}

fn pair(run: &str, key: &str) -> (String, String) {
    (run.to_owned(), key.to_owned())
}

#[tokio::test]
async fn listed_with_their_last_error_and_paged() {
    let s = Server::new(&[("f.yaml", FLAKY), ("a.yaml", HELLO)]).await;
    let r1 = failed_run(&s).await;
    let r2 = failed_run(&s).await;
    let mut expected = vec![
        pair(&r1, "a"),
        pair(&r1, "c"),
        pair(&r2, "a"),
        pair(&r2, "c"),
    ];
    expected.sort();
    assert_eq!(
        letters(&s).await,
        expected,
        "`b` is upstream-failed, not a dead letter"
    );

    let (_, page) = s
        .call("GET", "/api/v1/dead-letters?pipeline=f&limit=3", None)
        .await;
    let first = page["items"].as_array().expect("items").clone();
    assert_eq!(first.len(), 3);
    let a = first
        .iter()
        .find(|d| d["key"] == "a")
        .expect("an `a` on the first page");
    assert_eq!(a["attempts"], 2, "its retry was used up: {a}");
    assert_eq!(a["exit_code"], 1);
    assert_eq!(a["error"], "exited with code 1 (attempt 2)");
    assert_eq!(a["pipeline"], "f");
    assert_eq!(a["run_state"], "failed");
    assert!(
        a.get("log_path").is_none(),
        "no server paths on the wire: {a}"
    );
    let finished: Vec<i64> = first
        .iter()
        .map(|d| d["finished_at"].as_i64().expect("finished_at"))
        .collect();
    assert!(finished.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let cursor = page["next_cursor"].as_str().expect("a second page");
    let (_, rest) = s
        .call(
            "GET",
            &format!("/api/v1/dead-letters?pipeline=f&limit=3&cursor={cursor}"),
            None,
        )
        .await;
    let mut seen: Vec<(String, String)> = first
        .iter()
        .chain(rest["items"].as_array().expect("items"))
        .map(|d| {
            (
                d["run"].as_str().unwrap_or_default().to_owned(),
                d["key"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(seen, expected, "the pages hold every dead letter once");
    assert!(rest.get("next_cursor").is_none());

    let (_, other) = s
        .call("GET", "/api/v1/dead-letters?pipeline=default/hello", None)
        .await;
    assert_eq!(other["items"], json!([]));
    let (status, err) = s
        .call("GET", "/api/v1/dead-letters?cursor=nonsense", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("invalid cursor `nonsense`"),
        "{err}"
    );
}

#[tokio::test]
async fn requeued_one_by_one_and_in_bulk() {
    let s = Server::new(&[("f.yaml", FLAKY)]).await;
    let r1 = failed_run(&s).await;
    let r2 = failed_run(&s).await;

    let requeue = |run: &str, key: &str| format!("/api/v1/runs/{run}/tasks/{key}/requeue");
    let (status, err) = s.call("POST", &requeue(&r1, "b"), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        err["error"]["message"],
        format!("task `b` of run {r1} is not a dead letter: it is upstream_failed")
    );
    let (status, err) = s.call("POST", &requeue(&r1, "nope"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        err["error"]["message"],
        format!("run `{r1}` has no task `nope`")
    );

    // One: `a` runs again with a fresh retry budget, and `b` after it; `c` stays failed.
    std::fs::write(s.dir.path().join("fixed-a"), "").expect("fix a");
    let (status, body) = s.call("POST", &requeue(&r1, "a"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["reopened"], json!(["a", "b"]));
    let done = s
        .wait_for(&r1, |d| {
            d["state"] == "failed" && d["tasks"][1]["state"] == "succeeded"
        })
        .await;
    assert_eq!(done["tasks"][0]["state"], "succeeded");
    assert_eq!(done["tasks"][0]["attempts"], 3);
    assert_eq!(done["tasks"][2]["state"], "failed");
    let mut expected = vec![pair(&r1, "c"), pair(&r2, "a"), pair(&r2, "c")];
    expected.sort();
    assert_eq!(letters(&s).await, expected);

    // Listed items: each gets its own outcome; one that cannot be requeued does not stop
    // the others of its run.
    let (status, body) = s
        .call(
            "POST",
            "/api/v1/dead-letters/requeue",
            Some(json!({"items": [
                {"run": r2, "task": "a"},
                {"run": r2, "task": "b"},
                {"run": "zzzz", "task": "a"},
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["requeued"].clone(), body["failed"].clone()),
        (json!(1), json!(2))
    );
    let results = body["results"].as_array().expect("results");
    let outcome = |run: &str, task: &str| {
        results
            .iter()
            .find(|r| r["run"] == run && r["task"] == task)
            .unwrap_or_else(|| panic!("no result for {run} {task}: {body}"))
            .clone()
    };
    assert_eq!(outcome(&r2, "a")["status"], "requeued");
    assert_eq!(outcome(&r2, "a")["reopened"], json!(["a", "b"]));
    assert_eq!(outcome(&r2, "b")["error"]["code"], "conflict");
    assert_eq!(outcome("zzzz", "a")["error"]["code"], "not_found");
    s.wait_for(&r2, |d| {
        d["state"] == "failed" && d["tasks"][1]["state"] == "succeeded"
    })
    .await;

    // Everything of a pipeline at once.
    std::fs::write(s.dir.path().join("fixed-c"), "").expect("fix c");
    let (status, body) = s
        .call(
            "POST",
            "/api/v1/dead-letters/requeue",
            Some(json!({"pipeline": "default/f"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["requeued"], 2, "{body}");
    for run in [&r1, &r2] {
        s.wait_for(run, |d| d["state"] == "succeeded").await;
    }
    assert_eq!(letters(&s).await, vec![]);
    let (status, err) = s.call("POST", &requeue(&r1, "c"), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        err["error"]["message"],
        format!("task `c` of run {r1} is not a dead letter: the run is succeeded")
    );
    let (status, _) = s
        .call(
            "POST",
            "/api/v1/dead-letters/requeue",
            Some(json!({"pipeline": "f", "items": []})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
