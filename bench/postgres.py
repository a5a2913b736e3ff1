#!/usr/bin/env python3
"""baton on PostgreSQL (release build), issue #13's targets, printing figures for this machine.

1. 1,000 independent `true` tasks at parallelism 2 with `baton run --database URL`, against
   the same run on SQLite in a fresh home: at most 2x. Each PostgreSQL run gets a database of
   its own (created with `psql`), so both pay for their migrations.
2. 100 runs of a 10-task chain triggered at once across 2 `baton server` replicas on one
   PostgreSQL (50 through each): task transitions per second (task state changes committed,
   from the `events` table, over the time from the first trigger to the last run's end), and
   p50/p99/max dependency-to-start latency (from a task's attempt finishing to its dependent's
   attempt starting, from the `attempts` table; milliseconds, as stored).

The database comes from `BATON_DATABASE_URL` (or `BATON_TEST_POSTGRES_URL`); `psql` must
reach it. To start a throwaway one:

    BATON_TEST_POSTGRES_PORT=54410 BATON_TEST_POSTGRES_DIR=/tmp/perfpg \\
        bash .ci/postgres.sh start > /tmp/perfpgenv; eval "$(cat /tmp/perfpgenv)"
    BATON_BIN=/path/to/baton python3 bench/postgres.py [REPEAT] [RUNS]
    BATON_TEST_POSTGRES_PORT=54410 BATON_TEST_POSTGRES_DIR=/tmp/perfpg bash .ci/postgres.sh stop

(.ci/postgres.sh starts PostgreSQL with `fsync=off`: commits cost no disk flush there, unlike
SQLite's WAL here; say so when quoting the ratio.)
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

from common import (BATON, Server, chain, fetch, independent, load_average, percentile,
                    require_baton, spread)


def psql(url, sql):
    out = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-At", "-F", "\t", "-c", sql],
                         check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def with_database(url, name):
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def baton_run(work, args, pipeline):
    start = time.perf_counter()
    proc = subprocess.run([BATON, *args, "run", pipeline, "--parallelism", "2"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=work)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"baton run failed with {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    return wall


def wide(work, url, repeat):
    pipeline = independent(os.path.join(work, "wide.yaml"), 1000)
    pg, lite = [], []
    for i in range(repeat + 1):
        name = f"baton_bench_{os.getpid()}_{i}"
        psql(url, f"CREATE DATABASE {name}")
        try:
            home = os.path.join(work, "pg-home")
            shutil.rmtree(home, ignore_errors=True)
            t = baton_run(work, ["--home", home, "--database", with_database(url, name)], pipeline)
        finally:
            psql(url, f"DROP DATABASE {name}")
        home = os.path.join(work, "home")
        shutil.rmtree(home, ignore_errors=True)
        s = baton_run(work, ["--home", home], pipeline)
        if i:  # the first of each warms the page cache
            pg.append(t)
            lite.append(s)
    ratio = sorted(pg)[len(pg) // 2] / sorted(lite)[len(lite) // 2]
    print(f"1. 1000 independent tasks, parallelism 2: PostgreSQL {spread(pg, 'ms', 1e3, 0)}, "
          f"SQLite {spread(lite, 'ms', 1e3, 0)}; ratio {ratio:.2f}x "
          f"(target <= 2x: {'met' if ratio <= 2 else 'NOT met'})")


def cpu_seconds(servers):
    """CPU seconds so far of the replicas, of their reaped tasks, and of PostgreSQL's processes."""
    tick = os.sysconf("SC_CLK_TCK")

    def stat(pid):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return [int(x) for x in fields[11:15]]  # utime, stime, cutime, cstime

    own = tasks = pg = 0
    for s in servers:
        u, st, cu, cs = stat(s.proc.pid)
        own += u + st
        tasks += cu + cs
    for pid in subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True).stdout.split():
        try:
            u, st, _, _ = stat(pid)
            pg += u + st
        except OSError:
            pass
    return [own / tick, tasks / tick, pg / tick]


