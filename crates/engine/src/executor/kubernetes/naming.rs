//! How a Job is found again: a name derived from its attempt (a restarted baton gets it by
//! name, no label search, and the API refuses a second copy of one attempt), and labels
//! naming its run, task, attempt, the owner's lease epoch and the executor instance, for the
//! sweep of runs that are over.

use std::collections::BTreeMap;

use baton_core::ids::{RunId, TaskKey};
use baton_store::LeaseEpoch;
use sha2::{Digest, Sha256};

pub(super) const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub(super) const BATON: &str = "baton";
pub(super) const EXECUTOR: &str = "baton.dev/executor";
pub(super) const RUN: &str = "baton.dev/run";
/// The task key as a label value can hold it (`load[3]` cannot be one); the key itself is in
/// the [`TASK_KEY`] annotation.
pub(super) const TASK: &str = "baton.dev/task";
pub(super) const TASK_KEY: &str = "baton.dev/task-key";
pub(super) const ATTEMPT: &str = "baton.dev/attempt";
pub(super) const EPOCH: &str = "baton.dev/epoch";
/// Set by the Job controller on its pods (and, before 1.27, `job-name`).
pub(super) const JOB_NAME: &str = "batch.kubernetes.io/job-name";

/// A Job's name is a label value of its pods (`job-name`): at most 63 characters.
const MAX_NAME: usize = 63;

/// The Job of attempt `attempt` of `key` in `run`: `baton-<run>-<task>-<attempt>-<hash>`, in
/// DNS-1123 label form. The hash (of all three) keeps two names apart when the task part was
/// cut or cleaned to the same text (`a[1]`, `a_1_`).
pub(super) fn job_name(run: &RunId, key: &TaskKey, attempt: u32) -> String {
    let digest = Sha256::digest(format!("{run}\0{key}\0{attempt}").as_bytes());
    let suffix = format!("-{attempt}-{}", hex::encode(&digest[..4]));
    let mut name = format!(
        "baton-{}-{}",
        run.as_str().to_ascii_lowercase(),
        dns_part(key.as_str())
    );
    name.truncate(MAX_NAME - suffix.len());
    let name = name.trim_end_matches('-');
    format!("{name}{suffix}")
}

/// Lowercase letters, digits and single dashes.
fn dns_part(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// A label value: at most 63 of `[A-Za-z0-9_.-]`, alphanumeric at both ends.
pub(super) fn label_value(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(MAX_NAME)
        .collect();
    clean
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

pub(super) fn labels(
    executor: &str,
    run: &RunId,
    key: &TaskKey,
    attempt: u32,
    epoch: Option<LeaseEpoch>,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (MANAGED_BY.to_owned(), BATON.to_owned()),
        (EXECUTOR.to_owned(), label_value(executor)),
        (RUN.to_owned(), label_value(run.as_str())),
        (TASK.to_owned(), label_value(key.as_str())),
        (ATTEMPT.to_owned(), attempt.to_string()),
    ]);
    if let Some(epoch) = epoch {
        labels.insert(EPOCH.to_owned(), epoch.to_string());
    }
    labels
}

/// Selects every Job of the instance `executor`.
pub(super) fn selector(executor: &str) -> String {
    format!("{MANAGED_BY}={BATON},{EXECUTOR}={}", label_value(executor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns_label(name: &str) -> bool {
        name.len() <= MAX_NAME
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.ends_with(|c: char| c.is_ascii_alphanumeric())
    }

    #[test]
    fn names_are_dns_labels_distinct_and_stable() {
        let run = RunId::from_string("01KBATONTESTRUN0000000000A");
        let a = job_name(&run, &TaskKey::from_string("a[1]"), 1);
        let b = job_name(&run, &TaskKey::from_string("a_1_"), 1);
        assert_ne!(a, b);
        assert_eq!(a, job_name(&run, &TaskKey::from_string("a[1]"), 1));
        assert_ne!(a, job_name(&run, &TaskKey::from_string("a[1]"), 2));
        assert!(
            a.starts_with("baton-01kbatontestrun0000000000a-a-1-1-"),
            "{a}"
        );
        let long_a = job_name(
            &run,
            &TaskKey::from_string(format!("{}x", "y".repeat(80))),
            7,
        );
        let long_b = job_name(
            &run,
            &TaskKey::from_string(format!("{}z", "y".repeat(80))),
            7,
        );
        assert_ne!(
            long_a, long_b,
            "cut to the same text, told apart by the hash"
        );
        for name in [&a, &b, &long_a, &long_b] {
            assert!(dns_label(name), "{name}");
        }
        let odd = job_name(&run, &TaskKey::from_string("--[..]--"), 3);
        assert!(dns_label(&odd), "{odd}");
    }

    #[test]
    fn label_values_are_valid() {
        assert_eq!(label_value("t[eu]"), "t_eu");
        assert_eq!(label_value(&"x".repeat(90)).len(), 63);
        assert_eq!(label_value("[a]"), "a");
    }
}
