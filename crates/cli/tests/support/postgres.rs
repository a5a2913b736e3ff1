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
    psql_with(url, "-q", sql);
}

/// What `sql` selects, a row a line, columns split by `|`.
pub fn psql_rows(url: &str, sql: &str) -> String {
    psql_with(url, "-At", sql)
}

fn psql_with(url: &str, flags: &str, sql: &str) -> String {
    let bin = pg_bin().expect("psql");
    let out = Command::new(bin.join("psql"))
        .args([url, "-v", "ON_ERROR_STOP=1", flags, "-c", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
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

/// Whether this test runs as root, which PostgreSQL refuses to run as.
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A PostgreSQL of the test's own, on a free port, stopped when this is dropped: for tests
/// that restart it, or that need it on an address other hosts reach.
pub struct OwnPostgres {
    bin: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
    pub port: u16,
    /// On loopback.
    pub url: String,
}

impl OwnPostgres {
    /// Starts one listening on loopback and on `also` (each trusting every client, as fits a
    /// server only the test's own hosts reach), or `None` after reporting the skip where
    /// PostgreSQL is not installed.
    pub fn start(check: &str, also: &[std::net::Ipv4Addr]) -> Option<Self> {
        let Some(bin) = pg_bin() else {
            skip::skipped(
                check,
                "pg_ctl",
                "BATON_REQUIRE_POSTGRES",
                "install PostgreSQL (apt-get install postgresql)",
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        let root = is_root();
        if root {
            for p in [dir.path(), data.as_path()] {
                let status = Command::new("chown").arg("postgres").arg(p).status();
                assert!(status.is_ok_and(|s| s.success()), "chown");
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let pg = Self {
            bin,
            data,
            _dir: dir,
            port,
            url: format!("postgres://baton@127.0.0.1:{port}/postgres"),
        };
        pg.ctl(&["initdb", "-D"], &["-A", "trust", "-U", "baton"], "initdb");
        let mut listen = vec!["127.0.0.1".to_owned()];
        if !also.is_empty() {
            use std::io::Write as _;
            let mut hba = std::fs::OpenOptions::new()
                .append(true)
                .open(pg.data.join("pg_hba.conf"))
                .expect("pg_hba.conf");
            for addr in also {
                let [a, b, c, _] = addr.octets();
                writeln!(hba, "host all all {a}.{b}.{c}.0/24 trust").expect("pg_hba.conf");
                listen.push(addr.to_string());
            }
        }
        let options = format!(
            "-c listen_addresses={} -p {port} -k {} -c fsync=off -c max_connections=200",
            listen.join(","),
            pg.data.display()
        );
        pg.pg_ctl(&["start", "-w", "-o", &options]);
        Some(pg)
    }

    /// Its url as seen from `addr`'s side of the network.
    pub fn url_at(&self, addr: std::net::Ipv4Addr) -> String {
        format!("postgres://baton@{addr}:{}/postgres", self.port)
    }

    fn as_postgres(&self, program: &std::path::Path) -> Command {
        if is_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    fn ctl(&self, program: &[&str], after: &[&str], what: &str) {
        let mut cmd = self.as_postgres(&self.bin.join(program[0]));
        cmd.args(&program[1..]).arg(&self.data).args(after);
        let out = cmd.output().expect(what);
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn pg_ctl(&self, args: &[&str]) {
        let log = self.data.join("server.log");
        let log = log.to_str().expect("utf-8 path");
        let mut all = vec!["-l", log];
        all.extend_from_slice(args);
        self.ctl(&["pg_ctl", "-D"], &all, "pg_ctl");
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let mut cmd = self.as_postgres(&self.bin.join("pg_ctl"));
        let _ = cmd
            .arg("-D")
            .arg(&self.data)
            .args(["stop", "-m", "immediate"])
            .output();
    }
}
