//! The first check of every request, in front of the API and the UI alike: is it addressed to
//! this server (`Host`, against DNS rebinding), and does a state change come from this
//! server's own pages (`Origin`, against cross-site requests)?
//!
//! A page on another site can make a visitor's browser send a form-like `POST` (no body, or
//! `text/plain`) without any preflight, and a rebound DNS name lets it read the answers too.
//! Browsers always say where such a request comes from (`Host`, and `Origin` or
//! `Sec-Fetch-Site` on state changes), so refusing those that do not name this server stops
//! both. Clients that are not browsers (curl, the `baton` CLI, webhook senders) send no
//! `Origin` and pass.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub use baton_control::hosts::{AllowedHost, AllowedHosts, InvalidHost};
use baton_control::hosts::{normalize, split_authority};

use crate::ApiError;

/// The `code` of a request whose `Host` is not allowed (status 421).
pub const HOST_NOT_ALLOWED: &str = "host_not_allowed";
/// The `code` of a state change from another site (status 403).
pub const CROSS_SITE_REQUEST: &str = "cross_site_request";

/// Paths answered whatever the `Host`: container probes and Prometheus address the server by
/// its IP, and these read nothing a rebinding page could misuse beyond counts.
const PROBES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// `(name, port)` of an `http(s)://` origin or URL, the port filled in from the scheme.
fn origin_of(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (name, port) = split_authority(authority)?;
    let port = port.map_or(Some(default), |p| p.parse().ok())?;
    Some((normalize(name), port))
}

/// Whether `url`'s origin is the server the request reached as `host` (ports compared after
/// filling in the scheme's default, so `https://baton.example.com` matches
/// `Host: baton.example.com`).
fn same_origin(url: &str, host: Option<&str>) -> bool {
    let (Some((name, port)), Some((host_name, host_port))) =
        (origin_of(url), host.and_then(split_authority))
    else {
        return false;
    };
    let host_port = match host_port {
        Some(p) => p.parse().ok(),
        None => Some(port),
    };
    name == normalize(host_name) && host_port == Some(port)
}

/// Why a request that may change state comes from another site, or `None` when nothing says
/// it does. Requests with no `Origin`, `Sec-Fetch-Site` or `Referer` (curl, the CLI,
/// webhook senders) pass.
pub(crate) fn cross_site(headers: &HeaderMap) -> Option<String> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let host = text(header::HOST.as_str());
    if let Some(origin) = text(header::ORIGIN.as_str()) {
        return (!same_origin(origin, host)).then(|| {
            format!(
                "`Origin` `{origin}` is not this server `{}`",
                host.unwrap_or("")
            )
        });
    }
    if let Some(site @ ("cross-site" | "same-site")) = text("sec-fetch-site") {
        return Some(format!("`Sec-Fetch-Site` is `{site}`"));
    }
    if let Some(referer) = text(header::REFERER.as_str())
        && !same_origin(referer, host)
    {
        return Some(format!(
            "`Referer` `{referer}` is not this server `{}`",
            host.unwrap_or("")
        ));
    }
    None
}

/// Why a request is refused.
enum Refusal {
    Host(String),
    CrossSite(String),
}

impl Refusal {
    fn into_response(self, path: &str) -> Response {
        let (status, code, message) = match self {
            Self::Host(host) => (
                StatusCode::MISDIRECTED_REQUEST,
                HOST_NOT_ALLOWED,
                format!(
                    "host `{host}` is not allowed\n(hint: add it to `[server] allowed_hosts` in baton.toml, or `--allowed-host`)"
                ),
            ),
            Self::CrossSite(why) => (
                StatusCode::FORBIDDEN,
                CROSS_SITE_REQUEST,
                format!(
                    "cross-site request refused: {why}\n(hint: use baton's own pages, or a client that sends no `Origin`)"
                ),
            ),
        };
        if path.starts_with("/api/") {
            ApiError::new(status, code, message).into_response()
        } else {
            crate::ui::error_page(status, message)
        }
    }
}

