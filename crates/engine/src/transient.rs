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
pub(crate) async fn retried<T, Fut>(
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
            Err(e) if e.is_transient() && started.elapsed() + pause < PATIENCE => {
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

    #[tokio::test(start_paused = true)]
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

    #[tokio::test(start_paused = true)]
    async fn retrying_stops_after_its_patience() {
        let started = tokio::time::Instant::now();
        let out: baton_store::Result<()> = retried("commit", || async { Err(lost()) }).await;
        assert!(out.is_err_and(|e| e.is_transient()));
        let took = started.elapsed();
        assert!(
            took <= PATIENCE && took >= PATIENCE - MAX_PAUSE * 2,
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
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
