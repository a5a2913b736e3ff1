//! The host names a control plane answers to (`[server] allowed_hosts`): parsed with the
//! settings, matched against each request's `Host` by the server's guard.

/// One entry of `[server] allowed_hosts`: a host name (or IP) and maybe a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    /// Lowercase, without a trailing dot; an IPv6 address keeps its brackets (`[::1]`).
    name: String,
    /// With a port, only that port matches; without, no port or the listening port.
    port: Option<u16>,
}

/// Why an `allowed_hosts` entry cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid allowed host `{0}`: expected a host name or IP with an optional port (`baton.example.com`, `10.0.0.5:8080`, `[::1]`)"
)]
pub struct InvalidHost(pub String);

impl std::str::FromStr for AllowedHost {
    type Err = InvalidHost;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidHost(s.to_owned());
        let (name, port) = split_authority(s).ok_or_else(invalid)?;
        let port = port
            .map(|p| p.parse::<u16>().map_err(|_| invalid()))
            .transpose()?;
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
        let bracketed = name.starts_with('[') && name.ends_with(']');
        if name.is_empty() || !(bracketed || name.chars().all(plain)) {
            return Err(invalid());
        }
        Ok(Self {
            name: normalize(name),
            port,
        })
    }
}

impl std::fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// The `Host` values this server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts {
    hosts: Vec<AllowedHost>,
    /// The port the server listens on; `None` (an app without a socket) matches any port.
    listen_port: Option<u16>,
}

impl AllowedHosts {
    /// The names every server answers to: `localhost`, `127.0.0.1`, `[::1]`.
    fn loopback() -> Vec<AllowedHost> {
        ["localhost", "127.0.0.1", "[::1]"]
            .into_iter()
            .map(|name| AllowedHost {
                name: name.to_owned(),
                port: None,
            })
            .collect()
    }

    /// The loopback names on any port: an app built without a socket (tests, embedding).
    pub fn any_port() -> Self {
        Self {
            hosts: Self::loopback(),
            listen_port: None,
        }
    }

    /// The hosts of a server listening on `listen`: the loopback names, the listening IP
    /// (unless it is `0.0.0.0` or `[::]`, which no client can address), and `extra`.
    pub fn for_listen(listen: std::net::SocketAddr, extra: &[AllowedHost]) -> Self {
        let mut hosts = Self::loopback();
        if !listen.ip().is_unspecified() {
            let name = match listen.ip() {
                std::net::IpAddr::V4(ip) => ip.to_string(),
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            };
            hosts.push(AllowedHost { name, port: None });
        }
        for h in extra {
            if !hosts.contains(h) {
                hosts.push(h.clone());
            }
        }
        Self {
            hosts,
            listen_port: Some(listen.port()),
        }
    }

    /// What the startup log lists.
    pub fn names(&self) -> Vec<String> {
        self.hosts.iter().map(ToString::to_string).collect()
    }

    /// Whether a `Host` header value names this server.
    pub fn allows(&self, host: &str) -> bool {
        let Some((name, port)) = split_authority(host) else {
            return false;
        };
        let Ok(port) = port.map(str::parse::<u16>).transpose() else {
            return false;
        };
        let name = normalize(name);
        self.hosts.iter().any(|h| {
            h.name == name
                && match (h.port, port) {
                    (Some(want), got) => got == Some(want),
                    (None, None) => true,
                    (None, Some(got)) => self.listen_port.is_none_or(|p| p == got),
                }
        })
    }
}

/// Splits `name[:port]` (`[v6]:port` for IPv6), or `None` when it is not one.
pub fn split_authority(s: &str) -> Option<(&str, Option<&str>)> {
    if s.starts_with('[') {
        let end = s.find(']')?;
        let (name, rest) = s.split_at(end + 1);
        return match rest {
            "" => Some((name, None)),
            _ => Some((name, Some(rest.strip_prefix(':')?))),
        };
    }
    match s.split_once(':') {
        Some((name, port)) if !port.contains(':') => Some((name, Some(port))),
        Some(_) => None,
        None => Some((s, None)),
    }
}

/// A host name as compared: lowercase, without the trailing dot of a fully qualified name.
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}
