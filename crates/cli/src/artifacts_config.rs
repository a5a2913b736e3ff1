//! `[artifacts]` of `baton.toml`: where attempts' artifacts are kept.
//!
//! ```toml
//! [artifacts]
//! dir = "/srv/baton/artifacts"          # a directory (default: `artifacts/` under the home)
//! # or S3-compatible object storage:
//! url = "s3://builds/baton"
//! endpoint = "http://127.0.0.1:9000"    # MinIO, Ceph, moto…; AWS when absent
//! region = "eu-west-1"
//! access_key_id = "AKIA…"               # else the `AWS_*` environment
//! secret_access_key_file = "s3.secret"
//! allow_http = true                     # a plain-http endpoint
//! ```

use std::path::{Path, PathBuf};

use baton_engine::artifacts::{S3Settings, StoreConfig};
use serde::Deserialize;

use crate::error::ExpectedError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ArtifactsSection {
    dir: Option<PathBuf>,
    url: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key_file: Option<PathBuf>,
    allow_http: Option<bool>,
}

/// The store `[artifacts]` names; paths in it relative to `base`, the file's directory.
pub(crate) fn store(
    path: &Path,
    base: &Path,
    s: ArtifactsSection,
) -> Result<StoreConfig, ExpectedError> {
    let invalid = |what: String| {
        ExpectedError::Usage(format!(
            "invalid config `{}`: [artifacts] {what}",
            path.display()
        ))
    };
    let s3_only = [
        ("endpoint", s.endpoint.is_some()),
        ("region", s.region.is_some()),
        ("access_key_id", s.access_key_id.is_some()),
        ("secret_access_key_file", s.secret_access_key_file.is_some()),
        ("allow_http", s.allow_http.is_some()),
    ];
    match (s.dir, s.url) {
        (Some(_), Some(_)) => Err(invalid(
            "sets both `dir` and `url`\n(hint: keep one: a directory, or an `s3://` bucket)".into(),
        )),
        (dir, None) => {
            if let Some((key, _)) = s3_only.iter().find(|(_, set)| *set) {
                return Err(invalid(format!(
                    "`{key}` is for an `s3://` store, and no `url` is set"
                )));
            }
            Ok(dir.map_or(StoreConfig::Home, |d| StoreConfig::Dir(base.join(d))))
        }
        (None, Some(url)) => {
            if !url.starts_with("s3://") {
                return Err(invalid(format!(
                    "`url` is `{url}`, not an `s3://BUCKET/PREFIX` address\n(hint: for a directory, set `dir`)"
                )));
            }
            let secret_access_key = match &s.secret_access_key_file {
                None => None,
                Some(f) => {
                    let f = base.join(f);
                    let text = std::fs::read_to_string(&f).map_err(|e| {
                        invalid(format!(
                            "cannot read `secret_access_key_file` `{}`: {e}",
                            f.display()
                        ))
                    })?;
                    Some(text.trim().to_owned())
                }
            };
            Ok(StoreConfig::S3(S3Settings {
                url,
                endpoint: s.endpoint,
                region: s.region,
                access_key_id: s.access_key_id,
                secret_access_key,
                allow_http: s.allow_http.unwrap_or(false),
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<StoreConfig, String> {
        let s: ArtifactsSection = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        store(Path::new("/etc/baton.toml"), Path::new("/etc"), s).map_err(|e| e.to_string())
    }

    #[test]
    fn a_directory_is_relative_to_the_file_and_s3_takes_its_settings() {
        assert!(matches!(parse(""), Ok(StoreConfig::Home)));
        match parse("dir = \"art\"") {
            Ok(StoreConfig::Dir(d)) => assert_eq!(d, PathBuf::from("/etc/art")),
            other => panic!("{other:?}"),
        }
        match parse("url = \"s3://b/p\"\nendpoint = \"http://127.0.0.1:9\"\nallow_http = true") {
            Ok(StoreConfig::S3(s)) => {
                assert_eq!(s.url, "s3://b/p");
                assert!(s.allow_http);
                assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn conflicting_or_misplaced_settings_are_told_by_name() {
        let e = parse("dir = \"a\"\nurl = \"s3://b\"").expect_err("both");
        assert!(e.contains("sets both `dir` and `url`"), "{e}");
        let e = parse("endpoint = \"http://x\"").expect_err("no url");
        assert!(e.contains("`endpoint` is for an `s3://` store"), "{e}");
        let e = parse("url = \"gs://b\"").expect_err("not s3");
        assert!(e.contains("not an `s3://BUCKET/PREFIX` address"), "{e}");
        let e = parse("bucket = \"b\"").expect_err("unknown key");
        assert!(e.contains("unknown field `bucket`"), "{e}");
    }
}
