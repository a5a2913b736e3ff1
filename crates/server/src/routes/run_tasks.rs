//! A run's tasks a page at a time, each page with the attempts of its tasks: what
//! `GET /runs/{id}/tasks`, the first page of `GET /runs/{id}` and the run page read, so that
//! no request holds all of a run of 100,000 tasks at once.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use baton_core::ids::{RunId, TaskKey};
use baton_core::state::TaskState;
use baton_store::{AttemptRecord, Store, TaskCursor, TaskPageFilter, TaskRecord};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use crate::AppState;
use crate::body::Query;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::page::{self, Page};
use crate::responses::{AmbiguousRun, StoreDown};
use crate::routes::RunPath;
use baton_api::{Attempt, TaskEntry};

/// Tasks in the first page a run comes with: a run this size or smaller comes whole.
pub(crate) const FIRST_PAGE: u32 = page::MAX_LIMIT;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TasksQuery {
    /// Only task instances in this state.
    #[param(value_type = Option<TaskState>)]
    pub state: Option<String>,
    /// How many task instances at most: 1 to 500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page, or the run's `tasks_next_cursor`; empty is the
    /// first page.
    #[param(pattern = r"^(-?[0-9]{1,18}\..+)?$")]
    pub cursor: Option<String>,
}

/// Some of a run's tasks in pipeline order, the attempts of just those, and where the next
/// page starts (none on the last).
#[derive(Debug)]
pub(crate) struct TaskSlice {
    pub tasks: Vec<TaskRecord>,
    pub attempts: Vec<AttemptRecord>,
    /// What those attempts uploaded.
    pub artifacts: Vec<baton_store::ArtifactRecord>,
    pub next: Option<TaskCursor>,
}

impl TaskSlice {
    /// Reads the page `filter` names (its `limit` the page size).
    pub(crate) async fn read(
        store: &dyn Store,
        run: &RunId,
        filter: TaskPageFilter,
    ) -> ApiResult<Self> {
        let limit = filter.limit as usize;
        let mut tasks = store
            .task_page(
                run,
                &TaskPageFilter {
                    limit: filter.limit + 1,
                    ..filter
                },
            )
            .await?;
        let more = tasks.len() > limit;
        tasks.truncate(limit);
        let next = more.then(|| tasks.last().map(TaskCursor::after)).flatten();
        let keys: Vec<TaskKey> = tasks.iter().map(|t| t.key.clone()).collect();
        let attempts = store.attempts_of(run, &keys).await?;
        let artifacts = store.artifacts_of(run, &keys).await?;
        Ok(Self {
            tasks,
            attempts,
            artifacts,
            next,
        })
    }

    /// The page's attempts as the API shows them, with what each uploaded.
    pub(crate) fn api_attempts(&self) -> Vec<Attempt> {
        let mut attempts: Vec<Attempt> = self.attempts.iter().cloned().map(Attempt::from).collect();
        baton_api::artifact::attach(&mut attempts, self.artifacts.clone());
        attempts
    }

    /// Each task with its attempts, in the page's order.
    pub(crate) fn entries(self) -> Vec<TaskEntry> {
        let mut of: std::collections::HashMap<TaskKey, Vec<Attempt>> =
            std::collections::HashMap::new();
        for a in self.api_attempts() {
            of.entry(a.key.clone()).or_default().push(a);
        }
        self.tasks
            .into_iter()
            .map(|t| TaskEntry {
                attempts: of.remove(&t.key).unwrap_or_default(),
                task: t.into(),
            })
            .collect()
    }
}

/// A run's task counts by state name, states with none left out.
pub(crate) async fn counts(store: &dyn Store, run: &RunId) -> ApiResult<BTreeMap<String, u64>> {
    Ok(store
        .task_counts(run)
        .await?
        .into_iter()
        .map(|(s, n)| (s.as_str().to_owned(), n))
        .collect())
}

/// The `state` parameter of a task listing.
pub(crate) fn state_filter(given: Option<&str>) -> ApiResult<Option<TaskState>> {
    // An empty `state=` is no state either (the document lists the states): refused, not read
    // as "any".
    given
        .map(|s| {
            TaskState::from_name(s).ok_or_else(|| {
                ApiError::bad_request(format!("unknown task state `{s}`")).with_details(json!({
                    "expected": TaskState::CHOICES.iter().map(|(n, _)| *n).collect::<Vec<_>>()
                }))
            })
        })
        .transpose()
}

/// The `cursor` parameter of a task listing; one no page handed out is a 400.
pub(crate) fn cursor(given: Option<&str>) -> ApiResult<Option<TaskCursor>> {
    page::cursor(given)
        .map(|c| TaskCursor::decode(c).ok_or_else(|| page::invalid_cursor(c)))
        .transpose()
}

/// A run's task instances in pipeline order, each with its attempts.
#[utoipa::path(
    get,
    path = "/runs/{id}/tasks",
    operation_id = "list_run_tasks",
    tag = "runs",
    params(RunPath, TasksQuery),
    responses(
        (status = 200, description = "A page of the run's task instances", body = Page<TaskEntry>),
        (status = 400, description = "`limit` out of 1..=500, a cursor no page handed out, or an unknown state", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        AmbiguousRun,
        StoreDown,
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Path(RunPath { id }): Path<RunPath>,
    Query(q): Query<TasksQuery>,
) -> ApiResult<Json<Page<TaskEntry>>> {
    let filter = TaskPageFilter {
        after: cursor(q.cursor.as_deref())?,
        state: state_filter(q.state.as_deref())?,
        limit: page::limit(q.limit)?,
    };
    let id = state.store.resolve_run(&id).await?;
    if state.store.run(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("run `{id}` not found")));
    }
    let slice = TaskSlice::read(state.store.as_ref(), &id, filter).await?;
    let next_cursor = slice.next.as_ref().map(TaskCursor::encode);
    let mut items = slice.entries();
    crate::routes::workers::mark_waiting(&state, &id, items.iter_mut().map(|e| &mut e.task));
    Ok(Json(Page { items, next_cursor }))
}
