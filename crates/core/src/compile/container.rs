//! `container:` tasks: the image as a template, the pull policy, and which executor runs
//! them.

use crate::decode::Decoder;
use crate::ids::ExecutorName;
use crate::model::{ContainerCall, Template, check_image_reference};
use crate::span::Spanned;
use crate::spec::{ContainerNetwork, ContainerSpec, PullPolicy};

use super::Compiler;
use super::templates::Scope;

impl Compiler<'_> {
    /// The container of a task: its own `container`, checked here, or the one of `defaults`
    /// (checked once there). `run` is the script, none for the image's own command.
    pub(super) fn container_call(
        &self,
        d: &mut Decoder,
        spec: &Spanned<ContainerSpec>,
        inherited: bool,
        run: Option<Template>,
        shell: Vec<String>,
        scope: Scope<'_>,
    ) -> Option<ContainerCall> {
        let c = &spec.value;
        let image = if inherited {
            Some(Template(c.image.value.clone()))
        } else {
            d.at("container", |d| self.container_image(d, c, scope))
        };
        Some(ContainerCall {
            image: image?,
            pull: c.pull.as_ref().map_or(PullPolicy::Missing, |p| p.value),
            user: c.user.as_ref().map(|u| u.value.clone()),
            network: c
                .network
                .as_ref()
                .map_or(ContainerNetwork::Bridge, |n| n.value),
            run,
            shell,
        })
    }

    /// Checks a `container`'s fields (at `defaults.container` or a task's `container`).
    pub(super) fn container_image(
        &self,
        d: &mut Decoder,
        c: &ContainerSpec,
        scope: Scope<'_>,
    ) -> Option<Template> {
        if let Some(user) = &c.user
            && user.value.trim().is_empty()
        {
            d.at("user", |d| {
                d.error(user.span, "`user` is empty").hint =
                    Some("a name or `UID[:GID]`, e.g. `1000:1000`; or remove it".into());
            });
        }
        d.at("image", |d| {
            let image = &c.image;
            let template = self.template(d, image.span, &image.value, scope)?;
            // An image that is all template is checked once rendered, before the attempt.
            if !image.value.contains("{{")
                && let Err(e) = check_image_reference(&image.value)
            {
                d.error(image.span, e).hint =
                    Some("e.g. `python:3.12-slim` or `registry.example.com/team/etl:1.4`".into());
                return None;
            }
            Some(template)
        })
    }
}

/// A task's `executor:`, or the one of `defaults` (checked there).
pub(super) fn executor_name(d: &mut Decoder, name: &Spanned<String>) -> Option<ExecutorName> {
    ExecutorName::new(name.value.clone())
        .map_err(|e| {
            d.error(name.span, e.to_string()).hint =
                Some("the name of an `[executors.NAME]` section of baton.toml".into());
        })
        .ok()
}

/// Every `executor:` of `spec` (tasks, hooks, `defaults`) that names none of `known`.
pub fn unknown_executors(
    spec: &crate::spec::PipelineSpec,
    known: &[ExecutorName],
) -> Vec<crate::Diagnostic> {
    let named = spec
        .defaults
        .iter()
        .map(|d| ("defaults".to_owned(), &d.executor))
        .chain(
            spec.tasks
                .iter()
                .map(|(id, t)| (format!("tasks.{}", id.value), &t.executor)),
        )
        .chain(
            spec.on_success
                .iter()
                .map(|h| ("on_success".to_owned(), &h.value.executor)),
        )
        .chain(
            spec.on_failure
                .iter()
                .map(|h| ("on_failure".to_owned(), &h.value.executor)),
        );
    let mut out = Vec::new();
    for (at, name) in named {
        let Some(name) = name else { continue };
        if known.iter().any(|k| k.as_str() == name.value) {
            continue;
        }
        let configured = if known.is_empty() {
            "none is configured".to_owned()
        } else {
            let names: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
            format!("configured: {}", names.join(", "))
        };
        out.push(
            crate::Diagnostic::error(
                name.span,
                format!("{at}.executor"),
                format!("no executor `{}` is configured ({configured})", name.value),
            )
            .with_hint(format!(
                "add `[executors.{}]` to baton.toml, with `kind = \"docker\"`, `\"kubernetes\"`, \
                 `\"workers\"` or `\"local\"`",
                name.value
            )),
        );
    }
    out
}
