//! A run's tasks a page at a time: `GET /runs/{id}` brings the first 500 with their counts,
//! `GET /runs/{id}/tasks` the rest, and the pages put together are the whole run.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::Server;

/// One more instance than the first page holds, and the fan-out's own record besides.
const ITEMS: usize = 501;

fn fanout() -> String {
    let items: Vec<String> = (0..ITEMS).map(|i| i.to_string()).collect();
    format!(
        "name: wide\ntasks:\n  work:\n    for_each: [{}]\n    run: \"true\"\n",
        items.join(", ")
    )
}

fn keys(tasks: &[Value]) -> Vec<String> {
    tasks
        .iter()
        .map(|t| t["key"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_run_comes_with_its_first_page_and_the_rest_pages_through() {
    let s = Server::new(&[("wide.yaml", &fanout())]).await;
    let (_, run) = s
        .call(
            "POST",
            "/api/v1/pipelines/default/wide/runs",
            Some(json!({})),
        )
        .await;
    let id = run["id"].as_str().expect("id").to_owned();
    let doc = s
        .wait_for(&id, |d| d["state"] == "succeeded" || d["state"] == "failed")
        .await;
    assert_eq!(doc["state"], "succeeded", "{doc}");
    assert_eq!(doc["task_counts"], json!({"succeeded": ITEMS + 1}));
    let first = doc["tasks"].as_array().expect("tasks");
    assert_eq!(first.len(), 500);
    assert_eq!(
        doc["attempts"].as_array().expect("attempts").len(),
        499,
        "the group has none"
    );
    let cursor = doc["tasks_next_cursor"].as_str().expect("a next cursor");

    let mut paged = keys(first);
    let mut cursor = Some(cursor.to_owned());
    while let Some(c) = cursor.take() {
        let (status, page) = s
            .call(
                "GET",
                &format!("/api/v1/runs/{id}/tasks?limit=7&cursor={c}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 7);
        for item in items {
            paged.push(item["task"]["key"].as_str().expect("key").to_owned());
            let attempts = item["attempts"].as_array().expect("attempts");
            assert_eq!(attempts.len(), 1, "{item}");
            assert_eq!(attempts[0]["key"], item["task"]["key"]);
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    let (_, all) = s
        .call("GET", &format!("/api/v1/runs/{id}/tasks?limit=500"), None)
        .await;
    assert_eq!(
        all["next_cursor"],
        first[499]["position"].to_string() + "." + first[499]["key"].as_str().unwrap_or_default()
    );
    assert_eq!(paged.len(), ITEMS + 1);
    let mut unique = paged.clone();
    unique.dedup();
    assert_eq!(unique, paged, "no task twice");

    // Filtered by state; a bad state or cursor is a 400.
    let (_, none) = s
        .call(
            "GET",
            &format!("/api/v1/runs/{id}/tasks?state=failed"),
            None,
        )
        .await;
    assert_eq!(none["items"], json!([]), "{none}");
    let (status, err) = s
        .call("GET", &format!("/api/v1/runs/{id}/tasks?state=nope"), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["error"]["message"], "unknown task state `nope`");
    // Found by schemathesis: an empty state is not one of the documented states either.
    let (status, err) = s
        .call("GET", &format!("/api/v1/runs/{id}/tasks?state="), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    let (status, err) = s
        .call("GET", &format!("/api/v1/runs/{id}/tasks?cursor=nope"), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    let (status, _) = s
        .call("GET", "/api/v1/runs/01zzzzzzzzzzzzzzzzzzzzzzzz/tasks", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_small_run_comes_whole_without_a_next_cursor() {
    let s = Server::new(&[("hello.yaml", super::HELLO)]).await;
    let (_, run) = s
        .call(
            "POST",
            "/api/v1/pipelines/default/hello/runs",
            Some(json!({})),
        )
        .await;
    let id = run["id"].as_str().expect("id").to_owned();
    let doc = s.wait_for(&id, |d| d["state"] == "succeeded").await;
    assert_eq!(keys(doc["tasks"].as_array().expect("tasks")), ["greet"]);
    assert_eq!(doc["task_counts"], json!({"succeeded": 1}));
    assert!(doc.get("tasks_next_cursor").is_none(), "{doc}");
}
