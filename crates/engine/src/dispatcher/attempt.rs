//! Starting an attempt: rendering what it needs, where its files go, and watching a
//! sub-pipeline's child run.

use std::path::PathBuf;
use std::sync::Arc;

use baton_core::model::Action;
use baton_store::{Change, Millis};
use serde_json::{Map, Value as Json};

use super::Dispatcher;
use super::state::TaskRef;
use crate::clock::now_ms;
use crate::executor::{AttemptSpec, CancelHandle, HttpRequest, Spawned, Work};
use crate::observer::Observer;
use crate::render;
use crate::subpipeline;

/// An attempt this dispatcher started and has not heard the end of.
#[derive(Debug)]
pub(super) struct Running {
    pub(super) handle: CancelHandle,
    /// The `at` of its `AttemptStarted`, repeated in its `AttemptFinished`.
    pub(super) started_at: Millis,
    /// A sub-pipeline attempt's watch of its child run, which a drain drops: the child is
    /// not this run's to stop, and the next owner watches it again.
    pub(super) detach: Option<tokio::task::AbortHandle>,
}

impl Dispatcher {
    pub(super) fn watch_child(&mut self, i: usize, call: subpipeline::Call) {
        let ctx = subpipeline::Context {
            store: Arc::clone(&self.store),
            pipelines: self.opts.pipelines.clone(),
            runner: self.opts.child_runner.clone(),
            poll: self.opts.control_interval,
            progress: self.progress.clone(),
        };
        let started_at = call.started_at;
        let (handle, abort) = subpipeline::start(ctx, call, self.done_tx.clone());
        self.running.insert(
            i,
            Running {
                handle,
                started_at,
                detach: Some(abort),
            },
        );
    }

    /// Renders a sub-pipeline task's attempt: the pipeline it starts and its params (string
    /// values are templates). An error fails the task before any child run exists.
    pub(super) fn prepare_call(
        &self,
        i: usize,
        attempt: u32,
        started_at: Millis,
    ) -> std::result::Result<subpipeline::Call, String> {
        if let Some(e) = self.env_errors.first() {
            return Err(e.clone());
        }
        let inst = &self.insts[i];
        let task = self.task(i);
        let Action::Pipeline { pipeline, params } = &task.action else {
            return Err("not a sub-pipeline task".into());
        };
        let scope = self.scope_item(inst.item.as_ref());
        let mut rendered = Map::new();
        for (name, value) in params {
            let value = match value {
                Json::String(text) => Json::String(
                    render::render(text, &scope)
                        .map_err(|e| format!("cannot render param `{name}`: {e}"))?,
                ),
                other => other.clone(),
            };
            rendered.insert(name.clone(), value);
        }
        Ok(subpipeline::Call {
            parent: self.run.id.clone(),
            parent_logical_date: self.run.logical_date.clone(),
            no_cache: self.run.no_cache,
            key: inst.key.clone(),
            attempt,
            started_at,
            pipeline: pipeline.clone(),
            params: rendered,
            log: self.log_sink(i, attempt),
            timeout: task.timeout.map(baton_core::duration::Duration::as_std),
            outputs: task.outputs.clone(),
        })
    }

