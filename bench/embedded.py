#!/usr/bin/env python3
"""Embedded (SQLite) start-up and throughput of `baton run` against the shell, issue #13's
targets. Every baton run gets a fresh `--home`, so each pays for creating the database.

1. a one-task run of `true`, against `true` itself: within 15 ms of it
2. a chain of 50 `true` tasks, against a shell loop running /bin/true 50 times: at most 2x
3. 1,000 independent `true` tasks at parallelism 2, against
   `seq 1000 | xargs -P2 -I{} true`: at most 1.5x

Each figure is measured REPEAT times (default 9, at least 5), alternating baton and its
reference so that a burst of load elsewhere hits both; printed as min–max (median), and a
target is judged on the medians. The load average is printed with them: the machine is shared.

    BATON_BIN=/path/to/baton python3 bench/embedded.py [REPEAT]
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

from common import BATON, chain, independent, load_average, require_baton, spread, timed


def baton_run(work, pipeline, *args):
    """Wall seconds of `baton run` in a fresh home (creating it is part of the figure)."""
    home = os.path.join(work, "home")
    shutil.rmtree(home, ignore_errors=True)
    start = time.perf_counter()
    proc = subprocess.run([BATON, "--home", home, "run", pipeline, *args],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=work)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"baton run {pipeline} failed with {proc.returncode}: {proc.stderr.decode()}")
    return wall


def median(values):
    return sorted(values)[len(values) // 2]


def pairs(repeat, ours, theirs):
    a, b = [], []
    ours()  # warm the page cache and the binary
    theirs()
    for _ in range(repeat):
        a.append(ours())
        b.append(theirs())
    return a, b


def main():
    repeat = max(5, int(sys.argv[1]) if len(sys.argv) > 1 else 9)
    require_baton()
    work = tempfile.mkdtemp(prefix="baton-embedded-")
    verdict = lambda ok: "met" if ok else "NOT met"
    try:
        print(f"{BATON}, {repeat} repeats each, load average {load_average():.2f}")
        one = chain(os.path.join(work, "one.yaml"), 1, name="one")
        b, t = pairs(repeat, lambda: baton_run(work, one), lambda: timed(["true"]))
        gap = median(b) - median(t)
        print(f"1. one-task run: baton {spread(b, 'ms', 1e3, 1)}, true {spread(t, 'ms', 1e3, 2)}; "
              f"baton - true {gap * 1e3:.1f} ms (target <= 15 ms: {verdict(gap <= 0.015)})")

        n = 50
        fifty = chain(os.path.join(work, "chain.yaml"), n)
        loop = ["sh", "-c", f"i=0; while [ $i -lt {n} ]; do /bin/true; i=$((i+1)); done"]
        b, s = pairs(repeat, lambda: baton_run(work, fifty), lambda: timed(loop))
        ratio = median(b) / median(s)
        print(f"2. chain of {n}: baton {spread(b, 'ms', 1e3, 1)}, shell loop {spread(s, 'ms', 1e3, 1)}; "
              f"ratio {ratio:.2f}x (target <= 2x: {verdict(ratio <= 2)})")

        m = 1000
        wide = independent(os.path.join(work, "wide.yaml"), m)
        xargs = ["sh", "-c", f"seq {m} | xargs -P2 -I{{}} true"]
        b, x = pairs(repeat, lambda: baton_run(work, wide, "--parallelism", "2"), lambda: timed(xargs))
        ratio = median(b) / median(x)
        print(f"3. {m} independent tasks, parallelism 2: baton {spread(b, 'ms', 1e3, 0)}, "
              f"xargs -P2 {spread(x, 'ms', 1e3, 0)}; ratio {ratio:.2f}x "
              f"(target <= 1.5x: {verdict(ratio <= 1.5)})")
        print(f"load average at the end {load_average():.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
