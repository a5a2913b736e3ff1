//! `runs_on:`: the worker labels a task needs, and the tasks that cannot leave the control
//! plane (requests, sub-pipelines and gates are baton's own work).

use crate::decode::Decoder;
use crate::model::{Action, RunsOn, check_worker_label};
use crate::span::Spanned;
use crate::spec::{RunsOnSpec, TaskDefaultsSpec, TaskSpec};

use super::fields::check_positive;

/// Where a task's action can run.
#[derive(Debug, Clone, Copy)]
pub(super) enum Placement {
    /// A command or a container: on a worker too.
    Anywhere,
    /// Only on the control plane, for this reason.
    ControlPlane(&'static str),
    /// The action did not compile (already reported).
    Unknown,
}

pub(super) fn placement(action: Option<&Action>) -> Placement {
    match action {
        Some(Action::Command { .. } | Action::Container(_)) => Placement::Anywhere,
        Some(Action::Http(_)) => Placement::ControlPlane("baton makes an `http` step itself"),
        Some(Action::Pipeline { .. }) => {
            Placement::ControlPlane("a sub-pipeline is driven by baton itself")
        }
        Some(Action::Gate) => Placement::ControlPlane("a gate only waits for a person"),
        None => Placement::Unknown,
    }
}

/// Checks a `runs_on` (a task's own, or `defaults.runs_on` once).
pub(super) fn runs_on(d: &mut Decoder, spec: &Spanned<RunsOnSpec>) -> Option<RunsOn> {
    let r = &spec.value;
    let labels = d.at("labels", |d| {
        if r.labels.is_empty() {
            d.error(spec.span, "`runs_on` names no label").hint =
                Some("list the labels a worker must carry, e.g. `runs_on: [gpu]`".into());
            return None;
        }
        let mut ok = true;
        let mut out: Vec<String> = Vec::new();
        for (i, label) in r.labels.iter().enumerate() {
            d.at(format!("[{i}]"), |d| {
                match check_worker_label(&label.value) {
                    Ok(()) if !out.contains(&label.value) => out.push(label.value.clone()),
                    Ok(()) => {}
                    Err(e) => {
                        ok = false;
                        d.error(label.span, e);
                    }
                }
            });
        }
        ok.then_some(out)
    });
    if let Some(w) = &r.wait {
        d.at("wait", |d| check_positive(d, w, "wait"));
    }
    Some(RunsOn {
        labels: labels?,
        wait: r.wait.as_ref().map_or(RunsOn::DEFAULT_WAIT, |w| w.value),
    })
}

/// A task's own `runs_on`, checked, or the one of `defaults` for a task that can run on a
/// worker.
pub(super) fn of_task(
    d: &mut Decoder,
    t: &TaskSpec,
    defaults: &TaskDefaultsSpec,
    placement: Placement,
) -> Option<RunsOn> {
    match (&t.runs_on, placement) {
        (Some(own), Placement::ControlPlane(why)) => {
            d.at("runs_on", |d| {
                d.error(
                    own.span,
                    format!("`runs_on` sends a task to a worker, and {why}"),
                )
                .hint = Some("remove `runs_on`".into());
            });
            None
        }
        (Some(own), _) => d.at("runs_on", |d| runs_on(d, own)),
        // Checked at `defaults.runs_on`; tasks only inherit it.
        (None, Placement::Anywhere) => defaults.runs_on.as_ref().map(|r| RunsOn {
            labels: r.value.labels.iter().map(|l| l.value.clone()).collect(),
            wait: r
                .value
                .wait
                .as_ref()
                .map_or(RunsOn::DEFAULT_WAIT, |w| w.value),
        }),
        (None, _) => None,
    }
}
