//! What the OpenAPI document promises about inputs, held to: `limit` bounds, empty and garbage
//! cursors, optional bodies, body shapes, and the status of an ambiguous run-id prefix.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{HELLO, Server};

fn message(err: &Value) -> &str {
    err["error"]["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn limit_is_one_to_five_hundred_everywhere() {
    let s = Server::new(&[("hello.yaml", HELLO)]).await;
    for list in [
        "/api/v1/pipelines",
        "/api/v1/pipelines/default/hello/versions",
        "/api/v1/runs",
        "/api/v1/backfills",
        "/api/v1/dead-letters",
    ] {
        for limit in ["1", "500"] {
            let (status, page) = s.call("GET", &format!("{list}?limit={limit}"), None).await;
            assert_eq!(status, StatusCode::OK, "{list}?limit={limit}: {page}");
        }
        for limit in ["0", "501", "2147483648"] {
            let (status, err) = s.call("GET", &format!("{list}?limit={limit}"), None).await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{list}?limit={limit}: {err}"
            );
            assert_eq!(err["error"]["code"], "bad_request", "{err}");
        }
        let (_, err) = s.call("GET", &format!("{list}?limit=0"), None).await;
        assert_eq!(message(&err), "`limit` must be 1 to 500, got `0`");
        assert_eq!(
            err["error"]["details"],
            json!({"minimum": 1, "maximum": 500})
        );
    }
    let (status, _) = s
        .call("GET", "/api/v1/pipelines/default/hello/schedule?n=0", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_empty_cursor_is_the_first_page_and_a_garbage_one_a_400() {
    let s = Server::new(&[("hello.yaml", HELLO)]).await;
    for list in [
        "/api/v1/pipelines",
        "/api/v1/pipelines/default/hello/versions",
        "/api/v1/runs",
        "/api/v1/backfills",
        "/api/v1/dead-letters",
    ] {
        let (status, first) = s.call("GET", list, None).await;
        assert_eq!(status, StatusCode::OK, "{first}");
        let (status, empty) = s.call("GET", &format!("{list}?cursor="), None).await;
        assert_eq!((status, &empty), (StatusCode::OK, &first), "{list}?cursor=");
        let (status, err) = s.call("GET", &format!("{list}?cursor=nope"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{list}?cursor=nope: {err}");
        assert!(message(&err).starts_with("invalid cursor `nope`"), "{err}");
    }
}

#[tokio::test]
async fn optional_bodies_take_null_and_refuse_what_is_not_an_object() {
    let s = Server::new(&[("hello.yaml", HELLO)]).await;
    let pause = "/api/v1/pipelines/default/hello/pause";
    let (status, paused) = s.call("POST", pause, Some(Value::Null)).await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    for body in [json!([null, null]), json!([]), json!("x"), json!(1)] {
        let (status, err) = s.call("POST", pause, Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
        assert_eq!(err["error"]["code"], "invalid_body", "{err}");
    }
    // `[null, null]` used to read as `{"items": null, "pipeline": null}`: requeue everything.
    let (status, err) = s
        .call(
            "POST",
            "/api/v1/dead-letters/requeue",
            Some(json!([null, null])),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert!(
        message(&err).contains("must be a JSON object, got an array"),
        "{err}"
    );
    let (status, outcome) = s
        .call("POST", "/api/v1/dead-letters/requeue", Some(Value::Null))
        .await;
    assert_eq!(status, StatusCode::OK, "{outcome}");
}

#[tokio::test]
async fn a_required_body_must_be_an_object() {
    let s = Server::new(&[("hello.yaml", HELLO)]).await;
    let (status, err) = s
        .call(
            "POST",
            "/api/v1/pipelines/default/hello/runs",
            Some(json!([{}, null, false])),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"]["code"], "invalid_body", "{err}");
}

#[tokio::test]
async fn an_ambiguous_run_prefix_is_a_409() {
    let s = Server::new(&[("hello.yaml", HELLO)]).await;
    let mut ids = Vec::new();
    // Run ids are ULIDs: two made in the same millennium share their first character.
    for _ in 0..2 {
        let (status, run) = s
            .call(
                "POST",
                "/api/v1/pipelines/default/hello/runs",
                Some(json!({})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{run}");
        ids.push(run["id"].as_str().expect("id").to_owned());
    }
    let prefix = &ids[0][..1];
    assert!(ids[1].starts_with(prefix));
    let (status, err) = s.call("GET", &format!("/api/v1/runs/{prefix}"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert_eq!(err["error"]["code"], "ambiguous_run", "{err}");
    let (status, run) = s
        .call("GET", &format!("/api/v1/runs/{}", ids[0]), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    for internal in [
        "lease_owner",
        "lease_expires_at",
        "base_dir",
        "admission_group",
    ] {
        assert!(
            run.get(internal).is_none(),
            "`{internal}` on the wire: {run}"
        );
    }
}
