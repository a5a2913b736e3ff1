//! Source text -> `Pipeline`: parse, decode, compile, in one call.

use crate::compile::compile;
use crate::decode::{Decode, Decoder};
use crate::diagnostic::{self, Diagnostic};
use crate::model::{DefinitionHash, Pipeline};
use crate::span::Span;
use crate::spec::PipelineSpec;
use crate::yaml;

/// Larger files are refused before parsing: a pipeline this big is a mistake or an attack.
pub const MAX_FILE_BYTES: usize = 64 * 1024 * 1024;

/// The outcome of loading one file: the pipeline when valid, and every diagnostic.
#[derive(Debug)]
pub struct Loaded {
    pub pipeline: Option<Pipeline>,
    pub diagnostics: Vec<Diagnostic>,
    /// Where `name:` is written, for errors about the pipeline as a whole.
    pub name_span: Span,
}

impl Loaded {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

fn too_large(source: &str) -> bool {
    source.len() > MAX_FILE_BYTES
}

/// Parses and decodes a file into its spec, without cross-field checks.
pub fn parse_spec(source: &str) -> (Option<PipelineSpec>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    if too_large(source) {
        diags.push(Diagnostic::error(
            Span {
                line: 1,
                column: 1,
                ..Span::default()
            },
            "",
            format!("file is larger than {} MiB", MAX_FILE_BYTES / (1024 * 1024)),
        ));
        return (None, diags);
    }
    let node = match yaml::parse(source, &mut diags) {
        Ok(node) => node,
        Err(e) => {
            diags.push(e);
            return (None, diags);
        }
    };
    let mut d = Decoder::new();
    let spec = PipelineSpec::decode(&mut d, &node);
    diags.extend(d.diags);
    (spec, diags)
}

/// What a pipeline is checked against beyond its own file: the setting it will run in.
#[derive(Debug, Clone, Copy, Default)]
pub struct Setting<'a> {
    /// The `[executors.NAME]` instances configured; `None` checks no `executor:` name (a
    /// recorded run read back, a file checked without a configuration).
    pub executors: Option<&'a [crate::ids::ExecutorName]>,
}

/// Loads a pipeline from its source text. Never panics, whatever the input.
pub fn load(source: &str) -> Loaded {
    load_in(source, Setting::default())
}

/// [`load`], checking the file against `setting` too.
pub fn load_in(source: &str, setting: Setting<'_>) -> Loaded {
    let (spec, mut diagnostics) = parse_spec(source);
    let mut pipeline = None;
    let mut name_span = Span {
        line: 1,
        column: 1,
        ..Span::default()
    };
    if let Some(spec) = spec {
        name_span = spec.name.span;
        let (p, more) = compile(&spec, DefinitionHash::of(source.as_bytes()));
        diagnostics.extend(more);
        if let Some(known) = setting.executors {
            diagnostics.extend(crate::compile::unknown_executors(&spec, known));
        }
        pipeline = p;
    }
    let has_errors = diagnostics.iter().any(Diagnostic::is_error);
    diagnostic::sort(&mut diagnostics);
    diagnostic::cap(&mut diagnostics);
    Loaded {
        pipeline: pipeline.filter(|_| !has_errors),
        diagnostics,
        name_span,
    }
}

/// For pipelines loaded from several files, the ones whose `namespace/name` an earlier file
/// already defines: `(index of the later file, index of the first)`. Ids are unique within a
/// namespace, and the first file (in the caller's order) keeps the name.
pub fn duplicate_ids<'a>(
    ids: impl IntoIterator<Item = Option<&'a crate::ids::PipelineId>>,
) -> Vec<(usize, usize)> {
    let mut first: std::collections::HashMap<&crate::ids::PipelineId, usize> =
        std::collections::HashMap::new();
    let mut out = Vec::new();
    for (i, id) in ids.into_iter().enumerate() {
        let Some(id) = id else { continue };
        match first.get(id) {
            Some(&f) => out.push((i, f)),
            None => {
                first.insert(id, i);
            }
        }
    }
    out
}

/// The diagnostic for a file whose pipeline id an earlier file already defines.
pub fn duplicate_id_diagnostic(
    id: &crate::ids::PipelineId,
    name_span: Span,
    first_path: &str,
) -> Diagnostic {
    Diagnostic::error(
        name_span,
        "name",
        format!("pipeline `{id}` is already defined in `{first_path}`"),
    )
    .with_hint("pipeline names are unique within a namespace")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_file_of_exactly_the_size_limit_is_not_too_large() {
        let mut src = "x".repeat(super::MAX_FILE_BYTES);
        assert!(!super::too_large(&src));
        src.push('x');
        assert!(super::too_large(&src));
    }
}
