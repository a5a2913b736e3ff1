//! The ledger tests keep of task executions, to show two copies of one task at once, and the
//! seeded randomness of the chaos tests.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;

/// Each execution of a task appends `start`, a few `tick`s and `end` to `ledger.txt`, each
/// with its run, key, pid and a nanosecond timestamp: a copy that outlives its baton keeps
/// writing, which is how two copies at once show.
pub const LEDGER_SCRIPT: &str = r#"k="$BATON_RUN_ID $1"
echo "start $k $$ $(date +%s%N)" >> "$LEDGER"
i=0
while [ $i -lt 5 ]; do
  sleep 0.1
  echo "tick $k $$ $(date +%s%N)" >> "$LEDGER"
  i=$((i + 1))
done
echo "end $k $$ $(date +%s%N)" >> "$LEDGER"
"#;

/// A small xorshift generator, seeded from `BATON_CHAOS_SEED` or the clock (printed, so a
/// failure can be replayed).
pub struct Chaos(u64);

impl Chaos {
    #[allow(clippy::print_stderr, reason = "the seed replays a failure")]
    pub fn new(salt: u64) -> Self {
        let seed = std::env::var("BATON_CHAOS_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| {
                        u64::try_from(d.as_nanos() % u128::from(u64::MAX)).unwrap_or(1)
                    })
            });
        eprintln!("chaos seed {seed} (BATON_CHAOS_SEED)");
        Self((seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A moment to kill at: 50 ms to 3 s.
    pub fn moment(&mut self) -> std::time::Duration {
        std::time::Duration::from_millis(50 + self.next() % 2950)
    }

    pub fn coin(&mut self) -> bool {
        self.next().is_multiple_of(2)
    }
}

/// Every execution of every task instance in the ledger: (run and key, pid, first and last
/// moment it wrote).
pub fn executions(ledger: &str) -> Vec<(String, String, u128, u128, bool)> {
    let mut open: std::collections::HashMap<(String, String), usize> =
        std::collections::HashMap::new();
    let mut out: Vec<(String, String, u128, u128, bool)> = Vec::new();
    for line in ledger.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [what, run, key, pid, at] = f[..] else {
            continue;
        };
        let Ok(at) = at.parse::<u128>() else { continue };
        let task = format!("{run} {key}");
        let id = (task.clone(), pid.to_owned());
        match what {
            "start" => {
                open.insert(id, out.len());
                out.push((task, pid.to_owned(), at, at, false));
            }
            _ => {
                if let Some(&n) = open.get(&id) {
                    out[n].3 = out[n].3.max(at);
                    out[n].4 |= what == "end";
                }
            }
        }
    }
    out
}

/// The pairs of executions of one task instance whose spans overlap.
pub fn overlaps(ledger: &str) -> Vec<String> {
    let mut by_task: BTreeMap<String, Vec<(u128, u128, String)>> = BTreeMap::new();
    for (task, pid, start, end, _) in executions(ledger) {
        by_task.entry(task).or_default().push((start, end, pid));
    }
    let mut found = Vec::new();
    for (task, mut runs) in by_task {
        runs.sort();
        for w in runs.windows(2) {
            if w[1].0 <= w[0].1 {
                found.push(format!(
                    "`{task}`: pid {} ran until {} but pid {} started at {}",
                    w[0].2, w[0].1, w[1].2, w[1].0
                ));
            }
        }
    }
    found
}
