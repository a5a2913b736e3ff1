//! HTTP steps: an attempt that is a request to a service or a serverless function rather
//! than a process. The request and each answer go to the attempt's log; an expected status
//! is success, and a JSON answer can be the task's outputs. With `poll`, a `202 Accepted` is
//! followed to its `Location` until the work there is done.
//!
//! When a signing secret is set, every request carries `X-Baton-Timestamp` (Unix seconds)
//! and `X-Baton-Signature: v1=HEX`, the HMAC-SHA256 of `TIMESTAMP.BODY` under the secret, so
//! the callee can check that baton sent it and that it is recent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_core::spec::HttpMethod;
use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use sha2::Sha256;
use tokio::sync::mpsc;

use super::log_sink::LogWriter;
use super::{AttemptSpec, CancelHandle, Finished, Outcome, Outputs, Work};

/// A rendered `http:` step.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: HttpMethod,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<RequestBody>,
    /// Statuses that mean success; empty for any 2xx.
    pub expect: Vec<u16>,
    /// Follow a `202 Accepted` to its `Location` this often.
    pub poll: Option<Duration>,
    /// Give the callee a callback URL, and wait this long for its call.
    pub callback: Option<Duration>,
    /// Whether the answer's JSON members are the attempt's outputs.
    pub outputs_json: bool,
    /// Sent as `Idempotency-Key`: the same for every attempt of the task in its run, so a
    /// callee can tell a retry from a new request.
    pub idempotency_key: String,
}

#[derive(Debug, Clone)]
pub struct RequestBody {
    pub bytes: Vec<u8>,
    /// Sent as `application/json` unless the step's headers name a type.
    pub json: bool,
}

/// Answers larger than this are cut: the log and the outputs need no more.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Sends the requests of HTTP steps.
#[derive(Clone)]
pub struct HttpExecutor {
    /// Made at the first request, not at start: it reads the system's trust store (hundreds
    /// of files), a third of a one-task `baton run` that makes no request. An error makes
    /// every attempt fail saying so.
    client: Arc<std::sync::OnceLock<Result<reqwest::Client, String>>>,
    signing: Option<Arc<[u8]>>,
    /// Where steps with `callback` are called back: a server's; none for `baton run`.
    callbacks: Option<super::Callbacks>,
}

