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
    /// A backfill's id: `bf_` and a ULID, so it sorts by creation and reads apart from run ids.
    BackfillId
);

impl BackfillId {
    /// The admission group its runs share, so they respect the backfill's parallelism.
    pub fn admission_group(&self) -> String {
        format!("backfill:{}", self.0)
    }
}
