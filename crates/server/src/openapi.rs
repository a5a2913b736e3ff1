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
            and refuses other addresses unless started with `--allow-remote-unauthenticated`. \
            A request whose `Host` is not an allowed host gets 421 `host_not_allowed`, and a state \
            change sent by another site's page (`Origin`, `Sec-Fetch-Site`, `Referer`) 403 \
            `cross_site_request`; clients that send no `Origin` are not affected.\n\n\
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

/// Lists, on every `/api/` operation, the refusals of [`crate::guard`], which answers before
/// any handler: 421 for a `Host` that is not allowed, and 403 for a state change from another
/// site.
pub(crate) fn add_guard_responses(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder};
    let refusal = |description: &str| -> RefOr<Response> {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                )
                .build(),
        )
    };
    for (path, item) in &mut doc.paths.paths {
        if !path.starts_with("/api/") {
            continue;
        }
        let reads = [&mut item.get, &mut item.head, &mut item.options];
        let changes = [
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ];
        for (op, changes) in reads
            .into_iter()
            .map(|op| (op, false))
            .chain(changes.into_iter().map(|op| (op, true)))
        {
            let Some(op) = op else { continue };
            let responses = &mut op.responses.responses;
            responses.entry("421".into()).or_insert_with(|| {
                refusal("`host_not_allowed`: the `Host` header names no allowed host (`[server] allowed_hosts`)")
            });
            if changes {
                responses.entry("403".into()).or_insert_with(|| {
                    refusal("`cross_site_request`: sent by another site's page (`Origin`, `Sec-Fetch-Site` or `Referer`)")
                });
            }
        }
    }
}
