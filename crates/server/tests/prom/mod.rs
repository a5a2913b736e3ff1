//! A real Prometheus server for one test (Debian's `prometheus` package): scraping given
//! loopback targets every second with the given rule files, on a free loopback port, with its
//! storage in a temp dir. Dropping it kills the process, so it never outlives the test.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Set to 1 (as CI does) to fail instead of skipping when Prometheus' tools are missing.
pub const REQUIRE: &str = "BATON_REQUIRE_PROMTOOL";
pub const HINT: &str = "apt-get install prometheus";

/// How long anything this module waits for may take.
const PATIENCE: Duration = Duration::from_secs(20);

/// Whether `program` runs (`program --version`). When it does not, says why the caller skips,
/// or fails when [`REQUIRE`] is `1`.
pub fn available(program: &str) -> bool {
    let ran = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match ran {
        Ok(status) if status.success() => true,
        other => {
            crate::support::skip::skipped(
                &format!("the check that runs `{program}` (it answered {other:?})"),
                program,
                REQUIRE,
                HINT,
            );
            false
        }
    }
}

/// A free loopback port: bound by the system, then released for the caller to use.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// An HTTP client for loopback servers.
pub fn client() -> reqwest::Client {
    // reqwest is built without a default TLS provider; plain HTTP still needs one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client")
}

#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    pub base: String,
    log: PathBuf,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts `prometheus` scraping `targets` (job `baton`, as the alert rules expect) and
    /// evaluating `rules`, both every second, and waits until it is ready.
    pub async fn start(targets: &[SocketAddr], rules: &Path) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: baton\n    static_configs:\n      - targets: [{}]\n\
             rule_files:\n  - \"{}\"\n",
            targets.join(", "),
            rules.display()
        );
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config).expect("write prometheus.yml");
        let log = dir.path().join("prometheus.log");
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start prometheus");
        let mut prometheus = Self {
            child,
            base: format!("http://{addr}"),
            log,
            client: client(),
            _dir: dir,
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = prometheus.child.try_wait().expect("prometheus status") {
                panic!("prometheus exited ({status}):\n{}", prometheus.log());
            }
            let ready = prometheus
                .client
                .get(format!("{}/-/ready", prometheus.base))
                .send()
                .await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return prometheus;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus did not become ready:\n{}",
                prometheus.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last lines Prometheus logged, for failure messages.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// `GET /api/v1/{path}` with `params`: its `data` when the status is `success`, else the
    /// error Prometheus gave.
    pub async fn api(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, String> {
        let url = reqwest::Url::parse_with_params(&format!("{}/api/v1/{path}", self.base), params)
            .map_err(|e| format!("bad URL: {e}"))?;
        let answer = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let code = answer.status();
        let bytes = answer
            .bytes()
            .await
            .map_err(|e| format!("HTTP {code}, no body: {e}"))?;
        let body: Value = serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "HTTP {code}, not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })?;
        if body["status"] == "success" {
            Ok(body["data"].clone())
        } else {
            Err(format!(
                "HTTP {code}, {}: {}",
                body["errorType"].as_str().unwrap_or("?"),
                body["error"].as_str().unwrap_or("?")
            ))
        }
    }

    /// An instant query at the current time: the samples of a vector (a scalar as one sample
    /// without labels).
    pub async fn query(&self, expr: &str) -> Result<Vec<Sample>, String> {
        let data = self.api("query", &[("query", expr)]).await?;
        let result = &data["result"];
        let samples = match data["resultType"].as_str() {
            Some("vector") => result
                .as_array()
                .ok_or("a vector without a result list")?
                .iter()
                .map(|s| Sample::from_json(&s["metric"], &s["value"]))
                .collect(),
            Some("scalar") => vec![Sample::from_json(&Value::Null, result)],
            other => return Err(format!("unexpected result type {other:?}")),
        };
        Ok(samples)
    }

    /// Asks `check` until it answers `Ok`, failing after a while with its last error and
    /// Prometheus' log.
    pub async fn eventually<T>(
        &self,
        what: &str,
        mut check: impl AsyncFnMut(&Self) -> Result<T, String>,
    ) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match check(self).await {
                Ok(done) => return done,
                Err(last) => assert!(
                    Instant::now() < deadline,
                    "timed out waiting for {what}; last: {last}\nprometheus log:\n{}",
                    self.log()
                ),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// One sample of a query result.
#[derive(Debug, Clone)]
pub struct Sample {
    pub labels: serde_json::Map<String, Value>,
    pub value: f64,
}

impl Sample {
    /// From a result's `metric` object and `[time, "value"]` pair (values are strings, `NaN`
    /// and `+Inf` included).
    fn from_json(metric: &Value, value: &Value) -> Self {
        let value = value[1]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN);
        Self {
            labels: metric.as_object().cloned().unwrap_or_default(),
            value,
        }
    }

    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).and_then(Value::as_str).unwrap_or("")
    }
}
