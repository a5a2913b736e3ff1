//! Which database a store opens, and how: `--database URL` (or `BATON_DATABASE_URL`, or
//! `[database]` in `baton.toml`), else the embedded SQLite file of the home.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

/// Connections a PostgreSQL store's pool opens at most.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;
/// How long opening waits for PostgreSQL to accept a connection (it may be starting up).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a PostgreSQL session may sit in a transaction doing nothing before the server ends
/// it. baton's transactions never wait on anything but the database, so one idle this long
/// belongs to a process that froze or lost the network mid-commit; ending it frees the rows it
/// locked (the run a survivor must take over, a pool's slots) instead of holding them until the
/// process wakes or TCP gives up, hours later.
pub const DEFAULT_IDLE_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a SQLite statement waits for another process's write to end, unless
/// `statement_timeout` says otherwise.
pub(crate) const DEFAULT_SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// `[database]`: how connections are made and how long statements may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// PostgreSQL: the pool's size (SQLite keeps its few connections: one writes at a time).
    pub max_connections: u32,
    /// How long to wait for a connection, at start and from the pool later.
    pub connect_timeout: Duration,
    /// PostgreSQL: `SET statement_timeout` on every connection (none by default). SQLite: how
    /// long a statement waits for another writer (its busy timeout).
    pub statement_timeout: Option<Duration>,
    /// PostgreSQL: `SET idle_in_transaction_session_timeout` on every connection (see
    /// [`DEFAULT_IDLE_TRANSACTION_TIMEOUT`]).
    pub idle_transaction_timeout: Duration,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            statement_timeout: None,
            idle_transaction_timeout: DEFAULT_IDLE_TRANSACTION_TIMEOUT,
        }
    }
}

/// The database of a command: a URL, or the home's embedded file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Database {
    /// `None`: `baton.db` in the home.
    pub url: Option<String>,
    pub settings: DatabaseSettings,
}

/// What a database URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A file (`sqlite://PATH`, `sqlite:PATH`), with the query sqlx is given as is.
    Sqlite {
        path: PathBuf,
    },
    Postgres,
}

impl Target {
    /// Reads `url`'s scheme: `sqlite:` or `postgres:`/`postgresql:`, nothing else.
    pub(crate) fn parse(url: &str) -> Result<Self> {
        let bad = |detail: &str| Error::BadUrl {
            url: masked(url),
            detail: detail.to_owned(),
        };
        let Some((scheme, rest)) = url.split_once(':') else {
            return Err(bad("it has no scheme"));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => {
                if !rest.starts_with("//") {
                    return Err(bad("expected `//` after the scheme"));
                }
                Ok(Self::Postgres)
            }
            "sqlite" => {
                let path = rest.strip_prefix("//").unwrap_or(rest);
                let path = path.split_once('?').map_or(path, |(p, _)| p);
                if path.is_empty() {
                    return Err(bad("it names no file"));
                }
                Ok(Self::Sqlite {
                    path: PathBuf::from(path),
                })
            }
            other => Err(bad(&format!(
                "`{other}` databases are not supported (SQLite and PostgreSQL are)"
            ))),
        }
    }
}

/// `url` with its password (`user:PASSWORD@`, `password=` in the query) replaced by `***`,
/// fit for error messages and logs.
pub fn masked(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(start) = out.find("://").map(|i| i + 3) {
        let end = out[start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| start + i);
        if let Some(at) = out[start..end].rfind('@').map(|i| start + i)
            && let Some(colon) = out[start..at].find(':').map(|i| start + i)
        {
            out.replace_range(colon + 1..at, "***");
        }
    }
    if let Some(query) = out.find('?') {
        let (head, tail) = out.split_at(query + 1);
        let tail = tail
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&");
        out = format!("{head}{tail}");
    }
    out
}

impl Database {
    /// The file a SQLite database of `home` lives in, or `None` for a server's database.
    pub fn sqlite_file(&self, home: &Path) -> Result<Option<PathBuf>> {
        match &self.url {
            None => Ok(Some(home.join(crate::sql::HOME_DATABASE))),
            Some(url) => match Target::parse(url)? {
                Target::Sqlite { path } => Ok(Some(path)),
                Target::Postgres => Ok(None),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            masked("postgres://baton:s3cret@db:5432/baton"),
            "postgres://baton:***@db:5432/baton"
        );
        assert_eq!(masked("postgres://baton@db/x"), "postgres://baton@db/x");
        assert_eq!(
            masked("postgres://db/x?user=a&password=p&sslmode=require"),
            "postgres://db/x?user=a&password=***&sslmode=require"
        );
        assert_eq!(
            masked("sqlite:///tmp/a.db?mode=rwc"),
            "sqlite:///tmp/a.db?mode=rwc"
        );
    }

    #[test]
    fn schemes_are_told_apart() {
        assert_eq!(
            Target::parse("postgresql://h/d").ok(),
            Some(Target::Postgres)
        );
        assert_eq!(
            Target::parse("sqlite:///tmp/x.db?mode=rwc").ok(),
            Some(Target::Sqlite {
                path: PathBuf::from("/tmp/x.db")
            })
        );
        for bad in ["mysql://u:p@h/d", "garbage", "sqlite://", "postgres:h"] {
            let e = Target::parse(bad).expect_err(bad);
            assert!(matches!(e, Error::BadUrl { .. }), "{bad}: {e}");
        }
        let e = Target::parse("mysql://u:pw@h/d").expect_err("mysql");
        assert!(!e.to_string().contains("pw@"), "{e}");
    }
}