def replicas(work, url, runs):
    name = f"baton_bench_{os.getpid()}_servers"
    psql(url, f"CREATE DATABASE {name}")
    db = with_database(url, name)
    pipelines = os.path.join(work, "pipelines")
    os.makedirs(pipelines, exist_ok=True)
    # `date` is run directly (no shell): its log holds the time its process started, just
    # before it exits, so neighbours' stamps are apart by the dependency-to-start latency
    # plus `date`'s own start-up.
    chain(os.path.join(pipelines, "chain10.yaml"), 10, run="date +%s%N", name="chain10")
    servers = []
    try:
        for i in range(2):
            servers.append(Server(["--home", os.path.join(work, f"replica{i}"), "--database", db,
                                   "server", "--pipelines", pipelines, "--no-watch"],
                                  os.path.join(work, f"replica{i}.log"), cwd=work))
        for s in servers:
            s.wait_up()
        cpu_before = cpu_seconds(servers)
        ids = []
        for i in range(runs):
            _, _, run = fetch(servers[i % 2].api + "/pipelines/default/chain10/runs", "POST", {})
            ids.append(run["id"])
        deadline = time.time() + 600
        while True:
            left = psql(db, "SELECT count(*) FROM runs WHERE state NOT IN "
                            "('succeeded', 'failed', 'cancelled')")[0][0]
            if left == "0":
                break
            if time.time() > deadline:
                sys.exit(f"{left} runs unfinished after 600 s")
            time.sleep(0.05)
        cpu = [b - a for a, b in zip(cpu_before, cpu_seconds(servers))]
        states = psql(db, "SELECT state, count(*) FROM runs GROUP BY state")
        first, last = psql(db, "SELECT min(created_at), max(finished_at) FROM runs")[0]
        transitions = int(psql(db, "SELECT count(*) FROM events WHERE kind = 'task_state'")[0][0])
        span = (int(last) - int(first)) / 1e3
        stamps = {}
        for run, key, text in psql(db, "SELECT run_id, task_key, convert_from(data, 'UTF8') "
                                       "FROM log_chunks"):
            stamps.setdefault(run, {})[key] = int(text.strip())
        gaps = []
        for tasks in stamps.values():
            for i in range(1, 10):
                if f"t{i}" in tasks and f"t{i-1}" in tasks:
                    gaps.append((tasks[f"t{i}"] - tasks[f"t{i-1}"]) / 1e6)
        gaps.sort()
        stats = psql(db, "SELECT xact_commit, numbackends FROM pg_stat_database "
                         f"WHERE datname = '{name}'")[0]
        print(f"2. {runs} runs of a 10-task chain across 2 replicas: {dict(states)} in {span:.2f} s "
              f"(first trigger to last end)")
        print(f"   task transitions: {transitions} ({transitions / span:.0f}/s); "
              f"PostgreSQL commits in the database: {stats[0]} ({int(stats[0]) / span:.0f}/s over the "
              f"span, migrations and reads included), backends now {stats[1]}")
        print(f"   dependency-to-start latency over {len(gaps)} edges (a task's process ends -> its "
              f"dependent's process runs): p50 {percentile(gaps, 0.5):.1f} ms, p90 "
              f"{percentile(gaps, 0.9):.1f} ms, p99 {percentile(gaps, 0.99):.1f} ms, max {gaps[-1]:.1f} ms")
        print(f"   CPU over the span (of {2 * span:.2f} core-seconds): replicas {cpu[0]:.2f} s, their tasks "
              f"{cpu[1]:.2f} s, PostgreSQL {cpu[2]:.2f} s")
    finally:
        for s in servers:
            s.stop()
        psql(url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main():
    repeat = max(5, int(sys.argv[1]) if len(sys.argv) > 1 else 5)
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    url = os.environ.get("BATON_DATABASE_URL") or os.environ.get("BATON_TEST_POSTGRES_URL")
    if not url:
        sys.exit("set BATON_DATABASE_URL (or BATON_TEST_POSTGRES_URL) to a PostgreSQL URL")
    require_baton()
    work = tempfile.mkdtemp(prefix="baton-postgres-")
    try:
        print(f"{BATON}, load average {load_average():.2f}")
        wide(work, url, repeat)
        replicas(work, url, runs)
        print(f"load average at the end {load_average():.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