impl std::fmt::Debug for HttpExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpExecutor")
            .field("signing", &self.signing.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for HttpExecutor {
    fn default() -> Self {
        Self::new(None)
    }
}

impl HttpExecutor {
    /// An executor signing its requests with `signing_secret`, when there is one.
    pub fn new(signing_secret: Option<Vec<u8>>) -> Self {
        Self {
            client: Arc::default(),
            signing: signing_secret.map(Into::into),
            callbacks: None,
        }
    }

    /// Steps with `callback` are called back through `callbacks` (a server's API).
    #[must_use]
    pub fn with_callbacks(mut self, callbacks: super::Callbacks) -> Self {
        self.callbacks = Some(callbacks);
        self
    }

    /// The client, made on a blocking thread the first time.
    async fn client(&self) -> Result<reqwest::Client, String> {
        if let Some(made) = self.client.get() {
            return made.clone();
        }
        let cell = Arc::clone(&self.client);
        tokio::task::spawn_blocking(move || cell.get_or_init(make_client).clone())
            .await
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?
    }

    fn run_request(
        &self,
        spec: AttemptSpec,
        done: mpsc::UnboundedSender<Finished>,
    ) -> CancelHandle {
        let (handle, cancel) = CancelHandle::new();
        let this = self.clone();
        tokio::spawn(async move {
            let Work::Http(request) = &spec.work else {
                let _ = done.send(Finished {
                    key: spec.key,
                    attempt: spec.attempt,
                    outcome: Outcome::Error("the HTTP executor runs requests only".into()),
                    rusage: None,
                    outputs: Outputs::default(),
                    artifacts: None,
                });
                return;
            };
            let mut log = LogWriter::new(spec.log.clone());
            let deadline = async {
                match spec.timeout {
                    Some(t) => tokio::time::sleep(t).await,
                    None => std::future::pending().await,
                }
            };
            let (outcome, outputs) = tokio::select! {
                result = this.call(request, spec.attempt, &mut log) => result,
                () = deadline => (Outcome::TimedOut, Outputs::default()),
                _ = cancel => (Outcome::Cancelled, Outputs::default()),
            };
            let outcome = match (log.finish().await, outcome) {
                (Err(e), Outcome::Exited { .. }) => {
                    Outcome::Error(format!("cannot keep the attempt's log: {e}"))
                }
                (_, outcome) => outcome,
            };
            let _ = done.send(Finished {
                key: spec.key,
                attempt: spec.attempt,
                outcome,
                rusage: None,
                outputs,
                artifacts: None,
            });
        });
        handle
    }

    /// Makes the request (and the polls), and judges the last answer.
    async fn call(
        &self,
        request: &HttpRequest,
        attempt: u32,
        log: &mut LogWriter,
    ) -> (Outcome, Outputs) {
        let body = request.body.as_ref();
        let mut ticket = match (request.callback, &self.callbacks) {
            (None, _) => None,
            (Some(_), Some(c)) => match c.issue() {
                Some(t) => Some(t),
                None => {
                    let e = "the server does not know its own address yet: try again".to_owned();
                    return (Outcome::Error(e), Outputs::default());
                }
            },
            (Some(_), None) => {
                let e = "`http.callback` needs a `baton server` to be called back: run the \
                         pipeline on one (`baton --server URL run FILE`), or use `poll`"
                    .to_owned();
                return (Outcome::Refused(e), Outputs::default());
            }
        };
        let callback_url = ticket.as_ref().map(|t| t.url.as_str());
        let mut answer = match self
            .send(
                request,
                Target {
                    method: request.method,
                    url: &request.url,
                    body,
                    callback: callback_url,
                },
                attempt,
                log,
            )
            .await
        {
            Ok(answer) => answer,
            Err(e) => return (Outcome::Error(e), Outputs::default()),
        };
        let (mut method, mut url) = (request.method, request.url.clone());
        if let Some(interval) = request.poll {
            while answer.status == 202 {
                let Some(location) = answer.location.take() else {
                    let e = format!(
                        "`{method} {url}` answered 202 Accepted without a `Location` to poll"
                    );
                    return (Outcome::Error(e), Outputs::default());
                };
                tokio::time::sleep(interval).await;
                (method, url) = (HttpMethod::Get, location);
                answer = match self
                    .send(
                        request,
                        Target {
                            method,
                            url: &url,
                            body: None,
                            callback: None,
                        },
                        attempt,
                        log,
                    )
                    .await
                {
                    Ok(answer) => answer,
                    Err(e) => return (Outcome::Error(e), Outputs::default()),
                };
            }
        }
        if !expected(&request.expect, answer.status) {
            let e = format!(
                "`{method} {url}` answered {}{}, expected {}",
                answer.status,
                reason(answer.status),
                expectation(&request.expect)
            );
            return (Outcome::Error(e), Outputs::default());
        }
        if let (Some(t), Some(wait)) = (&mut ticket, request.callback) {
            return called_back(t, wait, request.outputs_json, log).await;
        }
        if !request.outputs_json {
            return (ok(), Outputs::default());
        }
        match serde_json::from_slice::<serde_json::Value>(&answer.body) {
            Ok(serde_json::Value::Object(members)) => (ok(), Outputs::Values(members)),
            Ok(other) => {
                let e = format!(
                    "`outputs_from: json` needs a JSON object, and `{method} {url}` answered {}",
                    baton_core::model::json_kind(&other)
                );
                (Outcome::Error(e), Outputs::default())
            }
            Err(e) => (
                Outcome::Error(format!(
                    "`outputs_from: json`: the answer of `{method} {url}` is not JSON: {e}"
                )),
                Outputs::default(),
            ),
        }
    }

    /// One request: sent, signed when there is a secret, and its answer read and logged.
    async fn send(
        &self,
        request: &HttpRequest,
        to: Target<'_>,
        attempt: u32,
        log: &mut LogWriter,
    ) -> Result<Answer, String> {
        let Target {
            method,
            url,
            body,
            callback,
        } = to;
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("`{url}` is not an `http://` or `https://` URL"));
        }
        let client = self.client().await?;
        let mut headers = self.headers(request, body, attempt)?;
        if let Some(url) = callback {
            let value = HeaderValue::from_str(url).map_err(|_| "a callback URL".to_owned())?;
            headers.insert(HeaderName::from_static("x-baton-callback-url"), value);
        }
        log.write(format!("> {method} {url}\n").as_bytes()).await;
        let started = Instant::now();
        let mut builder = client
            .request(reqwest_method(method), parsed.clone())
            .headers(headers);
        if let Some(b) = body {
            builder = builder.body(b.bytes.clone());
        }
        let mut response = builder
            .send()
            .await
            .map_err(|e| format!("`{method} {url}` failed: {}", error_chain(&e)))?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| parsed.join(l).ok())
            .map(String::from);
        let mut bytes = Vec::new();
        let mut cut = 0usize;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_ANSWER_BYTES.saturating_sub(bytes.len());
                    bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    cut += chunk.len().saturating_sub(room);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(format!(
                        "reading the answer of `{method} {url}` failed: {}",
                        error_chain(&e)
                    ));
                }
            }
        }
        let took = started.elapsed().as_millis();
        log.write(format!("< {status}{} ({took} ms)\n", reason(status)).as_bytes())
            .await;
        if !bytes.is_empty() {
            log.write(&bytes).await;
            if bytes.last() != Some(&b'\n') {
                log.write(b"\n").await;
            }
        }
        if cut > 0 {
            log.write(format!("[baton: {cut} more bytes of the answer not read]\n").as_bytes())
                .await;
        }
        Ok(Answer {
            status,
            location,
            body: bytes,
        })
    }

    fn headers(
        &self,
        request: &HttpRequest,
        body: Option<&RequestBody>,
        attempt: u32,
    ) -> Result<HeaderMap, String> {
        let mut headers = HeaderMap::new();
        let mut put = |name: &str, value: &str| -> Result<(), String> {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("`{name}` is not a header name"))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("the value of header `{name}` is not valid in a header"))?;
            headers.insert(name, value);
            Ok(())
        };
        put("idempotency-key", &request.idempotency_key)?;
        put("x-baton-attempt", &attempt.to_string())?;
        if body.is_some_and(|b| b.json) {
            put("content-type", "application/json")?;
        }
        // The step's own headers last: they win over the defaults above.
        for (name, value) in &request.headers {
            put(name, value)?;
        }
        if let Some(secret) = &self.signing {
            let timestamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                .to_string();
            let signature = sign(secret, &timestamp, body.map_or(&[][..], |b| &b.bytes));
            put("x-baton-timestamp", &timestamp)?;
            put("x-baton-signature", &format!("v1={signature}"))?;
        }
        Ok(headers)
    }
}

