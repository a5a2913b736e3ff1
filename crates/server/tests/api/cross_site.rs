use super::*;
use baton_server::guard::AllowedHosts;

const HOST: (&str, &str) = ("host", "127.0.0.1:8080");
const EVIL: (&str, &str) = ("origin", "https://evil.example");
const OWN: (&str, &str) = ("origin", "http://127.0.0.1:8080");
const FAILS: &str = "name: f\ntasks:\n  a:\n    run: \"false\"\n";
const NIGHTLY: &str =
    "name: nightly\nschedule:\n  - cron: \"0 3 * * *\"\ntasks:\n  a:\n    run: \"true\"\n";

async fn server() -> Server {
    let mut s = Server::new(&[("g.yaml", GATED), ("f.yaml", FAILS), ("n.yaml", NIGHTLY)]).await;
    s.state = s.state.clone().with_allowed_hosts(AllowedHosts::for_listen(
        "127.0.0.1:8080".parse().expect("addr"),
        &[],
    ));
    s
}

/// A body-less request, as a form or `fetch(url, {mode: 'no-cors'})` sends it.
async fn send(
    s: &Server,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let a = support::request(&s.state, method, uri, headers, None).await;
    assert!(
        a.headers.get("access-control-allow-origin").is_none(),
        "{method} {uri} sent CORS headers: {:?}",
        a.headers
    );
    (a.status, a.json())
}

async fn started(s: &Server, pipeline: &str, state: &str) -> String {
    let (_, run) = s
        .call(
            "POST",
            &format!("/api/v1/pipelines/{pipeline}/runs"),
            Some(json!({})),
        )
        .await;
    let id = run["id"].as_str().expect("id").to_owned();
    s.wait_for(&id, |d| {
        d["tasks"][0]["state"] == state || d["state"] == state
    })
    .await;
    id
}

fn refused_as_cross_site((status, body): (StatusCode, Value)) {
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "cross_site_request", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("cross-site request refused: ")),
        "{body}"
    );
}

