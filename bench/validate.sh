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

# Every task of a chain reads the first task's output (each reference asks "is t0 upstream of
# me?"), and the same chain reading only a param: both should double per doubling.
chain() { # chain DIR N EXPR
  python3 - "$@" <<'PY'
import os, sys
d, n, expr = sys.argv[1], int(sys.argv[2]), sys.argv[3]
os.makedirs(d, exist_ok=True)
lines = ["name: chain", "params:", "  x: { type: string, default: a }", "tasks:",
         "  t0:", "    run: echo", "    outputs: [o]"]
for i in range(1, n):
    lines += [f"  t{i}:", f"    needs: [t{i-1}]", f'    run: echo "{expr}"', "    outputs: [o]"]
open(os.path.join(d, "chain.yaml"), "w").write("\n".join(lines) + "\n")
PY
}
for expr in '{{ tasks.t0.outputs.o }}' '{{ params.x }}'; do
  line="validate a chain reading $expr:"
  for n in 5000 10000 20000; do
    chain "$work/chain$n" "$n" "$expr"
    line="$line $n tasks $(best 3 $bin validate "$work/chain$n") s;"
  done
  echo "$line"
done

# A generated file of 200,000 unknown keys: validation lists the first 100 problems only.
python3 - "$work/junk" <<'PY'
import os, sys
os.makedirs(sys.argv[1], exist_ok=True)
with open(os.path.join(sys.argv[1], "junk.yaml"), "w") as f:
    f.write("name: junk\ntasks:\n  a:\n    run: x\n")
    for i in range(200000):
        f.write(f"unknown_{i}: 1\n")
PY
lines=$($bin validate "$work/junk" 2>&1 | wc -l || true)
echo "validate 200,000 unknown keys: $(python3 - "$bin" "$work/junk" <<'PY'
import subprocess, sys, time
t = time.perf_counter()
subprocess.run([sys.argv[1], "validate", sys.argv[2]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(f"{time.perf_counter() - t:.3f}")
PY
) s, $lines lines of output"
