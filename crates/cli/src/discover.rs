//! Finding pipeline files under the paths a user names.

use std::path::{Path, PathBuf};

use crate::error::ExpectedError;

/// Files named directly are taken as they are; directories are searched recursively for
/// `.yaml`/`.yml` files, skipping hidden entries. The result is sorted for stable output.
pub(crate) fn pipeline_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ExpectedError> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| ExpectedError::Read {
            path: path.display().to_string(),
            source,
        })?;
        if !meta.is_dir() {
            out.push(path.clone());
            continue;
        }
        let before = out.len();
        for entry in walkdir::WalkDir::new(path)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !is_hidden(e.path()))
        {
            let entry = entry.map_err(|e| ExpectedError::Read {
                path: e.path().unwrap_or(path).display().to_string(),
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("filesystem loop")),
            })?;
            if entry.file_type().is_file() && is_yaml(entry.path()) {
                out.push(entry.into_path());
            }
        }
        if out.len() == before {
            return Err(ExpectedError::NoPipelines {
                path: path.display().to_string(),
            });
        }
    }
    Ok(out)
}

fn is_hidden(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

fn is_yaml(p: &Path) -> bool {
    matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

/// The pipelines a sub-pipeline task of `baton run FILE` can start: those in FILE's directory
/// and below, found as the server finds its pipelines directory's (and only when a task asks,
/// since the directory may be large).
#[derive(Debug)]
pub(crate) struct DirPipelines {
    dir: PathBuf,
    catalog: tokio::sync::OnceCell<baton_control::Catalog>,
}

impl DirPipelines {
    pub(crate) fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            catalog: tokio::sync::OnceCell::new(),
        }
    }
}

#[async_trait::async_trait]
impl baton_engine::Pipelines for DirPipelines {
    async fn get(&self, id: &baton_core::ids::PipelineId) -> Option<baton_engine::Definition> {
        let catalog = self
            .catalog
            .get_or_init(|| async {
                let mut catalog = baton_control::Catalog::new(self.dir.clone());
                tokio::task::spawn_blocking(move || {
                    catalog.reload();
                    catalog
                })
                .await
                .unwrap_or_default()
            })
            .await;
        catalog.definition(id)
    }

    fn looked_in(&self) -> String {
        format!("`{}` and the directories below it", self.dir.display())
    }
}
