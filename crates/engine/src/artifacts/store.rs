//! Where artifacts are kept: a directory, or S3-compatible object storage, behind
//! `object_store`'s one trait. Objects are addressed by content (`sha256/AB/HEX`), so a file
//! two attempts uploaded is stored once, and a file is never overwritten by another.

use std::path::Path;
use std::sync::Arc;

use baton_store::ArtifactFile;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{ArtifactError, Op};

/// `[artifacts] url = "s3://BUCKET/PREFIX"` and its settings.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    /// `s3://BUCKET` or `s3://BUCKET/PREFIX`.
    pub url: String,
    /// An S3-compatible server's address (`http://127.0.0.1:9000`); AWS's when none.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Credentials; the `AWS_*` environment (and instance metadata) when none.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Whether `endpoint` may be plain `http://` (a server on loopback or a private network).
    pub allow_http: bool,
}

#[derive(Clone)]
pub struct ArtifactStore {
    inner: Arc<dyn ObjectStore>,
    /// `dir:PATH` or `s3://BUCKET/PREFIX`: recorded with every file, shown to people.
    label: String,
    /// `dir` or `s3`, for the error metric.
    kind: &'static str,
}

impl std::fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactStore")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl ArtifactStore {
    /// A directory (made if missing).
    pub fn dir(path: &Path) -> Result<Self, ArtifactError> {
        std::fs::create_dir_all(path).map_err(ArtifactError::io("create", path))?;
        let local = object_store::local::LocalFileSystem::new_with_prefix(path).map_err(|e| {
            ArtifactError::Store {
                op: Op::Upload,
                path: String::new(),
                store: format!("dir:{}", path.display()),
                source: Box::new(e),
            }
        })?;
        Ok(Self {
            inner: Arc::new(local),
            label: format!("dir:{}", path.display()),
            kind: "dir",
        })
    }

    /// A bucket (and prefix) of S3-compatible storage. Connects at the first use.
    pub fn s3(s: &S3Settings) -> Result<Self, String> {
        let rest = s.url.strip_prefix("s3://").ok_or_else(|| {
            format!(
                "artifact store `{}` is not an `s3://BUCKET/PREFIX` address",
                s.url
            )
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("artifact store `{}` names no bucket", s.url));
        }
        // The one crypto provider of the process (reqwest is built without its own).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(e) = &s.endpoint {
            b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
        }
        b = b.with_region(s.region.clone().unwrap_or_else(|| "us-east-1".into()));
        if let Some(k) = &s.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(k) = &s.secret_access_key {
            b = b.with_secret_access_key(k);
        }
        if s.allow_http {
            b = b.with_allow_http(true);
        }
        // A few quick retries, not object_store's three minutes: the attempt is retried as
        // the task says, and a store that is down should say so while someone watches.
        b = b
            .with_retry(object_store::RetryConfig {
                max_retries: 3,
                retry_timeout: std::time::Duration::from_secs(20),
                ..object_store::RetryConfig::default()
            })
            .with_client_options(
                object_store::ClientOptions::new()
                    .with_connect_timeout(std::time::Duration::from_secs(5))
                    .with_allow_http(s.allow_http),
            );
        let s3 = b
            .build()
            .map_err(|e| format!("artifact store `{}`: {e}", s.url))?;
        let prefix = prefix.trim_matches('/');
        let inner: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
        };
        Ok(Self {
            inner,
            label: format!("s3://{}", rest.trim_end_matches('/')),
            kind: "s3",
        })
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Whether the store holds content `digest` (of the file at `path`, for messages).
    pub async fn contains(&self, path: &str, digest: &str) -> Result<bool, ArtifactError> {
        let key = key_of(digest)?;
        match self.inner.head(&key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.failed(Op::Upload, path, e)),
        }
    }

    /// Stores the content of `path`, which hashes to `file.digest`, unless it is there.
    pub async fn put_file(&self, path: &Path, file: &ArtifactFile) -> Result<(), ArtifactError> {
        if self.contains(&file.path, &file.digest).await? {
            return Ok(());
        }
        let f = tokio::fs::File::open(path)
            .await
            .map_err(ArtifactError::io("read", path))?;
        let stream = super::file_stream(f);
        self.put_stream(&file.path, &file.digest, stream).await
    }

    /// Stores content that must hash to `digest`, as it arrives (from a worker): written
    /// aside first and moved into place only once verified, so a cut or forged upload never
    /// sits at a digest it does not match.
    pub async fn put_stream<E: std::fmt::Display>(
        &self,
        path: &str,
        digest: &str,
        mut body: impl futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
    ) -> Result<(), ArtifactError> {
        let key = key_of(digest)?;
        let part = ObjectPath::from(format!("partial/{}", ulid::Ulid::new()));
        let mut w = object_store::buffered::BufWriter::new(Arc::clone(&self.inner), part.clone());
        let mut hasher = Sha256::new();
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = w.abort().await;
                    return Err(ArtifactError::Io {
                        what: "receive",
                        path: path.into(),
                        source: std::io::Error::other(e.to_string()),
                    });
                }
            };
            hasher.update(&chunk);
            if let Err(e) = w.write_all(&chunk).await {
                let _ = w.abort().await;
                return Err(self.failed(
                    Op::Upload,
                    path,
                    object_store::Error::Generic {
                        store: "artifacts",
                        source: Box::new(e),
                    },
                ));
            }
        }
        if let Err(e) = w.shutdown().await {
            return Err(self.failed(
                Op::Upload,
                path,
                object_store::Error::Generic {
                    store: "artifacts",
                    source: Box::new(e),
                },
            ));
        }
        let got = format!("sha256:{}", hex::encode(hasher.finalize()));
        if got != digest {
            let _ = self.inner.delete(&part).await;
            return Err(ArtifactError::Corrupt {
                path: path.into(),
                expected: digest.into(),
                got,
            });
        }
        let moved = self.inner.rename(&part, &key).await;
        moved.map_err(|e| self.failed(Op::Upload, path, e))
    }

    /// The content at `digest`, and its size, as a stream (to serve a worker).
    pub async fn get(
        &self,
        file: &ArtifactFile,
    ) -> Result<(u64, BoxStream<'static, object_store::Result<Bytes>>), ArtifactError> {
        let key = key_of(&file.digest)?;
        match self.inner.get(&key).await {
            Ok(got) => Ok((got.meta.size, got.into_stream())),
            Err(object_store::Error::NotFound { .. }) => Err(ArtifactError::Missing {
                path: file.path.clone(),
                digest: file.digest.clone(),
                store: self.label.clone(),
            }),
            Err(e) => Err(self.failed(Op::Download, &file.path, e)),
        }
    }

    /// Writes `file` to `dest`, verified against its digest, with its execute bit: beside
    /// `dest` first, then renamed, so a reader never sees half a file.
    pub async fn fetch(&self, file: &ArtifactFile, dest: &Path) -> Result<(), ArtifactError> {
        let (_, stream) = self.get(file).await?;
        let kind = self.label.clone();
        super::stage::write_verified(file, dest, stream)
            .await
            .map_err(|e| match e {
                ArtifactError::Io {
                    what: "receive",
                    source,
                    ..
                } => ArtifactError::Store {
                    op: Op::Download,
                    path: file.path.clone(),
                    store: kind,
                    source: Box::new(object_store::Error::Generic {
                        store: "artifacts",
                        source: Box::new(source),
                    }),
                },
                e => e,
            })
    }

    fn failed(&self, op: Op, path: &str, source: object_store::Error) -> ArtifactError {
        ArtifactError::Store {
            op,
            path: path.into(),
            store: self.label.clone(),
            source: Box::new(source),
        }
    }
}

