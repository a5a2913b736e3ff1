//! The worker API as the agent calls it: JSON over HTTP(S), the worker secret as a bearer
//! token, and the answers that matter told apart (a lease that ended, a server that forgot the
//! worker, a server that does not answer).

use std::path::Path;
use std::time::Duration;

use baton_api::worker as wire;
use baton_core::ids::WorkerId;
use baton_engine::executor::error_chain;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

/// Why a request to the control plane did not do what it asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer (connection refused, reset, timed out): try again later.
    #[error("cannot reach `{server}`: {reason}")]
    Unreachable { server: String, reason: String },
    /// The lease ended: the attempt is not this worker's any more.
    #[error("the lease ended: {0}")]
    Stale(String),
    /// The server does not know this worker (it restarted, or gave the worker up).
    #[error("the server does not know this worker: {0}")]
    UnknownWorker(String),
    /// Any other refusal, which trying again will not change (a wrong secret, a bad request).
    #[error("`{server}` refused the request ({status}): {message}")]
    Refused {
        server: String,
        status: u16,
        message: String,
    },
    #[error("{0}")]
    Setup(String),
}

impl ClientError {
    /// Whether the same request may work later.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            // A server restarting, or a log store that is down for a moment.
            Self::Refused { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// How the agent reaches its control plane.
#[derive(Debug, Clone)]
pub struct Client {
    server: String,
    base: Url,
    http: reqwest::Client,
    bearer: HeaderValue,
}

/// The longest a request may take beyond a claim's own wait.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A whole artifact, either way: a big file over a slow link takes a while.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(3600);

impl Client {
    /// A client of `server` (`http://` or `https://`) sending `secret`; `ca` is a PEM file of
    /// certificates to trust besides the system's, for a server with its own CA.
    pub fn new(server: &str, secret: &str, ca: Option<&Path>) -> Result<Self, ClientError> {
        let base = Url::parse(server)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                ClientError::Setup(format!(
                    "`{server}` is not a server URL\n(hint: --server http://127.0.0.1:8080)"
                ))
            })?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("baton-worker/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = ca {
            for cert in baton_engine::executor::read_ca_file(ca).map_err(ClientError::Setup)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Setup(format!("cannot set up an HTTP client: {e}")))?;
        let mut bearer = HeaderValue::from_str(&format!("Bearer {secret}")).map_err(|_| {
            ClientError::Setup("the worker secret holds characters a header cannot".into())
        })?;
        bearer.set_sensitive(true);
        Ok(Self {
            server: server.trim_end_matches('/').to_owned(),
            base,
            http,
            bearer,
        })
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    fn url(&self, path: &[&str], query: Option<(&str, String)>) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .extend(["api", "v1", "workers"])
                .extend(path);
        }
        if let Some((k, v)) = query {
            url.query_pairs_mut().append_pair(k, &v);
        }
        url
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        body: reqwest::Body,
        content_type: &'static str,
        timeout: Duration,
    ) -> Result<reqwest::Response, ClientError> {
        let resp = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, self.bearer.clone())
            .header(CONTENT_TYPE, content_type)
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| ClientError::Unreachable {
                server: self.server.clone(),
                reason: error_chain(&e),
            })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let (code, message) = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| {
                let e = v.get("error")?;
                Some((
                    e.get("code")?.as_str()?.to_owned(),
                    e.get("message")?.as_str()?.to_owned(),
                ))
            })
            .unwrap_or_else(|| (String::new(), text.trim().to_owned()));
        Err(match (status, code.as_str()) {
            (StatusCode::CONFLICT, "stale_lease") => ClientError::Stale(message),
            (StatusCode::NOT_FOUND, "unknown_worker") => ClientError::UnknownWorker(message),
            _ => ClientError::Refused {
                server: self.server.clone(),
                status: status.as_u16(),
                message,
            },
        })
    }

    async fn json<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        body: &B,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Setup(e.to_string()))?;
        let resp = self
            .send(
                method,
                self.url(path, None),
                body.into(),
                "application/json",
                timeout,
            )
            .await?;
        let bytes = resp.bytes().await.map_err(|e| ClientError::Unreachable {
            server: self.server.clone(),
            reason: error_chain(&e),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Refused {
            server: self.server.clone(),
            status: 200,
            message: format!("an answer that is not what the worker API sends: {e}"),
        })
    }

    async fn no_content<B: serde::Serialize>(
        &self,
        method: Method,
        path: &[&str],
        body: &B,
    ) -> Result<(), ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Setup(e.to_string()))?;
        self.send(
            method,
            self.url(path, None),
            body.into(),
            "application/json",
            REQUEST_TIMEOUT,
        )
        .await
        .map(drop)
    }

    pub async fn register(
        &self,
        hello: &wire::WorkerHello,
    ) -> Result<wire::WorkerRegistered, ClientError> {
        self.json(Method::POST, &[], hello, REQUEST_TIMEOUT).await
    }

    pub async fn deregister(&self, worker: &WorkerId) -> Result<(), ClientError> {
        self.no_content(Method::DELETE, &[worker.as_str()], &serde_json::json!({}))
            .await
    }

    /// Held by the server up to `wait` for work.
    pub async fn claim(
        &self,
        worker: &WorkerId,
        free: u32,
        wait: Duration,
    ) -> Result<Vec<wire::Assignment>, ClientError> {
        let req = wire::ClaimRequest {
            free,
            wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        };
        let resp: wire::ClaimResponse = self
            .json(
                Method::POST,
                &[worker.as_str(), "claim"],
                &req,
                wait + REQUEST_TIMEOUT,
            )
            .await?;
        Ok(resp.assignments)
    }

    pub async fn heartbeat(
        &self,
        worker: &WorkerId,
        beat: &wire::Heartbeat,
    ) -> Result<wire::HeartbeatReply, ClientError> {
        self.json(
            Method::POST,
            &[worker.as_str(), "heartbeat"],
            beat,
            REQUEST_TIMEOUT,
        )
        .await
    }

    pub async fn append_log(
        &self,
        worker: &WorkerId,
        epoch: u64,
        at: u64,
        bytes: &[u8],
    ) -> Result<(), ClientError> {
        let epoch = epoch.to_string();
        let url = self.url(
            &[worker.as_str(), "leases", &epoch, "log"],
            Some(("at", at.to_string())),
        );
        self.send(
            Method::POST,
            url,
            bytes.to_vec().into(),
            "application/octet-stream",
            REQUEST_TIMEOUT,
        )
        .await
        .map(drop)
    }

    pub async fn finish(
        &self,
        worker: &WorkerId,
        epoch: u64,
        report: &wire::FinishReport,
    ) -> Result<(), ClientError> {
        let epoch = epoch.to_string();
        self.no_content(
            Method::POST,
            &[worker.as_str(), "leases", &epoch, "finish"],
            report,
        )
        .await
    }

    /// The content of an artifact the attempt under lease `epoch` downloads, as a stream.
    pub async fn fetch_artifact(
        &self,
        worker: &WorkerId,
        epoch: u64,
        digest: &str,
    ) -> Result<reqwest::Response, ClientError> {
        let epoch = epoch.to_string();
        let url = self.url(
            &[worker.as_str(), "leases", &epoch, "artifacts", digest],
            None,
        );
        self.send(
            Method::GET,
            url,
            reqwest::Body::from(Vec::new()),
            "application/octet-stream",
            TRANSFER_TIMEOUT,
        )
        .await
    }

    /// Sends the content of an artifact the attempt under lease `epoch` uploaded.
    pub async fn upload_artifact(
        &self,
        worker: &WorkerId,
        epoch: u64,
        path: &str,
        digest: &str,
        body: reqwest::Body,
    ) -> Result<(), ClientError> {
        let epoch = epoch.to_string();
        let url = self.url(
            &[worker.as_str(), "leases", &epoch, "artifacts", digest],
            Some(("path", path.to_owned())),
        );
        self.send(
            Method::PUT,
            url,
            body,
            "application/octet-stream",
            TRANSFER_TIMEOUT,
        )
        .await
        .map(drop)
    }
}
