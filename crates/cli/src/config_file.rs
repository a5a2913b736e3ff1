//! `baton.toml`: settings that would otherwise be repeated as flags on every start.
//!
//! A setting comes from the first of: its flag, its `BATON_*` environment variable, the config
//! file, the built-in default. The file is `--config FILE` (or `BATON_CONFIG`), else
//! `./baton.toml` when it exists. Relative paths in it are relative to the file, so a checkout
//! can carry its own `baton.toml` and be started from anywhere.

use std::path::{Path, PathBuf};

use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::Deserialize;

use crate::cli::{Cli, Command};
use crate::error::ExpectedError;

/// The file looked for when `--config` is not given.
pub(crate) const DEFAULT_FILE: &str = "baton.toml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    /// Where runs, logs and the embedded database live.
    home: Option<PathBuf>,
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    engine: EngineSection,
    #[serde(default)]
    database: DatabaseSection,
    #[serde(default)]
    logs: LogsSection,
    #[serde(default)]
    http: HttpSection,
    #[serde(default)]
    workers: WorkersSection,
    /// Where attempts' artifacts are kept.
    #[serde(default)]
    artifacts: crate::artifacts_config::ArtifactsSection,
    #[serde(default)]
    traces: baton_observe::traces::TraceSettings,
    /// Where OpenLineage events go; `OPENLINEAGE_*` / `BATON_LINEAGE_FILE` win.
    lineage: Option<crate::observers::LineageSection>,
    /// Executor instances a task's `executor:` names.
    #[serde(default)]
    executors: std::collections::BTreeMap<String, crate::executors_config::ExecutorSection>,
    /// Pool sizes, set at every start of `baton server` and `baton run`.
    #[serde(default)]
    pools: std::collections::BTreeMap<String, PoolEntry>,
}

/// `gpu = 2`, or `gpu = { slots = 2, description = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PoolEntry {
    Slots(i64),
    Table(PoolTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolTable {
    slots: i64,
    description: Option<String>,
}

/// A pool as `[pools]` sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PoolSeed {
    pub(crate) name: String,
    pub(crate) slots: u32,
    pub(crate) description: Option<String>,
}

/// Creates or resizes the pools of `[pools]` (the file is what they should be at start).
pub(crate) async fn seed_pools(
    store: &dyn baton_store::Store,
    seeds: &[PoolSeed],
) -> Result<(), ExpectedError> {
    let now = baton_engine::now_ms();
    for p in seeds {
        store
            .put_pool(&p.name, p.slots, p.description.as_deref(), now)
            .await?;
    }
    Ok(())
}

fn pool_seeds(
    path: &Path,
    pools: std::collections::BTreeMap<String, PoolEntry>,
) -> Result<Vec<PoolSeed>, ExpectedError> {
    pools
        .into_iter()
        .map(|(name, entry)| {
            let (slots, description) = match entry {
                PoolEntry::Slots(n) => (n, None),
                PoolEntry::Table(t) => (t.slots, t.description),
            };
            if let Some(problem) = baton_engine::pool_problem(&name, slots) {
                return Err(ExpectedError::Usage(format!(
                    "invalid config `{}`: [pools] {problem}",
                    path.display()
                )));
            }
            Ok(PoolSeed {
                name,
                slots: u32::try_from(slots).unwrap_or(0),
                description,
            })
        })
        .collect()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    pipelines: Option<PathBuf>,
    listen: Option<std::net::SocketAddr>,
    allow_remote_unauthenticated: Option<bool>,
    #[serde(default, deserialize_with = "parsed")]
    shutdown_grace: Option<baton_core::duration::Duration>,
    catchup_cap: Option<usize>,
    watch: Option<bool>,
    #[serde(default, deserialize_with = "parsed")]
    takeover_interval: Option<baton_core::duration::Duration>,
    #[serde(default, deserialize_with = "parsed_list")]
    allowed_hosts: Option<Vec<baton_control::hosts::AllowedHost>>,
    worker_threads: Option<std::num::NonZeroUsize>,
    /// Serve HTTPS (relative to the config file).
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    public_url: Option<String>,
}

/// `[database]`: where runs are recorded, and how connections to it are made.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DatabaseSection {
    /// `--database` and `BATON_DATABASE_URL` win.
    url: Option<String>,
    max_connections: Option<u32>,
    #[serde(default, deserialize_with = "parsed")]
    connect_timeout: Option<baton_core::duration::Duration>,
    #[serde(default, deserialize_with = "parsed")]
    statement_timeout: Option<baton_core::duration::Duration>,
    #[serde(default, deserialize_with = "parsed")]
    idle_transaction_timeout: Option<baton_core::duration::Duration>,
}

