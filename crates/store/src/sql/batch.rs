//! The statements of one write transaction, sent together.
//!
//! Every statement is a round trip to the connection, and on SQLite that is a hand-off to
//! sqlx's thread for the connection and back: two thread wake-ups, which on a virtual
//! machine cost more than the statement (a `perf` profile of 1,000 `true` tasks put a fifth
//! of all CPU time in futex wake-ups). SQLite runs a script of several statements in one
//! call, and binds `$N` by number across all of them, so a batch there is one script whose
//! placeholders are renumbered as statements are added. PostgreSQL prepares one statement per
//! query: there each statement runs when it ends, in order, as before.

use sqlx::Arguments as _;
use sqlx::any::{AnyArguments, AnyRow};

use super::Backend;
use crate::error::Result;

pub(super) struct Batch {
    backend: Backend,
    /// SQLite: run what is there once it passes [`FLUSH_BYTES`], inside the caller's
    /// transaction; a script (one commit in one call) never does.
    flushes: bool,
    /// SQLite: the script so far. PostgreSQL: the statement being bound.
    sql: String,
    args: AnyArguments,
    /// The first value that failed to encode, reported when the batch runs.
    error: Option<sqlx::error::BoxDynError>,
}

impl Batch {
    pub(super) fn new(backend: Backend) -> Self {
        Self {
            backend,
            flushes: true,
            sql: String::new(),
            args: AnyArguments::default(),
            error: None,
        }
    }

    /// SQLite: the whole of a commit, run by its caller in one call ([`Batch::into_script`]).
    pub(super) fn script() -> Self {
        Self {
            flushes: false,
            ..Self::new(Backend::Sqlite)
        }
    }

    /// Starts a statement whose placeholders are its own `$1`, `$2`, …; its values follow
    /// with [`Batch::bind`], in that order, and [`Batch::end`] ends it.
    pub(super) fn sql(&mut self, sql: &str) -> &mut Self {
        match self.backend {
            Backend::Sqlite => {
                renumber(sql, self.args.len(), &mut self.sql);
                self.sql.push_str(";\n");
            }
            Backend::Postgres => sql.clone_into(&mut self.sql),
        }
        self
    }

    pub(super) fn bind<'t, T>(&mut self, value: T) -> &mut Self
    where
        T: sqlx::Encode<'t, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        if let Err(e) = self.args.add(value) {
            self.error.get_or_insert(e);
        }
        self
    }

    /// Ends the statement: on PostgreSQL it runs now; on SQLite it waits for
    /// [`Batch::finish`].
    pub(super) async fn end(&mut self, conn: &mut sqlx::AnyConnection) -> Result<()> {
        if self.backend == Backend::Postgres || (self.flushes && self.sql.len() > FLUSH_BYTES) {
            self.run(conn).await?;
        }
        Ok(())
    }

    /// Runs what is left, and returns the rows it returned (on SQLite, of every statement of
    /// the script).
    pub(super) async fn finish(mut self, conn: &mut sqlx::AnyConnection) -> Result<Vec<AnyRow>> {
        self.run(conn).await
    }

    /// SQLite: the script and its values, for a caller that runs it itself.
    pub(super) fn into_script(self) -> Result<(String, AnyArguments)> {
        debug_assert!(
            self.backend == Backend::Sqlite,
            "PostgreSQL runs statements as they end"
        );
        match self.error {
            Some(e) => Err(sqlx::Error::Encode(e).into()),
            None => Ok((self.sql, self.args)),
        }
    }

    async fn run(&mut self, conn: &mut sqlx::AnyConnection) -> Result<Vec<AnyRow>> {
        if let Some(e) = self.error.take() {
            return Err(sqlx::Error::Encode(e).into());
        }
        if self.sql.is_empty() {
            return Ok(Vec::new());
        }
        let sql = std::mem::take(&mut self.sql);
        let args = std::mem::take(&mut self.args);
        Ok(sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
            .fetch_all(conn)
            .await?)
    }
}

/// A SQLite batch runs what it holds past this size: one script of a 100,000-task fan-out's
/// 500 inserts held all of them prepared at once, and left the server at 140 MiB of heap
/// after the run (28 MiB before batching).
const FLUSH_BYTES: usize = 64 * 1024;

/// Appends `sql` to `out` with each placeholder `$N` written `$(N + offset)`. The
/// statements are baton's own, with no `$` in their literals.
fn renumber(sql: &str, offset: usize, out: &mut String) {
    let bytes = sql.as_bytes();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
            let start = i + 1;
            let mut end = start;
            while bytes.get(end).is_some_and(u8::is_ascii_digit) {
                end += 1;
            }
            // Every byte up to `i` is ASCII or a whole character: `$` and digits are ASCII.
            out.push_str(&sql[copied..i]);
            let n: usize = sql[start..end].parse().unwrap_or(0);
            out.push('$');
            out.push_str(&(n + offset).to_string());
            copied = end;
            i = end;
        } else {
            i += 1;
        }
    }
    out.push_str(&sql[copied..]);
}

#[cfg(test)]
mod tests {
    use super::renumber;

    fn renumbered(sql: &str, offset: usize) -> String {
        let mut out = String::new();
        renumber(sql, offset, &mut out);
        out
    }

    #[test]
    fn placeholders_move_past_the_ones_before() {
        assert_eq!(
            renumbered("UPDATE t SET a = $1, b = $12 WHERE c = $2", 7),
            "UPDATE t SET a = $8, b = $19 WHERE c = $9"
        );
        assert_eq!(renumbered("SELECT $1", 0), "SELECT $1");
    }

    #[test]
    fn other_text_is_kept_as_it_is() {
        assert_eq!(
            renumbered("SELECT 'é$' || $1, $x", 2),
            "SELECT 'é$' || $3, $x"
        );
        assert_eq!(renumbered("no placeholders", 5), "no placeholders");
        assert_eq!(renumbered("ends with $", 5), "ends with $");
    }
}
