//! Which files of a working directory an attempt's `upload` patterns name, with their
//! digests. Blocking: callers run it off the runtime's threads.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use baton_store::ArtifactFile;
use globset::{GlobBuilder, GlobMatcher};
use sha2::{Digest, Sha256};

use super::ArtifactError;

/// A file to upload: its manifest entry and where it is now.
#[derive(Debug, Clone)]
pub struct Collected {
    pub file: ArtifactFile,
    pub abs: PathBuf,
}

/// The files under `cwd` that `patterns` match, in path order. A pattern matches a file's
/// path relative to `cwd` (`*` stays within a directory, `**` crosses them), or one of its
/// directories (everything under it). Each pattern must match something: a build that made
/// nothing should not pass for one that made its files. Links to files are followed (the
/// content is what downstream needs); links to directories are not.
pub fn collect(cwd: &Path, patterns: &[String]) -> Result<Vec<Collected>, ArtifactError> {
    let matchers = patterns
        .iter()
        .map(|p| {
            GlobBuilder::new(p.trim_end_matches('/'))
                .literal_separator(true)
                .build()
                .map(|g| g.compile_matcher())
                .map_err(|e| ArtifactError::Pattern {
                    pattern: p.clone(),
                    why: e.kind().to_string(),
                })
        })
        .collect::<Result<Vec<GlobMatcher>, _>>()?;
    let mut hits = vec![0usize; matchers.len()];
    let mut out = Vec::new();
    let walk = walkdir::WalkDir::new(cwd)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1);
    for entry in walk {
        let entry = entry.map_err(|e| {
            let path = e.path().map_or_else(|| cwd.to_owned(), Path::to_owned);
            ArtifactError::Io {
                what: "read",
                path,
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("a link loop")),
            }
        })?;
        let Ok(rel) = entry.path().strip_prefix(cwd) else {
            continue;
        };
        let Some(rel) = rel.to_str() else {
            // A path that is not UTF-8 has no manifest entry to be placed back by.
            tracing::warn!(path = %entry.path().display(), "artifact upload skips a path that is not UTF-8");
            continue;
        };
        let meta = match std::fs::metadata(entry.path()) {
            Ok(m) => m,
            // A dangling link: nothing to keep.
            Err(_) if entry.path_is_symlink() => continue,
            Err(e) => return Err(ArtifactError::io("read", entry.path())(e)),
        };
        if !meta.is_file() {
            continue;
        }
        let mut matched = false;
        for (i, m) in matchers.iter().enumerate() {
            if m.is_match(rel) || ancestors(rel).any(|dir| m.is_match(dir)) {
                hits[i] += 1;
                matched = true;
            }
        }
        if matched {
            let (digest, size) = digest_file(entry.path())?;
            out.push(Collected {
                file: ArtifactFile {
                    path: rel.to_owned(),
                    digest,
                    size,
                    executable: meta.permissions().mode() & 0o111 != 0,
                },
                abs: entry.path().to_owned(),
            });
        }
    }
    if let Some(i) = hits.iter().position(|&n| n == 0) {
        return Err(ArtifactError::NoMatch {
            pattern: patterns[i].clone(),
            dir: cwd.to_owned(),
        });
    }
    Ok(out)
}

/// `a/b/c` → `a/b`, `a`.
fn ancestors(rel: &str) -> impl Iterator<Item = &str> {
    let mut rest = rel;
    std::iter::from_fn(move || {
        let (dir, _) = rest.rsplit_once('/')?;
        rest = dir;
        Some(dir)
    })
}

/// `sha256:HEX` of a file's content, and its size.
pub fn digest_file(path: &Path) -> Result<(String, u64), ArtifactError> {
    let mut f = std::fs::File::open(path).map_err(ArtifactError::io("read", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(ArtifactError::io("read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((format!("sha256:{}", hex::encode(hasher.finalize())), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (path, body) in [
            ("dist/app.tar.gz", "tar"),
            ("dist/app.zip", "zip"),
            ("dist/nested/deep.tar.gz", "deep"),
            ("reports/a/b.xml", "b"),
            ("src/main.rs", "fn main() {}"),
        ] {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, body).expect("write");
        }
        dir
    }

    fn paths(found: &[Collected]) -> Vec<&str> {
        found.iter().map(|c| c.file.path.as_str()).collect()
    }

    #[test]
    fn a_star_stays_in_its_directory_and_a_directory_takes_everything_under_it() {
        let dir = tree();
        let found =
            collect(dir.path(), &["dist/*.tar.gz".into(), "reports".into()]).expect("collect");
        assert_eq!(paths(&found), ["dist/app.tar.gz", "reports/a/b.xml"]);
        let found = collect(dir.path(), &["dist/**/*.tar.gz".into()]).expect("collect");
        assert_eq!(
            paths(&found),
            ["dist/app.tar.gz", "dist/nested/deep.tar.gz"]
        );
    }

    #[test]
    fn digests_sizes_and_the_execute_bit_are_recorded() {
        let dir = tree();
        let app = dir.path().join("dist/app.zip");
        std::fs::set_permissions(&app, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let found = collect(dir.path(), &["dist/app.zip".into()]).expect("collect");
        assert_eq!(found.len(), 1);
        let f = &found[0].file;
        assert_eq!(f.size, 3);
        assert!(f.executable);
        // `printf zip | sha256sum`
        assert_eq!(
            f.digest,
            "sha256:4a70fe9aa6436e02c2dea340fbd1e352e4ef2d8ce6ca52ad25d4b95471fc8bf2"
        );
    }

    #[test]
    fn a_pattern_that_matches_nothing_says_which() {
        let dir = tree();
        let e = collect(dir.path(), &["dist/*.zip".into(), "wheel/*.whl".into()])
            .expect_err("no wheel");
        assert!(
            e.to_string()
                .starts_with("artifact pattern `wheel/*.whl` matched no file in"),
            "{e}"
        );
    }
}