fn inspect(hosts: &AllowedHosts, req: &Request) -> Result<(), Refusal> {
    let path = req.uri().path();
    // HTTP/2 carries the host in the URI; a request with neither came from no browser.
    let host = req
        .headers()
        .get(header::HOST)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .or_else(|| req.uri().authority().map(ToString::to_string));
    if let Some(host) = host
        && !PROBES.contains(&path)
        && !hosts.allows(&host)
    {
        return Err(Refusal::Host(host));
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        && let Some(why) = cross_site(req.headers())
    {
        return Err(Refusal::CrossSite(why));
    }
    Ok(())
}

/// The middleware: refuses what [`inspect`] refuses, passes the rest on.
pub(crate) async fn check(
    State(hosts): State<Arc<AllowedHosts>>,
    req: Request,
    next: Next,
) -> Response {
    match inspect(&hosts, &req) {
        Ok(()) => next.run(req).await,
        Err(refusal) => {
            tracing::warn!(method = %req.method(), path = req.uri().path(), "request refused");
            refusal.into_response(req.uri().path())
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn hosts(extra: &[&str]) -> AllowedHosts {
        let extra: Vec<AllowedHost> = extra.iter().map(|h| h.parse().expect("valid")).collect();
        AllowedHosts::for_listen("127.0.0.1:8080".parse().expect("addr"), &extra)
    }

    #[test]
    fn hosts_match_by_name_with_no_port_or_the_listening_one() {
        let h = hosts(&["Baton.Example.com", "proxy.example:8443"]);
        for ok in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:8080",
            "[::1]:8080",
            "[::1]",
            "LOCALHOST.",
            "baton.example.com",
            "baton.example.com:8080",
            "proxy.example:8443",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for refused in [
            "evil.example",
            "evil.example:8080",
            "localhost:3000",
            "127.0.0.1:80",
            "proxy.example",
            "proxy.example:8080",
            "localhost.evil.example",
            "",
            "localhost:x",
            "[::1",
        ] {
            assert!(!h.allows(refused), "{refused}");
        }
        assert!(AllowedHosts::any_port().allows("localhost:3000"));
        assert!(!AllowedHosts::any_port().allows("evil.example"));
    }

    #[test]
    fn unspecified_listen_addresses_are_not_names() {
        let h = AllowedHosts::for_listen("0.0.0.0:8080".parse().expect("addr"), &[]);
        assert!(!h.allows("0.0.0.0:8080"));
        assert_eq!(h.names(), ["localhost", "127.0.0.1", "[::1]"]);
        let h = AllowedHosts::for_listen("10.0.0.5:9000".parse().expect("addr"), &[]);
        assert!(h.allows("10.0.0.5:9000"));
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        for bad in ["", "http://x", "a b", "x:99999", "x:", "[::1]x", "a/b"] {
            assert_eq!(
                bad.parse::<AllowedHost>(),
                Err(InvalidHost(bad.to_owned())),
                "{bad}"
            );
        }
        assert_eq!(
            InvalidHost("a b".into()).to_string(),
            "invalid allowed host `a b`: expected a host name or IP with an optional port (`baton.example.com`, `10.0.0.5:8080`, `[::1]`)"
        );
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_this_servers_own_origin_passes() {
        for ok in [
            &[][..],
            &[("host", "a:8080"), ("origin", "http://a:8080")],
            &[("host", "A"), ("origin", "https://a")],
            &[("host", "a:443"), ("origin", "https://a")],
            &[("sec-fetch-site", "same-origin")],
            &[("sec-fetch-site", "none")],
            &[("host", "a:8080"), ("referer", "http://a:8080/runs?x=1")],
        ] {
            assert_eq!(cross_site(&headers(ok)), None, "{ok:?}");
        }
        for refused in [
            &[("host", "a:8080"), ("origin", "https://evil.example")][..],
            &[("host", "a:8080"), ("origin", "http://a:8081")],
            &[("host", "a"), ("origin", "null")],
            &[("origin", "http://a")],
            &[("sec-fetch-site", "cross-site")],
            &[("sec-fetch-site", "same-site")],
            &[("host", "a:8080"), ("referer", "https://evil.example/x")],
            &[
                ("host", "a:8080"),
                ("referer", "http://a:8080@evil.example/"),
            ],
        ] {
            assert!(cross_site(&headers(refused)).is_some(), "{refused:?}");
        }
    }
}