/// `[logs]`: where attempts' logs go, and how much of each is kept.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsSection {
    /// `files` or `database`; by default files with SQLite, the database with PostgreSQL.
    store: Option<baton_store::LogStoreKind>,
    max_bytes_per_attempt: Option<u64>,
}

/// `[http]`: how `http:` steps call out.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpSection {
    /// The file of the secret that signs requests (relative to the config file).
    signing_secret_file: Option<PathBuf>,
}

/// `[workers]`: the worker API of `baton server`, and the secret `baton worker` sends.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkersSection {
    /// The file of the shared worker secret (relative to the config file).
    secret_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "parsed")]
    heartbeat: Option<baton_core::duration::Duration>,
    #[serde(default, deserialize_with = "parsed")]
    lease: Option<baton_core::duration::Duration>,
}

/// `[engine]`: how runs are driven, by `baton run` and `baton server` alike.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EngineSection {
    /// Times a task's attempts may be lost to baton stopping before the task fails.
    interruption_limit: Option<u32>,
    #[serde(default, deserialize_with = "parsed")]
    lease_ttl: Option<baton_core::duration::Duration>,
    #[serde(default, deserialize_with = "parsed")]
    lease_renew_interval: Option<baton_core::duration::Duration>,
    #[serde(default, deserialize_with = "parsed")]
    control_interval: Option<baton_core::duration::Duration>,
    #[serde(default, deserialize_with = "parsed")]
    kill_grace: Option<baton_core::duration::Duration>,
    /// Variables of the server's environment tasks get besides the basics (server only).
    #[serde(default, deserialize_with = "parsed_list")]
    inherit_env: Option<Vec<baton_engine::environment::EnvPattern>>,
}

