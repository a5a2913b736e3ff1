//! The run observers of `baton run`, `resume`, `retry` and `baton server`: lineage settings from
//! the environment, then `baton.toml`'s `[lineage]`, handed to the server crate's one builder.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use baton_engine::Observers;
use baton_observe::lineage::LineageConfig;
use baton_observe::outbox::Outbox;
use serde::Deserialize;

use crate::error::ExpectedError;

/// `[lineage]` in `baton.toml`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LineageSection {
    url: Option<String>,
    file: Option<PathBuf>,
    namespace: Option<String>,
}

static FROM_FILE: OnceLock<LineageSection> = OnceLock::new();

/// Remembers the config file's `[lineage]` (relative `file` already resolved).
pub(crate) fn configure(section: LineageSection) {
    let _ = FROM_FILE.set(section);
}

/// Resolves `file` against the config file's directory.
pub(crate) fn relative_to(mut section: LineageSection, base: &std::path::Path) -> LineageSection {
    section.file = section.file.map(|f| base.join(f));
    section
}

/// `OPENLINEAGE_URL`, `OPENLINEAGE_API_KEY`, `BATON_LINEAGE_FILE` and
/// `OPENLINEAGE_NAMESPACE` win over `baton.toml`.
pub(crate) fn lineage_config() -> LineageConfig {
    let file = FROM_FILE.get().cloned().unwrap_or_default();
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    LineageConfig {
        url: env("OPENLINEAGE_URL").or(file.url),
        api_key: env("OPENLINEAGE_API_KEY"),
        // Absolute, like every path setting (`crate::absolute`); one that cannot be resolved
        // is kept as given and fails where it is opened, with its name.
        file: env("BATON_LINEAGE_FILE")
            .map(PathBuf::from)
            .map(|f| crate::absolute::absolute(&f).unwrap_or(f))
            .or(file.file),
        namespace: env("OPENLINEAGE_NAMESPACE").or(file.namespace),
    }
}

/// The standard observers of the runs this process drives, and what to wait on before exiting.
pub(crate) fn standard() -> Result<(Observers, Outbox), ExpectedError> {
    baton_observe::observers::standard(
        &lineage_config(),
        Arc::new(baton_observe::secrets::EnvSecrets),
    )
    .map_err(|e| ExpectedError::Usage(e.to_string()))
}
