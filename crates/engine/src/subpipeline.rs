//! Sub-pipeline tasks: each attempt starts a child run of another pipeline and waits for it.
//!
//! The wait is a watch of the child's state in the store, never of memory, so whoever owns
//! the parent (this process, a resumed one, another replica) can take it up again: the child
//! of an attempt is found by its parent link before anything is created, and it is created
//! with an idempotency key made of parent run, task and attempt.

use std::sync::Arc;
use std::time::Duration;

use baton_core::Pipeline;
use baton_core::ids::{Identifier, PipelineId, RunId, TaskKey};
use baton_core::spec::ParamType;
use baton_core::state::RunState;
use baton_store::{ParentRef, RunRecord, Store};
use serde_json::{Map, Value as Json};
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::now_ms;
use crate::dispatcher::{Progress, Stop};
use crate::executor::{CancelHandle, Finished, LogSink, Outcome};

/// How often a parent reads its child's state when nothing announces a change, with the
/// store's listener for other processes connected (PostgreSQL) and without it.
const QUIET_FALLBACK: Duration = Duration::from_secs(5);
const LOCAL_FALLBACK: Duration = Duration::from_secs(1);

/// A pipeline a sub-pipeline task can start, as its source defines it now.
#[derive(Debug, Clone)]
pub struct Definition {
    pub pipeline: Arc<Pipeline>,
    pub source: Arc<str>,
    /// The file it was read from, recorded with the run.
    pub path: Option<String>,
    /// The directory the child run's commands run in.
    pub base_dir: String,
}

/// Where sub-pipeline tasks find the pipelines they start: the server's catalog, or the
/// directory of the file `baton run` was given.
#[async_trait::async_trait]
pub trait Pipelines: Send + Sync + std::fmt::Debug {
    /// The valid definition of `id`, if there is one.
    async fn get(&self, id: &PipelineId) -> Option<Definition>;
    /// Where [`Pipelines::get`] looks, for the error of a pipeline it does not find
    /// (`the pipelines directory /srv/pipelines`).
    fn looked_in(&self) -> String;
}

/// Who drives the child runs sub-pipeline tasks start: a server's runner, or
/// [`execute_with_children`] in the parent's process.
pub trait ChildRunner: Send + Sync + std::fmt::Debug {
    /// Makes sure `run` is driven to its end. It may be driven already (by this process,
    /// or by another one after a resume): that is not an error.
    fn drive(&self, run: &RunId);
    /// Whether child runs join their pipeline's `concurrency` group and wait for admission,
    /// as runs the server starts do (`baton run` starts them at once).
    fn admits(&self) -> bool;
}

/// One attempt of a sub-pipeline task, rendered.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) parent: RunId,
    pub(crate) parent_logical_date: Option<String>,
    pub(crate) no_cache: bool,
    pub(crate) key: TaskKey,
    pub(crate) attempt: u32,
    /// When the attempt started: a `timeout` counts from here, across resumes.
    pub(crate) started_at: i64,
    pub(crate) pipeline: PipelineId,
    pub(crate) params: Map<String, Json>,
    pub(crate) log: LogSink,
    pub(crate) timeout: Option<Duration>,
    /// The task's declared outputs, taken from the child's tasks when it succeeds.
    pub(crate) outputs: Vec<Identifier>,
}

/// What an attempt's watch needs from its dispatcher.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) pipelines: Option<Arc<dyn Pipelines>>,
    pub(crate) runner: Option<Arc<dyn ChildRunner>>,
    pub(crate) poll: Duration,
    pub(crate) progress: Option<mpsc::UnboundedSender<Progress>>,
}

/// Starts watching an attempt's child run (creating it first when it has none); the outcome
/// arrives on `done` like an executor's. The abort handle lets a drain drop the watch without
/// touching the child, which the next owner of the parent takes up again.
pub(crate) fn start(
    ctx: Context,
    call: Call,
    done: mpsc::UnboundedSender<Finished>,
) -> (CancelHandle, tokio::task::AbortHandle) {
    let (handle, cancel) = CancelHandle::new();
    let task = tokio::spawn(async move {
        let mut outputs = String::new();
        let outcome = attend(&ctx, &call, cancel, &mut outputs).await;
        let _ = done.send(Finished {
            key: call.key,
            attempt: call.attempt,
            outcome,
            rusage: None,
            outputs: crate::executor::Outputs::Text(outputs),
            artifacts: None,
        });
    });
    (handle, task.abort_handle())
}

/// The attempt's log: what happened to its child run, in words.
/// A few lines, so neither batched nor capped; a line that cannot be kept is only missed.
struct Log<'a> {
    sink: &'a LogSink,
    /// The log's length: a resumed watch goes on after what an earlier one wrote.
    len: u64,
}

