//! The pipelines the server knows, loaded from a directory (a Git checkout).
//!
//! A file that stops validating keeps its last good version active, with its new errors
//! visible, so one bad commit never takes a pipeline (or the server) down.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use baton_core::Pipeline;
use baton_core::diagnostic::Diagnostic;

/// A pipeline version that validated.
#[derive(Debug, Clone)]
pub struct Version {
    pub pipeline: Arc<Pipeline>,
    pub source: Arc<str>,
    /// The file it was read from; runs resolve relative paths against its directory.
    pub file: Arc<Path>,
}

impl Version {
    /// The directory its runs resolve relative `working_dir`s and commands against.
    pub fn base_dir(&self) -> String {
        self.file
            .parent()
            .map_or_else(|| ".".into(), |d| d.display().to_string())
    }
}

/// One file of the directory.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Relative to the pipelines directory.
    pub path: String,
    /// The version runs start with: the file's current content if valid, else its last good one.
    pub active: Option<Version>,
    /// Problems of the file's current content; empty when it is valid.
    pub errors: Vec<Diagnostic>,
}

#[derive(Debug, Default, Clone)]
pub struct Catalog {
    dir: PathBuf,
    entries: BTreeMap<String, Entry>,
}

/// What a reload changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reload {
    pub loaded: usize,
    pub invalid: usize,
    pub removed: usize,
    /// Files whose active version this reload set (new or edited), to be recorded.
    pub changed: Vec<String>,
}

impl Reload {
    /// Logs the outcome; `why` says what asked for the reload.
    pub fn log(&self, why: &str) {
        tracing::info!(
            loaded = self.loaded,
            invalid = self.invalid,
            removed = self.removed,
            changed = self.changed.len(),
            "pipelines reloaded {why}"
        );
    }
}

impl Catalog {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            entries: BTreeMap::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads every `.yaml`/`.yml` file under the directory again.
    pub fn reload(&mut self) -> Reload {
        let mut report = Reload::default();
        let mut seen = Vec::new();
        let mut files: Vec<PathBuf> = walkdir::WalkDir::new(&self.dir)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .map(walkdir::DirEntry::into_path)
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
            .collect();
        files.sort();
        for file in files {
            let rel = file
                .strip_prefix(&self.dir)
                .unwrap_or(&file)
                .display()
                .to_string();
            seen.push(rel.clone());
            let (pipeline, source, errors) = match std::fs::read_to_string(&file) {
                // Unchanged and valid: nothing to do (a watch reloads on every burst of changes).
                Ok(source)
                    if self.entries.get(&rel).is_some_and(|e| {
                        e.errors.is_empty()
                            && e.active.as_ref().is_some_and(|v| *v.source == *source)
                    }) =>
                {
                    report.loaded += 1;
                    continue;
                }
                Ok(source) => {
                    let loaded = baton_core::load(&source);
                    let errors: Vec<Diagnostic> = loaded
                        .diagnostics
                        .into_iter()
                        .filter(Diagnostic::is_error)
                        .collect();
                    (loaded.pipeline, source, errors)
                }
                Err(e) => {
                    let span = baton_core::span::Span {
                        line: 1,
                        column: 1,
                        ..Default::default()
                    };
                    (
                        None,
                        String::new(),
                        vec![Diagnostic::error(
                            span,
                            "",
                            format!("cannot read file: {e}"),
                        )],
                    )
                }
            };
            let entry = self.entries.entry(rel.clone()).or_insert_with(|| Entry {
                path: rel.clone(),
                active: None,
                errors: Vec::new(),
            });
            entry.errors = errors;
            match pipeline {
                Some(p) => {
                    report.loaded += 1;
                    report.changed.push(rel);
                    entry.active = Some(Version {
                        pipeline: Arc::new(p),
                        source: source.into(),
                        file: file.as_path().into(),
                    });
                }
                None => report.invalid += 1,
            }
        }
        let before = self.entries.len();
        self.entries.retain(|path, _| seen.contains(path));
        report.removed = before - self.entries.len();
        self.reject_duplicates();
        report
    }

    /// A later file defining a pipeline an earlier file defines is an error of the later one.
    fn reject_duplicates(&mut self) {
        let paths: Vec<String> = self.entries.keys().cloned().collect();
        let dups = baton_core::load::duplicate_ids(
            self.entries
                .values()
                .map(|e| e.active.as_ref().map(|v| &v.pipeline.id)),
        );
        for (later, first) in dups {
            let first_path = paths[first].clone();
            if let Some(entry) = self.entries.get_mut(&paths[later])
                && let Some(v) = entry.active.take()
            {
                let loaded = baton_core::load(&v.source);
                entry.errors.push(baton_core::load::duplicate_id_diagnostic(
                    &v.pipeline.id,
                    loaded.name_span,
                    &first_path,
                ));
            }
        }
    }

    /// The entry of a file, by its path relative to the directory.
    pub fn entry(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// The file whose active version is `namespace/name`.
    /// The active version of pipeline `id`, as a sub-pipeline task starts it.
    pub fn definition(&self, id: &baton_core::ids::PipelineId) -> Option<baton_engine::Definition> {
        let v = self
            .find(id.namespace.as_str(), id.name.as_str())?
            .active
            .clone()?;
        Some(baton_engine::Definition {
            path: Some(v.file.display().to_string()),
            base_dir: v.base_dir(),
            pipeline: v.pipeline,
            source: v.source,
        })
    }

    pub fn find(&self, namespace: &str, name: &str) -> Option<&Entry> {
        self.entries.values().find(|e| {
            e.active.as_ref().is_some_and(|v| {
                v.pipeline.id.namespace.as_str() == namespace && v.pipeline.id.name.as_str() == name
            })
        })
    }
}

/// The catalog as sub-pipeline tasks see it: the active version of each pipeline.
#[derive(Debug, Clone)]
pub struct CatalogPipelines {
    catalog: Arc<tokio::sync::RwLock<Catalog>>,
    dir: PathBuf,
}

impl CatalogPipelines {
    pub fn new(catalog: Arc<tokio::sync::RwLock<Catalog>>, dir: PathBuf) -> Self {
        Self { catalog, dir }
    }
}

#[async_trait::async_trait]
impl baton_engine::Pipelines for CatalogPipelines {
    async fn get(&self, id: &baton_core::ids::PipelineId) -> Option<baton_engine::Definition> {
        self.catalog.read().await.definition(id)
    }

    fn looked_in(&self) -> String {
        format!("the pipelines directory `{}`", self.dir.display())
    }
}