/// Where one request goes, and what it carries.
#[derive(Clone, Copy)]
struct Target<'a> {
    method: HttpMethod,
    url: &'a str,
    body: Option<&'a RequestBody>,
    /// The callback URL it hands the callee, for a step with `callback`.
    callback: Option<&'a str>,
}

/// Waits up to `wait` for the callee's call, and judges it: a JSON object, failed when its
/// `status` is `failed` (with its `error`), else a success whose members are the outputs.
async fn called_back(
    ticket: &mut super::Ticket,
    wait: Duration,
    outputs_json: bool,
    log: &mut LogWriter,
) -> (Outcome, Outputs) {
    log.write(b"[baton: waiting for the callback]\n").await;
    let body = match tokio::time::timeout(wait, ticket.called()).await {
        Ok(Some(body)) => body,
        Ok(None) => {
            let e = "the callback was dropped before it was called".to_owned();
            return (Outcome::Error(e), Outputs::default());
        }
        Err(_) => {
            let e = format!(
                "no callback within {}",
                baton_core::duration::Duration::from(wait)
            );
            return (Outcome::Error(e), Outputs::default());
        }
    };
    log.write(b"< callback\n").await;
    log.write(&body).await;
    if body.last() != Some(&b'\n') {
        log.write(b"\n").await;
    }
    let members = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Object(m)) => m,
        Ok(other) => {
            let e = format!(
                "the callback's body is {}, not a JSON object",
                baton_core::model::json_kind(&other)
            );
            return (Outcome::Error(e), Outputs::default());
        }
        Err(e) => {
            let e = format!("the callback's body is not JSON: {e}");
            return (Outcome::Error(e), Outputs::default());
        }
    };
    if members.get("status").and_then(|s| s.as_str()) == Some("failed") {
        let why = members
            .get("error")
            .and_then(|e| e.as_str())
            .unwrap_or("no reason given");
        return (
            Outcome::Error(format!("the callee reported a failure: {why}")),
            Outputs::default(),
        );
    }
    if outputs_json {
        (ok(), Outputs::Values(members))
    } else {
        (ok(), Outputs::default())
    }
}

