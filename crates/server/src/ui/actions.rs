//! The UI's actions: confirm pages (GET) and the form posts (POST) that cancel, retry,
//! approve, reject, requeue, pause and unpause. Each post is checked against cross-site
//! requests, does what the API handler does (the same function), and answers 303 back to
//! the page it came from.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{Redirect, Response};
use serde::Deserialize;

use super::confirm::{self, Action};
use super::csrf;
use super::error::UiResult;
use super::widgets::{encode, task_href};
use crate::AppState;
use crate::routes::runs::Decision;
use crate::routes::{PipelinePath, RunPath, TaskPath};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ActionForm {
    back: Option<String>,
    comment: Option<String>,
}

/// Where to go after an action: the page it came from when that is a path of this site,
/// else `fallback` (never another site).
fn back(given: Option<&str>, fallback: String) -> String {
    match given {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.to_owned(),
        _ => fallback,
    }
}

fn run_page(id: &str) -> String {
    format!("/runs/{}", encode(id))
}

fn run_action(
    id: &str,
    verb: &'static str,
    label: &'static str,
    question: String,
    given: Option<&str>,
) -> Action {
    Action {
        verb,
        label,
        path: format!("/runs/{}/{verb}", encode(id)),
        question,
        back: back(given, run_page(id)),
    }
}

fn task_action(
    id: &str,
    key: &str,
    verb: &'static str,
    label: &'static str,
    question: String,
    given: Option<&str>,
) -> Action {
    Action {
        verb,
        label,
        path: format!("/runs/{}/tasks/{}/{verb}", encode(id), encode(key)),
        question,
        back: back(given, task_href(id, key)),
    }
}

pub(crate) fn cancel_action(id: &str, given: Option<&str>) -> Action {
    run_action(
        id,
        "cancel",
        "Cancel run",
        format!("Cancel run {id}? Its running tasks are stopped."),
        given,
    )
}

pub(crate) fn retry_action(id: &str, given: Option<&str>) -> Action {
    run_action(
        id,
        "retry",
        "Retry failed tasks",
        format!("Retry the failed tasks of run {id}?"),
        given,
    )
}

pub(crate) fn approve_action(id: &str, key: &str, given: Option<&str>) -> Action {
    task_action(
        id,
        key,
        "approve",
        "Approve",
        format!("Approve `{key}` of run {id}? It runs."),
        given,
    )
}

pub(crate) fn reject_action(id: &str, key: &str, given: Option<&str>) -> Action {
    task_action(
        id,
        key,
        "reject",
        "Reject",
        format!("Reject `{key}` of run {id}? It fails."),
        given,
    )
}

pub(crate) fn requeue_action(id: &str, key: &str, given: Option<&str>) -> Action {
    task_action(
        id,
        key,
        "requeue",
        "Requeue",
        format!("Requeue `{key}` of run {id}? It and what failed downstream of it run again."),
        given,
    )
}

pub(crate) fn pause_action(ns: &str, name: &str, paused: bool) -> Action {
    let (verb, label) = if paused {
        ("unpause", "Unpause")
    } else {
        ("pause", "Pause")
    };
    let page = format!("/pipelines/{}/{}", encode(ns), encode(name));
    Action {
        verb,
        label,
        path: format!("{page}/{verb}"),
        question: String::new(),
        back: page,
    }
}

// --- confirm pages ---------------------------------------------------------------------

/// Resolves a run id so a confirm page for an unknown run is a 404.
async fn known_run(state: &AppState, id: &str) -> UiResult<String> {
    Ok(state.store.resolve_run(id).await?.to_string())
}

pub(crate) async fn confirm_cancel(
    State(state): State<AppState>,
    Path(RunPath { id }): Path<RunPath>,
    Query(q): Query<ActionForm>,
) -> UiResult<Response> {
    let id = known_run(&state, &id).await?;
    Ok(confirm::page(&cancel_action(&id, q.back.as_deref())))
}

pub(crate) async fn confirm_retry(
    State(state): State<AppState>,
    Path(RunPath { id }): Path<RunPath>,
    Query(q): Query<ActionForm>,
) -> UiResult<Response> {
    let id = known_run(&state, &id).await?;
    Ok(confirm::page(&retry_action(&id, q.back.as_deref())))
}

pub(crate) async fn confirm_approve(
    State(state): State<AppState>,
    Path(TaskPath { id, key }): Path<TaskPath>,
    Query(q): Query<ActionForm>,
) -> UiResult<Response> {
    let id = known_run(&state, &id).await?;
    Ok(confirm::page(&approve_action(&id, &key, q.back.as_deref())))
}

pub(crate) async fn confirm_reject(
    State(state): State<AppState>,
    Path(TaskPath { id, key }): Path<TaskPath>,
    Query(q): Query<ActionForm>,
) -> UiResult<Response> {
    let id = known_run(&state, &id).await?;
    Ok(confirm::page(&reject_action(&id, &key, q.back.as_deref())))
}

