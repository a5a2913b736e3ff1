//! The Docker engine of the machine, for the container executor's tests: whether one runs,
//! and the test image (built by `examples/images/busybox.sh` from a static busybox, since
//! no image can be pulled here). Shared like `skip.rs`: a crate's support module includes
//! both by `#[path]`.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use super::skip;

/// The image the tests run.
pub const IMAGE: &str = "baton/busybox:1";

/// Whether the engine and the image are there; skips out loud (or fails under
/// `BATON_REQUIRE_DOCKER`) when they are not.
pub fn available(check: &str) -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let version = Command::new("docker")
            .args(["version", "--format", "{{.Server.APIVersion}}"])
            .output()
            .map_err(|e| format!("cannot run `docker`: {e}"))?;
        if !version.status.success() {
            return Err(format!(
                "no Docker engine answers: {}",
                String::from_utf8_lossy(&version.stderr).trim()
            ));
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/images/busybox.sh");
        let built = Command::new("sh")
            .arg(&script)
            .arg(IMAGE)
            .output()
            .map_err(|e| format!("cannot run `{}`: {e}", script.display()))?;
        if built.status.success() {
            Ok(())
        } else {
            Err(format!(
                "cannot build the test image: {}",
                String::from_utf8_lossy(&built.stderr).trim()
            ))
        }
    });
    match ready {
        Ok(()) => true,
        Err(why) => {
            skip::skipped(
                check,
                "docker",
                "BATON_REQUIRE_DOCKER",
                &format!("{why}; start a Docker engine and install busybox-static"),
            );
            false
        }
    }
}

/// The names of the containers labelled as of `run`, stopped ones too.
pub fn containers_of(run: &str) -> Vec<String> {
    list(run, &["-a"])
}

/// The names of the running containers labelled as of `run`.
pub fn running_containers_of(run: &str) -> Vec<String> {
    list(run, &[])
}

fn list(run: &str, extra: &[&str]) -> Vec<String> {
    let out = Command::new("docker")
        .arg("ps")
        .args(extra)
        .args([
            "--format",
            "{{.Names}}",
            "--filter",
            &format!("label=dev.baton.run={run}"),
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}
