//! How a container is found again: a name derived from its attempt (so a restarted baton
//! finds it without a search, and the engine refuses a second copy of one attempt), and
//! labels naming its run, task, attempt and the owner's lease epoch.

use std::collections::HashMap;

use baton_core::ids::{RunId, TaskKey};
use baton_store::LeaseEpoch;
use sha2::{Digest, Sha256};

/// Marks a container as baton's; its value is the executor instance that made it.
pub(super) const EXECUTOR: &str = "dev.baton.executor";
pub(super) const RUN: &str = "dev.baton.run";
pub(super) const TASK: &str = "dev.baton.task";
pub(super) const ATTEMPT: &str = "dev.baton.attempt";
pub(super) const EPOCH: &str = "dev.baton.epoch";

/// Docker accepts `[a-zA-Z0-9][a-zA-Z0-9_.-]*`; a task key (`load[3]`) has other characters.
const MAX_NAME: usize = 200;

/// The container of attempt `attempt` of `key` in `run`.
pub(super) fn container_name(run: &RunId, key: &TaskKey, attempt: u32) -> String {
    let clean: String = key
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    // Two keys that clean to the same text (`a[1]`, `a_1_`) must not share a name.
    let digest = Sha256::digest(key.as_str().as_bytes());
    let tag = hex::encode(&digest[..4]);
    let mut name = format!("baton-{run}-{clean}-{tag}-{attempt}");
    if name.len() > MAX_NAME {
        name = format!("baton-{run}-{}-{attempt}", hex::encode(&digest[..16]));
    }
    name
}

pub(super) fn labels(
    executor: &str,
    run: &RunId,
    key: &TaskKey,
    attempt: u32,
    epoch: Option<LeaseEpoch>,
) -> HashMap<String, String> {
    let mut labels = HashMap::from([
        (EXECUTOR.to_owned(), executor.to_owned()),
        (RUN.to_owned(), run.to_string()),
        (TASK.to_owned(), key.to_string()),
        (ATTEMPT.to_owned(), attempt.to_string()),
    ]);
    if let Some(epoch) = epoch {
        labels.insert(EPOCH.to_owned(), epoch.to_string());
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_distinct_and_bounded() {
        let run = RunId::from_string("01KBATONTESTRUN0000000000");
        let a = container_name(&run, &TaskKey::from_string("a[1]"), 1);
        let b = container_name(&run, &TaskKey::from_string("a_1_"), 1);
        assert_ne!(a, b);
        assert!(a.starts_with("baton-"));
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        );
        let long = container_name(&run, &TaskKey::from_string("x".repeat(500)), 7);
        assert!(long.len() <= MAX_NAME && long.ends_with("-7"));
    }
}
