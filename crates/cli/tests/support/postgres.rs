//! The test PostgreSQL (`BATON_TEST_POSTGRES_URL`, which `.ci/postgres.sh` starts): its url,
//! its programs, and databases made for one test.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::process::Command;

use super::skip;

pub fn admin_url(check: &str) -> Option<String> {
    let url = std::env::var("BATON_TEST_POSTGRES_URL").ok();
    if url.is_none() {
        skip::skipped(
            check,
            "BATON_TEST_POSTGRES_URL",
            "BATON_REQUIRE_POSTGRES",
            "eval \"$(bash .ci/postgres.sh start)\" starts one and sets it",
        );
    }
    url
}

/// PostgreSQL's programs (`psql`, `initdb`, `pg_ctl`), the newest installed.
pub fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("pg_ctl").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

pub fn with_database(url: &str, name: &str) -> String {
    let (server, _) = url.rsplit_once('/').expect("a database in the url");
    format!("{server}/{name}")
}

pub fn psql(url: &str, sql: &str) {
    let bin = pg_bin().expect("psql");
    let out = Command::new(bin.join("psql"))
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new empty database, dropped when this is.
pub struct Fresh {
    admin: String,
    name: String,
    pub url: String,
}

impl Fresh {
    pub fn new(admin: &str, name: &str) -> Self {
        psql(
            admin,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        psql(admin, &format!("CREATE DATABASE {name}"));
        Self {
            admin: admin.to_owned(),
            name: name.to_owned(),
            url: with_database(admin, name),
        }
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}
