//! The connection to one Docker engine: made at the first attempt that needs it (a baton
//! that runs no container never needs an engine), with the API version the engine speaks.

use std::path::PathBuf;

use bollard::{API_DEFAULT_VERSION, Docker};
use tokio::sync::OnceCell;

/// Where an engine listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerHost {
    /// `unix:///var/run/docker.sock`.
    Unix(PathBuf),
    /// `tcp://host:2375` (plain HTTP: for loopback or a network you trust).
    Tcp(String),
}

impl DockerHost {
    pub const DEFAULT_SOCKET: &'static str = "/var/run/docker.sock";

    /// `DOCKER_HOST`, as the `docker` command reads it, or the default socket.
    pub fn from_env() -> Self {
        std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .and_then(|h| Self::parse(&h).ok())
            .unwrap_or_else(|| Self::Unix(PathBuf::from(Self::DEFAULT_SOCKET)))
    }

    /// `unix://PATH`, a bare absolute path, or `tcp://HOST:PORT`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(path) = text.strip_prefix("unix://") {
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        if text.starts_with('/') {
            return Ok(Self::Unix(PathBuf::from(text)));
        }
        if let Some(addr) = text
            .strip_prefix("tcp://")
            .or_else(|| text.strip_prefix("http://"))
            && !addr.is_empty()
        {
            return Ok(Self::Tcp(addr.trim_end_matches('/').to_owned()));
        }
        Err(format!(
            "`{text}` is not a Docker engine address: use `unix:///var/run/docker.sock` or `tcp://HOST:PORT`"
        ))
    }
}

impl std::str::FromStr for DockerHost {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::parse(text)
    }
}

impl std::fmt::Display for DockerHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
            Self::Tcp(addr) => write!(f, "tcp://{addr}"),
        }
    }
}

/// Seconds a request may take to be answered (a stream's body, a container's logs or its
/// wait, may take as long as the container runs).
const REQUEST_TIMEOUT_SECS: u64 = 120;

#[derive(Debug)]
pub(super) struct Client {
    host: DockerHost,
    docker: OnceCell<Docker>,
}

impl Client {
    pub(super) fn new(host: DockerHost) -> Self {
        Self {
            host,
            docker: OnceCell::new(),
        }
    }

    /// The connection, made now if it is not yet; a failure is tried again next time (the
    /// engine may start later).
    pub(super) async fn get(&self) -> Result<&Docker, String> {
        self.docker
            .get_or_try_init(|| async {
                let host = &self.host;
                let unreachable = |e: &dyn std::fmt::Display| {
                    format!("cannot reach the Docker engine at `{host}`: {e}")
                };
                let docker = match host {
                    DockerHost::Unix(path) => {
                        if !path.exists() {
                            return Err(format!(
                                "cannot reach the Docker engine at `{host}`: the socket does not exist \
                                 (is Docker installed and running? `DOCKER_HOST` or `[executors.NAME] host` \
                                 names another)"
                            ));
                        }
                        Docker::connect_with_unix(
                            &path.to_string_lossy(),
                            REQUEST_TIMEOUT_SECS,
                            API_DEFAULT_VERSION,
                        )
                    }
                    DockerHost::Tcp(addr) => Docker::connect_with_http(
                        &format!("http://{addr}"),
                        REQUEST_TIMEOUT_SECS,
                        API_DEFAULT_VERSION,
                    ),
                }
                .map_err(|e| unreachable(&e))?;
                // The engine may be older than the client: speak its version.
                docker.negotiate_version().await.map_err(|e| unreachable(&e))
            })
            .await
    }

    pub(super) fn host(&self) -> &DockerHost {
        &self.host
    }
}

#[cfg(test)]
mod tests {
    use super::DockerHost;

    #[test]
    fn hosts_parse_as_the_docker_command_reads_them() {
        assert_eq!(
            DockerHost::parse("unix:///run/docker.sock"),
            Ok(DockerHost::Unix("/run/docker.sock".into()))
        );
        assert_eq!(
            DockerHost::parse("tcp://127.0.0.1:2375"),
            Ok(DockerHost::Tcp("127.0.0.1:2375".into()))
        );
        assert!(DockerHost::parse("ssh://me@host").is_err());
        assert_eq!(
            DockerHost::parse("/var/run/docker.sock")
                .expect("a path")
                .to_string(),
            "unix:///var/run/docker.sock"
        );
    }
}
