#!/usr/bin/env python3
"""Trigger-to-first-task-start latency through the API of `baton server` (release build).

A client sends `POST /api/v1/pipelines/default/latency/runs` and notes the time; the pipeline's
only task runs `date +%s%N` (exec'd directly, no shell), which prints the time its process
started. The difference, over N sequential triggers, is the latency a user sees from "trigger"
to "my code runs": HTTP, parameter checks, run creation and its commit, the dispatcher's first
steps and the process spawn. Both clocks are this machine's CLOCK_REALTIME.

Usage: cargo build --release && python3 bench/trigger_latency.py [N]
"""
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from common import BATON, request
PIPELINE = """name: latency
tasks:
  first:
    run: date +%s%N
"""




def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    if not os.path.exists(BATON):
        sys.exit("build first: cargo build --release")
    work = tempfile.mkdtemp(prefix="baton-latency-")
    try:
        os.makedirs(os.path.join(work, "pipelines"))
        with open(os.path.join(work, "pipelines", "latency.yaml"), "w") as f:
            f.write(PIPELINE)
        server = subprocess.Popen(
            [BATON, "--home", os.path.join(work, "home"), "server", "--pipelines",
             os.path.join(work, "pipelines"), "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        try:
            line = server.stdout.readline().strip()
            host, port = line.rsplit("http://", 1)[1].split(":")
            conn = http.client.HTTPConnection(host, int(port))
            latencies = []
            for _ in range(n):
                sent = time.time_ns()
                status, run = request(conn, "POST", "/api/v1/pipelines/default/latency/runs", {})
                if status != 201:
                    sys.exit(f"trigger answered {status}: {run}")
                while True:
                    _, doc = request(conn, "GET", f"/api/v1/runs/{run['id']}")
                    if doc["state"] in ("succeeded", "failed"):
                        break
                    time.sleep(0.002)
                if doc["state"] != "succeeded":
                    sys.exit(f"run {run['id']} {doc['state']}")
                # The task printed when its process started; its log is read through the API,
                # which keeps server paths off the wire.
                task = doc["tasks"][0]["key"]
                conn.request("GET", f"/api/v1/runs/{run['id']}/tasks/{task}/log",
                             headers={"Accept": "text/plain"})
                resp = conn.getresponse()
                started = int(resp.read().decode().strip())
                latencies.append((started - sent) / 1e6)
            latencies.sort()
            p = lambda q: latencies[min(len(latencies) - 1, round((len(latencies) - 1) * q))]
            print(f"trigger -> first task process start, {n} sequential triggers via the API:")
            print(f"  p50 {p(0.5):.2f} ms  p90 {p(0.9):.2f} ms  p99 {p(0.99):.2f} ms  "
                  f"max {latencies[-1]:.2f} ms  mean {statistics.mean(latencies):.2f} ms")
        finally:
            server.terminate()
            server.wait(timeout=30)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
