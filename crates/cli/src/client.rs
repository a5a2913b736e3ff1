//! An HTTP client of `baton server`'s API: URLs, JSON, and the API's errors turned into the
//! CLI's, with the exit code the same request gets from the local home.

use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, Response, Url};
use serde::de::DeserializeOwned;

use crate::error::{ExitStatus, ExpectedError};

/// `--ca-file`: CAs every client of a server trusts besides the system's; set once at start.
static CA_FILE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Trust the CAs of `path` in every client made from now on.
pub(crate) fn trust_ca_file(path: &std::path::Path) {
    let _ = CA_FILE.set(path.to_path_buf());
}

/// The CA file set with [`trust_ca_file`].
pub(crate) fn ca_file() -> Option<&'static std::path::Path> {
    CA_FILE.get().map(std::path::PathBuf::as_path)
}

#[derive(Debug, Clone)]
pub(crate) struct Client {
    /// As the user wrote it, for messages.
    server: String,
    base: Url,
    http: reqwest::Client,
}

/// A path under `/api/v1`, one segment per element (each percent-encoded as needed).
pub(crate) type Segments<'a> = &'a [&'a str];

impl Client {
    pub(crate) fn new(server: &str) -> Result<Self, ExpectedError> {
        let base = Url::parse(server)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                ExpectedError::Usage(format!(
                    "`{server}` is not a server URL\n(hint: --server http://127.0.0.1:8080)"
                ))
            })?;
        // TLS uses ring; installing it again (a second client) is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("baton/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = ca_file() {
            for cert in baton_engine::executor::read_ca_file(ca).map_err(ExpectedError::Usage)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| ExpectedError::Usage(format!("cannot set up an HTTP client: {e}")))?;
        Ok(Self {
            server: server.to_owned(),
            base,
            http,
        })
    }

    fn url(&self, path: Segments<'_>, query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(["api", "v1"]).extend(path);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// Sends a request; any answer but a 2xx becomes the server's error.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: Segments<'_>,
        query: &[(&str, String)],
        headers: HeaderMap,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, ExpectedError> {
        let url = self.url(path, query);
        let mut req = self.http.request(method, url.clone()).headers(headers);
        if let Some(body) = body {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(api_error(&url, resp).await)
    }

    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        path: Segments<'_>,
        query: &[(&str, String)],
    ) -> Result<T, ExpectedError> {
        let resp = self
            .send(Method::GET, path, query, json_accept(), None)
            .await?;
        read_json(resp).await
    }

    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        path: Segments<'_>,
        body: &serde_json::Value,
    ) -> Result<T, ExpectedError> {
        let resp = self
            .send(Method::POST, path, &[], json_accept(), Some(body))
            .await?;
        read_json(resp).await
    }

    pub(crate) async fn put<T: DeserializeOwned>(
        &self,
        path: Segments<'_>,
        body: &serde_json::Value,
    ) -> Result<T, ExpectedError> {
        let resp = self
            .send(Method::PUT, path, &[], json_accept(), Some(body))
            .await?;
        read_json(resp).await
    }

    pub(crate) async fn delete<T: DeserializeOwned>(
        &self,
        path: Segments<'_>,
    ) -> Result<T, ExpectedError> {
        let resp = self
            .send(Method::DELETE, path, &[], json_accept(), None)
            .await?;
        read_json(resp).await
    }

    /// The connection failed (nothing listening, DNS, TLS): say where, and what to check.
    pub(crate) fn unreachable(&self, e: &reqwest::Error) -> ExpectedError {
        // The innermost cause says what happened (`Connection refused`); reqwest's own
        // message only repeats the URL.
        let mut cause: &dyn std::error::Error = e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        ExpectedError::Unreachable {
            url: self.server.clone(),
            detail: cause.to_string(),
        }
    }
}

fn json_accept() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(ACCEPT, HeaderValue::from_static("application/json"));
    h
}

async fn read_json<T: DeserializeOwned>(resp: Response) -> Result<T, ExpectedError> {
    let url = resp.url().clone();
    let bytes = resp.bytes().await.map_err(|e| bad_answer(&url, &e))?;
    serde_json::from_slice(&bytes).map_err(|e| bad_answer(&url, &e))
}

pub(crate) fn bad_answer(url: &Url, e: &dyn std::fmt::Display) -> ExpectedError {
    ExpectedError::Api {
        message: format!("unexpected answer from `{url}`: {e}"),
        status: ExitStatus::Failure,
    }
}

/// The API's `{"error": {"code", "message", "details"}}` as the CLI's error. A request the
/// server could not understand exits 2 like a usage error; anything refused or missing
/// exits 1, as the same request on the local home does.
async fn api_error(url: &Url, resp: Response) -> ExpectedError {
    let status = resp.status();
    let body: serde_json::Value = match resp.bytes().await {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
        Err(e) => return bad_answer(url, &e),
    };
    let error = &body["error"];
    let Some(message) = error["message"].as_str() else {
        return bad_answer(url, &format!("status {status}"));
    };
    let mut message = message.to_owned();
    // Every problem with the params, one per line, as `baton run` lists them.
    if let Some(problems) = error["details"]["problems"].as_array() {
        for p in problems.iter().filter_map(|p| p.as_str()) {
            message.push_str(&format!("\n  {p}"));
        }
    }
    let exit = match error["code"].as_str() {
        Some(
            "invalid_params"
            | "invalid_body"
            | "body_too_large"
            | "unsupported_media_type"
            | "invalid_pool",
        ) => ExitStatus::Usage,
        _ => ExitStatus::Failure,
    };
    ExpectedError::Api {
        message,
        status: exit,
    }
}
