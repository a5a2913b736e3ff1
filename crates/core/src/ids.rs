//! Typed names. Each checks its own syntax so a bad name is caught where it is written.

use std::fmt;

use serde::Serialize;

/// Why a name was refused; the message names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} `{name}`: {rule}")]
pub struct NameError {
    pub what: &'static str,
    pub name: String,
    pub rule: &'static str,
}

/// The pattern shared by pipeline names, namespaces and task ids.
pub const NAME_PATTERN: &str = "^[a-z0-9][a-z0-9_-]*$";
const NAME_RULE: &str =
    "use lowercase letters, digits, `_` and `-`, starting with a letter or digit";
/// Longest name accepted, so names fit in URLs, metric labels and file names.
pub const MAX_NAME_LEN: usize = 128;

fn check_name(what: &'static str, name: &str) -> Result<(), NameError> {
    let err = |rule| NameError {
        what,
        name: name.to_owned(),
        rule,
    };
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Err(err("it is empty"));
    }
    if bytes.len() > MAX_NAME_LEN {
        return Err(err("it is longer than 128 characters"));
    }
    let first_ok = bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit();
    let rest_ok = bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-');
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(err(NAME_RULE))
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $what:literal, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
        #[serde(transparent)]
        pub struct $ty(String);

        impl $ty {
            pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
                let name = name.into();
                $check($what, &name)?;
                Ok(Self(name))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A pipeline's name, unique within its namespace.
    PipelineName,
    "pipeline name",
    check_name
);
name_type!(
    /// A team or tenant grouping pipelines; `default` unless set.
    Namespace,
    "namespace",
    check_name
);
name_type!(
    /// A task's id, unique within its pipeline.
    TaskId,
    "task id",
    check_name
);
name_type!(
    /// A run parameter's or output's name: an identifier usable in templates.
    Identifier,
    "name",
    check_identifier
);

name_type!(
    /// A pool's name (`pool:`, `baton pool set`): it goes in URLs, tables and metric labels.
    PoolName,
    "pool name",
    check_pool_name
);

name_type!(
    /// An executor instance's name (`[executors.NAME]`, a task's `executor:`).
    ExecutorName,
    "executor name",
    check_pool_name
);

/// Longest pool name accepted.
pub const MAX_POOL_NAME_LEN: usize = 100;

fn check_pool_name(what: &'static str, name: &str) -> Result<(), NameError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_POOL_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(NameError {
            what,
            name: name.to_owned(),
            rule: "use letters, digits, `.`, `_` and `-`, at most 100",
        })
    }
}

fn check_identifier(what: &'static str, name: &str) -> Result<(), NameError> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= MAX_NAME_LEN;
    if ok {
        Ok(())
    } else {
        Err(NameError {
            what,
            name: name.to_owned(),
            rule: "use letters, digits and `_`, starting with a letter or `_`, so templates can name it",
        })
    }
}

impl Namespace {
    pub fn default_namespace() -> Self {
        Self("default".to_owned())
    }
}

/// `namespace/name`, the global identity of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PipelineId {
    pub namespace: Namespace,
    pub name: PipelineName,
}

impl PipelineId {
    /// Parses `ns/name`, or `name` in `default_ns`.
    pub fn parse(text: &str, default_ns: &Namespace) -> Result<Self, NameError> {
        match text.split_once('/') {
            Some((ns, name)) => Ok(Self {
                namespace: Namespace::new(ns)?,
                name: PipelineName::new(name)?,
            }),
            None => Ok(Self {
                namespace: default_ns.clone(),
                name: PipelineName::new(text)?,
            }),
        }
    }
}

