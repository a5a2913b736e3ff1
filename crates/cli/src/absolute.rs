//! Paths from settings (flags, `BATON_*` variables, `baton.toml`) made absolute once, at
//! start-up.
//!
//! Tasks run in their pipeline file's directory, not in the one baton was started from: a
//! relative home handed down as `$BATON_OUTPUTS` would point somewhere else (or nowhere) by
//! the time a task writes to it. Nothing past this point sees a relative path.

use std::path::{Path, PathBuf};

use crate::cli::{Cli, Command};
use crate::error::ExpectedError;

/// `path` against the current directory; absolute paths are kept as they are.
pub(crate) fn absolute(path: &Path) -> Result<PathBuf, ExpectedError> {
    std::path::absolute(path).map_err(|e| {
        ExpectedError::Usage(format!(
            "cannot resolve `{}` against the current directory: {e}",
            path.display()
        ))
    })
}

/// Every path setting of `cli`, absolute.
pub(crate) fn resolve(cli: &mut Cli) -> Result<(), ExpectedError> {
    cli.home = absolute(&cli.home)?;
    if let Some(config) = &mut cli.config {
        *config = absolute(config)?;
    }
    if let Command::Server(args) = &mut cli.command {
        args.pipelines = absolute(&args.pipelines)?;
    }
    if let Some(ca) = &mut cli.ca_file {
        *ca = absolute(ca)?;
    }
    if let Command::Worker(args) = &mut cli.command
        && let Some(dir) = &mut args.dir
    {
        *dir = absolute(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_resolved_against_the_current_directory() {
        let cwd = std::env::current_dir().expect("cwd");
        assert_eq!(
            absolute(Path::new(".baton")).expect("ok"),
            cwd.join(".baton")
        );
        assert_eq!(
            absolute(Path::new("/var/lib/baton")).expect("ok"),
            PathBuf::from("/var/lib/baton")
        );
    }
}
