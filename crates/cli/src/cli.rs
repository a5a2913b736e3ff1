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
    after_help = "Examples:\n  baton validate pipelines/\n  baton graph pipelines/etl.yaml --format mermaid\n  baton schema > pipeline.schema.json"
)]
pub(crate) struct Cli {
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
