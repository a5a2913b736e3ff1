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
use super::error::{UiError, UiResult};
use super::widgets::{encode, task_href};
use crate::AppState;
use crate::routes::PipelinePath;
use crate::routes::runs::Decision;

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

fn run_button(
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

fn task_button(
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
    run_button(
        id,
        "cancel",
        "Cancel run",
        format!("Cancel run {id}? Its running tasks are stopped."),
        given,
    )
}

pub(crate) fn retry_action(id: &str, given: Option<&str>) -> Action {
    run_button(
        id,
        "retry",
        "Retry failed tasks",
        format!("Retry the failed tasks of run {id}?"),
        given,
    )
}

pub(crate) fn approve_action(id: &str, key: &str, given: Option<&str>) -> Action {
    task_button(
        id,
        key,
        "approve",
        "Approve",
        format!("Approve `{key}` of run {id}? It runs."),
        given,
    )
}

pub(crate) fn reject_action(id: &str, key: &str, given: Option<&str>) -> Action {
    task_button(
        id,
        key,
        "reject",
        "Reject",
        format!("Reject `{key}` of run {id}? It fails."),
        given,
    )
}

pub(crate) fn requeue_action(id: &str, key: &str, given: Option<&str>) -> Action {
    task_button(
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

#[derive(Debug, Deserialize)]
pub(crate) struct RunVerb {
    id: String,
    verb: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TaskVerb {
    id: String,
    key: String,
    verb: String,
}

/// `GET /runs/{id}/{cancel|retry}`: the confirm page (404 for an unknown run or verb).
pub(crate) async fn confirm_run(
    State(state): State<AppState>,
    Path(RunVerb { id, verb }): Path<RunVerb>,
    Query(q): Query<ActionForm>,
) -> UiResult<Response> {
    let id = state.store.resolve_run(&id).await?.to_string();
    let back = q.back.as_deref();
    let action = match verb.as_str() {
        "cancel" => cancel_action(&id, back),
        "retry" => retry_action(&id, back),
        _ => return Err(UiError::not_found(format!("no action `{verb}` on runs"))),
    };
    Ok(confirm::page(&action))
}

/// `GET /runs/{id}/tasks/{key}/{approve|reject|requeue}`: the confirm page.
pub(crate) async fn confirm_task(
    State(state): State<AppState>,
    Path(TaskVerb { id, key, verb }): Path<TaskVerb>,
    Query(q): Query<ActionForm>,
) -> UiResult<Response> {
    let id = state.store.resolve_run(&id).await?.to_string();
    let back = q.back.as_deref();
    let action = match verb.as_str() {
        "approve" => approve_action(&id, &key, back),
        "reject" => reject_action(&id, &key, back),
        "requeue" => requeue_action(&id, &key, back),
        _ => return Err(UiError::not_found(format!("no action `{verb}` on tasks"))),
    };
    Ok(confirm::page(&action))
}

// --- posts -----------------------------------------------------------------------------

/// `POST /runs/{id}/{cancel|retry}`: does it, then 303 back.
pub(crate) async fn run_action(
    State(state): State<AppState>,
    Path(RunVerb { id, verb }): Path<RunVerb>,
    headers: HeaderMap,
    Form(f): Form<ActionForm>,
) -> UiResult<Redirect> {
    csrf::check(&headers)?;
    let id = match verb.as_str() {
        "cancel" => crate::routes::runs::cancel_run(&state, &id).await?,
        "retry" => crate::routes::runs::retry_run(&state, &id).await?.0,
        _ => return Err(UiError::not_found(format!("no action `{verb}` on runs"))),
    };
    Ok(Redirect::to(&back(
        f.back.as_deref(),
        run_page(id.as_str()),
    )))
}

/// `POST /runs/{id}/tasks/{key}/{approve|reject|requeue}`: does it, then 303 back.
pub(crate) async fn task_action(
    State(state): State<AppState>,
    Path(TaskVerb { id, key, verb }): Path<TaskVerb>,
    headers: HeaderMap,
    Form(f): Form<ActionForm>,
) -> UiResult<Redirect> {
    csrf::check(&headers)?;
    let id = match verb.as_str() {
        "approve" | "reject" => {
            let decision = Decision {
                comment: f.comment.filter(|c| !c.trim().is_empty()),
                by: Some("ui".into()),
            };
            let approve = verb == "approve";
            let _decided =
                crate::routes::runs::decide(&state, &id, &key, approve, decision).await?;
            state.store.resolve_run(&id).await?
        }
        "requeue" => {
            crate::routes::dead_letters::requeue_task(&state, &id, &key)
                .await?
                .0
        }
        _ => return Err(UiError::not_found(format!("no action `{verb}` on tasks"))),
    };
    Ok(Redirect::to(&back(
        f.back.as_deref(),
        task_href(id.as_str(), &key),
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
