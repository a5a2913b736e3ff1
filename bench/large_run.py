#!/usr/bin/env python3
"""A large run on `baton server` (release build), printing figures for this machine.

A fan-out of N `true` tasks (default 100,000) is started on a server with a fresh home. While
it runs, the server's RSS is sampled (VmRSS, and VmHWM for the peak) along with the size and
time of `GET /runs/{id}` and of a page of `GET /runs/{id}/tasks`; after it ends, its RSS
again once the server had a few seconds to give memory back.

    BATON_BIN=/path/to/baton python3 bench/large_run.py [N]

Targets (issue #13): peak RSS under 300 MB for 100,000 tasks, memory given back after the
run ends, the run's responses a page in size.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error

from common import BATON, fetch, free_port
# Bounded: the benchmark stops by itself whatever the server does.
RUN_TIMEOUT_S = 1800
SAMPLE_EVERY_S = 2.0




def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def mib(kib):
    return kib / 1024




def fanout(pipelines, n):
    with open(os.path.join(pipelines, "fanout.yaml"), "w") as f:
        f.write("name: fanout\ntasks:\n  work:\n    for_each: [" + ", ".join(str(i) for i in range(n)) + "]\n    run: \"true\"\n")


def wait_up(api, proc):
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"baton server exited with {proc.returncode}")
        try:
            fetch(api.rsplit("/api/v1", 1)[0] + "/healthz")
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    sys.exit("baton server did not come up in 60 s")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    if not os.path.exists(BATON):
        sys.exit(f"no baton at {BATON}: cargo build --release -p baton, or set BATON_BIN")
    work = tempfile.mkdtemp(prefix="baton-large-")
    pipelines = os.path.join(work, "pipelines")
    os.makedirs(pipelines)
    fanout(pipelines, n)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api/v1"
    log = open(os.path.join(work, "server.log"), "w")
    proc = subprocess.Popen(
        [BATON, "--home", os.path.join(work, "home"), "server", "--pipelines", pipelines,
         "--listen", f"127.0.0.1:{port}", "--no-watch"],
        stdout=log, stderr=subprocess.STDOUT, cwd=work,
    )
    try:
        wait_up(api, proc)
        idle = status_kib(proc.pid, "VmRSS")
        start = time.perf_counter()
        _, _, created = fetch(api + "/pipelines/default/fanout/runs", "POST", {"params": {}})
        run = created["id"]
        gets = []
        pages = []
        samples = []
        state = "queued"
        while time.perf_counter() - start < RUN_TIMEOUT_S:
            samples.append(status_kib(proc.pid, "VmRSS"))
            secs, size, detail = fetch(f"{api}/runs/{run}")
            gets.append((secs, size))
            state = detail["state"]
            cursor = detail.get("tasks_next_cursor")
            if cursor:
                secs, size, _ = fetch(f"{api}/runs/{run}/tasks?limit=500&cursor={cursor}")
                pages.append((secs, size))
            if state in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(SAMPLE_EVERY_S)
        wall = time.perf_counter() - start
        if state not in ("succeeded", "failed", "cancelled"):
            sys.exit(f"run {run} still {state} after {RUN_TIMEOUT_S} s")
        counts = detail.get("task_counts", {})
        peak = status_kib(proc.pid, "VmHWM")
        ended = status_kib(proc.pid, "VmRSS")
        time.sleep(10)
        after = status_kib(proc.pid, "VmRSS")
        # A last look once it is over: the cost of reading a finished large run.
        secs, size, _ = fetch(f"{api}/runs/{run}")
        gets.append((secs, size))
        settled = status_kib(proc.pid, "VmRSS")
        # RSS counts the database's pages that SQLite reads through its memory map
        # (`mmap_size`) as well as the heap: page cache the kernel takes back under pressure,
        # shared with every process reading the file. The heap is RssAnon.
        anon = status_kib(proc.pid, "RssAnon")
        mapped = status_kib(proc.pid, "RssFile")

        print(f"large run: fan-out of {n} `true` tasks on baton server, {state} in {wall:.1f} s, counts {counts}")
        print(f"  server RSS: idle {mib(idle):.1f} MiB, peak (VmHWM) {mib(peak):.1f} MiB, "
              f"largest sample {mib(max(samples)):.1f} MiB, at the end {mib(ended):.1f} MiB, "
              f"10 s later {mib(after):.1f} MiB, after reading the finished run {mib(settled):.1f} MiB "
              f"(target: peak < 300 MB, memory given back)")
        print(f"  of which, after: heap and stacks (RssAnon) {mib(anon):.1f} MiB, "
              f"mapped files (RssFile: the binary, the database's pages) {mib(mapped):.1f} MiB")
        print(f"  GET /runs/{{id}}: {len(gets)} requests, largest {max(s for _, s in gets) / 1e6:.3f} MB, "
              f"slowest {max(t for t, _ in gets) * 1000:.0f} ms, last {gets[-1][1] / 1e6:.3f} MB in {gets[-1][0] * 1000:.0f} ms")
        if pages:
            print(f"  GET /runs/{{id}}/tasks?limit=500 (second page): {len(pages)} requests, "
                  f"largest {max(s for _, s in pages) / 1e6:.3f} MB, slowest {max(t for t, _ in pages) * 1000:.0f} ms")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
