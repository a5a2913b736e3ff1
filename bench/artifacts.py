#!/usr/bin/env python3
"""What moving a file as an artifact costs, against copying it: a pipeline whose first task
makes an N MiB file and uploads it, and whose second, in another directory, downloads it and
checks it; against making the same file and `cp` of it twice (into a store, out of it). Both sides read
and write the same bytes; baton also hashes them on the way in and out, and runs two tasks.

    BATON_BIN=/path/to/baton python3 bench/artifacts.py [MIB] [REPEAT]

Prints min–max (median) seconds and the throughput of the move (2 × MIB / time).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

from common import BATON, load_average, require_baton, spread

PIPELINE = """name: moved
tasks:
  make:
    working_dir: a
    artifacts: {{ upload: [big.bin] }}
    run: head -c {size} /dev/urandom > big.bin
  use:
    needs: [make]
    working_dir: b
    artifacts: {{ download: [make] }}
    run: test "$(wc -c < big.bin)" -eq {size}
"""


def run_once(work, pipeline):
    home = os.path.join(work, "home")
    shutil.rmtree(home, ignore_errors=True)
    for d in ("a", "b"):
        shutil.rmtree(os.path.join(work, d), ignore_errors=True)
        os.makedirs(os.path.join(work, d))
    start = time.perf_counter()
    proc = subprocess.run([BATON, "--home", home, "run", pipeline],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=work)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"baton run failed: {proc.stderr.decode()}")
    return wall


def baseline_once(work, size):
    src = os.path.join(work, "src.bin")
    start = time.perf_counter()
    subprocess.run(["sh", "-c", f"head -c {size} /dev/urandom > {src}"], check=True)
    subprocess.run(["cp", src, os.path.join(work, "stored.bin")], check=True)
    subprocess.run(["cp", os.path.join(work, "stored.bin"), os.path.join(work, "placed.bin")],
                   check=True)
    return time.perf_counter() - start


def main():
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    repeat = max(3, int(sys.argv[2]) if len(sys.argv) > 2 else 5)
    require_baton()
    size = mib * 1024 * 1024
    work = tempfile.mkdtemp(prefix="baton-artifacts-")
    try:
        pipeline = os.path.join(work, "moved.yaml")
        with open(pipeline, "w") as f:
            f.write(PIPELINE.format(size=size))
        print(f"{BATON}, a {mib} MiB artifact, {repeat} runs, load average {load_average():.2f}")
        runs = [run_once(work, pipeline) for _ in range(repeat)]
        copies = [baseline_once(work, size) for _ in range(repeat)]
        med = sorted(runs)[len(runs) // 2]
        base = sorted(copies)[len(copies) // 2]
        print(f"baton run (make + upload, download + check): {spread(runs)}")
        print(f"the same bytes by hand (make, cp into a store, cp out): {spread(copies)}")
        print(f"the move costs {med - base:.3f} s over the copies (median): "
              f"{2 * mib / max(med - base, 1e-9):.0f} MiB/s of hashing, storing and placing")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
