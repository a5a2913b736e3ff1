//! Looking programs up on `PATH` once per run rather than once per attempt: `exec` of a bare
//! name tries every `PATH` entry in turn, which costs more than the rest of starting a task.

use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, Default)]
pub(crate) struct Programs {
    found: HashMap<String, Option<String>>,
}

impl Programs {
    /// The absolute path of `name` when it is a bare name found on `PATH`; otherwise `name`
    /// unchanged, so that a missing program fails at start with its own name in the error.
    pub(crate) fn resolve(&mut self, name: &str) -> String {
        self.find(name).unwrap_or_else(|| name.to_owned())
    }

    /// The absolute path of `name`, if it is an executable file (by path or on `PATH`).
    pub(crate) fn find(&mut self, name: &str) -> Option<String> {
        if name.contains('/') {
            return is_executable(Path::new(name)).then(|| name.to_owned());
        }
        if let Some(path) = self.found.get(name) {
            return path.clone();
        }
        let path = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|candidate| is_executable(candidate))
                .map(|p| p.display().to_string())
        });
        self.found.insert(name.to_owned(), path.clone());
        path
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
