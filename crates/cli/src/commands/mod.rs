//! One module per subcommand.

mod backfill;
mod dead_letters;
mod graph;
mod inspect;
mod live;
mod pool;
mod run;
mod schedule;
mod schema;
#[cfg(feature = "server")]
mod server;
mod trigger;
mod validate;
mod worker;

use std::num::NonZeroUsize;
use std::time::Duration;

use baton_engine::Observers;
use baton_observe::traces::{TraceSettings, Traces};

use crate::backend::{Backend, HomeUse};
use crate::cli::{Cli, Command, PoolCommand};
use crate::error::{ExitStatus, ExpectedError};
use crate::output::Output;

pub(crate) fn dispatch(cli: Cli, out: &mut Output) -> Result<ExitStatus, ExpectedError> {
    let (home, server) = (&cli.home, cli.server.as_deref());
    let local = (home.as_path(), home_use(&cli.command));
    let engine = crate::backend::EngineSettings::of(&cli)?;
    crate::backend::configure_engine(engine.clone());
    crate::backend::configure_database(baton_store::Database {
        url: cli.database.clone(),
        settings: cli.database_settings.clone(),
    });
    if let Some(ca) = &cli.ca_file {
        crate::client::trust_ca_file(ca);
    }
    let traces = &cli.traces;
    let threads = Threads::of(&cli.command);
    match &cli.command {
        Command::Validate(args) => validate::run(args, out),
        Command::Schema => schema::run(out),
        Command::Graph(args) => graph::run(args, out),
        Command::Run(args) if server.is_some() => {
            with_backend(threads, local, server, traces, out, async |b, out| {
                run::on_server(b, args, out).await
            })
        }
        Command::Run(args) => with_engine(threads, traces, Standard::Here, async |o| {
            run::run(home, args, o, out).await
        }),
        Command::Resume(args) => with_engine(threads, traces, Standard::Here, async |o| {
            run::resume(home, args, o, out).await
        }),
        Command::Trigger(args) => {
            with_backend(threads, local, server, traces, out, async |b, out| {
                trigger::run(b, args, out).await
            })
        }
        Command::Retry(args) => {
            with_backend(threads, local, server, traces, out, async |b, out| {
                run::retry(b, args, out).await
            })
        }
        Command::Runs(args) => with_backend(threads, local, server, traces, out, async |b, out| {
            inspect::runs(b, args, out).await
        }),
        Command::DeadLetters(args) => {
            with_backend(threads, local, server, traces, out, async |b, out| {
                dead_letters::run(b, args, out).await
            })
        }
        Command::Show(args) => with_backend(threads, local, server, traces, out, async |b, out| {
            inspect::show(b, args, out).await
        }),
        Command::Logs(args) => with_backend(threads, local, server, traces, out, async |b, out| {
            inspect::logs(b, args, out).await
        }),
        Command::Cancel(args) => {
            with_backend(threads, local, server, traces, out, async |b, out| {
                run::cancel(b, args, out).await
            })
        }
        // The server builds the standard observers itself.
        #[cfg(feature = "server")]
        Command::Server(args) => with_engine(threads, traces, Standard::InServer, async |o| {
            server::run(home, engine, args, o, out).await
        }),
        #[cfg(not(feature = "server"))]
        Command::Server(_) => Err(ExpectedError::Usage(
            "this baton was built without `baton server` (hint: build it with the default `server` feature)".into(),
        )),
        Command::Schedule(crate::cli::ScheduleCommand::Next(args)) => schedule::next(args, out),
        Command::Approve(args) => {
            with_backend(threads, local, server, traces, out, async |b, out| {
                run::decide(b, args, true, out).await
            })
        }
        Command::Reject(args) => {
            with_backend(threads, local, server, traces, out, async |b, out| {
                run::decide(b, args, false, out).await
            })
        }
        Command::Backfill(args) => {
            with_backend(threads, local, server, traces, out, async |b, out| {
                backfill::run(b, args, out).await
            })
        }
        Command::Pool(command) => {
            with_backend(threads, local, server, traces, out, async |b, out| {
                pool::run(b, command, out).await
            })
        }
        Command::Worker(args) => with_runtime(threads, worker::work(home, server, args, out)),
        Command::Workers(args) => with_runtime(threads, worker::list(server, args, out)),
    }
}