    /// Renders everything an attempt needs. An error fails the task before any process starts.
    pub(super) fn prepare(&self, i: usize) -> std::result::Result<AttemptSpec, String> {
        if let Some(e) = self.env_errors.first() {
            return Err(e.clone());
        }
        let inst = &self.insts[i];
        let task = self.task(i);
        let scope = self.scope_item(inst.item.as_ref());
        let work = match &task.action {
            Action::Command { run, shell } => Work::Process {
                argv: {
                    let script = render::render_script(&run.0, &scope, shell)
                        .map_err(|e| format!("cannot render `run`: {e}"))?;
                    let default_shell = *shell == baton_core::model::default_shell();
                    let mut programs = self.programs.borrow_mut();
                    match crate::direct::simple_command(&script).filter(|_| default_shell) {
                        // Only when the program is really there; otherwise `sh` reports it.
                        Some(mut words) if programs.find(&words[0]).is_some() => {
                            words[0] = programs.resolve(&words[0]);
                            words
                        }
                        _ => {
                            let mut argv = shell.clone();
                            if let Some(program) = argv.first_mut() {
                                *program = programs.resolve(program);
                            }
                            argv.push(script);
                            argv
                        }
                    }
                },
            },
            Action::Http(call) => Work::Http(http_request(call, &scope, &self.run.id, &inst.key)?),
            Action::Container(call) => Work::Container(crate::executor::ContainerRun {
                run: self.run.id.clone(),
                epoch: Some(self.lease.epoch),
                image: render::render(&call.image.0, &scope)
                    .map_err(|e| format!("cannot render `container.image`: {e}"))?,
                command: match &call.run {
                    Some(run) => {
                        let script = render::render_script(&run.0, &scope, &call.shell)
                            .map_err(|e| format!("cannot render `run`: {e}"))?;
                        let mut argv = call.shell.clone();
                        argv.push(script);
                        Some(argv)
                    }
                    None => None,
                },
                pull: call.pull,
                user: call.user.clone(),
                network: call.network,
                resources: task.resources.clone(),
            }),
            Action::Pipeline { .. } => return Err("a sub-pipeline task has no command".into()),
            Action::Gate => return Err("a gate has no command".into()),
        };
        let attempt = inst.attempts + 1;
        let outputs_path = self.outputs_path(i, attempt);
        // The whole environment: the executor passes nothing of baton's own.
        let mut env: Vec<(String, String)> = Vec::new();
        // A container has its image's environment (`PATH`, `HOME`), not this host's.
        if !matches!(work, Work::Container(_)) {
            for (k, v) in &self.ctx.env {
                env.push((k.clone(), v.as_str().unwrap_or_default().to_owned()));
            }
        }
        let host_env = env.len();
        for (k, v) in &task.env {
            let value = render::render(&v.0, &scope)
                .map_err(|e| format!("cannot render env `{k}`: {e}"))?;
            env.push((k.clone(), value));
        }
        if let Json::Object(params) = &self.ctx.params {
            for (k, v) in params {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                env.push((baton_core::shell::env::param_var(k), text));
            }
        }
        let upstream_of = match inst.task {
            TaskRef::Dag(t) => Some(t),
            TaskRef::Hook { .. } => None,
        };
        env.extend(crate::value_env::outputs(
            &self.pipeline,
            upstream_of,
            &self.finished,
        ));
        if let Some(item) = &inst.item {
            env.push((
                "BATON_ITEM".into(),
                item.as_str()
                    .map_or_else(|| item.to_string(), str::to_owned),
            ));
        }
        env.extend([
            ("BATON_RUN_ID".into(), self.run.id.to_string()),
            ("BATON_TASK_ID".into(), inst.key.task_id().to_owned()),
            ("BATON_TASK_KEY".into(), inst.key.to_string()),
            ("BATON_ATTEMPT".into(), attempt.to_string()),
            ("BATON_PIPELINE".into(), self.pipeline.id.to_string()),
            (
                "BATON_IDEMPOTENCY_KEY".into(),
                format!("{}:{}", self.run.id, inst.key),
            ),
        ]);
        env.extend(
            self.opts
                .observers
                .attempt_env(self.scope(), &inst.key, attempt),
        );
        let base = PathBuf::from(&self.run.base_dir);
        let cwd = match &task.working_dir {
            Some(w) => base.join(
                render::render(&w.0, &scope)
                    .map_err(|e| format!("cannot render `working_dir`: {e}"))?,
            ),
            None => base,
        };
        Ok(AttemptSpec {
            key: inst.key.clone(),
            attempt,
            work,
            executor: task.executor.clone(),
            runs_on: task.runs_on.clone(),
            resources: task.resources.clone(),
            env,
            host_env,
            cwd,
            log: self.log_sink(i, attempt),
            outputs_path,
            timeout: task.timeout.map(baton_core::duration::Duration::as_std),
            spawned: Some(self.spawned_tx.clone()),
            exit_path: Some(self.exit_path(i, attempt)),
            artifacts: self.artifact_plan(i)?,
        })
    }

    /// Where attempt `attempt` of instance `i` writes its log, as this run's owner.
    fn log_sink(&self, i: usize, attempt: u32) -> crate::executor::LogSink {
        let log = baton_store::AttemptLog {
            run: self.run.id.clone(),
            key: self.insts[i].key.clone(),
            attempt,
        };
        self.opts
            .logs
            .sink(log, Some(self.lease.clone()))
            .of_pipeline(self.pipeline.id.clone())
    }