impl fmt::Display for PipelineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_pattern() {
        assert!(PipelineName::new("nightly-etl").is_ok());
        assert!(PipelineName::new("0day_job").is_ok());
        assert_eq!(
            PipelineName::new("Nightly")
                .expect_err("uppercase")
                .to_string(),
            "invalid pipeline name `Nightly`: use lowercase letters, digits, `_` and `-`, starting with a letter or digit"
        );
        assert!(TaskId::new("-x").is_err());
        assert!(TaskId::new("").is_err());
        assert!(Identifier::new("rows_2").is_ok());
        assert!(Identifier::new("2rows").is_err());
    }

    #[test]
    fn names_allow_exactly_the_pattern_characters() {
        for ok in ["a", "0", "a_b-c", "z9", "9-_"] {
            assert!(PipelineName::new(ok).is_ok(), "{ok}");
            assert!(Namespace::new(ok).is_ok(), "{ok}");
            assert!(TaskId::new(ok).is_ok(), "{ok}");
        }
        for bad in ["_a", "-a", "aB", "a.b", "a b", "a/b", "é", "a\n"] {
            let err = TaskId::new(bad).expect_err(bad);
            assert_eq!(
                err,
                NameError {
                    what: "task id",
                    name: bad.to_owned(),
                    rule: NAME_RULE
                }
            );
        }
        for ok in ["_", "a", "_a1", "Rows_2"] {
            assert!(Identifier::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1a", "a-b", "a.b", "a b", "é"] {
            assert!(Identifier::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_at_most_128_bytes() {
        let at_limit = "a".repeat(MAX_NAME_LEN);
        let over = "a".repeat(MAX_NAME_LEN + 1);
        assert_eq!(MAX_NAME_LEN, 128);
        assert_eq!(
            PipelineName::new(at_limit.as_str())
                .expect("128 bytes")
                .as_str(),
            at_limit
        );
        assert!(Namespace::new(at_limit.as_str()).is_ok());
        assert!(TaskId::new(at_limit.as_str()).is_ok());
        assert!(Identifier::new(at_limit.as_str()).is_ok());
        assert_eq!(
            TaskId::new(over.as_str()).expect_err("129 bytes").rule,
            "it is longer than 128 characters"
        );
        assert!(PipelineName::new(over.as_str()).is_err());
        assert!(Identifier::new(over.as_str()).is_err());
        assert_eq!(
            TaskId::new("").expect_err("empty").to_string(),
            "invalid task id ``: it is empty"
        );
    }

    #[test]
    fn pool_names_are_at_most_100_of_letters_digits_and_dot_dash_underscore() {
        assert_eq!(MAX_POOL_NAME_LEN, 100);
        for ok in ["gpu", "GPU.big_1-a", &"p".repeat(100)] {
            assert_eq!(PoolName::new(ok).expect(ok).as_str(), ok);
        }
        for bad in ["", "a b", "a/b", "a:b", "é", &"p".repeat(101)] {
            assert_eq!(
                PoolName::new(bad).expect_err(bad).to_string(),
                format!(
                    "invalid pool name `{bad}`: use letters, digits, `.`, `_` and `-`, at most 100"
                )
            );
        }
    }

    #[test]
    fn names_print_and_borrow_as_written() {
        let id = TaskId::new("load-eu").expect("valid");
        assert_eq!(id.to_string(), "load-eu");
        assert_eq!(id.as_ref(), "load-eu");
        assert_eq!(Namespace::default_namespace().as_str(), "default");
    }

    #[test]
    fn task_keys_name_their_task() {
        let id = TaskId::new("load").expect("valid");
        assert_eq!(TaskKey::task(&id).as_str(), "load");
        assert_eq!(TaskKey::task(&id).task_id(), "load");
        let eu = TaskKey::instance(&id, "eu");
        assert_eq!(eu.to_string(), "load[eu]");
        assert_eq!(eu.task_id(), "load");
        assert_eq!(TaskKey::from_string("x[a[b]]").task_id(), "x");
    }

    #[test]
    fn stored_ids_round_trip_and_backfills_group_their_runs() {
        let run = RunId::from_string("01JABC");
        assert_eq!(
            (run.as_str(), run.to_string().as_str()),
            ("01JABC", "01JABC")
        );
        assert_eq!(
            BackfillId::from_string("bf_01JABC").admission_group(),
            "backfill:bf_01JABC"
        );
    }

    #[test]
    fn pipeline_ids_default_their_namespace() {
        let ns = Namespace::default_namespace();
        assert_eq!(
            PipelineId::parse("ingest", &ns).expect("ok").to_string(),
            "default/ingest"
        );
        assert_eq!(
            PipelineId::parse("data/ingest", &ns)
                .expect("ok")
                .to_string(),
            "data/ingest"
        );
        assert!(PipelineId::parse("data/In", &ns).is_err());
        assert!(PipelineId::parse("Data/in", &ns).is_err());
        let other = Namespace::new("team").expect("valid");
        let id = PipelineId::parse("ingest", &other).expect("ok");
        assert_eq!(
            (id.namespace.as_str(), id.name.as_str()),
            ("team", "ingest")
        );
    }
}

/// Ids the system makes (or reads back from storage): unchecked strings with a type of their
/// own, so a run id cannot be passed where a task key is expected.
macro_rules! stored_id {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        #[derive(
            Debug,
            Clone,
            PartialEq,
            Eq,
            PartialOrd,
            Ord,
            Hash,
            Serialize,
            serde::Deserialize,
            utoipa::ToSchema,
        )]
        #[serde(transparent)]
        pub struct $ty(String);

        impl $ty {
            /// Wraps an id read back from storage or typed by a user.
            pub fn from_string(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

stored_id!(
    /// A run's id: a ULID, so ids sort by creation time and need no coordination between
    /// replicas.
    RunId
);

stored_id!(
    /// A task instance within a run: the task id, plus `[item]` for fan-out instances
    /// (`load[eu]`).
    TaskKey
);

impl TaskKey {
    pub fn task(id: &TaskId) -> Self {
        Self(id.as_str().to_owned())
    }

    /// The key of one fan-out instance; `label` is the item when it is short and plain, else
    /// its index.
    pub fn instance(id: &TaskId, label: &str) -> Self {
        Self(format!("{id}[{label}]"))
    }

    /// The task id part of the key.
    pub fn task_id(&self) -> &str {
        self.0.split('[').next().unwrap_or(&self.0)
    }
}

stored_id!(
    /// Who holds a run's lease: one dispatcher of one process (`host:pid:nonce`), so a process
    /// on this host that is gone can be told from one that is only slow.
    LeaseOwner
);

stored_id!(
    /// A backfill's id: `bf_` and a ULID, so it sorts by creation and reads apart from run ids.
    BackfillId
);

stored_id!(
    /// One registration of a `baton worker` agent: its name and a nonce, so an agent that
    /// restarts is a new worker and nothing it held before is mistaken for its own.
    WorkerId
);

impl BackfillId {
    /// The admission group its runs share, so they respect the backfill's parallelism.
    pub fn admission_group(&self) -> String {
        format!("backfill:{}", self.0)
    }
}