/// Fills in, from the config file, every setting that neither a flag nor the environment set.
pub(crate) fn apply(matches: &ArgMatches, cli: &mut Cli) -> Result<(), ExpectedError> {
    let Some((path, file)) = read(cli.config.as_deref())? else {
        return Ok(());
    };
    // Relative paths in the file are relative to it, wherever baton was started.
    let base = crate::absolute::absolute(
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )?;
    let base = base.as_path();
    let unset = |m: &ArgMatches, id: &str| {
        matches!(m.value_source(id), None | Some(ValueSource::DefaultValue))
    };
    if let Some(lineage) = file.lineage {
        crate::observers::configure(crate::observers::relative_to(lineage, base));
    }
    if let Some(home) = file.home
        && unset(matches, "home")
    {
        cli.home = base.join(home);
    }
    cli.traces = file.traces;
    let db = file.database;
    if let Some(url) = db.url
        && unset(matches, "database")
    {
        // A relative SQLite path is relative to the file, as the other paths in it are.
        cli.database = Some(relative_sqlite(&url, base));
    }
    let settings = &mut cli.database_settings;
    if let Some(n) = db.max_connections {
        if n == 0 {
            return Err(ExpectedError::Usage(format!(
                "invalid config `{}`: [database] `max_connections` must be at least 1",
                path.display()
            )));
        }
        settings.max_connections = n;
    }
    if let Some(t) = db.connect_timeout {
        settings.connect_timeout = t.as_std();
    }
    if let Some(t) = db.statement_timeout {
        settings.statement_timeout = Some(t.as_std());
    }
    if let Some(t) = db.idle_transaction_timeout {
        settings.idle_transaction_timeout = t.as_std();
    }
    cli.logs.store = file.logs.store;
    if let Some(n) = file.logs.max_bytes_per_attempt {
        if n == 0 {
            return Err(ExpectedError::Usage(format!(
                "invalid config `{}`: [logs] `max_bytes_per_attempt` must be at least 1",
                path.display()
            )));
        }
        cli.logs.max_bytes_per_attempt = n;
    }
    if let Some(limit) = file.engine.interruption_limit
        && unset(matches, "interruption_limit")
    {
        if limit == 0 {
            return Err(ExpectedError::Usage(format!(
                "invalid config `{}`: [engine] `interruption_limit` must be at least 1",
                path.display()
            )));
        }
        cli.interruption_limit = limit;
    }
    let e = &file.engine;
    for (value, id, setting) in [
        (e.lease_ttl, "lease_ttl", &mut cli.lease_ttl),
        (
            e.lease_renew_interval,
            "lease_renew_interval",
            &mut cli.lease_renew_interval,
        ),
        (
            e.control_interval,
            "control_interval",
            &mut cli.control_interval,
        ),
        (e.kill_grace, "kill_grace", &mut cli.kill_grace),
    ] {
        if let Some(v) = value
            && unset(matches, id)
        {
            *setting = v;
        }
    }
    if let Some(secret) = &file.http.signing_secret_file
        && unset(matches, "http_signing_secret_file")
    {
        cli.http_signing_secret_file = Some(base.join(secret));
    }
    cli.executors = crate::executors_config::instances(&path, file.executors, cli.kill_grace)?;
    cli.artifacts = crate::artifacts_config::store(&path, base, file.artifacts)?;
    let seeds = pool_seeds(&path, file.pools)?;
    match &mut cli.command {
        Command::Run(args) => args.pools = seeds,
        Command::Server(args) => args.pools = seeds,
        _ => {}
    }
    if let Command::Server(args) = &mut cli.command
        && let Some(m) = matches.subcommand_matches("server")
    {
        if let Some(v) = file.engine.inherit_env
            && unset(m, "inherit_env")
        {
            args.inherit_env = v;
        }
        let s = file.server;
        if let Some(v) = s.pipelines
            && unset(m, "pipelines")
        {
            args.pipelines = base.join(v);
        }
        if let Some(v) = s.listen
            && unset(m, "listen")
        {
            args.listen = v;
        }
        if let Some(v) = s.allow_remote_unauthenticated
            && unset(m, "allow_remote_unauthenticated")
        {
            args.allow_remote_unauthenticated = v;
        }
        if let Some(v) = s.shutdown_grace
            && unset(m, "shutdown_grace")
        {
            args.shutdown_grace = v;
        }
        if let Some(v) = s.catchup_cap
            && unset(m, "catchup_cap")
        {
            args.catchup_cap = v;
        }
        if let Some(v) = s.watch
            && unset(m, "no_watch")
        {
            args.no_watch = !v;
        }
        if let Some(v) = s.takeover_interval
            && unset(m, "takeover_interval")
        {
            args.takeover_interval = v;
        }
        if let Some(v) = s.allowed_hosts
            && unset(m, "allowed_hosts")
        {
            args.allowed_hosts = v;
        }
        if let Some(v) = s.worker_threads
            && unset(m, "worker_threads")
        {
            args.worker_threads = Some(v);
        }
        if let Some(v) = s.public_url
            && unset(m, "public_url")
        {
            args.public_url = Some(v);
        }
        if let Some(v) = s.tls_cert_file
            && unset(m, "tls_cert_file")
        {
            args.tls_cert_file = Some(base.join(v));
        }
        if let Some(v) = s.tls_key_file
            && unset(m, "tls_key_file")
        {
            args.tls_key_file = Some(base.join(v));
        }
        let w = &file.workers;
        if let Some(v) = &w.secret_file
            && unset(m, "worker_secret_file")
        {
            args.worker_secret_file = Some(base.join(v));
        }
        if let Some(v) = w.heartbeat
            && unset(m, "worker_heartbeat")
        {
            args.worker_heartbeat = v;
        }
        if let Some(v) = w.lease
            && unset(m, "worker_lease")
        {
            args.worker_lease = v;
        }
    }
    if let Command::Worker(args) = &mut cli.command
        && let Some(m) = matches.subcommand_matches("worker")
        && let Some(v) = &file.workers.secret_file
        && unset(m, "secret_file")
    {
        args.secret_file = Some(base.join(v));
    }
    Ok(())
}

/// `sqlite://PATH` with a relative `PATH` made relative to `base`; other URLs as they are.
fn relative_sqlite(url: &str, base: &Path) -> String {
    match url.strip_prefix("sqlite://") {
        Some(path) if !path.starts_with('/') => format!("sqlite://{}", base.join(path).display()),
        _ => url.to_owned(),
    }
}

/// A value written as a string the way its flag takes it (`"30s"`).
pub(crate) fn parsed<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let s = String::deserialize(d)?;
    s.parse().map(Some).map_err(serde::de::Error::custom)
}

/// A list of values each written as its flag takes it (`["baton.example.com"]`).
fn parsed_list<'de, D, T>(d: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .collect::<Result<_, _>>()
        .map(Some)
}

/// Reads the config file: the named one (which must exist), else `./baton.toml` if present.
fn read(explicit: Option<&Path>) -> Result<Option<(PathBuf, ConfigFile)>, ExpectedError> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None if Path::new(DEFAULT_FILE).is_file() => PathBuf::from(DEFAULT_FILE),
        None => return Ok(None),
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ExpectedError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let file = toml::from_str(&text).map_err(|e| {
        ExpectedError::Usage(format!(
            "invalid config `{}`: {}",
            located(&path, &text, &e),
            e.message()
        ))
    })?;
    Ok(Some((path, file)))
}

