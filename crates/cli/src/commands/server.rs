//! `baton server`

use std::path::Path;

use baton_engine::Observers;
use baton_server::serve::{Config, serve};

use crate::cli::ServerArgs;
use crate::error::{ExitStatus, ExpectedError};
use crate::output::Output;

pub(crate) async fn run(
    home: &Path,
    engine: crate::backend::EngineSettings,
    args: &ServerArgs,
    observers: &Observers,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    if !args.pools.is_empty() {
        let store = crate::backend::open_store(home).await?;
        crate::config_file::seed_pools(store.as_ref(), &args.pools).await?;
    }
    let workers = match &args.worker_secret_file {
        None => None,
        Some(path) => {
            let (heartbeat, lease) = (args.worker_heartbeat, args.worker_lease);
            if heartbeat.as_millis() == 0 || heartbeat >= lease {
                return Err(ExpectedError::Usage(format!(
                    "`[workers] heartbeat` ({heartbeat}) must be above zero and shorter than \
                     `[workers] lease` ({lease})\n(hint: a few heartbeats per lease, e.g. \
                     heartbeat = \"3s\" and lease = \"10s\")"
                )));
            }
            Some(baton_server::serve::WorkersConfig {
                secret: crate::backend::read_text_secret(path, "worker secret")?,
                hub: baton_engine::workers::HubSettings {
                    heartbeat: heartbeat.as_std(),
                    lease: lease.as_std(),
                    stop_grace: engine.kill_grace,
                },
            })
        }
    };
    let config = Config {
        listen: args.listen,
        allow_remote: args.allow_remote_unauthenticated,
        shutdown_grace: args.shutdown_grace.as_std(),
        catchup_cap: args.catchup_cap,
        watch: !args.no_watch,
        takeover_interval: args.takeover_interval.as_std(),
        interruption_limit: engine.interruption_limit,
        leases: engine.leases,
        kill_grace: engine.kill_grace,
        observers: observers.clone(),
        lineage: crate::observers::lineage_config(),
        allowed_hosts: args.allowed_hosts.clone(),
        inherit_env: args.inherit_env.clone(),
        database: crate::backend::database(),
        logs: engine.logs,
        http: crate::backend::http_executor(),
        executors: engine.executors.clone(),
        artifacts: engine.artifacts.clone(),
        public_url: args
            .public_url
            .as_deref()
            .map(|u| {
                reqwest::Url::parse(u)
                    .ok()
                    .filter(|p| matches!(p.scheme(), "http" | "https"))
                    .map(|_| u.trim_end_matches('/').to_owned())
                    .ok_or_else(|| {
                        ExpectedError::Usage(format!(
                            "`public_url` `{u}` is not an `http://` or `https://` URL"
                        ))
                    })
            })
            .transpose()?,
        workers,
        tls: baton_server::tls::files(args.tls_cert_file.as_deref(), args.tls_key_file.as_deref())
            .map_err(ExpectedError::Usage)?,
        ..Config::new(args.pipelines.clone(), home.to_path_buf())
    };
    // Scripts and tests wait for this line before talking to the server.
    serve(config, |addr, scheme| {
        let _ = out.print(&format!("baton listening on {scheme}://{addr}\n"));
    })
    .await
    .map_err(|e| ExpectedError::Usage(e.to_string()))?;
    Ok(ExitStatus::Success)
}
