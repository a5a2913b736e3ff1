//! A checked `runs_on:`: which workers may run a task, and how long it waits for one.

use serde::Serialize;

use crate::duration::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunsOn {
    /// Every one of them must be among the worker's labels.
    pub labels: Vec<String>,
    /// How long the task waits for a live worker that matches before it fails.
    pub wait: Duration,
}

impl RunsOn {
    pub const DEFAULT_WAIT: Duration = Duration::from_secs(600);

    /// Whether a worker carrying `labels` may run the task.
    pub fn matches<'a>(&self, labels: impl IntoIterator<Item = &'a str> + Clone) -> bool {
        self.labels
            .iter()
            .all(|want| labels.clone().into_iter().any(|have| have == want))
    }
}

/// Why `label` cannot be a worker label: 1 to 63 of letters, digits and `._-:=/`, starting
/// with a letter or digit (`gpu`, `region=eu`, `arch/arm64`).
pub fn check_worker_label(label: &str) -> Result<(), String> {
    let ok = (1..=63).contains(&label.len())
        && label.starts_with(|c: char| c.is_ascii_alphanumeric())
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:=/".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid worker label `{label}`: use 1 to 63 letters, digits and `._-:=/`, starting with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_matches_when_it_has_every_label() {
        let r = RunsOn {
            labels: vec!["gpu".into(), "eu".into()],
            wait: RunsOn::DEFAULT_WAIT,
        };
        assert!(r.matches(["eu", "gpu", "big"]));
        assert!(!r.matches(["gpu"]));
        assert!(check_worker_label("region=eu").is_ok());
        assert!(check_worker_label("-x").is_err());
        assert!(check_worker_label("").is_err());
        assert!(check_worker_label("a b").is_err());
    }
}
