//! A checked `container:` task: the image, and what runs in it.

use serde::Serialize;

use crate::model::Template;
use crate::spec::{ContainerNetwork, PullPolicy};

/// A command in a container, on whichever executor runs containers for the task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerCall {
    pub image: Template,
    pub pull: PullPolicy,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub network: ContainerNetwork,
    /// The script given to `shell` inside the container; none runs the image's own command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<Template>,
    pub shell: Vec<String>,
}

impl ContainerCall {
    /// Where the task's working directory appears inside the container.
    pub const WORKSPACE: &'static str = "/workspace";
}

/// Whether `image` can be an image reference (`[registry/]name[:tag][@digest]`): what the
/// engine would refuse is told with the file's position instead.
pub fn check_image_reference(image: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("`{image}` is not an image reference: {why}"));
    if image.is_empty() {
        return bad("it is empty");
    }
    if image.len() > 4096 {
        return bad("it is longer than 4096 characters");
    }
    if let Some(c) = image.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return bad(&format!("it contains {c:?}"));
    }
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    if let Some(digest) = digest {
        let Some((algorithm, hex)) = digest.split_once(':') else {
            return bad("a digest is `ALGORITHM:HEX`, e.g. `sha256:…`");
        };
        if algorithm.is_empty() || hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return bad("a digest is `ALGORITHM:HEX`, e.g. `sha256:…`");
        }
    }
    // A tag follows the last `:` after the last `/` (`host:5000/name` has a port, not a tag).
    let last = name.rsplit('/').next().unwrap_or(name);
    let (repo_last, tag) = match last.split_once(':') {
        Some((r, t)) => (r, Some(t)),
        None => (last, None),
    };
    if let Some(tag) = tag
        && (tag.is_empty()
            || tag.len() > 128
            || !tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)))
    {
        return bad(&format!("`{tag}` is not a tag"));
    }
    let path = &name[..name.len() - last.len()];
    for component in path.split('/').filter(|s| !s.is_empty()).chain([repo_last]) {
        if component.is_empty() {
            return bad("a path component is empty");
        }
    }
    if repo_last.is_empty() || name.ends_with('/') || name.contains("//") {
        return bad("a path component is empty");
    }
    let repository = &name[name.find('/').map_or(0, |i| {
        // The first component is a registry host when it has a `.` or `:` or is `localhost`.
        let first = &name[..i];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            i + 1
        } else {
            0
        }
    })..name.len() - tag.map_or(0, |t| t.len() + 1)];
    if repository.bytes().any(|b| b.is_ascii_uppercase()) {
        return bad("a repository name is lowercase");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_image_reference;

    #[test]
    fn image_references() {
        for ok in [
            "busybox",
            "python:3.12-slim",
            "library/python:3",
            "registry.example.com/team/etl:1.4",
            "localhost:5000/x",
            "Registry.Example.com/x",
            "x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(check_image_reference(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "py thon",
            "Python:3",
            "x:",
            "a//b",
            "a/",
            "x@sha256",
            "x@sha256:zz",
        ] {
            assert!(check_image_reference(bad).is_err(), "{bad}");
        }
    }
}
