use super::*;

const HOOKED: &str = "name: deploy\nparams:\n  branch: { type: string }\n  count: { type: integer, default: 1 }\ntriggers:\n  - webhook:\n      secret_env: BATON_TEST_WEBHOOK_SECRET\n      params:\n        branch: \"{{ payload.ref | replace('refs/heads/', '') }}\"\n        count: \"{{ payload.commits | length }}\"\ntasks:\n  a:\n    run: echo {{ params.branch }}\n";
const OPEN: &str = "name: open\ntriggers:\n  - webhook: {}\ntasks:\n  a:\n    run: \"true\"\n";

fn sign(body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").expect("key");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn post(s: &Server, uri: &str, body: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    // The exact bytes matter here (they are signed), so not `support::request`.
    let mut req = Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = baton_server::router(s.state.clone())
        .oneshot(req.body(Body::from(body.to_owned())).expect("request"))
        .await
        .expect("response");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn signed_deliveries_start_runs_with_params_from_the_payload() {
    let s = Server::new(&[("d.yaml", HOOKED), ("o.yaml", OPEN)]).await;
    let uri = "/api/v1/pipelines/default/deploy/webhook";
    let body = r#"{"ref": "refs/heads/main", "commits": [1, 2, 3]}"#;
    let (status, err) = post(&s, uri, body, &[("x-baton-signature-256", &sign(body))]).await;
    assert_eq!(status, StatusCode::CREATED, "{err}");
    assert_eq!(err["params"], json!({"branch": "main", "count": 3}));
    assert_eq!(err["trigger"], "webhook");
    let (status, bad) = post(&s, uri, body, &[("x-baton-signature-256", "sha256=00")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(bad["error"]["code"], "invalid_signature");
    let (status, _) = post(&s, uri, body, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A payload that does not give a param's value is a 422 naming it.
    let thin = r#"{"commits": []}"#;
    let (status, err) = post(&s, uri, thin, &[("x-hub-signature-256", &sign(thin))]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(
        err["error"]["details"]["problems"][0]
            .as_str()
            .unwrap_or_default()
            .starts_with("param `branch`"),
        "{err}"
    );
}

#[tokio::test]
async fn a_signed_webhook_without_its_secret_on_the_server_is_refused() {
    let s = Server::new(&[(
        "d.yaml",
        &HOOKED.replace("BATON_TEST_WEBHOOK_SECRET", "UNSET_SECRET"),
    )])
    .await;
    let (status, err) = post(&s, "/api/v1/pipelines/default/deploy/webhook", "{}", &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{err}");
    assert_eq!(err["error"]["code"], "webhook_not_configured");
}

#[tokio::test]
async fn redeliveries_do_not_start_a_second_run() {
    let s = Server::new(&[("o.yaml", OPEN), ("h.yaml", HELLO)]).await;
    let uri = "/api/v1/pipelines/default/open/webhook";
    let (status, first) = post(&s, uri, "{}", &[("x-github-delivery", "d-1")]).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = post(&s, uri, "{}", &[("x-github-delivery", "d-1")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["id"], again["id"]);
    let (status, err) = post(&s, uri, "not json", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    let (status, err) = post(&s, "/api/v1/pipelines/default/hello/webhook", "{}", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        err["error"]["message"],
        "pipeline `default/hello` has no webhook trigger"
    );
}
