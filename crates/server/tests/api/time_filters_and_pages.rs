use super::*;

#[tokio::test]
async fn runs_between_two_instants() {
    let s = Server::new(&[("a.yaml", HELLO)]).await;
    let (_, run) = s
        .call(
            "POST",
            "/api/v1/pipelines/default/hello/runs",
            Some(json!({})),
        )
        .await;
    let id = run["id"].as_str().expect("id").to_owned();
    let created = run["created_at"].as_i64().expect("created_at");
    let at = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .expect("instant")
            .to_string()
    };
    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let query = |since: i64, until: i64| {
        format!(
            "/api/v1/runs?since={}&until={}",
            at(since).replace('+', "%2B"),
            at(until).replace('+', "%2B")
        )
    };
    let (status, page) = s.call("GET", &query(created, created + 1), None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(ids(&page), vec![id.clone()], "since is inclusive");
    let (_, page) = s.call("GET", &query(created + 1, created + 10), None).await;
    assert!(ids(&page).is_empty());
    let (_, page) = s.call("GET", &query(created - 10, created), None).await;
    assert!(ids(&page).is_empty(), "until is exclusive");
    let (_, page) = s
        .call(
            "GET",
            "/api/v1/runs?since=2026-01-01T00:00:00%2B02:00",
            None,
        )
        .await;
    assert_eq!(ids(&page), vec![id], "offsets are understood");

    let (status, err) = s.call("GET", "/api/v1/runs?since=yesterday", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = err["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("`since` is not an RFC 3339 instant: `yesterday`"),
        "{message}"
    );
    let (status, _) = s.call("GET", "/api/v1/runs?until=2026-13-01", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn versions_page_through() {
    let s = Server::new(&[("a.yaml", HELLO)]).await;
    for n in 1..=3 {
        std::fs::write(
            s.dir.path().join("pipelines/a.yaml"),
            format!("{HELLO}# edit {n}\n"),
        )
        .expect("edit");
        s.call("POST", "/api/v1/reload", None).await;
    }
    let url = "/api/v1/pipelines/default/hello/versions";
    let (_, all) = s.call("GET", url, None).await;
    let hashes: Vec<String> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|v| v["hash"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(hashes.len(), 4);
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let uri = match &cursor {
            Some(c) => format!("{url}?limit=3&cursor={c}"),
            None => format!("{url}?limit=3"),
        };
        let (status, page) = s.call("GET", &uri, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        paged.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|v| v["hash"].as_str().unwrap_or_default().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(paged, hashes);
    let (status, err) = s.call("GET", &format!("{url}?cursor=nope"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("invalid cursor `nope`"),
        "{err}"
    );
    let unknown = "0".repeat(64);
    let (status, err) = s
        .call("GET", &format!("{url}?cursor={unknown}"), None)
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a hash of no version of it: {err}"
    );
}

#[tokio::test]
async fn pipelines_page_one_at_a_time() {
    let s = Server::new(&[("a.yaml", HELLO), ("b.yaml", GATED), ("c.yaml", BROKEN)]).await;
    let mut seen = Vec::new();
    let mut uri = "/api/v1/pipelines?limit=1".to_owned();
    loop {
        let (_, page) = s.call("GET", &uri, None).await;
        let items = page["items"].as_array().expect("items");
        assert_eq!(items.len(), 1, "{page}");
        seen.push(items[0]["path"].as_str().unwrap_or_default().to_owned());
        match page["next_cursor"].as_str() {
            Some(c) => uri = format!("/api/v1/pipelines?limit=1&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, vec!["a.yaml", "b.yaml", "c.yaml"]);
}
