#!/usr/bin/env python3
"""Workers, issue #14's figures, on loopback:

- claim-to-start latency: a chain of N `runs_on` tasks, so each becomes ready while the
  worker's claim is held open; per task, from the control plane recording its attempt started
  (the attempt's `started_at`, ms) to the task's first line running on the worker
  (`date +%s%N`), p50 and p99. Target: p99 < 20 ms.
- throughput: one run of M independent `runs_on: [linux]` tasks (`true`) through 4 workers
  of 4 slots each, tasks/s from the run's start to its end; and the same run on the server's
  own local executor, for reference.

    BATON_BIN=/path/to/baton python3 bench/workers.py [N] [M] [REPEAT]
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

from common import BATON, Server, fetch, load_average, percentile, require_baton, spread

SECRET = "bench-worker-secret-0123456789abcdef0123456789"


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def chain(n, mark):
    out = "name: claimchain\ntasks:\n"
    for i in range(n):
        out += f"  t{i}:\n    runs_on: [linux]\n    run: date +%s%N >> {mark}/t{i}\n"
        if i:
            out += f"    needs: [t{i - 1}]\n"
    return out


def wide(m, remote):
    placement = "    runs_on: [linux]\n" if remote else ""
    name = "wide_remote" if remote else "wide_local"
    out = f"name: {name}\ntasks:\n"
    for i in range(m):
        out += f"  t{i}:\n{placement}    run: \"true\"\n"
    return out


def run_to_end(server, pipeline):
    _, _, created = fetch(f"{server.api}/pipelines/default/{pipeline}/runs", "POST", {"params": {}})
    run = created["id"]
    while True:
        _, _, view = fetch(f"{server.api}/runs/{run}")
        if view["state"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.05)
    if view["state"] != "succeeded":
        sys.exit(f"run {run} of {pipeline} ended {view['state']}")
    return run, view


def all_attempts(server, run):
    items, cursor = [], ""
    while True:
        _, _, page = fetch(f"{server.api}/runs/{run}/tasks?limit=500&cursor={cursor}")
        items.extend(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return items


def main():
    require_baton()
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    m = int(sys.argv[2]) if len(sys.argv) > 2 else 400
    repeat = max(1, int(sys.argv[3]) if len(sys.argv) > 3 else 3)
    work = tempfile.mkdtemp(prefix="baton-bench-workers-")
    workers = []
    try:
        pipes = os.path.join(work, "pipelines")
        mark = os.path.join(work, "marks")
        os.makedirs(pipes)
        os.makedirs(mark)
        write(os.path.join(work, "secret"), SECRET)
        write(os.path.join(pipes, "claimchain.yaml"), chain(n, mark))
        write(os.path.join(pipes, "wide_remote.yaml"), wide(m, True))
        write(os.path.join(pipes, "wide_local.yaml"), wide(m, False))
        server = Server(["--home", os.path.join(work, "home"), "server", "--pipelines", pipes,
                         "--worker-secret-file", os.path.join(work, "secret")],
                        os.path.join(work, "server.log"), cwd=work).wait_up()
        try:
            for i in range(4):
                log = open(os.path.join(work, f"worker{i}.log"), "w")
                workers.append(subprocess.Popen(
                    [BATON, "--home", os.path.join(work, f"w{i}"), "--server", server.base, "worker",
                     "--secret-file", os.path.join(work, "secret"), "--labels", "linux",
                     "--slots", "4", "--name", f"w{i}"],
                    stdout=log, stderr=subprocess.STDOUT, cwd=work))
            deadline = time.time() + 30
            while len(fetch(f"{server.api}/workers")[2]["workers"]) < 4:
                if time.time() > deadline:
                    sys.exit("the workers did not register")
                time.sleep(0.1)
            latencies = []
            for _ in range(repeat):
                for f in os.listdir(mark):
                    os.remove(os.path.join(mark, f))
                run, _ = run_to_end(server, "claimchain")
                for entry in all_attempts(server, run):
                    key = entry["task"]["key"]
                    started_ms = entry["attempts"][-1]["started_at"]
                    with open(os.path.join(mark, key)) as f:
                        ran_ns = int(f.read().split()[0])
                    latencies.append(ran_ns / 1e6 - started_ms)
            latencies.sort()
            remote, local = [], []
            for _ in range(repeat):
                for name, into in (("wide_remote", remote), ("wide_local", local)):
                    _, view = run_to_end(server, name)
                    seconds = (view["finished_at"] - view["started_at"]) / 1000
                    into.append(m / seconds)
            print(f"load average {load_average():.2f}; {n}-task chain and {m} tasks, {repeat} runs each")
            print(f"claim-to-start, attempt recorded started -> task running on a worker "
                  f"({len(latencies)} tasks): p50 {percentile(latencies, 0.5):.1f} ms, "
                  f"p99 {percentile(latencies, 0.99):.1f} ms, max {latencies[-1]:.1f} ms")
            print(f"throughput, 4 workers x 4 slots: {spread(remote, 'tasks/s', 1, 0)}")
            print(f"throughput, the server's local executor: {spread(local, 'tasks/s', 1, 0)}")
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                try:
                    w.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    w.kill()
            server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
