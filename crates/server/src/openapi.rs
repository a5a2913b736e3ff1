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
    components(schemas(
        crate::routes::events::RunEvent,
        crate::routes::events::RunEnded,
    )),
    tags(
        (name = "pipelines", description = "Pipeline files, their versions, schedules and pausing; starting runs"),
        (name = "runs", description = "Runs, their tasks and attempts; cancel, retry, approvals"),
        (name = "backfills", description = "Runs of a schedule's ticks over a range of logical dates"),
        (name = "dead-letters", description = "Task instances that failed for good, and requeueing them"),
        (name = "pools", description = "Pools: slots shared by the tasks that name them"),
        (name = "webhooks", description = "Deliveries of pipelines' webhook triggers"),
        (name = "workers", description = "`baton worker` agents: registration, held claims, heartbeats, logs and reports under lease epochs (with the worker secret); the worker list"),
        (name = "health", description = "Liveness and readiness"),
        (name = "meta", description = "This document"),
    )
)]
pub(crate) struct ApiDoc;

/// What the handlers' annotations cannot say, added to the generated document.
pub(crate) fn finish(doc: &mut utoipa::openapi::OpenApi) {
    add_guard_responses(doc);
    headers_are_never_null(doc);
    add_worker_secret(doc);
}

/// The worker API's requests carry the shared worker secret as a bearer token.
fn add_worker_secret(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
    doc.components.get_or_insert_with(Default::default).add_security_scheme(
        "worker_secret",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "The shared worker secret: the content of the file `[workers] secret_file` names",
                ))
                .build(),
        ),
    );
}

/// utoipa gives an optional header parameter (`Option<i64>`) the type `[integer, null]`, but a
/// header is absent or a string: `Last-Event-ID: null` is not a number, and is refused.
fn headers_are_never_null(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::schema::{Schema, SchemaType, Type};
    for item in doc.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.head,
            &mut item.options,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            for p in op.parameters.iter_mut().flatten() {
                let RefOr::T(p) = p else { continue };
                if p.parameter_in != ParameterIn::Header {
                    continue;
                }
                if let Some(RefOr::T(Schema::Object(o))) = &mut p.schema
                    && let SchemaType::Array(types) = &o.schema_type
                    && let [t] = types
                        .iter()
                        .filter(|t| **t != Type::Null)
                        .collect::<Vec<_>>()[..]
                {
                    o.schema_type = SchemaType::Type(t.clone());
                }
            }
        }
    }
}

/// Lists, on every `/api/` operation, the refusals of [`crate::guard`], which answers before
/// any handler: 421 for a `Host` that is not allowed, and 403 for a state change from another
/// site.
fn add_guard_responses(doc: &mut utoipa::openapi::OpenApi) {
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
