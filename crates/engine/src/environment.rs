//! Which of baton's own environment variables a task's process starts with, before the
//! pipeline's `env`, the task's `env` and baton's `BATON_*` are added.
//!
//! A server holds secrets in its environment (webhook keys, notification URLs, API keys):
//! every task it runs would print them with `env` into logs anyone with the API can read, so a
//! server's tasks start from a clean environment. `baton run` in a terminal passes the user's
//! environment on, as `make` does, but never the variables that hold baton's own secrets.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use baton_core::model::Pipeline;

/// Variables baton itself reads secrets from, whoever runs it.
pub const SECRET_VARIABLES: [&str; 3] = [
    "OPENLINEAGE_API_KEY",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
];

/// What a clean environment keeps of baton's: enough to find programs, a home, a locale and a
/// time zone, and who the user is.
pub const BASICS: [&str; 7] = ["PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR"];
/// Locale categories (`LC_ALL`, `LC_TIME`, …) go with `LANG`.
pub const BASIC_PREFIX: &str = "LC_";

/// Where a task's environment starts.
#[derive(Debug, Clone)]
pub enum TaskEnvironment {
    /// All of baton's environment except secrets (`baton run` in a terminal).
    Inherit { except: Withheld },
    /// Only the basics (`PATH`, `HOME`, `USER`, `LOGNAME`, `LANG`, `LC_*`, `TZ`, `TMPDIR`) and
    /// the variables `allow` names (`[engine] inherit_env`), never a secret (a server).
    Clean {
        allow: Vec<EnvPattern>,
        except: Withheld,
    },
}

impl Default for TaskEnvironment {
    fn default() -> Self {
        Self::Inherit {
            except: Withheld::default(),
        }
    }
}

impl TaskEnvironment {
    /// The secrets withheld besides the fixed ones and the run's own pipeline's.
    pub fn withheld(&self) -> &Withheld {
        match self {
            Self::Inherit { except } | Self::Clean { except, .. } => except,
        }
    }

    /// The `allow` patterns that match one of `secrets` (`[engine] inherit_env` naming a
    /// pipeline's `secret_env`): such a variable is withheld all the same.
    pub fn allowed_secrets<'a>(&self, secrets: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        match self {
            Self::Inherit { .. } => Vec::new(),
            Self::Clean { allow, .. } => secrets
                .into_iter()
                .filter(|s| allow.iter().any(|p| p.matches(s)))
                .collect(),
        }
    }

    /// The variables of `vars` (baton's environment) a task of `pipeline` starts with.
    pub fn base(
        &self,
        pipeline: &Pipeline,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Vec<(String, String)> {
        let except = self.withheld();
        let secret = |name: &str| {
            SECRET_VARIABLES.contains(&name)
                || pipeline.secret_variables().any(|s| s == name)
                || except.contains(name)
        };
        let wanted = |name: &str| match self {
            Self::Inherit { .. } => true,
            Self::Clean { allow, .. } => {
                BASICS.contains(&name)
                    || name.starts_with(BASIC_PREFIX)
                    || allow.iter().any(|p| p.matches(name))
            }
        };
        vars.into_iter()
            .filter(|(k, _)| wanted(k) && !secret(k))
            .collect()
    }
}

/// Names of variables holding secrets, beyond [`SECRET_VARIABLES`] and the run's own
/// pipeline's (`secret_env`, `webhook_env`): a server keeps every loaded pipeline's here, so
/// that no task sees another pipeline's secrets either. Shared by every clone.
#[derive(Debug, Clone, Default)]
pub struct Withheld(Arc<RwLock<BTreeSet<String>>>);

impl Withheld {
    /// Replaces the names withheld.
    pub fn set(&self, names: BTreeSet<String>) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = names;
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(name)
    }
}

/// An entry of `inherit_env`: a variable's name, or a prefix ending in `*` (`AWS_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvPattern {
    Name(String),
    Prefix(String),
}

/// Why an `inherit_env` entry cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvPatternError {
    #[error(
        "invalid `inherit_env` entry `{0}`: expected a variable name (`AWS_PROFILE`) or a prefix ending in `*` (`AWS_*`)"
    )]
    Invalid(String),
    #[error(
        "`inherit_env` entry `{pattern}` would pass baton's secret `{secret}` to every task\n(hint: give a task what it needs in its `env:` instead)"
    )]
    Secret { pattern: String, secret: String },
}

