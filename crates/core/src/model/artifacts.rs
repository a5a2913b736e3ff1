//! A checked `artifacts:`: what a task keeps for tasks downstream and what it takes from
//! upstream.

use serde::Serialize;

use crate::ids::TaskId;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Artifacts {
    /// Glob patterns relative to the working directory (checked by [`check_pattern`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub upload: Vec<String>,
    /// Upstream tasks whose uploads are placed in the working directory first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub download: Vec<TaskId>,
}

impl Artifacts {
    pub fn is_empty(&self) -> bool {
        self.upload.is_empty() && self.download.is_empty()
    }
}

/// Why `pattern` cannot be an `upload` pattern: it must stay inside the working directory
/// and be a glob (`*` stays within a directory, `**` crosses them).
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern.trim().is_empty() {
        return Err("an artifact pattern is empty".into());
    }
    if pattern.starts_with('/') || pattern.starts_with('~') {
        return Err(format!(
            "artifact pattern `{pattern}` is absolute: patterns are relative to the task's working directory"
        ));
    }
    if pattern.split('/').any(|part| part == "..") {
        return Err(format!(
            "artifact pattern `{pattern}` leaves the working directory (`..`)"
        ));
    }
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|_| ())
        .map_err(|e| format!("artifact pattern `{pattern}` is not a glob: {}", e.kind()))
}

#[cfg(test)]
mod tests {
    use super::check_pattern;

    #[test]
    fn patterns_stay_inside_the_working_directory_and_must_be_globs() {
        assert!(check_pattern("dist/*.tar.gz").is_ok());
        assert!(check_pattern("reports/**").is_ok());
        assert!(check_pattern("build").is_ok());
        assert!(
            check_pattern("/etc/passwd")
                .unwrap_err()
                .contains("absolute")
        );
        assert!(check_pattern("a/../../x").unwrap_err().contains("`..`"));
        assert!(check_pattern("dist/[a").unwrap_err().contains("not a glob"));
        assert!(check_pattern(" ").unwrap_err().contains("empty"));
    }
}