impl<'a> Log<'a> {
    async fn open(sink: &'a LogSink) -> Self {
        let len = sink.store.len(&sink.log).await.unwrap_or_default();
        Self { sink, len }
    }

    async fn line(&mut self, text: &str) {
        let line = format!("baton: {text}\n");
        let appended = self
            .sink
            .store
            .append(
                &self.sink.log,
                self.sink.lease.as_ref(),
                self.len,
                line.as_bytes(),
            )
            .await;
        match appended {
            Ok(()) => self.len += line.len() as u64,
            Err(e) => tracing::warn!(error = %e, "cannot write a sub-pipeline task's log"),
        }
    }
}

/// Watches the attempt's child run to its end; its outputs, on success, go to `outputs`.
async fn attend(
    ctx: &Context,
    call: &Call,
    mut cancel: oneshot::Receiver<()>,
    outputs: &mut String,
) -> Outcome {
    let mut log = Log::open(&call.log).await;
    let Some(runner) = ctx.runner.clone() else {
        let e = format!(
            "sub-pipeline `{}` cannot run here: nothing drives child runs in this process",
            call.pipeline
        );
        log.line(&e).await;
        return Outcome::Error(e);
    };
    let child = match find_or_create(ctx, call, runner.as_ref(), &mut log).await {
        Ok(child) => child,
        Err(e) => {
            log.line(&e).await;
            return Outcome::Error(e);
        }
    };
    let id = child.id.clone();
    tell(ctx, call, &id, child.state);
    if !child.state.is_final() {
        runner.drive(&id);
    }
    let deadline = call.timeout.map(|t| {
        let ms = i64::try_from(t.as_millis()).unwrap_or(i64::MAX);
        let left = call.started_at.saturating_add(ms).saturating_sub(now_ms());
        tokio::time::Instant::now() + Duration::from_millis(u64::try_from(left).unwrap_or(0))
    });
    let (mut cancelled, mut timed_out, mut cancel_open) = (false, false, true);
    // The child's commits wake this watch; the tick is for what the store does not announce
    // (another process's commits on SQLite, a listener that is down).
    let mut changes = ctx.store.changes();
    let fallback = if changes.hears_others() {
        ctx.poll.max(QUIET_FALLBACK)
    } else {
        ctx.poll.max(LOCAL_FALLBACK)
    };
    let mut tick = tokio::time::interval(fallback);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ended = loop {
        changes.clear();
        match ctx.store.run(&id).await {
            Ok(Some(r)) if r.state.is_final() => break r,
            Ok(Some(_)) => {}
            Ok(None) => {
                let e = format!("sub-pipeline run `{id}` no longer exists");
                log.line(&e).await;
                return Outcome::Error(e);
            }
            // The database may be back at the next look; the child goes on meanwhile.
            Err(e) => {
                tracing::warn!(run = %call.parent, child = %id, error = %e, "cannot read child run")
            }
        }
        let timer = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tick.tick() => {}
            () = changes.changed(&id) => {}
            r = &mut cancel, if cancel_open => {
                cancel_open = false;
                // A dropped handle is not a request: only a message is.
                if r.is_ok() && !timed_out {
                    cancelled = true;
                    log.line(&format!("cancelling run {id}: this task was cancelled")).await;
                    stop_child(ctx, runner.as_ref(), &id).await;
                }
            }
            () = timer, if !timed_out && !cancelled => {
                timed_out = true;
                log.line(&format!("cancelling run {id}: this task timed out")).await;
                stop_child(ctx, runner.as_ref(), &id).await;
            }
        }
    };
    tell(ctx, call, &id, ended.state);
    log.line(&format!("run {id} {}", ended.state)).await;
    match ended.state {
        RunState::Succeeded if !timed_out => {
            match pass_outputs(ctx, call, &id).await {
                Ok(text) => *outputs = text,
                Err(e) => {
                    log.line(&e).await;
                    return Outcome::Error(e);
                }
            }
            Outcome::Exited {
                exit_code: Some(0),
                signal: None,
            }
        }
        _ if timed_out => Outcome::TimedOut,
        RunState::Cancelled if cancelled => Outcome::Cancelled,
        state => {
            let why = ended.error.map(|e| format!(" ({e})")).unwrap_or_default();
            Outcome::Error(format!("sub-pipeline run `{id}` {state}{why}"))
        }
    }
}

