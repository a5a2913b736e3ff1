//! A task's `artifacts:` as written: files it leaves for tasks downstream, and the upstream
//! tasks whose files it needs.

use schemars::JsonSchema;

use crate::decode::{Decode, Decoder};
use crate::span::Spanned;
use crate::yaml::Node;

/// Files moved between tasks that need not share a disk: after a successful attempt the
/// files matching `upload` are stored, content-addressed; a task naming the uploader under
/// `download` finds them in its working directory before it starts, wherever it runs.
#[derive(Debug, Clone, Default, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ArtifactsSpec {
    /// Glob patterns, relative to the working directory, of the files to keep: `dist/*.tar.gz`,
    /// `reports/**`, or a directory (`build`) for everything under it.
    #[serde(default)]
    pub upload: Vec<Spanned<String>>,
    /// Upstream tasks whose uploaded files are placed, at the same relative paths, in this
    /// task's working directory before it starts.
    #[serde(default)]
    pub download: Vec<Spanned<String>>,
}

impl Decode for ArtifactsSpec {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        let mut m = d.map(node, "`artifacts`")?;
        let upload = m.opt(d, "upload", decode_list).unwrap_or_default();
        let download = m.opt(d, "download", decode_list).unwrap_or_default();
        m.finish(d);
        Some(Self { upload, download })
    }
}

/// One name is accepted as a list of one, as for `needs`.
fn decode_list(d: &mut Decoder, node: &Node) -> Option<Vec<Spanned<String>>> {
    match &node.value {
        crate::yaml::NodeValue::Str(_) => Spanned::<String>::decode(d, node).map(|s| vec![s]),
        _ => Decode::decode(d, node),
    }
}