/// `file:line:col` of a TOML error, as editors jump to.
fn located(path: &Path, text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return path.display().to_string();
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("{}:{line}:{column}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        let e = toml::from_str::<ConfigFile>(text).expect_err("invalid");
        format!(
            "{}: {}",
            located(Path::new("baton.toml"), text, &e),
            e.message()
        )
    }

    #[test]
    fn errors_name_the_place_and_the_problem() {
        assert_eq!(
            error_of("home = \"h\"\n[server]\nlistn = \"127.0.0.1:1\"\n"),
            "baton.toml:3:1: unknown field `listn`, expected one of `pipelines`, `listen`, `allow_remote_unauthenticated`, `shutdown_grace`, `catchup_cap`, `watch`, `takeover_interval`, `allowed_hosts`, `worker_threads`, `tls_cert_file`, `tls_key_file`, `public_url`"
        );
        assert_eq!(
            error_of("[server]\nlisten = \"localhost\"\n"),
            "baton.toml:2:10: invalid socket address syntax"
        );
        assert_eq!(
            error_of("[server]\ncatchup_cap = -1\n"),
            "baton.toml:2:15: invalid value: integer `-1`, expected usize"
        );
        assert!(
            error_of("[server]\nshutdown_grace = \"soon\"\n").starts_with("baton.toml:2:18: "),
            "{}",
            error_of("[server]\nshutdown_grace = \"soon\"\n")
        );
    }

    #[test]
    fn the_http_section_names_a_signing_secret() {
        let f: ConfigFile =
            toml::from_str("[http]\nsigning_secret_file = \"secrets/http\"\n").expect("valid");
        assert_eq!(
            f.http.signing_secret_file.as_deref(),
            Some(Path::new("secrets/http"))
        );
        assert_eq!(
            error_of("[http]\nsigning_secret = \"x\"\n"),
            "baton.toml:2:1: unknown field `signing_secret`, expected `signing_secret_file`"
        );
    }

    #[test]
    fn every_setting_parses() {
        let f: ConfigFile = toml::from_str(
            "home = \"/var/lib/baton\"\n[server]\npipelines = \"p\"\nlisten = \"127.0.0.1:9\"\nallow_remote_unauthenticated = true\nshutdown_grace = \"5s\"\ncatchup_cap = 7\nwatch = false\ntakeover_interval = \"1s\"\nallowed_hosts = [\"baton.example.com\", \"[::1]:9\"]\nworker_threads = 3\n",
        )
        .expect("valid");
        assert_eq!(f.home, Some(PathBuf::from("/var/lib/baton")));
        assert_eq!(f.server.catchup_cap, Some(7));
        assert_eq!(
            f.server.takeover_interval.map(|d| d.as_std()),
            Some(std::time::Duration::from_secs(1))
        );
        assert_eq!(f.server.watch, Some(false));
        assert_eq!(
            f.server.worker_threads.map(std::num::NonZeroUsize::get),
            Some(3)
        );
        let engine: ConfigFile =
            toml::from_str("[engine]\ninterruption_limit = 3\n").expect("valid");
        assert_eq!(engine.engine.interruption_limit, Some(3));
        let leases: ConfigFile = toml::from_str(
            "[engine]\nlease_ttl = \"2s\"\nlease_renew_interval = \"500ms\"\ncontrol_interval = \"50ms\"\nkill_grace = \"1s\"\n",
        )
        .expect("valid");
        let e = &leases.engine;
        assert_eq!(
            [
                e.lease_ttl,
                e.lease_renew_interval,
                e.control_interval,
                e.kill_grace
            ]
            .map(|d| d.map(|d| d.as_millis())),
            [Some(2_000), Some(500), Some(50), Some(1_000)]
        );
        assert_eq!(
            error_of("[engine]\ninterruption_limt = 3\n"),
            "baton.toml:2:1: unknown field `interruption_limt`, expected one of `interruption_limit`, `lease_ttl`, `lease_renew_interval`, `control_interval`, `kill_grace`, `inherit_env`"
        );
        assert_eq!(
            f.server
                .allowed_hosts
                .map(|h| h.iter().map(ToString::to_string).collect::<Vec<_>>()),
            Some(vec!["baton.example.com".to_owned(), "[::1]:9".to_owned()])
        );
        assert!(
            error_of("[server]\nallowed_hosts = [\"http://x\"]\n")
                .starts_with("baton.toml:2:17: invalid allowed host `http://x`"),
            "{}",
            error_of("[server]\nallowed_hosts = [\"http://x\"]\n")
        );
        assert_eq!(
            f.server.shutdown_grace.map(|d| d.as_std()),
            Some(std::time::Duration::from_secs(5))
        );
        let logs: ConfigFile =
            toml::from_str("[logs]\nstore = \"database\"\nmax_bytes_per_attempt = 1048576\n")
                .expect("valid");
        assert_eq!(
            (logs.logs.store, logs.logs.max_bytes_per_attempt),
            (Some(baton_store::LogStoreKind::Database), Some(1_048_576))
        );
        assert_eq!(
            error_of("[logs]\nstore = \"s3\"\n"),
            "baton.toml:2:9: unknown variant `s3`, expected `files` or `database`"
        );
        let workers: ConfigFile = toml::from_str(
            "[workers]\nsecret_file = \"s\"\nheartbeat = \"1s\"\nlease = \"5s\"\n[server]\ntls_cert_file = \"c.pem\"\ntls_key_file = \"k.pem\"\n",
        )
        .expect("valid");
        let w = &workers.workers;
        assert_eq!(
            (
                w.secret_file.clone(),
                w.heartbeat.map(|d| d.as_millis()),
                w.lease.map(|d| d.as_millis())
            ),
            (Some(PathBuf::from("s")), Some(1_000), Some(5_000))
        );
        assert_eq!(workers.server.tls_key_file, Some(PathBuf::from("k.pem")));
        assert_eq!(
            error_of("[workers]\nsecret = \"x\"\n"),
            "baton.toml:2:1: unknown field `secret`, expected one of `secret_file`, `heartbeat`, `lease`"
        );
    }

    #[test]
    fn inherit_env_takes_names_and_prefixes_but_no_secret() {
        let f: ConfigFile =
            toml::from_str("[engine]\ninherit_env = [\"AWS_PROFILE\", \"GOOGLE_*\"]\n")
                .expect("valid");
        assert_eq!(
            f.engine
                .inherit_env
                .map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>()),
            Some(vec!["AWS_PROFILE".to_owned(), "GOOGLE_*".to_owned()])
        );
        assert_eq!(
            error_of("[engine]\ninherit_env = [\"OPENLINEAGE_API_KEY\"]\n"),
            "baton.toml:2:15: `inherit_env` entry `OPENLINEAGE_API_KEY` would pass baton's secret `OPENLINEAGE_API_KEY` to every task\n(hint: give a task what it needs in its `env:` instead)"
        );
    }

    #[test]
    fn pools_are_a_number_or_a_table_and_are_checked() {
        let f: ConfigFile =
            toml::from_str("[pools]\ngpu = 2\netl = { slots = 4, description = \"warehouse\" }\n")
                .expect("valid");
        let seeds = pool_seeds(Path::new("baton.toml"), f.pools).expect("good pools");
        assert_eq!(
            seeds,
            [
                PoolSeed {
                    name: "etl".into(),
                    slots: 4,
                    description: Some("warehouse".into()),
                },
                PoolSeed {
                    name: "gpu".into(),
                    slots: 2,
                    description: None,
                },
            ]
        );
        let f: ConfigFile = toml::from_str("[pools]\ngpu = -1\n").expect("parses");
        let e = pool_seeds(Path::new("baton.toml"), f.pools).expect_err("negative");
        assert!(
            e.to_string()
                .starts_with("invalid config `baton.toml`: [pools] `slots` must be between 0"),
            "{e}"
        );
        assert!(toml::from_str::<ConfigFile>("[pools]\ngpu = { slots = 1, size = 2 }\n").is_err());
    }

    #[test]
    fn the_traces_section_parses_and_refuses_unknown_protocols() {
        let f: ConfigFile = toml::from_str(
            "[traces]\notlp_endpoint = \"http://127.0.0.1:4317\"\nprotocol = \"grpc\"\nservice_name = \"etl\"\n",
        )
        .expect("valid");
        assert_eq!(
            f.traces,
            baton_observe::traces::TraceSettings {
                otlp_endpoint: Some("http://127.0.0.1:4317".into()),
                protocol: Some(baton_observe::traces::Protocol::Grpc),
                service_name: Some("etl".into()),
            }
        );
        assert_eq!(
            error_of("[traces]\nprotocol = \"http/json\"\n"),
            "baton.toml:2:12: unsupported OTLP protocol `http/json`\n(hint: use `grpc` or `http/protobuf`)"
        );
    }
}
