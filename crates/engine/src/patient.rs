//! Driving a run that another process may still hold: the lease is the arbiter, so a run
//! whose owner looks alive (another replica, a process that died on another host, a
//! dispatcher of this process still winding down) is waited out, then tried again.

use std::time::Duration;

use baton_core::ids::RunId;
use baton_core::state::RunState;
use tokio::sync::watch;

use crate::clock::now_ms;
use crate::dispatcher::Stop;
use crate::{Engine, Error, Result};

/// Tries at most this many times before leaving the run to its holder.
const TRIES: usize = 10;

/// [`Engine::execute`], waiting for the lease of a run another process holds to run out (at most
/// [`TRIES`] times, and not past a stop request). Gives up with [`Error::Leased`].
pub(crate) async fn execute_when_free(
    engine: &Engine,
    run: &RunId,
    mut stop: watch::Receiver<Option<Stop>>,
) -> Result<RunState> {
    let mut last = None;
    for _ in 0..TRIES {
        match engine.execute(run, stop.clone()).await {
            Err(e @ Error::Leased { .. }) => {
                last = Some(e);
                let expires = engine
                    .store()
                    .run(run)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|r| r.lease_expires_at);
                let wait = expires.map_or(1_000, |t| (t - now_ms()).clamp(100, 60_000));
                let sleep = tokio::time::sleep(Duration::from_millis(wait.unsigned_abs() + 100));
                // A drain does not wait for someone else's lease.
                tokio::select! {
                    () = sleep => {}
                    _ = stop.wait_for(Option::is_some) => break,
                }
            }
            other => return other,
        }
    }
    Err(last.unwrap_or_else(|| Error::Leased {
        run: run.to_string(),
        owner: String::new(),
    }))
}
