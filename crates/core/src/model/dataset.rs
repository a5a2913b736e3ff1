//! A dataset identified the OpenLineage way: a namespace (where) and a name (what).

use std::fmt;

use serde::Serialize;

/// A dataset a task reads or writes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
pub struct Dataset {
    /// Where it lives: `postgres://db:5432`, `s3://bucket`, `file`.
    pub namespace: String,
    /// What it is within the namespace: `schema.table`, `path/to/file`.
    pub name: String,
}

/// Why a dataset URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatasetError {
    #[error("dataset `{0}` is not a URI")]
    NotUri(String),
    #[error("dataset `{0}` has an invalid scheme")]
    Scheme(String),
    #[error("dataset `{0}` names no host or bucket")]
    NoAuthority(String),
    #[error("dataset `{0}` names no dataset after its host or bucket")]
    NoName(String),
    #[error("dataset `{0}` contains whitespace")]
    Whitespace(String),
    #[error("dataset {0} is empty")]
    Empty(&'static str),
}

impl DatasetError {
    pub fn hint(&self) -> &'static str {
        match self {
            Self::NoName(_) => "add the dataset's path, e.g. `postgres://db/schema.table`",
            Self::Empty(_) => "both `namespace` and `name` need a value",
            _ => {
                "write `scheme://host/name` (`postgres://db/schema.table`, `s3://bucket/path`, `file:///data/x.csv`) or `{ namespace: ..., name: ... }`"
            }
        }
    }
}

impl Dataset {
    /// Splits a URI as OpenLineage's naming conventions do: `scheme://authority` is the
    /// namespace and the path (without its leading `/`) the name; local files (`file:///x`) are
    /// namespace `file` and the absolute path.
    pub fn parse_uri(uri: &str) -> Result<Self, DatasetError> {
        let err = || uri.to_owned();
        if uri.chars().any(char::is_whitespace) {
            return Err(DatasetError::Whitespace(err()));
        }
        let Some((scheme, rest)) = uri.split_once("://") else {
            return Err(DatasetError::NotUri(err()));
        };
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return Err(DatasetError::Scheme(err()));
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if scheme == "file" && authority.is_empty() {
            if path.is_empty() {
                return Err(DatasetError::NoName(err()));
            }
            return Ok(Self {
                namespace: "file".into(),
                name: format!("/{path}"),
            });
        }
        if authority.is_empty() {
            return Err(DatasetError::NoAuthority(err()));
        }
        if path.is_empty() {
            return Err(DatasetError::NoName(err()));
        }
        Ok(Self {
            namespace: format!("{scheme}://{authority}"),
            name: path.to_owned(),
        })
    }

    /// A `{namespace, name}` pair as written.
    pub fn named(namespace: &str, name: &str) -> Result<Self, DatasetError> {
        if namespace.trim().is_empty() {
            return Err(DatasetError::Empty("namespace"));
        }
        if name.trim().is_empty() {
            return Err(DatasetError::Empty("name"));
        }
        Ok(Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `file` + `/x/y` reads back as the URI it came from.
        if self.namespace == "file" {
            return write!(f, "file://{}", self.name);
        }
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(uri: &str) -> (String, String) {
        let d = Dataset::parse_uri(uri).expect("valid");
        (d.namespace, d.name)
    }

    #[test]
    fn uris_split_into_namespace_and_name() {
        assert_eq!(
            split("postgres://db/schema.table"),
            ("postgres://db".into(), "schema.table".into())
        );
        assert_eq!(
            split("postgres://db:5432/analytics.public.orders"),
            (
                "postgres://db:5432".into(),
                "analytics.public.orders".into()
            )
        );
        assert_eq!(
            split("s3://bucket/path/to/x.parquet"),
            ("s3://bucket".into(), "path/to/x.parquet".into())
        );
        assert_eq!(split("file:///x/y"), ("file".into(), "/x/y".into()));
        assert_eq!(
            split("file://host/x/y"),
            ("file://host".into(), "x/y".into())
        );
    }

    #[test]
    fn bad_uris_are_refused() {
        for (uri, err) in [
            ("orders", DatasetError::NotUri("orders".into())),
            ("s3://bucket", DatasetError::NoName("s3://bucket".into())),
            ("s3://bucket/", DatasetError::NoName("s3://bucket/".into())),
            ("s3:///path", DatasetError::NoAuthority("s3:///path".into())),
            ("1x://a/b", DatasetError::Scheme("1x://a/b".into())),
            ("file://", DatasetError::NoName("file://".into())),
            ("s3://a/b c", DatasetError::Whitespace("s3://a/b c".into())),
        ] {
            assert_eq!(Dataset::parse_uri(uri), Err(err), "{uri}");
        }
    }

    #[test]
    fn named_datasets_need_both_parts() {
        assert_eq!(
            Dataset::named("postgres://db", "public.orders"),
            Ok(Dataset {
                namespace: "postgres://db".into(),
                name: "public.orders".into()
            })
        );
        assert_eq!(
            Dataset::named(" ", "x"),
            Err(DatasetError::Empty("namespace"))
        );
        assert_eq!(Dataset::named("ns", ""), Err(DatasetError::Empty("name")));
        assert_eq!(
            DatasetError::Empty("name").to_string(),
            "dataset name is empty"
        );
    }

    #[test]
    fn hints_fit_the_error() {
        assert_eq!(
            DatasetError::NoName("s3://b".into()).hint(),
            "add the dataset's path, e.g. `postgres://db/schema.table`"
        );
        assert_eq!(
            DatasetError::Empty("name").hint(),
            "both `namespace` and `name` need a value"
        );
        assert!(
            DatasetError::NotUri("x".into())
                .hint()
                .starts_with("write `scheme://host/name`")
        );
    }

    #[test]
    fn schemes_take_letters_digits_and_plus_dash_dot_after_a_letter() {
        assert_eq!(
            split("git+ssh.v-2://host/repo"),
            ("git+ssh.v-2://host".into(), "repo".into())
        );
        for uri in ["g_t://h/x", "://h/x", "s 3://h/x"] {
            assert!(Dataset::parse_uri(uri).is_err(), "{uri}");
        }
    }

    #[test]
    fn display_reads_back() {
        for uri in ["postgres://db/schema.table", "file:///x/y", "s3://b/p/q"] {
            assert_eq!(Dataset::parse_uri(uri).expect("valid").to_string(), uri);
        }
    }
}
