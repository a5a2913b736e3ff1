//! Command-line arguments as clap sees them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "baton",
    version,
    about = "Pipeline orchestrator: durable DAGs of tasks, from a laptop to a fleet",
    long_about = None,
    propagate_version = true,
    arg_required_else_help = true,
    after_help = "Examples:\n  baton run examples/hello.yaml --param who=you\n  baton validate pipelines/\n  baton graph pipelines/etl.yaml --format mermaid\n  baton runs --state failed"
)]
pub(crate) struct Cli {
    /// Where runs, logs and the embedded database live.
    #[arg(
        long,
        global = true,
        env = "BATON_HOME",
        hide_env_values = true,
        default_value = ".baton",
        value_name = "DIR"
    )]
    pub home: PathBuf,
    /// Settings file (default: `./baton.toml` when present); flags and `BATON_*` variables win.
    #[arg(
        long,
        global = true,
        env = "BATON_CONFIG",
        hide_env_values = true,
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// Format of baton's own log on stderr (`BATON_LOG` sets the level, e.g. `debug`).
    #[arg(
        long,
        global = true,
        env = "BATON_LOG_FORMAT",
        hide_env_values = true,
        default_value = "text",
        value_name = "FORMAT"
    )]
    pub log_format: crate::logging::LogFormat,
    /// Talk to this `baton server` instead of the home (trigger, runs, show, logs, cancel,
    /// retry, approve, reject, pool, workers), or work for it (worker).
    #[arg(
        long,
        global = true,
        env = "BATON_SERVER",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub server: Option<String>,
    /// A PEM file of CA certificates to trust for an `https://` --server, besides the system's
    /// (a server with a certificate of its own CA).
    #[arg(long, global = true, env = "BATON_CA_FILE", value_name = "PATH")]
    pub ca_file: Option<std::path::PathBuf>,
    /// The database runs are recorded in: `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB`
    /// (default: `baton.db` in the home). Outputs stay in the home either way; logs too with
    /// SQLite, and in the database with PostgreSQL (`[logs] store`).
    #[arg(
        long,
        global = true,
        env = "BATON_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database: Option<String>,
    /// `[database]` of the config file, besides its url.
    #[arg(skip)]
    pub database_settings: baton_store::DatabaseSettings,
    /// `[logs]` of the config file.
    #[arg(skip)]
    pub logs: baton_store::LogSettings,
    /// Times a task's attempts may be lost to baton itself stopping (a crash, `kill -9`)
    /// before the task fails; attempts that had ended do not count.
    #[arg(
        long,
        global = true,
        env = "BATON_INTERRUPTION_LIMIT",
        hide_env_values = true,
        default_value_t = 5,
        value_parser = clap::value_parser!(u32).range(1..),
        value_name = "N"
    )]
    pub interruption_limit: u32,
    /// How long a run's lease lasts without renewal: a server replica takes over the runs of
    /// an owner that stalls (or dies) for longer.
    #[arg(
        long,
        global = true,
        env = "BATON_LEASE_TTL",
        hide_env_values = true,
        default_value = "30s",
        value_name = "DURATION"
    )]
    pub lease_ttl: baton_core::duration::Duration,
    /// How often a run's owner renews its lease; must be shorter than `--lease-ttl`.
    #[arg(
        long,
        global = true,
        env = "BATON_LEASE_RENEW_INTERVAL",
        hide_env_values = true,
        default_value = "10s",
        value_name = "DURATION"
    )]
    pub lease_renew_interval: baton_core::duration::Duration,
    /// How often a run's owner reads cancel requests and approvals it was not told of.
    #[arg(
        long,
        global = true,
        env = "BATON_CONTROL_INTERVAL",
        hide_env_values = true,
        default_value = "200ms",
        value_name = "DURATION"
    )]
    pub control_interval: baton_core::duration::Duration,
    /// How long a stopped task gets after SIGTERM before its process group is killed.
    #[arg(
        long,
        global = true,
        env = "BATON_KILL_GRACE",
        hide_env_values = true,
        default_value = "10s",
        value_name = "DURATION"
    )]
    pub kill_grace: baton_core::duration::Duration,
    /// A file holding the secret (at least 32 bytes) that signs `http:` steps' requests
    /// (`X-Baton-Signature`); unsigned without one.
    #[arg(
        long,
        global = true,
        env = "BATON_HTTP_SIGNING_SECRET_FILE",
        hide_env_values = true,
        value_name = "PATH"
    )]
    pub http_signing_secret_file: Option<std::path::PathBuf>,
    /// `[traces]` of the config file; the `OTEL_*` variables win over it.
    #[arg(skip)]
    pub traces: baton_observe::traces::TraceSettings,
    /// `[executors.NAME]` of the config file.
    #[arg(skip)]
    pub executors: crate::executors_config::Instances,
    /// `[artifacts]` of the config file.
    #[arg(skip)]
    pub artifacts: baton_engine::artifacts::StoreConfig,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check pipeline files and report every problem with its location.
    #[command(
        after_help = "Examples:\n  baton validate pipelines/\n  baton validate etl.yaml ml.yaml --format json\n\nExit status: 0 when every file is valid, 1 when any has errors."
    )]
    Validate(ValidateArgs),
    /// Print the JSON Schema (draft 2020-12) of pipeline files.
    #[command(
        after_help = "Examples:\n  baton schema > schema/pipeline.schema.json\n\nPoint editors at it with a first line in each pipeline file:\n  # yaml-language-server: $schema=../schema/pipeline.schema.json"
    )]
    Schema,
    /// Show a pipeline's task graph.
    #[command(
        after_help = "Examples:\n  baton graph etl.yaml\n  baton graph etl.yaml --format dot | dot -Tsvg > etl.svg\n  baton graph etl.yaml --format mermaid"
    )]
    Graph(GraphArgs),
    /// Run a pipeline on this machine and watch it.
    #[command(
        after_help = "Examples:\n  baton run examples/hello.yaml\n  baton run etl.yaml --param date=2026-11-01 --parallelism 4\n  baton run etl.yaml --json > run.json\n\nExit status: 0 succeeded, 1 failed, 2 could not start, 130 cancelled."
    )]
    Run(RunArgs),
    /// Continue a run that was interrupted (crash, kill -9, reboot).
    #[command(
        after_help = "Examples:\n  baton resume 01jd5k2x\n\nTasks that succeeded are not run again; attempts that were running are retried."
    )]
    Resume(ResumeArgs),
    /// Start a run of a pipeline the server (or the home) knows, by name.
    #[command(
        after_help = "Examples:\n  baton --server http://127.0.0.1:8080 trigger data/ingest --param date=2026-11-01\n  baton trigger data/ingest --wait\n\nPrints the run's id. With --wait, follows the run and exits like `baton run`: 0 succeeded,\n1 failed, 130 cancelled. Without --server it starts the newest version recorded in the home\nand runs it here, in the foreground."
    )]
    Trigger(TriggerArgs),
    /// List recent runs.
    #[command(
        after_help = "Examples:\n  baton runs\n  baton runs --pipeline nightly-etl --state failed --limit 50"
    )]
    Runs(RunsArgs),
    /// List task instances that failed for good (retries used up), or requeue them.
    #[command(
        args_conflicts_with_subcommands = true,
        after_help = "Examples:\n  baton dead-letters\n  baton dead-letters --pipeline nightly-etl --json\n  baton dead-letters requeue 01jd5k2x extract\n  baton dead-letters requeue --all --pipeline nightly-etl\n\nA dead letter is a failed task of a failed or cancelled run. Requeuing runs it again,\nwith a fresh retry budget, with whatever did not succeed downstream of it."
    )]
    DeadLetters(DeadLettersArgs),
    /// Show a run: tasks, attempts, exit codes, durations and resource use.
    #[command(after_help = "Examples:\n  baton show 01jd5k2x\n  baton show 01jd5k2x --json")]
    Show(ShowArgs),
    /// Print a task's log.
    #[command(
        after_help = "Examples:\n  baton logs 01jd5k2x            # every task\n  baton logs 01jd5k2x extract --attempt 2\n  baton logs 01jd5k2x 'load[eu]' --follow"
    )]
    Logs(LogsArgs),
    /// Run a failed or cancelled run again from its failed tasks (succeeded ones are kept).
    #[command(
        after_help = "Examples:\n  baton retry 01jd5k2x\n\nFailed, cancelled and upstream-failed tasks run again with a fresh retry budget."
    )]
    Retry(RetryArgs),
    /// Cancel a run: running tasks are terminated, the rest do not start.
    #[command(after_help = "Examples:\n  baton cancel 01jd5k2x")]
    Cancel(RunRef),
    /// Serve the REST API and run pipelines from a directory.
    #[command(
        after_help = "Examples:\n  baton server --pipelines pipelines/ --listen 127.0.0.1:8080\n  curl -X POST localhost:8080/api/v1/pipelines/default/hello/runs -H 'content-type: application/json' -d '{\"params\":{}}'\n\nThe API has no authentication yet: baton listens on loopback unless told otherwise."
    )]
    Server(ServerArgs),
    /// Check cron schedules: when do they fire?
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Approve a task waiting at an approval gate.
    #[command(
        after_help = "Examples:\n  baton approve 01jd5k2x release --comment \"checked the canary\""
    )]
    Approve(DecideArgs),
    /// Reject a task waiting at an approval gate; the task fails.
    #[command(
        after_help = "Examples:\n  baton reject 01jd5k2x release --comment \"error rate too high\""
    )]
    Reject(DecideArgs),
    /// Run a pipeline once per schedule tick over a range of logical dates, here and now.
    #[command(
        after_help = "Examples:\n  baton backfill etl.yaml --start 2026-01-01 --end 2026-01-31\n  baton backfill etl.yaml --start 2026-01-01T00:00:00Z --end 2026-01-02T00:00:00Z --parallelism 4 -p region=eu\n\nDates are read in the schedule's time zone; `--end` is inclusive (a date means the whole day).\nPrints one line per run as it ends, then a summary. Exit status: 0 when every run succeeded, 1 otherwise."
    )]
    Backfill(BackfillArgs),
    /// Manage pools: named numbers of slots shared by the tasks that name them (`pool:`).
    #[command(
        subcommand,
        after_help = "Examples:\n  baton pool set gpu --slots 2 --description \"the two GPU boxes\"\n  baton pool list\n  baton pool set gpu --slots 0    # pause: its tasks wait\n  baton pool delete gpu\n\nA pool's slots are shared by every run and every process on the same home or database."
    )]
    Pool(PoolCommand),
    /// Run tasks for a server on this host: a `baton worker` agent.
    #[command(
        after_help = "Examples:\n  baton worker --server http://10.0.0.5:8080 --secret-file /etc/baton/worker-secret --labels gpu,eu --slots 4\n\nThe server runs a task here when every one of its `runs_on` labels is among --labels.\nOn SIGTERM or Ctrl-C the worker stops claiming, lets running tasks finish within\n--drain-grace, then stops the rest (they run again elsewhere)."
    )]
    Worker(WorkerArgs),
    /// List a server's workers and the tasks waiting for one.
    #[command(
        after_help = "Examples:\n  baton --server http://127.0.0.1:8080 workers\n  baton workers --json"
    )]
    Workers(WorkersArgs),
}