impl std::str::FromStr for EnvPattern {
    type Err = EnvPatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, prefix) = match s.strip_suffix('*') {
            Some(p) => (p, true),
            None => (s, false),
        };
        let valid = name
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
        if !valid || (name.is_empty() && !prefix) {
            return Err(EnvPatternError::Invalid(s.to_owned()));
        }
        let pattern = if prefix {
            Self::Prefix(name.to_owned())
        } else {
            Self::Name(name.to_owned())
        };
        if let Some(secret) = SECRET_VARIABLES.iter().find(|v| pattern.matches(v)) {
            return Err(EnvPatternError::Secret {
                pattern: s.to_owned(),
                secret: (*secret).to_owned(),
            });
        }
        Ok(pattern)
    }
}

impl EnvPattern {
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Self::Name(n) => n == name,
            Self::Prefix(p) => name.starts_with(p.as_str()),
        }
    }
}

impl std::fmt::Display for EnvPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Name(n) => f.write_str(n),
            Self::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline() -> Pipeline {
        let text = "name: p\ntriggers:\n  - webhook:\n      secret_env: HOOK_SECRET\nnotify:\n  - on: [failure]\n    webhook_env: SLACK_URL\ntasks:\n  a:\n    run: \"true\"\n";
        let loaded = baton_core::load::load(text);
        loaded
            .pipeline
            .unwrap_or_else(|| panic!("{:?}", loaded.diagnostics))
    }

    fn vars() -> Vec<(String, String)> {
        [
            "PATH",
            "HOME",
            "LC_TIME",
            "AWS_PROFILE",
            "AWS_REGION",
            "RANDOM_THING",
            "HOOK_SECRET",
            "SLACK_URL",
            "OTHER_SECRET",
            "OPENLINEAGE_API_KEY",
        ]
        .into_iter()
        .map(|k| (k.to_owned(), "v".to_owned()))
        .collect()
    }

    fn names(env: &[(String, String)]) -> Vec<&str> {
        env.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn inherit_passes_everything_but_secrets() {
        let except = Withheld::default();
        except.set(["OTHER_SECRET".to_owned()].into());
        let env = TaskEnvironment::Inherit { except }.base(&pipeline(), vars());
        assert_eq!(
            names(&env),
            [
                "PATH",
                "HOME",
                "LC_TIME",
                "AWS_PROFILE",
                "AWS_REGION",
                "RANDOM_THING"
            ]
        );
    }

    #[test]
    fn clean_passes_the_basics_and_what_is_allowed_but_never_secrets() {
        let allow = ["AWS_*", "HOOK_SECRET", "OTHER_SECRET"]
            .iter()
            .map(|p| p.parse().expect("valid"))
            .collect();
        let except = Withheld::default();
        except.set(["OTHER_SECRET".to_owned()].into());
        let env = TaskEnvironment::Clean { allow, except }.base(&pipeline(), vars());
        assert_eq!(
            names(&env),
            ["PATH", "HOME", "LC_TIME", "AWS_PROFILE", "AWS_REGION"]
        );
    }

    #[test]
    fn patterns_are_names_or_prefixes_and_never_baton_secrets() {
        assert_eq!("AWS_*".parse(), Ok(EnvPattern::Prefix("AWS_".into())));
        assert_eq!("A1".parse(), Ok(EnvPattern::Name("A1".into())));
        for bad in ["", "1A", "A-B", "A*B", "**"] {
            assert_eq!(
                bad.parse::<EnvPattern>(),
                Err(EnvPatternError::Invalid(bad.into())),
                "{bad}"
            );
        }
        let e = "OPENLINEAGE_*".parse::<EnvPattern>().expect_err("secret");
        assert_eq!(
            e.to_string(),
            "`inherit_env` entry `OPENLINEAGE_*` would pass baton's secret `OPENLINEAGE_API_KEY` to every task\n(hint: give a task what it needs in its `env:` instead)"
        );
        assert!(
            "*".parse::<EnvPattern>().is_err(),
            "`*` passes every secret"
        );
    }
}