#[tokio::test]
async fn state_changes_from_another_site_are_refused_and_change_nothing() {
    let s = server().await;
    let gated = started(&s, "ops/gated", "waiting_approval").await;
    let failed = started(&s, "default/f", "failed").await;
    let approve = format!("/api/v1/runs/{gated}/tasks/release/approve");
    let attacks: Vec<(String, &[(&str, &str)])> = vec![
        (approve.clone(), &[HOST, EVIL]),
        (approve.clone(), &[HOST, ("origin", "null")]),
        (approve.clone(), &[HOST, ("sec-fetch-site", "cross-site")]),
        (
            approve.clone(),
            &[HOST, ("referer", "https://evil.example/page")],
        ),
        (
            format!("/api/v1/runs/{gated}/tasks/release/reject"),
            &[HOST, EVIL],
        ),
        (format!("/api/v1/runs/{gated}/cancel"), &[HOST, EVIL]),
        (format!("/api/v1/runs/{failed}/retry"), &[HOST, EVIL]),
        ("/api/v1/reload".to_owned(), &[HOST, EVIL]),
        (
            "/api/v1/pipelines/default/nightly/pause".to_owned(),
            &[HOST, EVIL],
        ),
        ("/api/v1/pipelines/ops/gated/runs".to_owned(), &[HOST, EVIL]),
        (
            "/api/v1/pipelines/ops/gated/webhook".to_owned(),
            &[HOST, EVIL],
        ),
    ];
    for (uri, headers) in &attacks {
        refused_as_cross_site(send(&s, "POST", uri, headers).await);
    }
    refused_as_cross_site(send(&s, "DELETE", "/api/v1/pools/gpu", &[HOST, EVIL]).await);
    // The UI's forms too: an HTML page, before any handler.
    let a = support::request(
        &s.state,
        "POST",
        &format!("/runs/{gated}/cancel"),
        &[HOST, EVIL],
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    assert!(a.content_type.is_some_and(|c| c.starts_with("text/html")));

    let (_, doc) = s.call("GET", &format!("/api/v1/runs/{gated}"), None).await;
    assert_eq!(doc["state"], "running", "{doc}");
    assert_eq!(doc["tasks"][0]["state"], "waiting_approval", "{doc}");
    let (_, doc) = s.call("GET", &format!("/api/v1/runs/{failed}"), None).await;
    assert_eq!(doc["state"], "failed", "{doc}");
    assert_eq!(doc["tasks"][0]["attempts"], 1, "{doc}");
    let (_, doc) = s
        .call("GET", "/api/v1/pipelines/default/nightly", None)
        .await;
    assert_eq!(doc["paused"], false, "{doc}");
    let (_, runs) = s.call("GET", "/api/v1/runs", None).await;
    assert_eq!(runs["items"].as_array().map(Vec::len), Some(2), "{runs}");

    // From baton's own pages, and from clients that send no `Origin`, they work.
    let (status, body) = send(&s, "POST", &approve, &[HOST, OWN]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    s.wait_for(&gated, |d| d["state"] == "succeeded").await;
    let (status, body) = send(
        &s,
        "POST",
        "/api/v1/pipelines/default/nightly/pause",
        &[
            ("host", "localhost:8080"),
            ("sec-fetch-site", "same-origin"),
            ("origin", "http://localhost:8080"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = send(&s, "POST", "/api/v1/reload", &[HOST]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = send(&s, "POST", &format!("/api/v1/runs/{failed}/retry"), &[HOST]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let again = started(&s, "ops/gated", "waiting_approval").await;
    let (status, body) = send(&s, "POST", &format!("/api/v1/runs/{again}/cancel"), &[]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

#[tokio::test]
async fn rebinding_reaches_nothing_but_the_probes() {
    let s = server().await;
    let rebound: &[(&str, &str)] = &[("host", "evil.example:8080")];
    for uri in ["/api/v1/runs", "/api/v1/pipelines", "/api/v1/openapi.json"] {
        let (status, body) = send(&s, "GET", uri, rebound).await;
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{uri}: {body}");
        assert_eq!(body["error"]["code"], "host_not_allowed", "{body}");
        assert_eq!(
            body["error"]["message"],
            "host `evil.example:8080` is not allowed\n(hint: add it to `[server] allowed_hosts` in baton.toml, or `--allowed-host`)"
        );
    }
    // Another port of an allowed name is another origin.
    let (status, _) = send(&s, "GET", "/api/v1/runs", &[("host", "localhost:3000")]).await;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
    let a = support::request(&s.state, "GET", "/", rebound, None).await;
    assert_eq!(a.status, StatusCode::MISDIRECTED_REQUEST);
    assert!(a.content_type.is_some_and(|c| c.starts_with("text/html")));
    assert!(a.text.contains("is not allowed"), "{}", a.text);
    // Probes and scrapes address the server by IP.
    for uri in ["/healthz", "/readyz", "/metrics"] {
        let (status, body) = send(&s, "GET", uri, &[("host", "10.1.2.3:8080")]).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    }
    for host in [
        "127.0.0.1:8080",
        "localhost:8080",
        "[::1]:8080",
        "localhost",
    ] {
        let (status, body) = send(&s, "GET", "/api/v1/runs", &[("host", host)]).await;
        assert_eq!(status, StatusCode::OK, "{host}: {body}");
    }
    // A preflight from another site learns nothing that would let it read.
    let a = support::request(
        &s.state,
        "OPTIONS",
        "/api/v1/runs",
        &[HOST, EVIL, ("access-control-request-method", "POST")],
        None,
    )
    .await;
    assert!(
        a.headers
            .keys()
            .all(|k| !k.as_str().starts_with("access-control-")),
        "{:?}",
        a.headers
    );
}
