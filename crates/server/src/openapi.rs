//! The document-level parts of the OpenAPI description: info and tags. The paths and schemas
//! come from the handlers' `#[utoipa::path]` as `crate::api` registers them.

use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "baton",
        version = env!("CARGO_PKG_VERSION"),
        description = "The REST API of a baton server: pipelines, runs, dead letters, pools and webhooks.\n\n\
            **The API has no authentication yet.** The server binds a loopback address by default \
            and refuses other addresses unless started with `--allow-remote-unauthenticated`.\n\n\
            Errors are `{\"error\": {\"code\", \"message\", \"details\"}}` with the matching status. \
            Lists take `?limit=N&cursor=C` and return `{\"items\": [...], \"next_cursor\": \"...\"}`; \
            `next_cursor` is absent on the last page.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "pipelines", description = "Pipeline files, their versions, schedules and pausing; starting runs"),
        (name = "runs", description = "Runs, their tasks and attempts; cancel, retry, approvals"),
        (name = "backfills", description = "Runs of a schedule's ticks over a range of logical dates"),
        (name = "dead-letters", description = "Task instances that failed for good, and requeueing them"),
        (name = "pools", description = "Pools: slots shared by the tasks that name them"),
        (name = "webhooks", description = "Deliveries of pipelines' webhook triggers"),
        (name = "health", description = "Liveness and readiness"),
        (name = "meta", description = "This document"),
    )
)]
pub(crate) struct ApiDoc;