#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// A file holding the server's worker secret (its `[workers] secret_file`).
    #[arg(long, env = "BATON_WORKER_SECRET_FILE", value_name = "PATH")]
    pub(crate) secret_file: Option<PathBuf>,
    /// What this worker offers (repeat, or separate with commas): a task runs here when its
    /// `runs_on` labels are all among them.
    #[arg(long, value_delimiter = ',', value_name = "LABEL")]
    pub(crate) labels: Vec<String>,
    /// Tasks run at once.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub(crate) slots: u32,
    /// CPUs the tasks here may ask for in all (`resources.cpu`; default: this host's).
    #[arg(long, value_name = "N")]
    pub(crate) cpus: Option<f64>,
    /// Memory the tasks here may ask for in all (`resources.memory`, `8Gi`; default: this
    /// host's).
    #[arg(long, value_name = "SIZE")]
    pub(crate) memory: Option<String>,
    /// GPUs here (`resources.gpu`); tasks asking for one run only where one is free.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) gpus: u32,
    /// The worker's name in `baton workers` (default: the host name).
    #[arg(long, value_name = "NAME")]
    pub(crate) name: Option<String>,
    /// Where tasks' working directories go while they run (default: `worker/` in the home).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
    /// On SIGTERM, how long running tasks may take to finish before they are stopped.
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    pub(crate) drain_grace: baton_core::duration::Duration,
}