/// The task's declared outputs, as the child's tasks produced them, in `$BATON_OUTPUTS`
/// syntax (parsed as a command's would be). A name several child tasks output is taken from the last of them in the
/// child's order (usually the most downstream); a name none outputs stays unset.
async fn pass_outputs(ctx: &Context, call: &Call, child: &RunId) -> Result<String, String> {
    if call.outputs.is_empty() {
        return Ok(String::new());
    }
    let mut tasks = ctx
        .store
        .tasks(child)
        .await
        .map_err(|e| format!("cannot read the outputs of run `{child}`: {e}"))?;
    tasks.sort_by_key(|t| t.position);
    let mut text = String::new();
    for name in &call.outputs {
        let value = tasks
            .iter()
            .rev()
            .find_map(|t| t.outputs.as_ref().and_then(|o| o.get(name.as_str())));
        let Some(value) = value else { continue };
        let value = match value {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        };
        text.push_str(&output_line(name.as_str(), &value));
    }
    Ok(text)
}

/// One output in `$BATON_OUTPUTS` syntax: `name=value`, or a heredoc when the value spans
/// lines, with a delimiter the value does not contain.
fn output_line(name: &str, value: &str) -> String {
    if !value.contains('\n') {
        return format!("{name}={value}\n");
    }
    let mut delimiter = String::from("BATON_EOF");
    while value.lines().any(|l| l == delimiter) {
        delimiter.push('_');
    }
    format!("{name}<<{delimiter}\n{value}\n{delimiter}\n")
}

fn tell(ctx: &Context, call: &Call, run: &RunId, state: RunState) {
    if let Some(tx) = &ctx.progress {
        let _ = tx.send(Progress::Child {
            key: call.key.clone(),
            run: run.clone(),
            pipeline: call.pipeline.clone(),
            state,
            at: now_ms(),
        });
    }
}

async fn stop_child(ctx: &Context, runner: &dyn ChildRunner, id: &RunId) {
    match crate::control::request_cancel(ctx.store.as_ref(), id).await {
        // Nobody drives it: driving it ends it, cancelled.
        Ok(crate::control::Cancel::Orphaned) => runner.drive(id),
        Ok(_) => {}
        Err(e) => tracing::warn!(child = %id, error = %e, "cannot cancel child run"),
    }
}

/// The child of this attempt: the one it started before (a resumed parent), or a new one.
async fn find_or_create(
    ctx: &Context,
    call: &Call,
    runner: &dyn ChildRunner,
    log: &mut Log<'_>,
) -> Result<RunRecord, String> {
    let store = ctx.store.as_ref();
    let children = store
        .child_runs(&call.parent)
        .await
        .map_err(|e| format!("cannot read child runs: {e}"))?;
    if let Some(child) = children.into_iter().find(|r| {
        r.parent
            .as_ref()
            .is_some_and(|p| p.task == call.key && p.attempt == call.attempt)
    }) {
        log.line(&format!(
            "following run {} of {}/{} (started earlier)",
            child.id, child.namespace, child.pipeline
        ))
        .await;
        return Ok(child);
    }
    let id = &call.pipeline;
    let Some(pipelines) = &ctx.pipelines else {
        return Err(format!(
            "sub-pipeline `{id}` not found\n(hint: this process was given no pipelines to look in)"
        ));
    };
    let Some(def) = pipelines.get(id).await else {
        return Err(format!(
            "sub-pipeline `{id}` not found\n(hint: looked in {})",
            pipelines.looked_in()
        ));
    };
    check_ancestry(store, &call.parent, id).await?;
    let params = typed_params(&def.pipeline, &call.params)
        .map_err(|problems| format!("sub-pipeline `{id}`: {}", problems.join("; ")))?;
    let admission = if runner.admits() {
        crate::launch::pipeline_admission(&def.pipeline)
    } else {
        None
    };
    let child = RunId::from_string(ulid::Ulid::new().to_string().to_lowercase());
    let mut run = crate::launch::new_run(
        crate::launch::RunRequest {
            pipeline: &def.pipeline,
            source: &def.source,
            path: def.path.clone(),
            base_dir: def.base_dir.clone(),
            params,
            trigger: baton_core::state::RunTrigger::Parent,
            logical_date: call.parent_logical_date.clone(),
            idempotency_key: Some(format!(
                "parent:{}:{}:{}",
                call.parent, call.key, call.attempt
            )),
            admission,
            backfill_id: None,
            no_cache: call.no_cache,
        },
        child,
        now_ms(),
    )
    .map_err(|e| format!("sub-pipeline `{id}`: {}", e.to_string().replace('\n', "; ")))?;
    run.parent = Some(ParentRef {
        run: call.parent.clone(),
        task: call.key.clone(),
        attempt: call.attempt,
    });
    let created = store.create_run(&run).await.map_err(|e| match e {
        baton_store::Error::Skipped { .. } => format!(
            "sub-pipeline `{id}` already has its `max_active_runs` active runs, and its `overlap` is `skip`"
        ),
        e => format!("cannot start sub-pipeline `{id}`: {e}"),
    })?;
    // A crash from here on must find this run again, not start a second one.
    crate::fault::after_commit();
    log.line(&format!("started run {created} of {id}")).await;
    store
        .run(&created)
        .await
        .map_err(|e| format!("cannot read run `{created}`: {e}"))?
        .ok_or_else(|| format!("run `{created}` vanished"))
}

