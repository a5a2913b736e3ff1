//! A task's `container:` as written: the image its command runs in.

use schemars::JsonSchema;

use super::task::TemplateText;
use crate::decode::{Decode, Decoder};
use crate::keyword::keyword_enum;
use crate::span::Spanned;
use crate::yaml::Node;

keyword_enum!(
    /// When the container executor pulls a task's image.
    PullPolicy, "pull policy" {
        /// Only when the engine does not have it (the default).
        Missing = "missing",
        /// Before every attempt, so a moving tag (`:latest`) is current.
        Always = "always",
        /// Never: a missing image fails the task without a retry.
        Never = "never",
    }
);

keyword_enum!(
    /// The network a task's container joins.
    ContainerNetwork, "container network" {
        /// The engine's default bridge: outbound access, no published ports (the default).
        Bridge = "bridge",
        /// No network at all but loopback.
        Disabled = "none",
        /// The host's own network stack.
        Host = "host",
    }
);

/// Run the task in a container (Docker, or a Kubernetes Job on a `kubernetes` executor):
/// `run` is the command inside it (through `shell`, `sh -c` by default); without `run` the
/// image's own command runs. The task's working directory is mounted at `/workspace`.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ContainerSpec {
    /// The image, e.g. `python:3.12-slim` or `registry.example.com/etl@sha256:…`; a template.
    pub image: TemplateText,
    /// When to pull the image: `missing` (default), `always` or `never`.
    pub pull: Option<Spanned<PullPolicy>>,
    /// Who the command runs as (`1000:1000`, `nobody`); the image's user by default.
    pub user: Option<Spanned<String>>,
    /// `bridge` (default), `none` or `host`.
    pub network: Option<Spanned<ContainerNetwork>>,
}

impl Decode for ContainerSpec {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        let mut m = d.map(node, "`container`")?;
        let image = m.req(d, "image", Decode::decode);
        let pull = m.opt(d, "pull", Decode::decode);
        let user = m.opt(d, "user", Decode::decode);
        let network = m.opt(d, "network", Decode::decode);
        m.finish(d);
        Some(Self {
            image: image?,
            pull,
            user,
            network,
        })
    }
}
