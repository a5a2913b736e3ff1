//! Several hosts on one machine for failover tests: each host is a Linux network namespace
//! with its own address, joined by a veth pair to a bridge the test made, so that a replica
//! can be cut off (`ip link set … down`) while the others and the database stay reachable.
//! The bridge has an address of its own in the test's namespace: services the hosts share
//! (PostgreSQL) listen there, and the test talks to every host through it.
//!
//! Needs root and `ip` (iproute2). Without them the test is skipped out loud
//! (`BATON_REQUIRE_NETNS` makes that a failure, as `.ci/run` sets it).
#![allow(dead_code, unreachable_pub)]

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use super::skip;

/// Numbers the networks of one test process, so tests in parallel get distinct subnets and
/// interface names.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A bridge and the hosts on it; all of it is deleted on drop.
pub struct Network {
    /// Prefix of every name this network made (`bt<id>`), at most 8 characters, so that
    /// interface names stay within Linux's 15.
    prefix: String,
    subnet: [u8; 3],
    hosts: Vec<Host>,
}

/// One host: a namespace and the bridge-side end of its link.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub addr: Ipv4Addr,
    /// The end of the veth pair that stays on the bridge: down means cut off.
    link: String,
}

impl Network {
    /// A new network, or `None` (after reporting the skip) where namespaces cannot be made.
    pub fn new(check: &str) -> Option<Self> {
        if !can_make_namespaces() {
            skip::skipped(
                check,
                "ip netns (root and iproute2)",
                "BATON_REQUIRE_NETNS",
                "run as root with iproute2 installed (`apt-get install iproute2`)",
            );
            return None;
        }
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // pid and counter give distinct names for concurrent test processes and threads.
        let id = (std::process::id() % 10_000) * 10 + n % 10;
        let prefix = format!("bt{id}");
        let third = u8::try_from((std::process::id() + n * 7) % 250).unwrap_or(0);
        let net = Self {
            prefix,
            subnet: [10, 213, third],
            hosts: Vec::new(),
        };
        let bridge = net.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&[
            "addr",
            "add",
            &format!("{}/24", net.gateway()),
            "dev",
            &bridge,
        ]);
        ip(&["link", "set", &bridge, "up"]);
        Some(net)
    }

    fn bridge(&self) -> String {
        format!("{}br", self.prefix)
    }

    /// The bridge's address: where the test and shared services are, seen from every host.
    pub fn gateway(&self) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, 1)
    }

    /// Adds a host with the next address of the subnet, its loopback up.
    pub fn host(&mut self) -> Host {
        let i = self.hosts.len() + 1;
        let [a, b, c] = self.subnet;
        let addr = Ipv4Addr::new(a, b, c, u8::try_from(i + 1).expect("fewer than 250 hosts"));
        let name = format!("{}h{i}", self.prefix);
        let link = format!("{}v{i}", self.prefix);
        let inner = format!("{}i{i}", self.prefix);
        ip(&["netns", "add", &name]);
        ip(&["link", "add", &link, "type", "veth", "peer", "name", &inner]);
        ip(&["link", "set", &inner, "netns", &name]);
        ip(&["link", "set", &link, "master", &self.bridge()]);
        ip(&["link", "set", &link, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &name, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        inside(&["link", "set", "lo", "up"]);
        inside(&["addr", "add", &format!("{addr}/24"), "dev", &inner]);
        inside(&["link", "set", &inner, "up"]);
        let host = Host { name, addr, link };
        self.hosts.push(host.clone());
        host
    }

    /// A command that runs `program` inside `host`'s namespace.
    pub fn command(&self, host: &Host, program: &std::path::Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &host.name]).arg(program);
        cmd
    }

    /// Cuts `host` off the network: its processes keep running, nothing reaches them.
    pub fn cut(&self, host: &Host) {
        ip(&["link", "set", &host.link, "down"]);
    }

    /// Joins `host` to the network again.
    pub fn heal(&self, host: &Host) {
        ip(&["link", "set", &host.link, "up"]);
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the pair, and with it the bridge end.
        for host in &self.hosts {
            let _ = quiet(&["netns", "delete", &host.name]);
        }
        let _ = quiet(&["link", "delete", &self.bridge()]);
    }
}

fn can_make_namespaces() -> bool {
    let probe = format!("btprobe{}", std::process::id());
    let made = quiet(&["netns", "add", &probe]);
    if made {
        let _ = quiet(&["netns", "delete", &probe]);
    }
    made
}

fn quiet(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run `ip`");
    assert!(
        out.status.success(),
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
