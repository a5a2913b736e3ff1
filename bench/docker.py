#!/usr/bin/env python3
"""Container overhead per task, issue #14's figure: a chain of N container tasks run by
`baton run` (create, start, logs, wait, inspect, remove through the Engine API), against a
shell loop of N `docker run --rm` of the same image and command (the `docker` CLI does the
same calls). The image is built from a static busybox by examples/images/busybox.sh.

Each figure is measured REPEAT times (default 5), alternating the two, printed as min–max
(median) per task.

    BATON_BIN=/path/to/baton python3 bench/docker.py [N] [REPEAT]
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

from common import BATON, ROOT, load_average, require_baton, spread

IMAGE = "baton/busybox:1"


def main():
    require_baton()
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    repeat = max(3, int(sys.argv[2]) if len(sys.argv) > 2 else 5)
    subprocess.run(["sh", os.path.join(ROOT, "examples", "images", "busybox.sh"), IMAGE], check=True)
    work = tempfile.mkdtemp(prefix="baton-bench-docker-")
    try:
        pipeline = os.path.join(work, "chain.yaml")
        with open(pipeline, "w") as f:
            f.write("name: boxes\ntasks:\n")
            for i in range(n):
                f.write(f"  t{i}:\n    container: {{ image: \"{IMAGE}\", pull: never }}\n    run: \"true\"\n")
                if i:
                    f.write(f"    needs: [t{i - 1}]\n")
        loop = f"for i in $(seq {n}); do docker run --rm --network bridge {IMAGE} sh -c true || exit 1; done"
        ours, theirs = [], []
        for _ in range(repeat):
            home = os.path.join(work, "home")
            shutil.rmtree(home, ignore_errors=True)
            start = time.perf_counter()
            proc = subprocess.run([BATON, "--home", home, "run", pipeline],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=work)
            ours.append((time.perf_counter() - start) / n)
            if proc.returncode != 0:
                sys.exit(f"baton run failed: {proc.stderr.decode()}")
            start = time.perf_counter()
            subprocess.run(["sh", "-c", loop], check=True, stdout=subprocess.DEVNULL)
            theirs.append((time.perf_counter() - start) / n)
        print(f"load average {load_average():.2f}; {n} tasks, {repeat} runs each")
        print(f"baton, per container task:    {spread(ours, 'ms', 1000, 1)}")
        print(f"docker run --rm, per command: {spread(theirs, 'ms', 1000, 1)}")
        ratio = sorted(ours)[len(ours) // 2] / sorted(theirs)[len(theirs) // 2]
        print(f"baton / docker run (medians): {ratio:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