/// `sha256/AB/HEX` for `sha256:HEX`; anything else is refused (a forged manifest must not
/// address another object).
fn key_of(digest: &str) -> Result<ObjectPath, ArtifactError> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| {
            h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
        .ok_or_else(|| ArtifactError::Pattern {
            pattern: digest.into(),
            why: "an artifact digest is `sha256:` and 64 lowercase hex digits".into(),
        })?;
    Ok(ObjectPath::from(format!("sha256/{}/{hex}", &hex[..2])))
}

/// `[artifacts]` of `baton.toml`: which store to open.
#[derive(Debug, Clone, Default)]
pub enum StoreConfig {
    /// `artifacts/` under the home.
    #[default]
    Home,
    /// `[artifacts] dir = PATH`.
    Dir(std::path::PathBuf),
    /// `[artifacts] url = "s3://…"`.
    S3(S3Settings),
}

impl StoreConfig {
    /// Opens the store (an S3 one connects at its first use).
    pub fn open(&self, home: &Path) -> Result<ArtifactStore, String> {
        match self {
            Self::Home => ArtifactStore::dir(&home.join("artifacts")).map_err(|e| e.to_string()),
            Self::Dir(dir) => ArtifactStore::dir(dir).map_err(|e| e.to_string()),
            Self::S3(s) => ArtifactStore::s3(s),
        }
    }
}

/// A store opened at its first use: a `baton run` whose tasks move no file never makes the
/// home's `artifacts/`, and one that cannot open its store tells the tasks that need it why.
#[derive(Debug, Clone)]
pub struct LazyStore {
    inner: Arc<LazyInner>,
}

#[derive(Debug)]
struct LazyInner {
    config: StoreConfig,
    home: std::path::PathBuf,
    opened: std::sync::OnceLock<Result<ArtifactStore, String>>,
}

impl LazyStore {
    /// `config`'s store, under `home` for the default one, opened when first asked for.
    pub fn new(config: StoreConfig, home: std::path::PathBuf) -> Self {
        Self {
            inner: Arc::new(LazyInner {
                config,
                home,
                opened: std::sync::OnceLock::new(),
            }),
        }
    }

    /// A store opened already.
    pub fn opened(store: ArtifactStore) -> Self {
        let lazy = Self::new(StoreConfig::Home, std::path::PathBuf::new());
        let _ = lazy.inner.opened.set(Ok(store));
        lazy
    }

    /// The store, or why it cannot be opened (the same answer every time).
    pub fn get(&self) -> Result<&ArtifactStore, &str> {
        self.inner
            .opened
            .get_or_init(|| self.inner.config.open(&self.inner.home))
            .as_ref()
            .map_err(String::as_str)
    }
}