pub(crate) async fn confirm_requeue(
    State(state): State<AppState>,
    Path(TaskPath { id, key }): Path<TaskPath>,
    Query(q): Query<ActionForm>,
) -> UiResult<Response> {
    let id = known_run(&state, &id).await?;
    Ok(confirm::page(&requeue_action(&id, &key, q.back.as_deref())))
}

// --- posts -----------------------------------------------------------------------------

pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(RunPath { id }): Path<RunPath>,
    headers: HeaderMap,
    Form(f): Form<ActionForm>,
) -> UiResult<Redirect> {
    csrf::check(&headers)?;
    let id = crate::routes::runs::cancel_run(&state, &id).await?;
    Ok(Redirect::to(&back(
        f.back.as_deref(),
        run_page(id.as_str()),
    )))
}

pub(crate) async fn retry(
    State(state): State<AppState>,
    Path(RunPath { id }): Path<RunPath>,
    headers: HeaderMap,
    Form(f): Form<ActionForm>,
) -> UiResult<Redirect> {
    csrf::check(&headers)?;
    let (id, _) = crate::routes::runs::retry_run(&state, &id).await?;
    Ok(Redirect::to(&back(
        f.back.as_deref(),
        run_page(id.as_str()),
    )))
}

async fn decide(
    state: &AppState,
    id: &str,
    key: &str,
    approve: bool,
    headers: &HeaderMap,
    f: ActionForm,
) -> UiResult<Redirect> {
    csrf::check(headers)?;
    let decision = Decision {
        comment: f.comment.filter(|c| !c.trim().is_empty()),
        by: Some("ui".into()),
    };
    let _decided = crate::routes::runs::decide(state, id, key, approve, decision).await?;
    Ok(Redirect::to(&back(f.back.as_deref(), task_href(id, key))))
}

pub(crate) async fn approve(
    State(state): State<AppState>,
    Path(TaskPath { id, key }): Path<TaskPath>,
    headers: HeaderMap,
    Form(f): Form<ActionForm>,
) -> UiResult<Redirect> {
    decide(&state, &id, &key, true, &headers, f).await
}

pub(crate) async fn reject(
    State(state): State<AppState>,
    Path(TaskPath { id, key }): Path<TaskPath>,
    headers: HeaderMap,
    Form(f): Form<ActionForm>,
) -> UiResult<Redirect> {
    decide(&state, &id, &key, false, &headers, f).await
}

pub(crate) async fn requeue(
    State(state): State<AppState>,
    Path(TaskPath { id, key }): Path<TaskPath>,
    headers: HeaderMap,
    Form(f): Form<ActionForm>,
) -> UiResult<Redirect> {
    csrf::check(&headers)?;
    let (id, key, _) = crate::routes::dead_letters::requeue_task(&state, &id, &key).await?;
    Ok(Redirect::to(&back(
        f.back.as_deref(),
        task_href(id.as_str(), key.as_str()),
    )))
}

async fn set_paused(
    state: &AppState,
    ns: &str,
    name: &str,
    paused: bool,
    headers: &HeaderMap,
    f: ActionForm,
) -> UiResult<Redirect> {
    csrf::check(headers)?;
    let decision = Decision {
        comment: None,
        by: Some("ui".into()),
    };
    let _paused = crate::routes::pipelines::set_paused(state, ns, name, paused, decision).await?;
    let page = format!("/pipelines/{}/{}", encode(ns), encode(name));
    Ok(Redirect::to(&back(f.back.as_deref(), page)))
}

pub(crate) async fn pause(
    State(state): State<AppState>,
    Path(PipelinePath { namespace, name }): Path<PipelinePath>,
    headers: HeaderMap,
    Form(f): Form<ActionForm>,
) -> UiResult<Redirect> {
    set_paused(&state, &namespace, &name, true, &headers, f).await
}

pub(crate) async fn unpause(
    State(state): State<AppState>,
    Path(PipelinePath { namespace, name }): Path<PipelinePath>,
    headers: HeaderMap,
    Form(f): Form<ActionForm>,
) -> UiResult<Redirect> {
    set_paused(&state, &namespace, &name, false, &headers, f).await
}

#[cfg(test)]
mod tests {
    use super::back;

    #[test]
    fn back_stays_on_this_site() {
        assert_eq!(back(Some("/runs/x?task=a"), "/f".into()), "/runs/x?task=a");
        assert_eq!(back(Some("//evil.example/"), "/f".into()), "/f");
        assert_eq!(back(Some("https://evil.example/"), "/f".into()), "/f");
        assert_eq!(back(None, "/f".into()), "/f");
    }
}
