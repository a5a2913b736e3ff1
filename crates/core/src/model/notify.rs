//! A checked `notify:` entry.

use serde::Serialize;

use crate::spec::{NotifyEvent, NotifyFormat};

/// Where a webhook's URL comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookUrl {
    /// Written in the pipeline.
    Url(String),
    /// Read from this environment variable of the baton process when sending.
    Env(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notify {
    pub on: Vec<NotifyEvent>,
    pub webhook: WebhookUrl,
    pub format: NotifyFormat,
}

impl Notify {
    pub fn wants(&self, event: NotifyEvent) -> bool {
        self.on.contains(&event)
    }
}

/// Whether `url` is an absolute `http(s)` URL with a host, as a webhook needs.
pub fn check_webhook_url(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("must start with `http://` or `https://`")?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace");
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    if host.is_empty() || host.starts_with(':') {
        return Err("has no host");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wants_only_the_listed_events() {
        let n = Notify {
            on: vec![NotifyEvent::Failure],
            webhook: WebhookUrl::Url("https://hooks.example.com/x".into()),
            format: NotifyFormat::Json,
        };
        assert!(n.wants(NotifyEvent::Failure));
        assert!(!n.wants(NotifyEvent::Success));
    }

    #[test]
    fn webhook_urls_name_what_is_wrong() {
        assert_eq!(
            check_webhook_url("https://a\tb/x"),
            Err("contains whitespace")
        );
        assert_eq!(
            check_webhook_url("https://a/\u{7}"),
            Err("contains whitespace"),
            "control characters too"
        );
        assert_eq!(check_webhook_url("https://:80/x"), Err("has no host"));
        assert_eq!(check_webhook_url("https://user@/x"), Err("has no host"));
        assert_eq!(check_webhook_url("https://user:pw@host/x"), Ok(()));
    }

    #[test]
    fn webhook_urls() {
        assert_eq!(check_webhook_url("https://hooks.example.com/x"), Ok(()));
        assert_eq!(check_webhook_url("http://127.0.0.1:9/hook?a=b"), Ok(()));
        assert!(check_webhook_url("ftp://x/y").is_err());
        assert!(check_webhook_url("https:///x").is_err());
        assert!(check_webhook_url("https://a b").is_err());
        assert!(check_webhook_url("hooks.example.com").is_err());
    }
}
