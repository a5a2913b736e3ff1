//! An S3-compatible server for tests: moto's server mode (`pip install 'moto[server]'`), on a
//! free loopback port, with one bucket; killed when the test ends.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs Python `code` with the server's `ENDPOINT` set, its stdout.
fn python(endpoint: &str, code: &str) -> Result<String, String> {
    let out = Command::new("python3")
        .args(["-c", code])
        .env("ENDPOINT", endpoint)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

impl Moto {
    /// A started server with bucket `bucket`; `None` (skipped out loud, or a failure under
    /// `BATON_REQUIRE_MOTO`) where moto is not installed.
    pub fn start(check: &str, bucket: &str) -> Option<Self> {
        let installed = Command::new("moto_server")
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            super::skip::skipped(
                check,
                "moto_server",
                "BATON_REQUIRE_MOTO",
                "python3 -m pip install 'moto[server]'",
            );
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(Instant::now() < until, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        python(
            &moto.endpoint,
            &format!(
                "import os, urllib.request as u\n\
                 u.urlopen(u.Request(os.environ['ENDPOINT'] + '/{bucket}', method='PUT'))"
            ),
        )
        .expect("create the bucket");
        Some(moto)
    }

    /// The keys of the objects in `bucket`.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let text = python(
            &self.endpoint,
            &format!(
                "import os, re, urllib.request as u\n\
                 body = u.urlopen(os.environ['ENDPOINT'] + '/{bucket}?list-type=2').read().decode()\n\
                 print('\\n'.join(re.findall(r'<Key>([^<]+)</Key>', body)))"
            ),
        )
        .expect("list the bucket");
        text.lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect()
    }
}