impl super::Executor for HttpExecutor {
    fn start(&self, spec: AttemptSpec, done: mpsc::UnboundedSender<Finished>) -> CancelHandle {
        self.run_request(spec, done)
    }
}

fn make_client() -> Result<reqwest::Client, String> {
    // reqwest is built with rustls but leaves the choice of crypto to the binary.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("baton/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        // A redirect is an answer like any other: a signed POST is not re-sent elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {}", error_chain(&e)))
}

/// What came back from one request.
struct Answer {
    status: u16,
    /// `Location`, resolved against the request's URL.
    location: Option<String>,
    body: Vec<u8>,
}

fn ok() -> Outcome {
    Outcome::Exited {
        exit_code: Some(0),
        signal: None,
    }
}

/// The signature of a request with `body` sent at `timestamp`: hex HMAC-SHA256 of
/// `TIMESTAMP.BODY`.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn expected(expect: &[u16], status: u16) -> bool {
    if expect.is_empty() {
        (200..300).contains(&status)
    } else {
        expect.contains(&status)
    }
}

fn expectation(expect: &[u16]) -> String {
    match expect {
        [] => "2xx".to_owned(),
        [one] => one.to_string(),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(u16::to_string).collect();
            format!("{} or {last}", init.join(", "))
        }
    }
}

/// ` Reason Phrase` of a status, or nothing for one without.
fn reason(status: u16) -> String {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map(|r| format!(" {r}"))
        .unwrap_or_default()
}

fn reqwest_method(m: HttpMethod) -> reqwest::Method {
    match m {
        HttpMethod::Get => reqwest::Method::GET,
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
        HttpMethod::Patch => reqwest::Method::PATCH,
        HttpMethod::Delete => reqwest::Method::DELETE,
        HttpMethod::Head => reqwest::Method::HEAD,
    }
}

/// The certificates of a PEM file of CAs to trust besides the system's (`--ca-file`), for a
/// server whose certificate its own CA signed.
pub fn read_ca_file(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path)
        .map_err(|e| format!("cannot read the CA file `{}`: {e}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("the CA file `{}` is not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "the CA file `{}` holds no PEM certificate",
            path.display()
        ));
    }
    Ok(certs)
}

/// An error and its causes, which reqwest keeps apart (`error sending request` alone does
/// not say that the connection was refused).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_read_as_english() {
        assert_eq!(expectation(&[]), "2xx");
        assert_eq!(expectation(&[200]), "200");
        assert_eq!(expectation(&[200, 201, 202]), "200, 201 or 202");
        assert!(expected(&[], 204));
        assert!(!expected(&[], 302));
        assert!(expected(&[404], 404));
        assert!(!expected(&[404], 200));
    }

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_dot_body() {
        // Python: hmac.new(b"secret", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
        assert_eq!(
            sign(b"secret", "1700000000", br#"{"a":1}"#),
            "49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
    }
}