/// Whether the command may create the home: only those that record something new do. A new
/// command only reads until it is listed here.
fn home_use(command: &Command) -> HomeUse {
    match command {
        Command::Run(_)
        | Command::Backfill(_)
        | Command::Server(_)
        | Command::Pool(PoolCommand::Set(_)) => HomeUse::Create,
        _ => HomeUse::Existing,
    }
}

/// The threads of a command's runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Threads {
    /// For a one-shot answer, which starts soonest with no thread to start but the caller.
    One,
    /// For a command that drives runs, serves or follows: copying tasks' output, spawning
    /// processes and answering requests go on side by side, so one busy run does not hold up
    /// the rest (or the API). `None` is as many as there are cores, at least 2.
    Many(Option<NonZeroUsize>),
}

impl Threads {
    fn of(command: &Command) -> Self {
        match command {
            Command::Server(args) => Self::Many(args.worker_threads),
            Command::Run(_)
            | Command::Resume(_)
            | Command::Trigger(_)
            | Command::Retry(_)
            | Command::Backfill(_)
            | Command::Worker(_) => Self::Many(None),
            Command::Logs(args) if args.follow => Self::Many(None),
            _ => Self::One,
        }
    }
}

fn with_runtime(
    threads: Threads,
    f: impl std::future::Future<Output = Result<ExitStatus, ExpectedError>>,
) -> Result<ExitStatus, ExpectedError> {
    let mut builder = match threads {
        Threads::One => tokio::runtime::Builder::new_current_thread(),
        Threads::Many(n) => {
            let n = n.map_or_else(
                || std::thread::available_parallelism().map_or(2, NonZeroUsize::get),
                NonZeroUsize::get,
            );
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n.max(2)).thread_name("baton-worker");
            b
        }
    };
    builder
        .enable_all()
        .build()
        .map_err(ExpectedError::Write)?
        .block_on(f)
}

/// Runs a command that works on the home or, with `--server`, on a server.
fn with_backend(
    threads: Threads,
    (home, usage): (&std::path::Path, HomeUse),
    server: Option<&str>,
    traces: &TraceSettings,
    out: &mut Output,
    f: impl AsyncFnOnce(&Backend, &mut Output) -> Result<ExitStatus, ExpectedError>,
) -> Result<ExitStatus, ExpectedError> {
    let open = async |observers: &Observers| {
        let backend = Backend::open(home, usage, server, observers).await?;
        f(&backend, out).await
    };
    match server {
        // A server drives the runs, and traces them.
        Some(_) => with_runtime(threads, open(&Observers::default())),
        None => with_engine(threads, traces, Standard::Here, open),
    }
}

/// How long spans, notifications and lineage events may take to leave once a command is done.
const FLUSH: Duration = Duration::from_secs(5);

/// Who builds the standard observers (notifications, deadlines, lineage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standard {
    /// This command, for the runs it drives.
    Here,
    /// The server it starts, which builds them for the runs it drives.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    InServer,
}

/// Runs a command that may drive runs in this process, with its observers (traces when
/// configured, notifications, deadlines, lineage) running while it does, and what they queued
/// sent before it returns.
fn with_engine(
    threads: Threads,
    traces: &TraceSettings,
    standard: Standard,
    f: impl AsyncFnOnce(&Observers) -> Result<ExitStatus, ExpectedError>,
) -> Result<ExitStatus, ExpectedError> {
    // Descendants that tasks leave behind come to baton, which reaps them, rather than to
    // PID 1 (see `executor::become_subreaper`).
    if let Err(e) = baton_engine::executor::become_subreaper() {
        tracing::debug!("cannot become a child subreaper: {e}");
    }
    with_runtime(threads, async move {
        let traces = Traces::start(traces).map_err(|e| ExpectedError::Usage(e.to_string()))?;
        let mut observers = traces
            .as_ref()
            .map(|t| Observers::default().with(t.observer()))
            .unwrap_or_default();
        let outbox = match standard {
            Standard::Here => {
                let (more, outbox) = crate::observers::standard()?;
                observers.push(std::sync::Arc::new(more));
                Some(outbox)
            }
            Standard::InServer => None,
        };
        let outcome = f(&observers).await;
        if let Some(outbox) = outbox
            && !outbox.settle(FLUSH).await
        {
            tracing::warn!(
                pending = outbox.pending(),
                "notifications and lineage events still unsent at exit"
            );
        }
        if let Some(traces) = traces {
            traces.shutdown(FLUSH).await;
        }
        outcome
    })
}