    pub(super) fn outputs_path(&self, i: usize, attempt: u32) -> PathBuf {
        self.outputs_dir.join(format!(
            "{}.{attempt}",
            baton_store::sanitize(self.insts[i].key.as_str())
        ))
    }

    /// Where the executor records how attempt `attempt` exited (beside its outputs).
    pub(super) fn exit_path(&self, i: usize, attempt: u32) -> PathBuf {
        let mut path = self.outputs_path(i, attempt).into_os_string();
        path.push(".exit");
        PathBuf::from(path)
    }

    /// Records who runs an attempt, while it still runs (a later report is of one that ended,
    /// whose identity no longer matters), for the next commit or `IDENTITY_DELAY` from now.
    pub(super) fn on_spawned(&mut self, s: Spawned) {
        let Some(&i) = self.by_key.get(&s.key) else {
            return;
        };
        if self.running.contains_key(&i) && self.insts[i].attempts == s.attempt {
            self.identities.push(Change::AttemptSpawned {
                key: s.key,
                attempt: s.attempt,
                process: s.process,
                at: now_ms(),
            });
            self.identities_due
                .get_or_insert_with(|| tokio::time::Instant::now() + IDENTITY_DELAY);
        }
    }
}

/// How long who runs an attempt may wait for the run's next commit before it is committed on
/// its own. Most attempts of short tasks end sooner, and their identity then shares the
/// commit of their end instead of costing one more (a third of a `true` task's commits). A
/// crash in between loses nothing: `leftovers` also finds an attempt's processes by the
/// `BATON_*` variables in their environment, as it does after a crash between the spawn
/// and any commit.
pub(super) const IDENTITY_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

/// Renders an `http:` step's request: its URL, headers and body (a JSON body's strings one
/// by one, so no value can break the document).
fn http_request(
    call: &baton_core::model::HttpCall,
    scope: &render::Scope<'_>,
    run: &baton_core::ids::RunId,
    key: &baton_core::ids::TaskKey,
) -> std::result::Result<HttpRequest, String> {
    use baton_core::model::HttpBody;
    let url =
        render::render(&call.url.0, scope).map_err(|e| format!("cannot render `url`: {e}"))?;
    let mut headers = Vec::with_capacity(call.headers.len());
    for (name, value) in &call.headers {
        let value = render::render(&value.0, scope)
            .map_err(|e| format!("cannot render header `{name}`: {e}"))?;
        headers.push((name.clone(), value));
    }
    let body = match &call.body {
        None => None,
        Some(HttpBody::Text(t)) => Some(crate::executor::RequestBody {
            bytes: render::render(&t.0, scope)
                .map_err(|e| format!("cannot render `body`: {e}"))?
                .into_bytes(),
            json: false,
        }),
        Some(HttpBody::Json(json)) => Some(crate::executor::RequestBody {
            bytes: render_json(json, scope)?.to_string().into_bytes(),
            json: true,
        }),
    };
    Ok(HttpRequest {
        method: call.method,
        url,
        headers,
        body,
        expect: call.expect_status.clone(),
        poll: call.poll.map(baton_core::duration::Duration::as_std),
        callback: call.callback.map(baton_core::duration::Duration::as_std),
        outputs_json: call.outputs_from == Some(baton_core::spec::OutputsFrom::Json),
        idempotency_key: format!("{run}:{key}"),
    })
}

fn render_json(json: &Json, scope: &render::Scope<'_>) -> std::result::Result<Json, String> {
    Ok(match json {
        Json::String(t) => Json::String(
            render::render(t, scope).map_err(|e| format!("cannot render `body`: {e}"))?,
        ),
        Json::Array(items) => Json::Array(
            items
                .iter()
                .map(|v| render_json(v, scope))
                .collect::<std::result::Result<_, _>>()?,
        ),
        Json::Object(members) => {
            let mut out = Map::new();
            for (k, v) in members {
                out.insert(k.clone(), render_json(v, scope)?);
            }
            Json::Object(out)
        }
        other => other.clone(),
    })
}
