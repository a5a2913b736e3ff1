//! Store errors that pass: a lost database connection (a PostgreSQL restart, a dropped
//! network) is retried with backoff for a bounded time rather than failing the run, since
//! nothing of the failed transaction was kept.

use std::time::Duration;

/// How long a commit is retried before the run gives up on the database.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);
/// The first pause; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// `op`, again while it fails with a transient error and [`PATIENCE`] lasts.
pub(crate) async fn retried<T, Fut>(what: &str, op: impl FnMut() -> Fut) -> baton_store::Result<T>
where
    Fut: Future<Output = baton_store::Result<T>>,
{
    retried_within(PATIENCE, what, op).await
}

async fn retried_within<T, Fut>(
    patience: Duration,
    what: &str,
    mut op: impl FnMut() -> Fut,
) -> baton_store::Result<T>
where
    Fut: Future<Output = baton_store::Result<T>>,
{
    let started = tokio::time::Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        match op().await {
            Err(e) if e.is_transient() && started.elapsed() + pause < patience => {
                tracing::warn!(error = %e, "{what} failed; trying again in {pause:?}");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
            outcome => return outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost() -> baton_store::Error {
        baton_store::Error::ConnectionLost(sqlx_io())
    }

    fn sqlx_io() -> sqlx::Error {
        sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
    }

    #[tokio::test]
    async fn a_lost_connection_is_retried_until_it_works() {
        let mut calls = 0;
        let out = retried("commit", || {
            calls += 1;
            let n = calls;
            async move { if n < 4 { Err(lost()) } else { Ok(n) } }
        })
        .await;
        assert_eq!(out.ok(), Some(4));
    }

    #[tokio::test]
    async fn retrying_stops_after_its_patience() {
        let patience = Duration::from_millis(500);
        let started = tokio::time::Instant::now();
        let mut calls = 0;
        let out: baton_store::Result<()> = retried_within(patience, "commit", || {
            calls += 1;
            async { Err(lost()) }
        })
        .await;
        assert!(out.is_err_and(|e| e.is_transient()));
        // 100 ms, then 200 ms; 400 ms more would pass the patience.
        assert_eq!(calls, 3);
        let took = started.elapsed();
        assert!(
            took < patience && took >= Duration::from_millis(300),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn other_errors_are_not_retried() {
        let mut calls = 0;
        let out: baton_store::Result<()> = retried("commit", || {
            calls += 1;
            async { Err(baton_store::Error::RunNotFound("r".into())) }
        })
        .await;
        assert!(out.is_err());
        assert_eq!(calls, 1);
    }
}