#[derive(Debug, Args)]
pub(crate) struct WorkersArgs {
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PoolCommand {
    /// Create a pool or change its slots.
    Set(PoolSetArgs),
    /// List pools with their slots, slots in use and tasks waiting.
    List(PoolListArgs),
    /// Delete a pool; tasks that ask it for a slot afterwards fail.
    Delete(PoolNameArgs),
}

#[derive(Debug, Args)]
pub(crate) struct PoolSetArgs {
    /// Letters, digits, `.`, `_` and `-`.
    #[arg(value_name = "NAME")]
    pub(crate) name: String,
    /// Tasks of the pool running at once at most; 0 pauses the pool.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub(crate) slots: i64,
    /// What the pool is for (kept when not given).
    #[arg(long)]
    pub(crate) description: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct PoolListArgs {
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PoolNameArgs {
    #[arg(value_name = "NAME")]
    pub(crate) name: String,
}

#[derive(Debug, Args)]
pub(crate) struct BackfillArgs {
    /// The pipeline file (with `--server`: its `namespace/name`); it needs a `schedule:`.
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,
    /// First logical date: RFC 3339, or a date in the schedule's zone.
    #[arg(long, value_name = "TIME")]
    pub(crate) start: String,
    /// Last logical date, inclusive.
    #[arg(long, value_name = "TIME")]
    pub(crate) end: String,
    /// Runs at once (default: the pipeline's `max_active_runs`, else 1).
    #[arg(long, value_name = "N")]
    pub(crate) parallelism: Option<u32>,
    /// A run parameter, `NAME=VALUE`, for every run; repeat for more.
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
    pub(crate) params: Vec<String>,
    /// Which of the pipeline's schedules gives the ticks, from 0.
    #[arg(long, value_name = "INDEX", default_value_t = 0)]
    pub(crate) schedule: usize,
    /// Running again with the same key continues the earlier backfill instead of starting
    /// another.
    #[arg(long, value_name = "KEY")]
    pub(crate) idempotency_key: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The pipeline file.
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,
    /// A run parameter, `NAME=VALUE`; repeat for more.
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
    pub(crate) params: Vec<String>,
    /// Tasks running at once (default: number of cores).
    #[arg(long, value_name = "N")]
    pub(crate) parallelism: Option<usize>,
    /// Print the final run record as JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// Running again with the same key returns the earlier run instead of starting another.
    #[arg(long, value_name = "KEY")]
    pub(crate) idempotency_key: Option<String>,
    /// Run tasks with `cache:` instead of reusing earlier results (new results are stored).
    #[arg(long)]
    pub(crate) no_cache: bool,
    /// `[pools]` of the config file, set before the run starts.
    #[arg(skip)]
    pub(crate) pools: Vec<crate::config_file::PoolSeed>,
}

#[derive(Debug, Args)]
pub(crate) struct ResumeArgs {
    #[arg(value_name = "RUN_ID")]
    pub(crate) run: String,
    #[arg(long, value_name = "N")]
    pub(crate) parallelism: Option<usize>,
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RetryArgs {
    #[arg(value_name = "RUN_ID")]
    pub(crate) run: String,
    #[arg(long, value_name = "N")]
    pub(crate) parallelism: Option<usize>,
    #[arg(long)]
    pub(crate) json: bool,
    /// With --server, follow the run to its end and exit like `baton run` (the local home
    /// always runs it in the foreground).
    #[arg(long)]
    pub(crate) wait: bool,
}

#[derive(Debug, Args)]
pub(crate) struct TriggerArgs {
    /// The pipeline, `namespace/name` (or `name` in the `default` namespace).
    #[arg(value_name = "PIPELINE")]
    pub(crate) pipeline: String,
    /// A run parameter, `NAME=VALUE`; repeat for more.
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
    pub(crate) params: Vec<String>,
    /// Triggering again with the same key returns the earlier run instead of starting another.
    #[arg(long, value_name = "KEY")]
    pub(crate) idempotency_key: Option<String>,
    /// Follow the run to its end and exit like `baton run`.
    #[arg(long)]
    pub(crate) wait: bool,
    /// Run tasks with `cache:` instead of reusing earlier results (new results are stored).
    #[arg(long)]
    pub(crate) no_cache: bool,
    /// Tasks running at once when the run executes here (default: number of cores).
    #[arg(long, value_name = "N")]
    pub(crate) parallelism: Option<usize>,
}

#[derive(Debug, Args)]
pub(crate) struct RunsArgs {
    /// Only runs of this pipeline (`name` or `namespace/name`).
    #[arg(long)]
    pub(crate) pipeline: Option<String>,
    /// Only runs in this state (queued, running, succeeded, failed, cancelled).
    #[arg(long)]
    pub(crate) state: Option<String>,
    /// Only runs created at or after this instant (RFC 3339) or this long ago (`2h`, `3d`).
    #[arg(long, value_name = "WHEN")]
    pub(crate) since: Option<String>,
    /// Only runs created before this instant (RFC 3339) or this long ago.
    #[arg(long, value_name = "WHEN")]
    pub(crate) until: Option<String>,
    #[arg(long, default_value_t = 20)]
    pub(crate) limit: u32,
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DeadLettersArgs {
    #[command(subcommand)]
    pub(crate) command: Option<DeadLettersCommand>,
    #[command(flatten)]
    pub(crate) list: DeadLettersListArgs,
}

#[derive(Debug, Args)]
pub(crate) struct DeadLettersListArgs {
    /// Only dead letters of this pipeline (`name` or `namespace/name`).
    #[arg(long)]
    pub(crate) pipeline: Option<String>,
    #[arg(long, default_value_t = 20)]
    pub(crate) limit: u32,
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeadLettersCommand {
    /// Run dead letters again, and watch their runs.
    #[command(
        after_help = "Examples:\n  baton dead-letters requeue 01jd5k2x extract\n  baton dead-letters requeue 01jd5k2x 'load[eu]'\n  baton dead-letters requeue --all --pipeline nightly-etl\n\nExit status: 0 when every requeued run succeeded, 1 otherwise, 130 cancelled."
    )]
    Requeue(RequeueArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RequeueArgs {
    /// A run id, or a unique prefix of one.
    #[arg(
        value_name = "RUN_ID",
        required_unless_present = "all",
        requires = "task"
    )]
    pub(crate) run: Option<String>,
    /// The failed task (`extract`) or fan-out instance (`load[eu]`).
    #[arg(value_name = "TASK")]
    pub(crate) task: Option<String>,
    /// Every current dead letter (of `--pipeline`, when given).
    #[arg(long, conflicts_with_all = ["run", "task"])]
    pub(crate) all: bool,
    /// With `--all`: only this pipeline's (`name` or `namespace/name`).
    #[arg(long, conflicts_with = "run")]
    pub(crate) pipeline: Option<String>,
    #[arg(long, value_name = "N")]
    pub(crate) parallelism: Option<usize>,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// A run id, or a unique prefix of one.
    #[arg(value_name = "RUN_ID")]
    pub(crate) run: String,
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RunRef {
    /// A run id, or a unique prefix of one.
    #[arg(value_name = "RUN_ID")]
    pub(crate) run: String,
}

#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    #[arg(value_name = "RUN_ID")]
    pub(crate) run: String,
    /// The task (`extract`) or fan-out instance (`load[eu]`); all tasks when left out.
    #[arg(value_name = "TASK")]
    pub(crate) task: Option<String>,
    /// Which attempt (default: the latest).
    #[arg(long, value_name = "N")]
    pub(crate) attempt: Option<u32>,
    /// Keep printing new output until the attempt ends.
    #[arg(long, short = 'f')]
    pub(crate) follow: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DecideArgs {
    #[arg(value_name = "RUN_ID")]
    pub(crate) run: String,
    #[arg(value_name = "TASK")]
    pub(crate) task: String,
    #[arg(long)]
    pub(crate) comment: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReportFormat {
    /// Compiler-style messages for people.
    Text,
    /// One JSON document for editors and CI.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// Pipeline files, or directories to search for `.yaml`/`.yml` files.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Treat warnings as errors.
    #[arg(long)]
    pub deny_warnings: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum GraphFormat {
    /// Tasks in topological layers.
    Text,
    /// Graphviz.
    Dot,
    /// Mermaid flowchart (renders in GitHub and GitLab Markdown).
    Mermaid,
    /// Tasks, edges and order as JSON.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct GraphArgs {
    /// The pipeline file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
    pub format: GraphFormat,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ScheduleCommand {
    /// Print the next fire times of a cron expression, in RFC 3339.
    #[command(
        after_help = "Examples:\n  baton schedule next \"0 2 * * *\" --timezone Europe/Berlin -n 5\n  baton schedule next \"30 2 * * *\" --timezone Europe/Berlin --after 2026-03-28T00:00:00Z\n\nFixed-time jobs that fall into a daylight-saving gap run at the end of the gap; in a\nrepeated hour they run once. Wildcard and step patterns skip the gap and run in both hours."
    )]
    Next(ScheduleNextArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ScheduleNextArgs {
    /// 5 fields (`min hour dom month dow`), an optional leading seconds field, or `@daily` etc.
    #[arg(value_name = "CRON")]
    pub(crate) cron: String,
    /// IANA time zone the cron is read in.
    #[arg(long, default_value = "UTC", value_name = "ZONE")]
    pub(crate) timezone: String,
    /// Start after this instant (RFC 3339) instead of now.
    #[arg(long, value_name = "RFC3339")]
    pub(crate) after: Option<String>,
    /// How many fire times to print.
    #[arg(short = 'n', long = "count", default_value_t = 5)]
    pub(crate) count: usize,
}

#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// Directory of pipeline files (a Git checkout).
    #[arg(
        long,
        env = "BATON_PIPELINES",
        default_value = "pipelines",
        value_name = "DIR"
    )]
    pub(crate) pipelines: PathBuf,
    /// Address to listen on.
    #[arg(
        long,
        env = "BATON_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub(crate) listen: std::net::SocketAddr,
    /// Listen on a non-loopback address although the API has no authentication yet.
    #[arg(long, env = "BATON_ALLOW_REMOTE_UNAUTHENTICATED")]
    pub(crate) allow_remote_unauthenticated: bool,
    /// On SIGTERM, how long running tasks may take to finish before they are stopped (and
    /// retried when the server starts again).
    #[arg(
        long,
        env = "BATON_SHUTDOWN_GRACE",
        default_value = "30s",
        value_name = "DURATION"
    )]
    pub(crate) shutdown_grace: baton_core::duration::Duration,
    /// Most runs a schedule's catch-up creates at once (`catchup: all` after an outage).
    #[arg(long, env = "BATON_CATCHUP_CAP", default_value_t = baton_control::scheduler::DEFAULT_CATCHUP_CAP, value_name = "N")]
    pub(crate) catchup_cap: usize,
    /// Do not reload when pipeline files change (SIGHUP and `POST /api/v1/reload` still do).
    #[arg(long, env = "BATON_NO_WATCH")]
    pub(crate) no_watch: bool,
    /// How often to look for runs nobody drives (a replica that died) and take them over.
    #[arg(
        long,
        env = "BATON_TAKEOVER_INTERVAL",
        default_value = "5s",
        value_name = "DURATION"
    )]
    pub(crate) takeover_interval: baton_core::duration::Duration,
    /// Answer requests addressed to this host name too (`Host` header; repeat, or separate
    /// with commas). `localhost`, `127.0.0.1`, `[::1]` and the listening IP always are.
    #[arg(
        long = "allowed-host",
        env = "BATON_ALLOWED_HOSTS",
        value_delimiter = ',',
        value_name = "HOST"
    )]
    pub(crate) allowed_hosts: Vec<baton_control::hosts::AllowedHost>,
    /// The server's URL as the callees of `http:` steps with `callback` reach it (default:
    /// `http://` and the listening address); its host must be one the server answers.
    #[arg(long, env = "BATON_PUBLIC_URL", value_name = "URL")]
    pub(crate) public_url: Option<String>,
    /// Pass this variable of the server's environment on to tasks (a name, or a prefix ending
    /// in `*`; repeat, or separate with commas). Tasks get only `PATH`, `HOME`, `USER`,
    /// `LOGNAME`, `LANG`, `LC_*`, `TZ` and `TMPDIR` otherwise, and never baton's secrets.
    #[arg(
        long = "inherit-env",
        env = "BATON_INHERIT_ENV",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub(crate) inherit_env: Vec<baton_engine::environment::EnvPattern>,
    /// Threads that run the API, the dispatchers and the copying of tasks' output (default:
    /// one per core, at least 2).
    #[arg(long, env = "BATON_WORKER_THREADS", value_name = "N")]
    pub(crate) worker_threads: Option<std::num::NonZeroUsize>,
    /// `[pools]` of the config file, set before the server starts.
    #[arg(skip)]
    pub(crate) pools: Vec<crate::config_file::PoolSeed>,
    /// Serve the worker API, to `baton worker` agents sending the secret in this file (at
    /// least 32 bytes; `[workers] secret_file`). Without it, the worker API is off.
    #[arg(long, env = "BATON_WORKER_SECRET_FILE", value_name = "PATH")]
    pub(crate) worker_secret_file: Option<PathBuf>,
    /// Serve HTTPS with the certificate chain in this PEM file (with --tls-key-file;
    /// `[server] tls_cert_file`).
    #[arg(long, env = "BATON_TLS_CERT_FILE", value_name = "PATH")]
    pub(crate) tls_cert_file: Option<PathBuf>,
    /// The private key of --tls-cert-file, a PEM file (`[server] tls_key_file`).
    #[arg(long, env = "BATON_TLS_KEY_FILE", value_name = "PATH")]
    pub(crate) tls_key_file: Option<PathBuf>,
    /// How often workers send heartbeats (`[workers] heartbeat`).
    #[arg(long, default_value = "3s", value_name = "DURATION")]
    pub(crate) worker_heartbeat: baton_core::duration::Duration,
    /// How long a worker's lease lasts without a heartbeat: a worker not heard from this long
    /// is given up, and its tasks run elsewhere (`[workers] lease`).
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub(crate) worker_lease: baton_core::duration::Duration,
}