/// Refuses to start a pipeline that is already running further up the chain of parents: it
/// would start itself again without end.
async fn check_ancestry(store: &dyn Store, parent: &RunId, id: &PipelineId) -> Result<(), String> {
    let mut chain = Vec::new();
    let mut next = Some(parent.clone());
    while let Some(run) = next.take() {
        let Ok(Some(r)) = store.run(&run).await else {
            break;
        };
        chain.push(format!("{}/{}", r.namespace, r.pipeline));
        if r.namespace == id.namespace.as_str() && r.pipeline == id.name.as_str() {
            chain.reverse();
            return Err(format!(
                "sub-pipeline `{id}` would start itself again: {} -> {id}",
                chain.join(" -> ")
            ));
        }
        next = r.parent.map(|p| p.run);
    }
    Ok(())
}

/// The params as the child's declarations type them: a rendered template is text, read as
/// `--param` reads it when the param is declared with another type. Checking, defaults and
/// unknown names are left to run creation, as for any trigger.
fn typed_params(
    pipeline: &Pipeline,
    given: &Map<String, Json>,
) -> Result<Map<String, Json>, Vec<String>> {
    let mut out = Map::new();
    let mut problems = Vec::new();
    for (name, value) in given {
        match (pipeline.params.get(name), value) {
            (Some(p), Json::String(text)) if p.ty != ParamType::String => {
                match p.parse_text(text) {
                    Ok(v) => {
                        out.insert(name.clone(), v);
                    }
                    Err(e) => problems.push(format!("param `{name}`: {e}")),
                }
            }
            _ => {
                out.insert(name.clone(), value.clone());
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Drives child runs sent by the dispatchers of this process (see [`execute_with_children`]).
#[derive(Debug)]
struct LocalChildren {
    tx: mpsc::UnboundedSender<RunId>,
}

impl ChildRunner for LocalChildren {
    fn drive(&self, run: &RunId) {
        let _ = self.tx.send(run.clone());
    }

    fn admits(&self) -> bool {
        false
    }
}

impl crate::Engine {
    /// [`crate::Engine::execute_reporting`], with the child runs of its sub-pipeline tasks
    /// (and theirs) driven in this process too, next to it, as `baton run` does. They share
    /// its store, executor, options and `stop`; their progress is not reported, only their
    /// start and end (as [`Progress::Child`]).
    pub async fn execute_with_children(
        &self,
        run: &RunId,
        progress: Option<mpsc::UnboundedSender<Progress>>,
        stop: watch::Receiver<Option<Stop>>,
    ) -> crate::Result<RunState> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut opts = self.options().clone();
        opts.child_runner = Some(Arc::new(LocalChildren { tx }));
        let engine = self.with_options(opts);
        let children = tokio::spawn(drive_children(rx, engine.clone(), stop.clone()));
        let result = crate::dispatcher::execute(&engine, run, progress, stop).await;
        // A parent ends after its children; what is left belongs to a run handed back.
        children.abort();
        result
    }
}

async fn drive_children(
    mut rx: mpsc::UnboundedReceiver<RunId>,
    engine: crate::Engine,
    stop: watch::Receiver<Option<Stop>>,
) {
    let driving: Arc<std::sync::Mutex<std::collections::HashSet<RunId>>> = Arc::default();
    while let Some(run) = rx.recv().await {
        if !driving
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(run.clone())
        {
            continue;
        }
        let (engine, stop, driving) = (engine.clone(), stop.clone(), Arc::clone(&driving));
        tokio::spawn(async move {
            // Leased by a live process: that one drives it, until its lease runs out.
            match engine.execute_when_free(&run, stop).await {
                Ok(_) | Err(crate::Error::Leased { .. }) => {}
                // Another process took it over and drives it now.
                Err(e @ (crate::Error::LeaseLost { .. } | crate::Error::LeaseExpired { .. })) => {
                    tracing::warn!(run = %run, "{e}");
                }
                Err(e) => tracing::error!(run = %run, error = %e, "child run stopped"),
            }
            driving
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&run);
        });
    }
}
