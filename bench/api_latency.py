#!/usr/bin/env python3
"""API latency of `baton server` (release build) while runs stream logs.

Starts a server on a fresh home, triggers RUNS runs whose one task each writes about 1 MB/s
of log output (64 KiB lines, four at a time, four times a second), and meanwhile times
sequential `GET /api/v1/runs` requests: what an operator's dashboard sees while the server is
busy copying output. The same requests on the idle server, before the runs start, give the
baseline. It also reports how much log output the server actually kept per second, so a
figure from a server that fell behind is not mistaken for a fast one.

Usage: cargo build --release && python3 bench/api_latency.py [REQUESTS] [RUNS]
(`BATON_BIN=path` times another build; `BATON_WORKER_THREADS` sizes the server's runtime.)
"""
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time

from common import BATON, request
SECONDS = 40
PIPELINE = f"""name: chatty
tasks:
  talk:
    run: |
      line=$(head -c 65535 /dev/zero | tr '\\0' x)
      end=$(( $(date +%s) + {SECONDS} ))
      while [ "$(date +%s)" -lt "$end" ]; do
        printf '%s\\n%s\\n%s\\n%s\\n' "$line" "$line" "$line" "$line"
        sleep 0.25
      done
"""




def timed_gets(conn, n, gap):
    latencies = []
    for _ in range(n):
        start = time.perf_counter()
        status, _ = request(conn, "GET", "/api/v1/runs")
        latencies.append((time.perf_counter() - start) * 1e3)
        if status != 200:
            sys.exit(f"GET /api/v1/runs answered {status}")
        time.sleep(gap)
    return sorted(latencies)


def summary(latencies):
    p = lambda q: latencies[min(len(latencies) - 1, round((len(latencies) - 1) * q))]
    return f"p50 {p(0.5):.2f} ms  p99 {p(0.99):.2f} ms  max {latencies[-1]:.2f} ms"


def log_bytes(home):
    total = 0
    for dirpath, _, files in os.walk(home):
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files if f.endswith(".log"))
    return total


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    if not os.path.exists(BATON):
        sys.exit("build first: cargo build --release")
    work = tempfile.mkdtemp(prefix="baton-api-latency-")
    home = os.path.join(work, "home")
    try:
        os.makedirs(os.path.join(work, "pipelines"))
        with open(os.path.join(work, "pipelines", "chatty.yaml"), "w") as f:
            f.write(PIPELINE)
        server = subprocess.Popen(
            [BATON, "--home", home, "server", "--pipelines", os.path.join(work, "pipelines"),
             "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        try:
            line = server.stdout.readline().strip()
            host, port = line.rsplit("http://", 1)[1].split(":")
            conn = http.client.HTTPConnection(host, int(port))
            idle = timed_gets(conn, n // 4, 0.005)
            for _ in range(runs):
                status, run = request(conn, "POST", "/api/v1/pipelines/default/chatty/runs", {})
                if status != 201:
                    sys.exit(f"trigger answered {status}: {run}")
            # Every task streaming before the clock starts.
            deadline = time.time() + 10
            while True:
                _, listed = request(conn, "GET", "/api/v1/runs?state=running")
                if len(listed["items"]) >= runs:
                    break
                if time.time() > deadline:
                    sys.exit("the runs did not all start within 10 s")
                time.sleep(0.05)
            time.sleep(1)
            bytes_before, start = log_bytes(home), time.perf_counter()
            busy = timed_gets(conn, n, 0.02)
            elapsed = time.perf_counter() - start
            rate = (log_bytes(home) - bytes_before) / elapsed / 1e6
            if elapsed > SECONDS - 2:
                print(f"warning: the requests took {elapsed:.0f} s, longer than the tasks talk")
            print(f"GET /api/v1/runs, {BATON}")
            print(f"  idle:                 {summary(idle)}  ({len(idle)} requests)")
            print(f"  {runs} runs streaming:   {summary(busy)}  ({n} requests, "
                  f"logs kept at {rate:.1f} MB/s)")
        finally:
            server.terminate()
            server.wait(timeout=60)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
