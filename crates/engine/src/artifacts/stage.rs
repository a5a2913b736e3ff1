//! Moving an attempt's files: its downloads into its working directory before it starts, its
//! uploads into the store after it succeeded.

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use baton_store::ArtifactFile;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{ArtifactError, ArtifactStore, collect};

/// Stores the files under `cwd` that `patterns` match; their manifest.
pub async fn upload(
    store: &ArtifactStore,
    cwd: &Path,
    patterns: &[String],
) -> Result<Vec<ArtifactFile>, ArtifactError> {
    let (dir, patterns) = (cwd.to_owned(), patterns.to_vec());
    let found = tokio::task::spawn_blocking(move || collect(&dir, &patterns))
        .await
        .map_err(|e| ArtifactError::io("read", cwd)(std::io::Error::other(e)))??;
    for c in &found {
        store.put_file(&c.abs, &c.file).await?;
    }
    Ok(found.into_iter().map(|c| c.file).collect())
}

/// Places `files` under `cwd`, each at its path; one already there with the same content
/// (the upstream ran in this very directory) is left as it is.
pub async fn download(
    store: &ArtifactStore,
    cwd: &Path,
    files: &[ArtifactFile],
) -> Result<(), ArtifactError> {
    for f in files {
        let dest = destination(cwd, &f.path)?;
        if already_there(&dest, f).await {
            continue;
        }
        store.fetch(f, &dest).await?;
    }
    Ok(())
}

/// A file's content as a stream of chunks (to upload it without holding it in memory).
pub fn file_stream(
    f: tokio::fs::File,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + Unpin + 'static {
    Box::pin(futures_util::stream::unfold(f, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 256 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    }))
}

/// `cwd/PATH`, for a manifest path that stays inside `cwd` (it may come from a worker).
pub fn destination(cwd: &Path, path: &str) -> Result<PathBuf, ArtifactError> {
    let rel = Path::new(path);
    let inside = !path.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
    if !inside {
        return Err(ArtifactError::Pattern {
            pattern: path.into(),
            why: "an artifact's path must be relative and stay inside the working directory".into(),
        });
    }
    Ok(cwd.join(rel))
}

async fn already_there(dest: &Path, f: &ArtifactFile) -> bool {
    let Ok(meta) = tokio::fs::metadata(dest).await else {
        return false;
    };
    if !meta.is_file() || meta.len() != f.size {
        return false;
    }
    let dest = dest.to_owned();
    let digest = tokio::task::spawn_blocking(move || super::digest_file(&dest)).await;
    matches!(digest, Ok(Ok((d, _))) if d == f.digest)
}

/// Writes `body` to `dest` if it hashes to `file.digest`: to a file beside it first, renamed
/// over it once verified, so nobody sees half a file or the wrong one. Directories on the way
/// are made. A body that fails is `Io { what: "receive" }`.
pub async fn write_verified<E: std::fmt::Display>(
    file: &ArtifactFile,
    dest: &Path,
    mut body: impl Stream<Item = Result<Bytes, E>> + Unpin,
) -> Result<(), ArtifactError> {
    if let Some(dir) = dest.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(ArtifactError::io("create", dir))?;
    }
    let name = dest
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let part = dest.with_file_name(format!(".{name}.baton-part"));
    let result = async {
        let mut out = tokio::fs::File::create(&part)
            .await
            .map_err(ArtifactError::io("create", &part))?;
        let mut hasher = Sha256::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| ArtifactError::Io {
                what: "receive",
                path: dest.to_owned(),
                source: std::io::Error::other(e.to_string()),
            })?;
            hasher.update(&chunk);
            out.write_all(&chunk)
                .await
                .map_err(ArtifactError::io("write", &part))?;
        }
        out.flush()
            .await
            .map_err(ArtifactError::io("write", &part))?;
        let got = format!("sha256:{}", hex::encode(hasher.finalize()));
        if got != file.digest {
            return Err(ArtifactError::Corrupt {
                path: file.path.clone(),
                expected: file.digest.clone(),
                got,
            });
        }
        let mode = if file.executable { 0o755 } else { 0o644 };
        tokio::fs::set_permissions(&part, std::fs::Permissions::from_mode(mode))
            .await
            .map_err(ArtifactError::io("write", &part))?;
        tokio::fs::rename(&part, dest)
            .await
            .map_err(ArtifactError::io("write", dest))
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&part).await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_go_up_and_come_down_verified_with_their_execute_bit() {
        let store_dir = tempfile::tempdir().expect("temp dir");
        let store = ArtifactStore::dir(store_dir.path()).expect("store");
        let up = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(up.path().join("bin")).expect("mkdir");
        std::fs::write(up.path().join("bin/tool"), "#!/bin/sh\necho hi\n").expect("write");
        std::fs::set_permissions(
            up.path().join("bin/tool"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod");
        std::fs::write(up.path().join("notes.txt"), "n").expect("write");
        let files = upload(&store, up.path(), &["bin".into(), "*.txt".into()])
            .await
            .expect("upload");
        assert_eq!(files.len(), 2);
        // Content-addressed: uploading the same again stores nothing new.
        let again = upload(&store, up.path(), &["bin".into()])
            .await
            .expect("upload");
        assert_eq!(again[0], files[0]);

        let down = tempfile::tempdir().expect("temp dir");
        download(&store, down.path(), &files)
            .await
            .expect("download");
        let tool = down.path().join("bin/tool");
        assert_eq!(
            std::fs::read_to_string(&tool).expect("read"),
            "#!/bin/sh\necho hi\n"
        );
        assert_ne!(
            std::fs::metadata(&tool).expect("meta").permissions().mode() & 0o111,
            0
        );
        assert_eq!(
            std::fs::read_to_string(down.path().join("notes.txt")).expect("read"),
            "n"
        );
    }

    #[tokio::test]
    async fn a_missing_or_corrupt_artifact_is_told_and_leaves_nothing_behind() {
        let store_dir = tempfile::tempdir().expect("temp dir");
        let store = ArtifactStore::dir(store_dir.path()).expect("store");
        let down = tempfile::tempdir().expect("temp dir");
        let gone = ArtifactFile {
            path: "out/a.bin".into(),
            digest: format!("sha256:{}", "ab".repeat(32)),
            size: 1,
            executable: false,
        };
        let e = download(&store, down.path(), std::slice::from_ref(&gone))
            .await
            .expect_err("missing");
        assert!(matches!(e, ArtifactError::Missing { .. }), "{e}");
        assert!(e.to_string().contains("`out/a.bin`"), "{e}");

        let chunks: Vec<Result<Bytes, String>> = vec![Ok(Bytes::from_static(b"not it"))];
        let e = write_verified(
            &gone,
            &down.path().join("x"),
            futures_util::stream::iter(chunks),
        )
        .await
        .expect_err("corrupt");
        assert!(matches!(e, ArtifactError::Corrupt { .. }), "{e}");
        let left: Vec<_> = std::fs::read_dir(down.path()).expect("read dir").collect();
        assert!(left.is_empty(), "nothing half-written stays: {left:?}");
        let escape = ArtifactFile {
            path: "../escape".into(),
            ..gone
        };
        assert!(download(&store, down.path(), &[escape]).await.is_err());
    }
}
