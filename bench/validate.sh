#!/usr/bin/env bash
# Validation speed: 1,000 files of 50 tasks (target under 2 s), and single pipelines of 10,000
# and 100,000 tasks to show that the DAG checks scale linearly.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p baton
bin=target/release/baton
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 bench/gen_pipelines.py "$work/many" 1000 50
python3 bench/gen_pipelines.py "$work/big10k" 1 10000
python3 bench/gen_pipelines.py "$work/big100k" 1 100000

best() { # best wall time in seconds of N runs of a command
  local n=$1; shift
  python3 - "$n" "$@" <<'PY'
import subprocess, sys, time
n, cmd = int(sys.argv[1]), sys.argv[2:]
times = []
for _ in range(n):
    t = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL)
    times.append(time.perf_counter() - t)
    if r.returncode != 0:
        sys.exit(f"command failed: {' '.join(cmd)}")
print(f"{min(times):.3f}")
PY
}

echo "validate 1000 files x 50 tasks: $(best 5 $bin validate "$work/many") s (target < 2 s)"
t10=$(best 3 $bin validate "$work/big10k")
t100=$(best 3 $bin validate "$work/big100k")
echo "validate 1 file x 10,000 tasks: $t10 s"
echo "validate 1 file x 100,000 tasks: $t100 s (ratio $(python3 -c "print(f'{$t100/$t10:.1f}')")x for 10x the tasks; linear is ~10x)"
