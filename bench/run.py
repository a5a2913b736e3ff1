#!/usr/bin/env python3
"""Execution benchmarks for `baton run` (release build), printing figures for this machine.

1. chain of 1,000 tasks running `true`, against a shell loop running /bin/true 1,000 times
2. fan-out of 10,000 `true` tasks at parallelism 2, against `seq 10000 | xargs -P2 -I{} true`,
   with baton's peak RSS
3. scheduling latency: from a task's process ending to its dependent's process starting
"""
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from common import BATON, timed




def baton_run(work, pipeline, *args):
    """Runs baton in a fresh home; returns (wall seconds, peak RSS in MiB of baton)."""
    home = os.path.join(work, "home")
    shutil.rmtree(home, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(
        [BATON, "--home", home, "run", pipeline, *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"baton run {pipeline} failed with {proc.returncode}")
    # ru_maxrss of children is the largest of any child so far; baton is the largest here.
    peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return wall, peak


def chain(work, n):
    path = os.path.join(work, "chain.yaml")
    with open(path, "w") as f:
        f.write("name: chain\ntasks:\n")
        for i in range(n):
            f.write(f"  t{i}:\n    run: \"true\"\n")
            if i:
                f.write(f"    needs: [t{i-1}]\n")
    return path


def fanout(work, n):
    path = os.path.join(work, "fanout.yaml")
    with open(path, "w") as f:
        f.write("name: fanout\ntasks:\n  work:\n    for_each: [" + ", ".join(str(i) for i in range(n)) + "]\n    run: \"true\"\n")
    return path


def latency(work, n):
    """A chain of `date +%s%N` tasks. baton executes such a plain command directly, so each
    task's log holds one timestamp taken just after its process started and just before it
    exited: the gap between neighbours is the scheduling latency plus `date`'s own start-up."""
    path = os.path.join(work, "latency.yaml")
    with open(path, "w") as f:
        f.write("name: latency\ntasks:\n")
        for i in range(n):
            f.write(f"  t{i}:\n    run: date +%s%N\n")
            if i:
                f.write(f"    needs: [t{i-1}]\n")
    return path


def main():
    if not os.path.exists(BATON):
        sys.exit("build first: cargo build --release -p baton")
    work = tempfile.mkdtemp(prefix="baton-bench-")
    try:
        n = 1000
        shell = min(timed(["sh", "-c", f"i=0; while [ $i -lt {n} ]; do /bin/true; i=$((i+1)); done"]) for _ in range(3))
        runs = [baton_run(work, chain(work, n)) for _ in range(3)]
        wall = min(r[0] for r in runs)
        print(f"1. chain of {n} `true` tasks: baton {wall:.3f} s, shell loop {shell:.3f} s, "
              f"ratio {wall / shell:.2f}x, overhead {(wall - shell) / n * 1000:.3f} ms/task "
              f"(targets: ratio < 2x, overhead < 1 ms/task)")

        m = 10000
        xargs = min(timed(["sh", "-c", f"seq {m} | xargs -P2 -I{{}} true"]) for _ in range(3))
        runs = [baton_run(work, fanout(work, m), "--parallelism", "2") for _ in range(3)]
        wall = min(r[0] for r in runs)
        rss = max(r[1] for r in runs)
        print(f"2. fan-out of {m} `true` tasks, parallelism 2: baton {wall:.3f} s, xargs -P2 {xargs:.3f} s, "
              f"ratio {wall / xargs:.2f}x, baton peak RSS {rss:.1f} MiB (targets: ratio < 2x, RSS < 150 MB)")

        # Pooled over three runs: one run's 300 samples put p99 on three data points.
        k = 300
        gaps = []
        for _ in range(3):
            baton_run(work, latency(work, k))
            logs = os.path.join(work, "home", "logs")
            run_dir = os.path.join(logs, os.listdir(logs)[0])
            stamps = [int(open(os.path.join(run_dir, f"t{i}.1.log")).read()) for i in range(k)]
            gaps += [(stamps[i] - stamps[i - 1]) / 1e6 for i in range(1, k)]
        gaps.sort()
        p50 = statistics.median(gaps)
        p99 = gaps[int(len(gaps) * 0.99) - 1]
        print(f"3. scheduling latency over {len(gaps)} dependencies (task's process ends -> dependent's process runs): "
              f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {gaps[-1]:.2f} ms (target p99 < 5 ms)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
