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
    /// List recent runs.
    #[command(
        after_help = "Examples:\n  baton runs\n  baton runs --pipeline nightly-etl --state failed --limit 50"
    )]
    Runs(RunsArgs),
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
    Retry(ResumeArgs),
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
}

#[derive(Debug, Args)]
pub(crate) struct BackfillArgs {
    /// The pipeline file; it needs a `schedule:`.
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
pub(crate) struct RunsArgs {
    /// Only runs of this pipeline (`name` or `namespace/name`).
    #[arg(long)]
    pub(crate) pipeline: Option<String>,
    /// Only runs in this state (queued, running, succeeded, failed, cancelled).
    #[arg(long)]
    pub(crate) state: Option<String>,
    #[arg(long, default_value_t = 20)]
    pub(crate) limit: u32,
    #[arg(long)]
    pub(crate) json: bool,
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
    #[arg(long)]
    pub(crate) allow_remote_unauthenticated: bool,
    /// On SIGTERM, how long running tasks may take to finish before they are stopped (and
    /// retried when the server starts again).
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub(crate) shutdown_grace: baton_core::duration::Duration,
}
