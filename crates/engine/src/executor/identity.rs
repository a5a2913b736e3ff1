//! Who a process is, precisely enough to find it again from another process after a crash:
//! its process group, its start time (which tells a reused pid apart) and the boot and host it
//! runs on.

use std::sync::OnceLock;

use baton_store::AttemptProcess;

/// The identity of process `pid`, the leader of its own group.
pub(crate) fn of_leader(pid: i32) -> std::io::Result<AttemptProcess> {
    let stat = Stat::read(pid)?;
    Ok(AttemptProcess {
        pgid: stat.pgrp,
        start_time: stat.start_time,
        boot_id: boot_id().to_owned(),
        host: host().to_owned(),
    })
}

/// Whether an identity was recorded on this boot of this host, so its numbers mean here what
/// they meant there.
pub(crate) fn is_local(process: &AttemptProcess) -> bool {
    process.boot_id == boot_id() && process.host == host()
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`); empty where the kernel has none, which
/// no recorded identity matches.
pub(crate) fn boot_id() -> &'static str {
    static BOOT: OnceLock<String> = OnceLock::new();
    BOOT.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    })
}

/// This host's name (`localhost` where it has none).
pub fn host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into())
    })
}

/// The fields of `/proc/<pid>/stat` that identify a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    pub pid: i32,
    pub pgrp: i32,
    /// Field 22: clock ticks since boot.
    pub start_time: u64,
    /// A zombie does no more work; only its parent's reaping is left.
    pub zombie: bool,
}

impl Stat {
    pub(crate) fn read(pid: i32) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        Self::parse(pid, &text).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("cannot read `/proc/{pid}/stat`"),
            )
        })
    }

    /// The command name (field 2) may hold spaces and parentheses: fields are counted after
    /// its last `)`.
    fn parse(pid: i32, text: &str) -> Option<Self> {
        let rest = text.rsplit_once(')')?.1;
        // After `)`: field 3 (state) is the first.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        Some(Self {
            pid,
            zombie: matches!(*fields.first()?, "Z" | "X"),
            pgrp: fields.get(2)?.parse().ok()?,
            start_time: fields.get(19)?.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (a (b) c) S 1 4240 4240 0 -1 4194560 10 0 0 0 1 2 0 0 20 0 1 0 987654 \
                    1000 10 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            Stat::parse(4242, line),
            Some(Stat {
                pid: 4242,
                pgrp: 4240,
                start_time: 987_654,
                zombie: false
            })
        );
        assert_eq!(Stat::parse(1, "garbage"), None);
    }

    #[test]
    fn this_process_is_found_with_its_start_time() {
        let me = i32::try_from(std::process::id()).expect("pid");
        let stat = Stat::read(me).expect("own stat");
        assert!(stat.start_time > 0);
        assert!(!stat.zombie);
        assert_eq!(Stat::read(me).expect("again").start_time, stat.start_time);
        assert!(!boot_id().is_empty(), "this kernel has a boot id");
    }
}
